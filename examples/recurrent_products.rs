//! The recurrent layers' products at the row counts a step can have (25, 50 and 100
//! examples: a batch of 100 cut into 4 groups, 2 threads' blocks, one thread) and their
//! weight gradients over all 28 steps, through `gemm` 0.19:
//! `cargo run --release --example recurrent_products`.
use nnlab::Runtime;
use nnlab::tensor::{Matrix, View, gemm, gemm_here};
use std::time::Instant;

/// Best of 5 runs of `reps` calls of `f`, in GFLOP/s for a product of `flop`.
fn rate(flop: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        (0..reps).for_each(|_| f());
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    flop as f64 / best / 1e9
}

fn filled(rows: usize, cols: usize) -> Matrix {
    Matrix::from_vec(
        rows,
        cols,
        (0..rows * cols).map(|i| (i % 7) as f32 * 0.1).collect(),
    )
}

fn main() {
    let (hid, gates) = (128, 512);
    let w_hh = filled(gates, hid);
    for rows in [25, 50, 100] {
        let (h, dg) = (filled(rows, hid), filled(rows, gates));
        let (mut out, mut dh) = (vec![0f32; rows * gates], vec![0f32; rows * hid]);
        let flop = 2 * rows * hid * gates;
        let fwd = rate(flop, 2000, || {
            gemm_here(View::of(&h), View::transposed(&w_hh), &mut out, true)
        });
        let bwd = rate(flop, 2000, || {
            gemm_here(View::of(&dg), View::of(&w_hh), &mut dh, false)
        });
        println!("{rows:3} rows, one thread: h W_hhᵀ {fwd:5.1} GFLOP/s, dg W_hh {bwd:5.1} GFLOP/s");
    }
    let rt = Runtime::new(2);
    let (dgx, xs, hs) = (filled(2800, gates), filled(2800, 28), filled(2800, hid));
    for (name, a, b) in [
        (
            "dW_ih = dgxᵀ xs (512x2800x28)",
            View::transposed(&dgx),
            View::of(&xs),
        ),
        (
            "dW_hh = dghᵀ hs (512x2800x128)",
            View::transposed(&dgx),
            View::of(&hs),
        ),
    ] {
        let mut out = Matrix::zeros(a.rows, b.cols);
        let g = rate(2 * a.rows * a.cols * b.cols, 200, || {
            gemm(&rt, a, b, &mut out, false)
        });
        println!("{name}, 2 threads: {g:5.1} GFLOP/s");
    }
}
