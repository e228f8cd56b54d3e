//! Batch normalisation (Ioffe & Szegedy 2015, "Batch normalization: accelerating deep
//! network training by reducing internal covariate shift"), per feature of a vector,
//! or per channel of an image (statistics over the batch and the channel's pixels,
//! PyTorch's `BatchNorm2d`): training uses the batch's mean and (biased) variance and
//! updates running averages; evaluation uses the running averages. PyTorch's
//! conventions: `weight` (γ), `bias` (β), buffers `running_mean`, `running_var`
//! (unbiased), momentum 0.1, ε 1e-5.

use super::{Features, Layer, Mode, Param, Pass, Shape};
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// A batch-norm layer over `dim` features (or channels).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Features normalised apart: a vector's width, an image's channels.
    pub dim: usize,
    /// Elements per feature per example: 1 for a vector, `h·w` for an image.
    pub inner: usize,
    shape: Features,
    pub eps: f32,
    pub momentum: f32,
    /// (dim,) γ
    pub gamma: Vec<f32>,
    /// (dim,) β
    pub beta: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
    /// (dim,)
    pub running_mean: Vec<f32>,
    /// (dim,)
    pub running_var: Vec<f32>,
    /// (batch, dim·inner): normalised input of the last training forward
    xhat: Matrix,
    /// (dim,): 1 / sqrt(var + eps) of the last training forward
    inv_std: Vec<f32>,
    /// (dim,) scratch for the batch mean
    mean: Vec<f32>,
    last_mode: Mode,
}

impl BatchNorm {
    /// Batch norm over examples of `shape`: per feature of a vector, per channel of an
    /// image.
    pub fn new(shape: impl Into<Features>) -> Self {
        let shape = shape.into();
        let (dim, inner) = match shape {
            Features::Image { c, h, w } => (c, h * w),
            other => (other.size(), 1),
        };
        BatchNorm {
            dim,
            inner,
            shape,
            eps: 1e-5,
            momentum: 0.1,
            gamma: vec![1.0; dim],
            beta: vec![0.0; dim],
            dgamma: vec![0.0; dim],
            dbeta: vec![0.0; dim],
            running_mean: vec![0.0; dim],
            running_var: vec![1.0; dim],
            xhat: Matrix::zeros(0, dim * inner),
            inv_std: vec![0.0; dim],
            mean: vec![0.0; dim],
            last_mode: Mode::Eval,
        }
    }
}

/// `f(j, range)` for every run of feature `j`'s elements in a `(rows, d·k)` buffer
/// (`d` features of `k` elements each), row by row.
fn runs(d: usize, k: usize, rows: usize, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
    for r in 0..rows {
        for j in 0..d {
            let at = (r * d + j) * k;
            f(j, at..at + k);
        }
    }
}

impl Layer for BatchNorm {
    fn describe(&self) -> String {
        match self.shape {
            Features::Image { .. } => format!("batchnorm over {} channels", self.dim),
            _ => format!("batchnorm {}", self.dim),
        }
    }
    fn input(&self) -> Features {
        self.shape
    }
    fn output(&self) -> Features {
        self.shape
    }

