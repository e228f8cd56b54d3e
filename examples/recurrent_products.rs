//! The recurrent layers' products at the row counts a step can have (25, 50 and 100
//! examples: a batch of 100 cut into 4 groups, 2 threads' blocks, one thread) and their
//! weight gradients over all 28 steps, through `gemm` 0.19: a step's `h W_hhᵀ` with
//! `W_hh` read transposed in place and with `W_hhᵀ` stored row-major (what the f32
//! steps use), and `dg W_hh`; where the CPU has AVX512-BF16, both in bf16 on the
//! weights packed once (what the bf16 steps use).
//! `cargo run --release --example recurrent_products`.
use nnlab::Runtime;
use nnlab::tensor::bf16::{self, PackedB, Packs};
use nnlab::tensor::{Matrix, View, gemm, gemm_here, transpose};
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
    let w_hh_t = transpose(&w_hh);
    let (mut fwd, mut bwd, mut packs) = (PackedB::default(), PackedB::default(), Packs::default());
    fwd.pack(View::of(&w_hh_t));
    bwd.pack(View::of(&w_hh));
    for rows in [25, 50, 100] {
        let (h, dg) = (filled(rows, hid), filled(rows, gates));
        let (mut out, mut dh) = (vec![0f32; rows * gates], vec![0f32; rows * hid]);
        let flop = 2 * rows * hid * gates;
        let viewed = rate(flop, 2000, || {
            gemm_here(View::of(&h), View::transposed(&w_hh), &mut out, true)
        });
        let stored = rate(flop, 2000, || {
            gemm_here(View::of(&h), View::of(&w_hh_t), &mut out, true)
        });
        let back = rate(flop, 2000, || {
            gemm_here(View::of(&dg), View::of(&w_hh), &mut dh, false)
        });
        println!(
            "{rows:3} rows, one thread, f32: h W_hhᵀ {viewed:5.1} GFLOP/s (W_hh transposed \
             in place), {stored:5.1} (W_hhᵀ stored); dg W_hh {back:5.1}"
        );
        if bf16::available() {
            let f = rate(flop, 2000, || {
                bf16::gemm_bf16_packed_here(View::of(&h), &fwd, &mut out, true, &mut packs)
            });
            let b = rate(flop, 2000, || {
                bf16::gemm_bf16_packed_here(View::of(&dg), &bwd, &mut dh, false, &mut packs)
            });
            println!(
                "{rows:3} rows, one thread, bf16 (W_hh packed once): h W_hhᵀ {f:5.1}, dg W_hh {b:5.1}"
            );
        }
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
