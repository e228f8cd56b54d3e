//! The `gemm` crate against `matrixmultiply` on the deep lab net's training-step
//! products (batch 100), both driven the way nnlab drives products: output columns
//! cut into one block per thread, each block a single-threaded call. The two run
//! alternately in one process, so a noisy machine affects both alike; each round
//! prints the best of 40 steps.
//!
//! `cargo run --release --example gemm_libraries`

use nnlab::Runtime;
use nnlab::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};
use std::time::Instant;

#[derive(Clone, Copy)]
struct Ptr(*mut f32);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

/// `c (m x n, row-major) = a (m x k) · b (k x n)`, operands given by (row, column)
/// strides, through `matrixmultiply::sgemm` in two column blocks.
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], isize, isize),
    b: (&[f32], isize, isize),
    c: &mut Matrix,
) {
    let half = (n / 2).div_ceil(16) * 16;
    let (pa, pb, pc) = (
        Ptr(a.0.as_ptr() as *mut f32),
        Ptr(b.0.as_ptr() as *mut f32),
        Ptr(c.data.as_mut_ptr()),
    );
    let block = move |j0: usize, nb: usize| {
        let (pa, pb, pc) = (pa, pb, pc);
        // SAFETY: the blocks write disjoint columns of `c`; every operand covers its shape.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                nb,
                1.0,
                pa.0,
                a.1,
                a.2,
                pb.0.offset(j0 as isize * b.2),
                b.1,
                b.2,
                0.0,
                pc.0.add(j0),
                n as isize,
                1,
            )
        }
    };
    if nnlab::runtime::cores() < 2 || n < 32 {
        block(0, n)
    } else {
        rayon::join(|| block(0, half), || block(half, n - half));
    }
}

fn main() {
    let rt = Runtime::default();
    let dims = [
        (784usize, 512usize),
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 10),
    ];
    let fill = |r: usize, c: usize, s: usize| {
        Matrix::from_vec(
            r,
            c,
            (0..r * c)
                .map(|i| ((i * s) % 7) as f32 * 0.1 - 0.3)
                .collect(),
        )
    };
    let layers: Vec<_> = dims
        .iter()
        .map(|&(i, o)| (fill(100, i, 1), fill(o, i, 3), fill(100, o, 5)))
        .collect();
    let mut outs: Vec<[Matrix; 6]> = dims
        .iter()
        .map(|&(i, o)| {
            std::array::from_fn(|j| match j % 3 {
                0 => Matrix::zeros(100, o),
                1 => Matrix::zeros(o, i),
                _ => Matrix::zeros(100, i),
            })
        })
        .collect();
    let flop: f64 = dims
        .iter()
        .enumerate()
        .map(|(l, &(i, o))| 2.0 * 100.0 * (i * o) as f64 * if l > 0 { 3.0 } else { 2.0 })
        .sum();
    for _round in 0..6 {
        let mut best = [f64::MAX; 2];
        for _ in 0..40 {
            let t = Instant::now();
            for (l, ((x, w, dy), o)) in layers.iter().zip(outs.iter_mut()).enumerate() {
                let [y, dw, dx, ..] = o;
                matmul_nt(&rt, x, w, y, false);
                matmul_tn(&rt, dy, x, dw, false);
                if l > 0 {
                    matmul_nn(&rt, dy, w, dx, false);
                }
            }
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for (l, ((x, w, dy), o)) in layers.iter().zip(outs.iter_mut()).enumerate() {
                let (i, out) = (x.cols, w.rows);
                let [_, _, _, y, dw, dx] = o;
                mm(
                    100,
                    out,
                    i,
                    (&x.data, i as isize, 1),
                    (&w.data, 1, i as isize),
                    y,
                ); // x Wᵀ
                mm(
                    out,
                    i,
                    100,
                    (&dy.data, 1, out as isize),
                    (&x.data, i as isize, 1),
                    dw,
                ); // dyᵀ x
                if l > 0 {
                    mm(
                        100,
                        i,
                        out,
                        (&dy.data, out as isize, 1),
                        (&w.data, i as isize, 1),
                        dx,
                    ); // dy W
                }
            }
            best[1] = best[1].min(t.elapsed().as_secs_f64());
        }
        // both libraries computed the same products
        for o in &outs {
            for j in 0..3 {
                let d = o[j]
                    .data
                    .iter()
                    .zip(&o[j + 3].data)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(d < 1e-2, "results differ by {d}");
            }
        }
        println!(
            "deep net step products: gemm {:.0} GFLOP/s, matrixmultiply {:.0} GFLOP/s",
            flop / best[0] / 1e9,
            flop / best[1] / 1e9
        );
    }
}
