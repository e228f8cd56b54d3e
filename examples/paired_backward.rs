//! The two gradient products of a dense layer's backward pass, `dW = xᵀ dy` and
//! `dx = dy Wᵀ`, timed two ways in alternation within one process (so the shared
//! machine's noise falls on both alike):
//! - `split`: one after the other, each cut into column blocks over all threads;
//! - `paired`: both at once, each on half the threads (`tensor::join_products`).
//!
//! With `x` mostly zero (a ReLU's output late in training) the weight gradient is the
//! sparse product, as `Dense` computes it then; those rows give the share of nonzeros.
//!
//! Run: `cargo run --release --example paired_backward [ROUNDS]`.

use nnlab::Rng;
use nnlab::tensor::sparse::{MAX_DENSITY, Nonzeros, sparse_matmul_tn};
use nnlab::tensor::{Matrix, join_products, matmul_nt, matmul_tn, on_pool, set_threads};
use std::time::Instant;

/// Large buffers start on a cache line, as in the `nnlab` binary (`nnlab::alloc`).
#[global_allocator]
static ALLOC: nnlab::alloc::Aligned = nnlab::alloc::Aligned;

fn filled(rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
    Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(7, |s| s.parse().expect("ROUNDS: a whole number"));
    set_threads(0);
    let mut rng = Rng::new(1);
    println!("batch 100; µs per backward pass (both products), per round: min of 200 repeats");
    for &(inp, out, density) in &[
        (256usize, 256usize, 1.0f32),
        (512, 512, 1.0),
        (512, 10, 1.0),
        (512, 512, 0.15),
        (512, 512, 0.25),
    ] {
        let mut x = filled(100, inp, &mut rng);
        for v in x.data.iter_mut() {
            if rng.uniform() >= density {
                *v = 0.0;
            }
        }
        let mut e = Nonzeros::default();
        let sparse = e.gather(&x, MAX_DENSITY);
        let w = filled(inp, out, &mut rng);
        let dy = filled(100, out, &mut rng);
        let mut wgrad = |dw: &mut Matrix| {
            if sparse {
                sparse_matmul_tn(&mut e, &dy, dw)
            } else {
                matmul_tn(&x, &dy, dw, false)
            }
        };
        let (mut dw, mut dx) = (Matrix::zeros(inp, out), Matrix::zeros(100, inp));
        let (mut dw2, mut dx2) = (dw.clone(), dx.clone());
        let mut best = [f64::MAX; 2];
        let mut all = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (mode, (b, a)) in best.iter_mut().zip(all.iter_mut()).enumerate() {
                let t = on_pool(|| {
                    (0..200)
                        .map(|_| {
                            let t0 = Instant::now();
                            if mode == 0 {
                                wgrad(&mut dw);
                                matmul_nt(&dy, &w, &mut dx, false);
                            } else {
                                join_products(
                                    || wgrad(&mut dw2),
                                    || matmul_nt(&dy, &w, &mut dx2, false),
                                );
                            }
                            t0.elapsed().as_secs_f64() * 1e6
                        })
                        .fold(f64::MAX, f64::min)
                });
                *b = b.min(t);
                a.push(t);
            }
        }
        assert_eq!(dw.data, dw2.data, "the two ways must give the same bits");
        assert_eq!(dx.data, dx2.data, "the two ways must give the same bits");
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let what = if sparse {
            format!("sparse x, {:.0}% nonzero", 100.0 * density)
        } else {
            "dense".into()
        };
        println!(
            "{inp:>4} -> {out:<4} {what:24} split: min {:6.1} median {:6.1}   paired: min {:6.1} median {:6.1}",
            best[0],
            med(&mut all[0]),
            best[1],
            med(&mut all[1])
        );
    }
}
