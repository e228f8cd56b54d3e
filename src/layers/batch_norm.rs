//! Batch normalisation (Ioffe & Szegedy 2015, "Batch normalization: accelerating deep
//! network training by reducing internal covariate shift"), per feature:
//! training uses the batch's mean and (biased) variance and updates running averages;
//! evaluation uses the running averages. PyTorch's conventions: `weight` (γ), `bias`
//! (β), buffers `running_mean`, `running_var` (unbiased), momentum 0.1, ε 1e-5.

use super::{Features, Layer, Mode, Param, Pass, Shape};
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// A batch-norm layer over `dim` features.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub dim: usize,
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
    /// (batch, dim): normalised input of the last training forward
    xhat: Matrix,
    /// (dim,): 1 / sqrt(var + eps) of the last training forward
    inv_std: Vec<f32>,
    /// (dim,) scratch for the batch mean
    mean: Vec<f32>,
    last_mode: Mode,
}

impl BatchNorm {
    pub fn new(dim: usize) -> Self {
        BatchNorm {
            dim,
            eps: 1e-5,
            momentum: 0.1,
            gamma: vec![1.0; dim],
            beta: vec![0.0; dim],
            dgamma: vec![0.0; dim],
            dbeta: vec![0.0; dim],
            running_mean: vec![0.0; dim],
            running_var: vec![1.0; dim],
            xhat: Matrix::zeros(0, dim),
            inv_std: vec![0.0; dim],
            mean: vec![0.0; dim],
            last_mode: Mode::Eval,
        }
    }
}

impl Layer for BatchNorm {
    fn describe(&self) -> String {
        format!("batchnorm {}", self.dim)
    }
    fn input(&self) -> Features {
        Features::Vector(self.dim)
    }
    fn output(&self) -> Features {
        Features::Vector(self.dim)
    }

    /// Train: `μ, σ²` of the batch; `x̂ = (x - μ) / sqrt(σ² + ε)`; `y = γ x̂ + β`.
    /// Eval: the same with the running averages.
    ///
    /// # Shapes
    /// `x, y, xhat: (batch, dim)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let mode = pass.mode;
        let (n, d) = x.shape();
        self.last_mode = mode;
        if mode == Mode::Eval || n < 2 {
            for r in 0..n {
                for j in 0..d {
                    let inv = 1.0 / (self.running_var[j] + self.eps).sqrt();
                    y.data[r * d + j] =
                        self.gamma[j] * (x.data[r * d + j] - self.running_mean[j]) * inv
                            + self.beta[j];
                }
            }
            self.last_mode = Mode::Eval;
            return;
        }
        self.xhat.set_rows(n);
        self.mean.fill(0.0);
        for r in 0..n {
            for (m, &v) in self.mean.iter_mut().zip(x.row(r)) {
                *m += v;
            }
        }
        self.mean.iter_mut().for_each(|m| *m /= n as f32);
        self.inv_std.fill(0.0); // holds Σ (x - μ)² first
        for r in 0..n {
            for j in 0..d {
                let c = x.data[r * d + j] - self.mean[j];
                self.inv_std[j] += c * c;
            }
        }
        for j in 0..d {
            let var = self.inv_std[j] / n as f32;
            let unbiased = self.inv_std[j] / (n - 1) as f32;
            self.running_mean[j] =
                (1.0 - self.momentum) * self.running_mean[j] + self.momentum * self.mean[j];
            self.running_var[j] =
                (1.0 - self.momentum) * self.running_var[j] + self.momentum * unbiased;
            self.inv_std[j] = 1.0 / (var + self.eps).sqrt();
        }
        for r in 0..n {
            for j in 0..d {
                let xh = (x.data[r * d + j] - self.mean[j]) * self.inv_std[j];
                self.xhat.data[r * d + j] = xh;
                y.data[r * d + j] = self.gamma[j] * xh + self.beta[j];
            }
        }
    }

    /// `dβ = Σ dy`, `dγ = Σ dy x̂`,
    /// `dx = γ / (n σ) · (n dy - Σ dy - x̂ Σ (dy x̂))` (training; batch statistics
    /// depend on x), or `dx = γ dy / σ_running` (evaluation).
    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        _rt: &Runtime,
    ) {
        let (n, d) = dy.shape();
        self.dgamma.fill(0.0);
        self.dbeta.fill(0.0);
        if self.last_mode == Mode::Eval {
            // y = γ (x - μ_run) / σ_run + β: affine in x with fixed statistics
            for j in 0..d {
                self.inv_std[j] = 1.0 / (self.running_var[j] + self.eps).sqrt();
            }
            for r in 0..n {
                for j in 0..d {
                    let i = r * d + j;
                    let xh = (x.data[i] - self.running_mean[j]) * self.inv_std[j];
                    self.dbeta[j] += dy.data[i];
                    self.dgamma[j] += dy.data[i] * xh;
                }
            }
            if let Some(dx) = dx {
                for r in 0..n {
                    for j in 0..d {
                        dx.data[r * d + j] = dy.data[r * d + j] * self.gamma[j] * self.inv_std[j];
                    }
                }
            }
            return;
        }
        for r in 0..n {
            for j in 0..d {
                let g = dy.data[r * d + j];
                self.dbeta[j] += g;
                self.dgamma[j] += g * self.xhat.data[r * d + j];
            }
        }
        if let Some(dx) = dx {
            let nf = n as f32;
            for r in 0..n {
                for j in 0..d {
                    let i = r * d + j;
                    dx.data[i] = self.gamma[j] * self.inv_std[j] / nf
                        * (nf * dy.data[i] - self.dbeta[j] - self.xhat.data[i] * self.dgamma[j]);
                }
            }
        }
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
