//! Batch normalisation (Ioffe & Szegedy 2015, "Batch normalization: accelerating deep
//! network training by reducing internal covariate shift"), per feature of a vector,
//! or per channel of an image (statistics over the batch and the channel's pixels,
//! PyTorch's `BatchNorm2d`): training uses the batch's mean and (biased) variance and
//! updates running averages; evaluation uses the running averages. PyTorch's
//! conventions: `weight` (γ), `bias` (β), buffers `running_mean`, `running_var`
//! (unbiased), momentum 0.1, ε 1e-5.

use super::{Features, Layer, Mode, Param, Pass, Shape};
use crate::par::{Disjoint, fork_blocks};
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

/// Features `j0 .. j0 + nj` of a `(rows, d·k)` buffer (`d` features of `k` elements
/// each): one thread's share. Row `r` holds them at `at(r)`, feature after feature.
#[derive(Clone, Copy)]
struct Block {
    d: usize,
    k: usize,
    rows: usize,
    j0: usize,
    nj: usize,
}

impl Block {
    fn at(&self, r: usize) -> std::ops::Range<usize> {
        let a = (r * self.d + self.j0) * self.k;
        a..a + self.nj * self.k
    }
}

/// Partial sums kept apart in a sum over a run of a feature's elements: a fixed
/// order, the same at every SIMD level, that LLVM can vectorise.
const LANES: usize = 16;

/// `Σ f(a_i, b_i)` over a run: runs shorter than `LANES` in order; longer ones in
/// `LANES` interleaved partial sums, added in order, then the last `len % LANES` terms.
#[inline(always)]
fn run_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    if a.len() < LANES {
        return a.iter().zip(b).fold(0.0, |s, (&x, &y)| s + f(x, y));
    }
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    let s = acc.iter().fold(0.0, |s, &v| s + v);
    ra.iter().zip(rb).fold(s, |s, (&x, &y)| s + f(x, y))
}

crate::simd::simd_fn! {
    /// A block's batch statistics: `mean[j] = Σ x / m`, `sq[j] = Σ (x - mean[j])²`
    /// over the rows and each feature's `k` elements, `m = rows·k` (sums row by row).
    ///
    /// # Shapes
    /// `x: (rows, d·k)`; `mean, sq: (nj,)`.
    fn block_stats(level: Level, b: Block, x: &[f32], mean: &mut [f32], sq: &mut [f32]) {
        mean.fill(0.0);
        sq.fill(0.0);
        for r in 0..b.rows {
            for (s, run) in mean.iter_mut().zip(x[b.at(r)].chunks_exact(b.k)) {
                *s += run_sum(run, run, |v, _| v);
            }
        }
        let m = (b.rows * b.k) as f32;
        mean.iter_mut().for_each(|v| *v /= m);
        for r in 0..b.rows {
            let runs = x[b.at(r)].chunks_exact(b.k);
            for ((s, run), &mu) in sq.iter_mut().zip(runs).zip(&*mean) {
                *s += run_sum(run, run, |v, _| (v - mu) * (v - mu));
            }
        }
    }
}

crate::simd::simd_fn! {
    /// Training (`xhat` given): `x̂ = (x - mean[j]) · inv[j]` kept, `y = γ[j] x̂ + β[j]`;
    /// evaluation: `y = γ[j] (x - mean[j]) · inv[j] + β[j]`, over a block.
    ///
    /// # Shapes
    /// `x, y, xhat: (rows, d·k)`; `stats = (mean, inv)`, `affine = (gamma, beta)`:
    /// `(nj,)` each.
    fn block_normalise(
        level: Level,
        b: Block,
        x: &[f32],
        stats: (&[f32], &[f32]),
        affine: (&[f32], &[f32]),
        xhat: Option<Disjoint<f32>>,
        y: Disjoint<f32>,
    ) {
        let ((mean, inv), (gamma, beta)) = (stats, affine);
        for r in 0..b.rows {
            let at = b.at(r);
            // SAFETY: this block's elements of row r, no other block's.
            let yr = unsafe { y.slice(at.start, at.len()) };
            let mut xh = xhat.map(|h| unsafe { h.slice(at.start, at.len()) });
            for (jj, (xs, ys)) in x[at].chunks_exact(b.k).zip(yr.chunks_exact_mut(b.k)).enumerate() {
                let (mu, s, g, be) = (mean[jj], inv[jj], gamma[jj], beta[jj]);
                match xh.as_deref_mut() {
                    Some(h) => {
                        let h = &mut h[jj * b.k..][..b.k];
                        for ((&xv, yv), hv) in xs.iter().zip(ys.iter_mut()).zip(h) {
                            let t = (xv - mu) * s;
                            *hv = t;
                            *yv = g * t + be;
                        }
                    }
                    None => {
                        for (&xv, yv) in xs.iter().zip(ys.iter_mut()) {
                            *yv = g * (xv - mu) * s + be;
                        }
                    }
                }
            }
        }
    }
}

