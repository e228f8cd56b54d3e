//! Measures an idea for the first layer, not used by training yet: MNIST images are
//! 81% exact zeros (150 of 784 pixels per image are ink), so the first layer's
//! products, `y = x Wᵀ` and `dW = dyᵀ x`, need only the nonzero pixels. Stored
//! transposed, `Wt: (in, out)`, both become one row update per nonzero pixel:
//! `y[r, :] += x[r, k] Wt[k, :]` and `dWt[k, :] += x[r, k] dy[r, :]`, looping over
//! the pixels `k` outermost so each row of `Wt` is read once per batch.
//!
//! Prints, for real MNIST training batches of 100, the best time of the dense products
//! (nnlab's `gemm` path, all threads) and of the sparse loops (one thread), and the
//! largest difference between their results (they sum in different orders).
//!
//! `cargo run --release --example sparse_first_layer [OUT]`   (OUT = 512 or 256)

use nnlab::data::fetch::default_data_dir;
use nnlab::data::{DatasetRef, FetchOptions};
use nnlab::tensor::{Matrix, matmul_nt, matmul_tn, set_threads};
use std::time::Instant;

/// The batch's nonzero pixels by column: `(start of column k in rows/vals)`.
struct Columns {
    start: Vec<usize>,
    rows: Vec<u32>,
    vals: Vec<f32>,
}

fn columns(x: &Matrix, c: &mut Columns) {
    c.start.clear();
    c.rows.clear();
    c.vals.clear();
    for k in 0..x.cols {
        c.start.push(c.rows.len());
        for r in 0..x.rows {
            let v = x.data[r * x.cols + k];
            if v != 0.0 {
                c.rows.push(r as u32);
                c.vals.push(v);
            }
        }
    }
    c.start.push(c.rows.len());
}

#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y (batch, out) = x Wᵀ` from the columns of `x` and `wt: (in, out)`.
fn forward(c: &Columns, wt: &Matrix, y: &mut Matrix) {
    let out = wt.cols;
    y.data.fill(0.0);
    nnlab::simd::run(|| {
        for k in 0..wt.rows {
            let w = &wt.data[k * out..(k + 1) * out];
            for i in c.start[k]..c.start[k + 1] {
                let r = c.rows[i] as usize;
                axpy(&mut y.data[r * out..(r + 1) * out], c.vals[i], w);
            }
        }
    })
}

/// `dWt (in, out) = xᵀ dy` from the columns of `x`.
fn weight_grad(c: &Columns, dy: &Matrix, dwt: &mut Matrix) {
    let out = dy.cols;
    nnlab::simd::run(|| {
        for k in 0..dwt.rows {
            let row = &mut dwt.data[k * out..(k + 1) * out];
            row.fill(0.0);
            for i in c.start[k]..c.start[k + 1] {
                let r = c.rows[i] as usize;
                axpy(row, c.vals[i], &dy.data[r * out..(r + 1) * out]);
            }
        }
    })
}

fn main() {
    set_threads(0);
    let out: usize = std::env::args()
        .nth(1)
        .map_or(512, |s| s.parse().expect("OUT"));
    let mut o = FetchOptions::new(default_data_dir(None));
    o.quiet = true;
    let s = DatasetRef::parse("mnist").unwrap().load(&o).unwrap();
    let inp = s.train.features();
    let mut rng = nnlab::Rng::new(1);
    let w = Matrix::from_vec(
        out,
        inp,
        (0..out * inp).map(|_| rng.normal() * 0.05).collect(),
    );
    let mut wt = Matrix::zeros(inp, out);
    for j in 0..out {
        for k in 0..inp {
            wt.data[k * out + j] = w.data[j * inp + k];
        }
    }
    let dy = Matrix::from_vec(100, out, (0..100 * out).map(|_| rng.normal()).collect());
    let (mut y, mut y2) = (Matrix::zeros(100, out), Matrix::zeros(100, out));
    let (mut dw, mut dwt) = (Matrix::zeros(out, inp), Matrix::zeros(inp, out));
    let mut c = Columns {
        start: Vec::new(),
        rows: Vec::new(),
        vals: Vec::new(),
    };
    let mut best = [f64::MAX; 3];
    let mut diff = 0f32;
    for b in 0..200 {
        let rows: Vec<usize> = (0..100).map(|_| rng.below(s.train.len())).collect();
        let x = Matrix::from_vec(
            100,
            inp,
            rows.iter()
                .flat_map(|&r| s.train.images.row(r).to_vec())
                .collect(),
        );
        let t = Instant::now();
        matmul_nt(&x, &w, &mut y, false);
        matmul_tn(&dy, &x, &mut dw, false);
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        columns(&x, &mut c);
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        forward(&c, &wt, &mut y2);
        weight_grad(&c, &dy, &mut dwt);
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        if b == 0 {
            diff = y
                .data
                .iter()
                .zip(&y2.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            for j in 0..out {
                for k in 0..inp {
                    diff = diff.max((dw.data[j * inp + k] - dwt.data[k * out + j]).abs());
                }
            }
        }
    }
    println!(
        "first layer 784 -> {out}, batch 100: dense products {:.0} us (all threads); \
         sparse: columns {:.0} us + products {:.0} us (one thread); largest difference {diff:.2e}",
        best[0] * 1e6,
        best[1] * 1e6,
        best[2] * 1e6
    );
}