    /// Train: `μ, σ²` of the batch (and pixels); `x̂ = (x - μ) / sqrt(σ² + ε)`;
    /// `y = γ x̂ + β`. Eval: the same with the running averages.
    ///
    /// # Shapes
    /// `x, y, xhat: (batch, dim·inner)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let n = x.rows;
        let m = n * self.inner; // values per feature
        self.last_mode = pass.mode;
        if pass.mode == Mode::Eval || m < 2 {
            for j in 0..self.dim {
                self.inv_std[j] = 1.0 / (self.running_var[j] + self.eps).sqrt();
            }
            let (g, b, mu, inv) = (&self.gamma, &self.beta, &self.running_mean, &self.inv_std);
            runs(self.dim, self.inner, n, |j, at| {
                for i in at {
                    y.data[i] = g[j] * (x.data[i] - mu[j]) * inv[j] + b[j];
                }
            });
            self.last_mode = Mode::Eval;
            return;
        }
        self.xhat.set_rows(n);
        let mut mean = std::mem::take(&mut self.mean);
        let mut sq = std::mem::take(&mut self.inv_std); // holds Σ (x - μ)² first
        mean.fill(0.0);
        sq.fill(0.0);
        runs(self.dim, self.inner, n, |j, at| {
            mean[j] += x.data[at].iter().sum::<f32>()
        });
        mean.iter_mut().for_each(|v| *v /= m as f32);
        runs(self.dim, self.inner, n, |j, at| {
            sq[j] += x.data[at]
                .iter()
                .map(|&v| (v - mean[j]) * (v - mean[j]))
                .sum::<f32>()
        });
        for j in 0..self.dim {
            let var = sq[j] / m as f32;
            let unbiased = sq[j] / (m - 1) as f32;
            self.running_mean[j] =
                (1.0 - self.momentum) * self.running_mean[j] + self.momentum * mean[j];
            self.running_var[j] =
                (1.0 - self.momentum) * self.running_var[j] + self.momentum * unbiased;
            sq[j] = 1.0 / (var + self.eps).sqrt();
        }
        let (g, b, xhat) = (&self.gamma, &self.beta, &mut self.xhat);
        runs(self.dim, self.inner, n, |j, at| {
            for i in at {
                let xh = (x.data[i] - mean[j]) * sq[j];
                xhat.data[i] = xh;
                y.data[i] = g[j] * xh + b[j];
            }
        });
        self.mean = mean;
        self.inv_std = sq;
    }

    /// `dβ = Σ dy`, `dγ = Σ dy x̂`,
    /// `dx = γ / (m σ) · (m dy - Σ dy - x̂ Σ (dy x̂))` with `m` values per feature
    /// (training; batch statistics depend on x), or `dx = γ dy / σ_running` (evaluation).
    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        _rt: &Runtime,
    ) {
        let n = dy.rows;
        let mut dgamma = std::mem::take(&mut self.dgamma);
        let mut dbeta = std::mem::take(&mut self.dbeta);
        dgamma.fill(0.0);
        dbeta.fill(0.0);
        if self.last_mode == Mode::Eval {
            // y = γ (x - μ_run) / σ_run + β: affine in x with fixed statistics
            for j in 0..self.dim {
                self.inv_std[j] = 1.0 / (self.running_var[j] + self.eps).sqrt();
            }
            let (mu, inv, g) = (&self.running_mean, &self.inv_std, &self.gamma);
            runs(self.dim, self.inner, n, |j, at| {
                for i in at {
                    dbeta[j] += dy.data[i];
                    dgamma[j] += dy.data[i] * (x.data[i] - mu[j]) * inv[j];
                }
            });
            if let Some(dx) = dx {
                runs(self.dim, self.inner, n, |j, at| {
                    for i in at {
                        dx.data[i] = dy.data[i] * g[j] * inv[j];
                    }
                });
            }
        } else {
            let xhat = &self.xhat;
            runs(self.dim, self.inner, n, |j, at| {
                for i in at {
                    dbeta[j] += dy.data[i];
                    dgamma[j] += dy.data[i] * xhat.data[i];
                }
            });
            if let Some(dx) = dx {
                let m = (n * self.inner) as f32;
                let (g, inv) = (&self.gamma, &self.inv_std);
                runs(self.dim, self.inner, n, |j, at| {
                    for i in at {
                        dx.data[i] = g[j] * inv[j] / m
                            * (m * dy.data[i] - dbeta[j] - xhat.data[i] * dgamma[j]);
                    }
                });
            }
        }
        self.dgamma = dgamma;
        self.dbeta = dbeta;
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        let shape = Shape::vector(self.dim);
        f(Param {
            name: "weight",
            value: &mut self.gamma,
            grad: &self.dgamma,
            shape,
            decay: false,
            transposed: false,
        });
        f(Param {
            name: "bias",
            value: &mut self.beta,
            grad: &self.dbeta,
            shape,
            decay: false,
            transposed: false,
        });
    }

    fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, &mut [f32])) {
        f("running_mean", &mut self.running_mean);
        f("running_var", &mut self.running_var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_in_training_and_tracks_running_stats() {
        let mut bn = BatchNorm::new(2);
        let x = Matrix::from_vec(4, 2, vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]);
        let mut y = Matrix::zeros(4, 2);
        let (rt, mut rng) = (Runtime::single(), crate::rng::Rng::new(0));
        bn.forward(&x, &mut y, &mut Pass::new(Mode::Train, &mut rng, &rt));
        for j in 0..2 {
            let col: Vec<f32> = (0..4).map(|r| y.data[r * 2 + j]).collect();
            let mean = col.iter().sum::<f32>() / 4.0;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 4.0;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
        // running mean moved 10% of the way to the batch mean (2.5, 25)
        assert!(
            (bn.running_mean[0] - 0.25).abs() < 1e-6 && (bn.running_mean[1] - 2.5).abs() < 1e-5
        );
        // unbiased variance of column 0 is 5/3
        assert!((bn.running_var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-5);
    }
}