crate::simd::simd_fn! {
    /// A block's `dβ[j] = Σ dy`, `dγ[j] = Σ dy x̂` (sums row by row), then, if `dx`
    /// is given, `dx = γ[j] inv[j] / m · (m dy - dβ[j] - x̂ dγ[j])`, `m = rows·k`.
    ///
    /// # Shapes
    /// `grads_in = (dy, xhat)`, `dx: (rows, d·k)`; `affine = (gamma, inv)`,
    /// `grads = (dgamma, dbeta)`: `(nj,)` each.
    fn block_backward(
        level: Level,
        b: Block,
        grads_in: (&[f32], &[f32]),
        affine: (&[f32], &[f32]),
        grads: (&mut [f32], &mut [f32]),
        dx: Option<Disjoint<f32>>,
    ) {
        let ((dy, xhat), (gamma, inv), (dgamma, dbeta)) = (grads_in, affine, grads);
        dgamma.fill(0.0);
        dbeta.fill(0.0);
        for r in 0..b.rows {
            let at = b.at(r);
            let (d_runs, h_runs) = (dy[at.clone()].chunks_exact(b.k), xhat[at].chunks_exact(b.k));
            for (((dg, db), d), h) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(d_runs).zip(h_runs) {
                *db += run_sum(d, d, |v, _| v);
                *dg += run_sum(d, h, |v, w| v * w);
            }
        }
        let Some(dx) = dx else { return };
        let m = (b.rows * b.k) as f32;
        for r in 0..b.rows {
            let at = b.at(r);
            // SAFETY: this block's elements of row r, no other block's.
            let out = unsafe { dx.slice(at.start, at.len()) };
            let runs = dy[at.clone()].chunks_exact(b.k).zip(xhat[at].chunks_exact(b.k));
            for (jj, ((d, h), o)) in runs.zip(out.chunks_exact_mut(b.k)).enumerate() {
                let (scale, db, dg) = (gamma[jj] * inv[jj] / m, dbeta[jj], dgamma[jj]);
                for ((&dv, &hv), ov) in d.iter().zip(h).zip(o) {
                    *ov = scale * (m * dv - db - hv * dg);
                }
            }
        }
    }
}

impl BatchNorm {
    /// Features per thread's block.
    fn per_block(&self, rt: &Runtime) -> usize {
        self.dim.div_ceil(rt.threads.max(1)).max(1)
    }

    /// The backward pass after an evaluation-mode forward: `y = γ (x - μ_run) / σ_run
    /// + β` is affine in `x` with fixed statistics, so `dx = γ dy / σ_run`.
    ///
    /// # Shapes
    /// `x, dy, dx: (batch, dim·inner)`.
    fn backward_fixed(&mut self, x: &Matrix, dy: &Matrix, dx: Option<&mut Matrix>) {
        let (dgamma, dbeta) = (&mut self.dgamma, &mut self.dbeta);
        dgamma.fill(0.0);
        dbeta.fill(0.0);
        for j in 0..self.dim {
            self.inv_std[j] = 1.0 / (self.running_var[j] + self.eps).sqrt();
        }
        let (mu, inv, g) = (&self.running_mean, &self.inv_std, &self.gamma);
        runs(self.dim, self.inner, dy.rows, |j, at| {
            for i in at {
                dbeta[j] += dy.data[i];
                dgamma[j] += dy.data[i] * (x.data[i] - mu[j]) * inv[j];
            }
        });
        if let Some(dx) = dx {
            runs(self.dim, self.inner, dy.rows, |j, at| {
                for i in at {
                    dx.data[i] = dy.data[i] * g[j] * inv[j];
                }
            });
        }
    }

