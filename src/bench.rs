//! Speed measurements: steady-state training seconds per epoch, inference time, the
//! network's FLOP count and achieved GFLOP/s, measured next to the GEMM's own speed
//! on large square matrices and on the network's shapes, in the same run.
//! What it reports is defined here; BENCHMARKS.md records the figures.

use crate::config::TrainConfig;
use crate::data::Dataset;
use crate::error::Result;
use crate::layers::Layer;
use crate::runtime::Runtime;
use crate::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};
use crate::train::{EpochStats, RunData, Trainer};
use std::time::Instant;

/// One network's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub preset: String,
    pub threads: usize,
    pub train_examples: usize,
    /// Epochs trained before the timed ones (at least 1).
    pub warmup_epochs: usize,
    /// Seconds of each timed epoch (after the warm-up epochs).
    pub epoch_seconds: Vec<f64>,
    /// Median of `epoch_seconds`.
    pub median_epoch_s: f64,
    pub samples_per_s: f64,
    /// Evaluation-mode forward over the test set (median of 5).
    pub inference_s: f64,
    pub test_examples: usize,
    /// FLOP of one epoch's matrix products (forward, weight and input gradients),
    /// counted as dense products, as PyTorch computes them. The sparse products
    /// (`tensor::sparse`) skip the zeros and do a fraction of that, so the GFLOP/s
    /// derived from this are dense-equivalent: the speed a dense implementation would
    /// need to train as fast.
    pub flop_per_epoch: f64,
    /// `flop_per_epoch / median_epoch_s` (dense-equivalent).
    pub achieved_gflops: f64,
    /// SGEMM on 2048³, this run.
    pub gemm_square_gflops: f64,
    /// The same matrix products as one training epoch, timed alone, this run.
    pub gemm_shapes_gflops: f64,
    /// `achieved_gflops / gemm_shapes_gflops`.
    pub fraction_of_gemm: f64,
    /// Share of the timed epochs' wall time spent inside the matrix products (NaN
    /// unless built with the `timers` feature).
    pub products_share: f64,
    /// GFLOP/s of the products as they ran inside training (dense-equivalent FLOP /
    /// time inside them; NaN without `timers`).
    pub products_gflops: f64,
    /// Share of the timed epochs' wall time spent in optimiser updates (NaN without
    /// `timers`).
    pub optimizer_share: f64,
    /// Peak resident memory of the process so far, MB.
    pub peak_rss_mb: f64,
}

/// Matrix products of one training step of a dense layer `in -> out` on `batch` rows,
/// with `W: (in, out)` as `Dense` stores it: forward `y = x·W`, `dW = xᵀ·dy`, and
/// `dx = dy·Wᵀ` unless it is the first layer. Returns `(m, n, k, layout)` triples.
fn step_products(dims: &[(usize, usize)], batch: usize) -> Vec<(usize, usize, usize, u8)> {
    let mut v = Vec::new();
    for (i, &(inp, out)) in dims.iter().enumerate() {
        v.push((batch, out, inp, 0)); // y = x W
        v.push((inp, out, batch, 1)); // dW = xᵀ dy
        if i > 0 {
            v.push((batch, inp, out, 2)); // dx = dy Wᵀ
        }
    }
    v
}

/// FLOP of one step's products.
fn step_flop(dims: &[(usize, usize)], batch: usize) -> f64 {
    step_products(dims, batch)
        .iter()
        .map(|&(m, n, k, _)| 2.0 * (m * n * k) as f64)
        .sum()
}

