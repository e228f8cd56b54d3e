use nnlab::Runtime;
use nnlab::tensor::{Matrix, View, gemm};
use std::time::Instant;
fn t(name: &str, a: View, b: View, m: usize, n: usize) {
    let rt = Runtime::new(2);
    let mut out = Matrix::zeros(m, n);
    let reps = 200;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let s = Instant::now();
        for _ in 0..reps {
            gemm(&rt, a, b, &mut out, false);
        }
        best = best.min(s.elapsed().as_secs_f64() / reps as f64);
    }
    println!(
        "{name}: {:.1} us, {:.1} GFLOP/s",
        best * 1e6,
        2.0 * (m * a.cols * n) as f64 / best / 1e9
    );
}
fn mk(r: usize, c: usize) -> Matrix {
    Matrix::from_vec(r, c, (0..r * c).map(|i| (i % 7) as f32 * 0.1).collect())
}
fn main() {
    let (dgx, xs, hs, wih) = (mk(2800, 512), mk(2800, 28), mk(2800, 128), mk(512, 28));
    t(
        "dW_ih = dgx^T xs  512x2800x28",
        View::transposed(&dgx),
        View::of(&xs),
        512,
        28,
    );
    t(
        "dW_ih^T = xs^T dgx 28x2800x512",
        View::transposed(&xs),
        View::of(&dgx),
        28,
        512,
    );
    t(
        "dW_hh = dgh^T hs  512x2800x128",
        View::transposed(&dgx),
        View::of(&hs),
        512,
        128,
    );
    t(
        "dW_hh^T = hs^T dgh 128x2800x512",
        View::transposed(&hs),
        View::of(&dgx),
        128,
        512,
    );
    t(
        "proj xs W_ih^T 2800x28x512",
        View::of(&xs),
        View::transposed(&wih),
        2800,
        512,
    );
}