    fn block(&self, rows: usize, j0: usize, nj: usize) -> Block {
        Block {
            d: self.dim,
            k: self.inner,
            rows,
            j0,
            nj,
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
        let (level, per) = (pass.rt.simd, self.per_block(pass.rt));
        self.last_mode = pass.mode;
        if pass.mode == Mode::Eval || n * self.inner < 2 {
            for j in 0..self.dim {
                self.inv_std[j] = 1.0 / (self.running_var[j] + self.eps).sqrt();
            }
            let (mu, inv) = (&self.running_mean[..], &self.inv_std[..]);
            let (g, b) = (&self.gamma[..], &self.beta[..]);
            let ys = Disjoint::of(&mut y.data, 1);
            fork_blocks(0, self.dim, per, &|j0, nj| {
                let f = j0..j0 + nj;
                let p = (&g[f.clone()], &b[f.clone()]);
                let stats = (&mu[f.clone()], &inv[f]);
                block_normalise(level, self.block(n, j0, nj), &x.data, stats, p, None, ys)
            });
            self.last_mode = Mode::Eval;
            return;
        }
        self.xhat.set_rows(n);
        let m = (n * self.inner) as f32;
        let (mean, sq) = (
            Disjoint::of(&mut self.mean, 1),
            Disjoint::of(&mut self.inv_std, 1), // holds Σ (x - μ)² first
        );
        let (run_mean, run_var) = (
            Disjoint::of(&mut self.running_mean, 1),
            Disjoint::of(&mut self.running_var, 1),
        );
        let (xhat, ys) = (
            Disjoint::of(&mut self.xhat.data, 1),
            Disjoint::of(&mut y.data, 1),
        );
        let (g, b, eps, momentum) = (&self.gamma[..], &self.beta[..], self.eps, self.momentum);
        let (d, k) = (self.dim, self.inner);
        fork_blocks(0, d, per, &|j0, nj| {
            let block = Block {
                d,
                k,
                rows: n,
                j0,
                nj,
            };
            // SAFETY: features j0 .. j0 + nj, this block's alone.
            let (mean, sq, rm, rv) = unsafe {
                (
                    mean.slice(j0, nj),
                    sq.slice(j0, nj),
                    run_mean.slice(j0, nj),
                    run_var.slice(j0, nj),
                )
            };
            block_stats(level, block, &x.data, mean, sq);
            for (((s, &mu), rm), rv) in sq.iter_mut().zip(&*mean).zip(rm).zip(rv) {
                let (var, unbiased) = (*s / m, *s / (m - 1.0));
                *rm = (1.0 - momentum) * *rm + momentum * mu;
                *rv = (1.0 - momentum) * *rv + momentum * unbiased;
                *s = 1.0 / (var + eps).sqrt();
            }
            let f = j0..j0 + nj;
            let p = (&g[f.clone()], &b[f]);
            block_normalise(level, block, &x.data, (mean, sq), p, Some(xhat), ys);
        });
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
        rt: &Runtime,
    ) {
        let n = dy.rows;
        if self.last_mode == Mode::Eval {
            self.backward_fixed(x, dy, dx);
            return;
        }
        let (level, per) = (rt.simd, self.per_block(rt));
        let (dgamma, dbeta) = (
            Disjoint::of(&mut self.dgamma, 1),
            Disjoint::of(&mut self.dbeta, 1),
        );
        let dx = dx.map(|dx| Disjoint::of(&mut dx.data, 1));
        let (g, inv, xhat) = (&self.gamma[..], &self.inv_std[..], &self.xhat.data[..]);
        fork_blocks(0, self.dim, per, &|j0, nj| {
            // SAFETY: features j0 .. j0 + nj, this block's alone.
            let grads = unsafe { (dgamma.slice(j0, nj), dbeta.slice(j0, nj)) };
            let f = j0..j0 + nj;
            let p = (&g[f.clone()], &inv[f]);
            block_backward(level, self.block(n, j0, nj), (&dy.data, xhat), p, grads, dx);
        });
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
    use crate::simd::Level;

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

    /// Statistics and gradients against an f64 computation of the same formulas, and
    /// the same bits at any thread count and SIMD level, for planes longer than `LANES` (summed in
    /// partial sums) and for vectors.
    #[test]
    fn channels_match_f64_and_threads_do_not_change_bits() {
        let mut rng = crate::rng::Rng::new(5);
        for shape in [Features::Image { c: 5, h: 6, w: 7 }, Features::Vector(37)] {
            let n = 6;
            let size = shape.size();
            let x = Matrix::from_vec(
                n,
                size,
                (0..n * size).map(|_| 3.0 * rng.normal() + 1.0).collect(),
            );
            let dy = Matrix::from_vec(n, size, (0..n * size).map(|_| rng.normal()).collect());
            let mut outs = Vec::new();
            let levels = [Level::Baseline, Level::Avx2, crate::simd::detected()];
            for (threads, level) in [1, 2, 3].into_iter().flat_map(|t| levels.map(|l| (t, l))) {
                let rt = Runtime::new(threads).with_simd(level);
                let mut bn = BatchNorm::new(shape);
                bn.gamma
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, g)| *g = 0.5 + j as f32 * 0.1);
                let (mut y, mut dx) = (Matrix::zeros(n, size), Matrix::zeros(n, size));
                let mut r = crate::rng::Rng::new(0);
                bn.forward(&x, &mut y, &mut Pass::new(Mode::Train, &mut r, &rt));
                bn.backward(&x, &y, &dy, Some(&mut dx), &rt);
                outs.push((
                    y.data,
                    dx.data,
                    bn.dgamma.clone(),
                    bn.dbeta.clone(),
                    bn.running_var.clone(),
                ));
            }
            type Out = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
            let bits = |o: &Out| {
                [&o.0, &o.1, &o.2, &o.3, &o.4]
                    .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            assert!(
                outs.windows(2).all(|w| bits(&w[0]) == bits(&w[1])),
                "{shape:?}: bits differ by thread count or SIMD level"
            );
            // f64 reference
            let (d, k) = (outs[0].2.len(), size / outs[0].2.len());
            let m = (n * k) as f64;
            let at = |r: usize, j: usize, i: usize| (r * d + j) * k + i;
            for j in 0..d {
                let vals = |buf: &Matrix| -> Vec<f64> {
                    (0..n)
                        .flat_map(|r| (0..k).map(move |i| (r, i)))
                        .map(|(r, i)| buf.data[at(r, j, i)] as f64)
                        .collect()
                };
                let (xs, ds) = (vals(&x), vals(&dy));
                let mu = xs.iter().sum::<f64>() / m;
                let var = xs.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / m;
                let inv = 1.0 / (var + 1e-5).sqrt();
                let g = 0.5 + j as f64 * 0.1;
                let xh: Vec<f64> = xs.iter().map(|v| (v - mu) * inv).collect();
                let db: f64 = ds.iter().sum();
                let dg: f64 = ds.iter().zip(&xh).map(|(a, b)| a * b).sum();
                let close = |a: f32, b: f64, what: &str| {
                    assert!(
                        (a as f64 - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{shape:?} {what}[{j}]: {a} vs {b}"
                    )
                };
                close(outs[0].3[j], db, "dbeta");
                close(outs[0].2[j], dg, "dgamma");
                close(outs[0].4[j], 0.9 + 0.1 * var * m / (m - 1.0), "running_var");
                for (e, (r, i)) in (0..n).flat_map(|r| (0..k).map(move |i| (r, i))).enumerate() {
                    close(outs[0].0[at(r, j, i)], g * xh[e], "y");
                    let want = g * inv / m * (m * ds[e] - db - xh[e] * dg);
                    close(outs[0].1[at(r, j, i)], want, "dx");
                }
            }
        }
    }
}