/// Times the step's products alone, all dense (the GEMM bound a dense implementation
/// has); returns GFLOP/s (best of `reps` rounds).
pub fn gemm_shapes_gflops(rt: &Runtime, dims: &[(usize, usize)], batch: usize, reps: usize) -> f64 {
    let prods = step_products(dims, batch);
    let mut bufs: Vec<(Matrix, Matrix, Matrix)> = prods
        .iter()
        .map(|&(m, n, k, layout)| {
            let fill =
                |r, c| Matrix::from_vec(r, c, (0..r * c).map(|i| ((i % 7) as f32) * 0.1).collect());
            match layout {
                0 => (fill(m, k), fill(k, n), Matrix::zeros(m, n)),
                1 => (fill(k, m), fill(k, n), Matrix::zeros(m, n)),
                _ => (fill(m, k), fill(n, k), Matrix::zeros(m, n)),
            }
        })
        .collect();
    let flop = step_flop(dims, batch);
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..20 {
            for (&(_, _, _, layout), (a, b, c)) in prods.iter().zip(bufs.iter_mut()) {
                match layout {
                    0 => matmul_nn(rt, a, b, c, false),
                    1 => matmul_tn(rt, a, b, c, false),
                    _ => matmul_nt(rt, a, b, c, false),
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64() / 20.0);
    }
    flop / best / 1e9
}

/// SGEMM GFLOP/s on `n x n x n` (best of 3).
pub fn gemm_square_gflops(rt: &Runtime, n: usize) -> f64 {
    let a = Matrix::from_vec(n, n, (0..n * n).map(|i| ((i % 13) as f32) * 0.01).collect());
    let b = a.clone();
    let mut c = Matrix::zeros(n, n);
    matmul_nn(rt, &a, &b, &mut c, false);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        matmul_nn(rt, &a, &b, &mut c, false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// Peak resident set size of this process in MB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Trains `cfg` for `warmup` epochs (at least one) plus `epochs` timed ones and
/// measures the rest. A ReLU net's epochs get faster as it trains (its hidden layers'
/// inputs fall under the sparse products' limit, `tensor::sparse::MAX_DENSITY`), so a
/// longer warm-up times later epochs.
pub fn bench_config(
    name: &str,
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    warmup: usize,
    epochs: usize,
    rt: &Runtime,
) -> Result<BenchReport> {
    let warmup = warmup.max(1);
    let mut cfg = cfg.clone();
    cfg.epochs = warmup + epochs;
    let mut trainer = Trainer::new(&cfg, train.shape(), train.classes(), *rt)?;
    let mut secs = Vec::new();
    let mut gemm_ns = Vec::new();
    let mut optim_ns = Vec::new();
    trainer.fit(
        &RunData {
            train,
            val: None,
            test: None,
        },
        None,
        &mut |s: &EpochStats| {
            secs.push(s.seconds);
            gemm_ns.push(crate::timers::PRODUCTS.nanos());
            optim_ns.push(crate::timers::OPTIMISER.nanos());
        },
    )?;
    // time inside the products during the timed epochs (gemm_ns[warmup - 1]: at the
    // end of the warm-up)
    let timed_nanos = |ns: &[u64]| match crate::timers::ENABLED {
        true => (ns[ns.len() - 1] - ns[warmup - 1]) as f64 * 1e-9,
        false => f64::NAN,
    };
    let (gemm_s, optim_s) = (timed_nanos(&gemm_ns), timed_nanos(&optim_ns));
    let timed: Vec<f64> = secs[warmup..].to_vec();
    let timed_s: f64 = timed.iter().sum();
    let median = median(&timed);
    let mut inf = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let _ = trainer.model.evaluate(test, rt);
        inf.push(t.elapsed().as_secs_f64());
    }
    let dims: Vec<(usize, usize)> = dense_dims(&mut trainer);
    let steps = train.len() as f64 / cfg.batch as f64;
    let flop_per_epoch = step_flop(&dims, cfg.batch) * steps;
    let achieved = flop_per_epoch / median / 1e9;
    let shapes = gemm_shapes_gflops(rt, &dims, cfg.batch, 5);
    Ok(BenchReport {
        preset: name.to_string(),
        threads: rt.threads,
        train_examples: train.len(),
        warmup_epochs: warmup,
        epoch_seconds: timed,
        median_epoch_s: median,
        samples_per_s: train.len() as f64 / median,
        inference_s: median_of(inf),
        test_examples: test.len(),
        flop_per_epoch,
        achieved_gflops: achieved,
        gemm_square_gflops: gemm_square_gflops(rt, 2048),
        gemm_shapes_gflops: shapes,
        fraction_of_gemm: achieved / shapes,
        products_share: gemm_s / timed_s,
        optimizer_share: optim_s / timed_s,
        products_gflops: flop_per_epoch * epochs as f64 / gemm_s / 1e9,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// `(in, out)` of each affine layer of the trainer's model, in order.
fn dense_dims(trainer: &mut Trainer) -> Vec<(usize, usize)> {
    let mut dims = Vec::new();
    trainer.model.net.visit_params(&mut |p| {
        if p.name.ends_with("weight") && p.shape.rank == 2 {
            dims.push((p.shape.dims[1], p.shape.dims[0]));
        }
    });
    dims
}

fn median(xs: &[f64]) -> f64 {
    median_of(xs.to_vec())
}

fn median_of(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        return f64::NAN;
    }
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}
