//! Where the sparse products pay off for a hidden layer: `y = x W` and `dW = xᵀ dy`
//! for a batch of 100 through a 512 -> 512 layer (the deep lab's hidden layers), dense
//! through `gemm` against sparse from `x`'s nonzeros (gathering included), at several
//! shares of nonzero inputs, placed at random as a ReLU's zeros are. Best of 200 (µs).
//!
//! `cargo run --release --example sparse_hidden [IN] [OUT]` (default 512 512)

use nnlab::Rng;
use nnlab::tensor::sparse::{Nonzeros, sparse_matmul_nn_acc, sparse_matmul_tn};
use nnlab::tensor::{Matrix, matmul_nn, matmul_tn, on_pool, set_threads};
use std::time::Instant;

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn main() {
    let mut args = std::env::args().skip(1);
    let inp: usize = args.next().map_or(512, |s| s.parse().expect("IN"));
    let out: usize = args.next().map_or(512, |s| s.parse().expect("OUT"));
    set_threads(0);
    let mut rng = Rng::new(1);
    let w = Matrix::from_vec(inp, out, (0..inp * out).map(|_| rng.normal()).collect());
    let dy = Matrix::from_vec(100, out, (0..100 * out).map(|_| rng.normal()).collect());
    let (mut y, mut dw) = (Matrix::zeros(100, out), Matrix::zeros(inp, out));
    let mut e = Nonzeros::default();
    println!(
        "{inp} -> {out}, batch 100, {} threads, best of 200 (µs)",
        nnlab::tensor::threads()
    );
    println!("nonzero   dense fwd + dW = total    sparse gather + fwd + dW = total   sparse/dense");
    for density in [0.0f32, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4] {
        let mut best = [f64::MAX; 5];
        on_pool(|| {
            for _ in 0..200 {
                let x = Matrix::from_vec(
                    100,
                    inp,
                    (0..100 * inp)
                        .map(|_| {
                            if rng.uniform() < density {
                                rng.uniform()
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                );
                let mut time = |i: usize, f: &mut dyn FnMut()| {
                    let t = Instant::now();
                    f();
                    best[i] = best[i].min(t.elapsed().as_secs_f64() * 1e6);
                };
                time(0, &mut || matmul_nn(&x, &w, &mut y, false));
                time(1, &mut || matmul_tn(&x, &dy, &mut dw, false));
                time(2, &mut || assert!(e.gather(&x, 1.0)));
                time(3, &mut || {
                    y.fill(0.0);
                    sparse_matmul_nn_acc(&e, &w, &mut y)
                });
                time(4, &mut || sparse_matmul_tn(&mut e, &dy, &mut dw));
            }
        });
        let (d, s) = (best[0] + best[1], best[2] + best[3] + best[4]);
        println!(
            "{:5.0}%   {:6.0} + {:5.0} = {:5.0}    {:6.0} + {:5.0} + {:5.0} = {:5.0}      {:.2}",
            density * 100.0,
            best[0],
            best[1],
            d,
            best[2],
            best[3],
            best[4],
            s,
            s / d
        );
    }
}
