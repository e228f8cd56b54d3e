//! f32 (`gemm` crate) against bf16 (`tensor::bf16`) on the deep lab's products, one
//! thread and all threads: `cargo run --release --example bf16_products`.
use nnlab::runtime::{Precision, Runtime};
use nnlab::tensor::{Matrix, View, gemm};
use std::time::Instant;

fn main() {
    let shapes = [
        ("x W      100x512x512", 100, 512, 512, 0),
        ("dy Wt    100x512x512", 100, 512, 512, 1),
        ("xt dy    512x100x512", 512, 100, 512, 2),
        ("x W      100x784x512", 100, 784, 512, 0),
        ("x W      100x512x10 ", 100, 512, 10, 0),
        ("square  1024x1024x1024", 1024, 1024, 1024, 0),
    ];
    for threads in [1, 0] {
        for (name, m, k, n, layout) in shapes {
            let a = Matrix::from_vec(m, k, (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect());
            let at = Matrix::from_vec(k, m, a.data.clone());
            let b = Matrix::from_vec(k, n, (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect());
            let bt = Matrix::from_vec(n, k, b.data.clone());
            let (av, bv) = match layout {
                0 => (View::of(&a), View::of(&b)),
                1 => (View::of(&a), View::transposed(&bt)),
                _ => (View::transposed(&at), View::of(&b)),
            };
            let mut out = Matrix::zeros(m, n);
            let mut line = format!("{name} threads {threads}:");
            for p in [Precision::F32, Precision::Bf16] {
                let (rt, why) = Runtime::new(threads).with_precision(p);
                if let Some(why) = why {
                    println!("{why}");
                    return;
                }
                let reps = (2e9 / (2.0 * (m * k * n) as f64)).max(3.0) as usize;
                let mut best = f64::MAX;
                for _ in 0..5 {
                    let t = Instant::now();
                    for _ in 0..reps {
                        gemm(&rt, av, bv, &mut out, false);
                    }
                    best = best.min(t.elapsed().as_secs_f64() / reps as f64);
                }
                line += &format!(" {p} {:.1} GFLOP/s", 2.0 * (m * k * n) as f64 / best / 1e9);
            }
            println!("{line}");
        }
    }
}
