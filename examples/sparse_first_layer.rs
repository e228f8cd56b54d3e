//! Times the first layer's two products (`y = x W`, `dW = xᵀ dy`) on real MNIST
//! training batches of 100, each way nnlab can compute them: dense through `gemm` with
//! the weight stored `(out, in)` (PyTorch's order) or `(in, out)` (how `Dense` stores
//! it), and sparse, from the nonzero pixels alone (`tensor::sparse`). Prints each
//! part's best time over 200 batches and the largest difference between the results.
//!
//! `cargo run --release --example sparse_first_layer [OUT] [KEEP] [DATASET] [shuffled]`
//! (OUT = 512 or 256; KEEP in (0, 1] keeps that share of the nonzero pixels;
//! DATASET = mnist or fashion-mnist, whose images are about half nonzero: together
//! they show where the sparse products stop paying off; `shuffled` moves each image's
//! pixels to random places, to see what the clustering of real ink is worth.)

use nnlab::Runtime;
use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::tensor::sparse::{Nonzeros, sparse_affine, sparse_matmul_tn};
use nnlab::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn, transpose};
use std::time::Instant;

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn main() {
    let rt = Runtime::default();
    let _fp = rt.enter();
    let mut args = std::env::args().skip(1);
    let out: usize = args.next().map_or(512, |s| s.parse().expect("OUT"));
    let keep: f32 = args.next().map_or(1.0, |s| s.parse().expect("DENSITY"));
    let dataset = args.next().unwrap_or_else(|| "mnist".into());
    let shuffle = args.next().as_deref() == Some("shuffled");
    let mut o = FetchOptions::new(default_data_dir(None));
    o.quiet = true;
    let s = DatasetRef::parse(&dataset).unwrap().load(&o).unwrap();
    let inp = s.train.features();
    let mut rng = nnlab::Rng::new(1);
    let w = Matrix::from_vec(
        out,
        inp,
        (0..out * inp).map(|_| rng.normal() * 0.05).collect(),
    );
    let wt = transpose(&w);
    let dy = Matrix::from_vec(100, out, (0..100 * out).map(|_| rng.normal()).collect());
    let mut y = [
        Matrix::zeros(100, out),
        Matrix::zeros(100, out),
        Matrix::zeros(100, out),
    ];
    let (mut dw, mut dwt, mut dws) = (
        Matrix::zeros(out, inp),
        Matrix::zeros(inp, out),
        Matrix::zeros(inp, out),
    );
    let mut e = Nonzeros::default();
    // best seconds: [out,in] fwd, wgrad; [in,out] fwd, wgrad; sparse gather, fwd, wgrad;
    // the gather's counting pass alone (asked for density 0, it stops after counting)
    let mut best = [f64::MAX; 8];
    let mut diff = 0f32;
    let mut density = 0.0;
    let zero_bias = vec![0.0; out];
    {
        for b in 0..200 {
            let mut x = Matrix::zeros(100, inp);
            for r in 0..100 {
                x.row_mut(r)
                    .copy_from_slice(s.train.images.row(rng.below(s.train.len())));
            }
            if keep < 1.0 {
                x.data.iter_mut().for_each(|v| {
                    if rng.uniform() >= keep {
                        *v = 0.0
                    }
                });
            }
            if shuffle {
                // the same values at random positions within each row
                for r in 0..100 {
                    let row = x.row_mut(r);
                    for i in (1..row.len()).rev() {
                        row.swap(i, rng.below(i + 1));
                    }
                }
            }
            let mut time = |i: usize, f: &mut dyn FnMut()| {
                let t = Instant::now();
                f();
                best[i] = best[i].min(t.elapsed().as_secs_f64());
            };
            time(0, &mut || matmul_nt(&rt, &x, &w, &mut y[0], false));
            time(1, &mut || matmul_tn(&rt, &dy, &x, &mut dw, false));
            time(2, &mut || matmul_nn(&rt, &x, &wt, &mut y[1], false));
            time(3, &mut || matmul_tn(&rt, &x, &dy, &mut dwt, false));
            time(4, &mut || assert!(e.gather(&rt, &x, 1.0)));
            time(7, &mut || assert!(!e.gather(&rt, &x, 0.0)));
            assert!(e.gather(&rt, &x, 1.0));
            time(5, &mut || {
                sparse_affine(&rt, &e, &wt, &zero_bias, &mut y[2])
            });
            time(6, &mut || sparse_matmul_tn(&rt, &mut e, &dy, &mut dws));
            if b == 0 {
                density = e.nonzeros() as f64 / x.data.len() as f64;
                let max = |a: &[f32], b: &[f32]| {
                    a.iter()
                        .zip(b)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max)
                };
                diff = max(&y[0].data, &y[2].data)
                    .max(max(&transpose(&dw).data, &dws.data))
                    .max(max(&dwt.data, &dws.data));
            }
        }
    }
    let us = |i: usize| best[i] * 1e6;
    println!(
        "first layer {inp} -> {out}, batch 100, {:.0}% nonzero, {} threads, best of 200 (us):\n  \
         dense, W (out, in): forward {:.0} + weight grad {:.0} = {:.0}\n  \
         dense, W (in, out): forward {:.0} + weight grad {:.0} = {:.0}\n  \
         sparse:             gather {:.0} (of which counting {:.0}) + forward {:.0} + weight grad {:.0} = {:.0}\n  \
         largest difference between results: {diff:.2e}",
        density * 100.0,
        rt.threads,
        us(0),
        us(1),
        us(0) + us(1),
        us(2),
        us(3),
        us(2) + us(3),
        us(4),
        us(7),
        us(5),
        us(6),
        us(4) + us(5) + us(6),
    );
}
