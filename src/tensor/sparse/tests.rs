use super::Start;
use super::*;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::simd::Level;
use crate::tensor::{naive_matmul, transpose};

/// A matrix's entries' bits, for comparing results exactly.
fn bits(a: &Matrix) -> Vec<u32> {
    a.data.iter().map(|v| v.to_bits()).collect()
}

/// A `(rows, cols)` matrix with about `density` of its entries nonzero.
fn sparse(rows: usize, cols: usize, density: f32, rng: &mut Rng) -> Matrix {
    Matrix::from_vec(
        rows,
        cols,
        (0..rows * cols)
            .map(|_| {
                let v = rng.normal();
                if rng.uniform() < density { v } else { 0.0 }
            })
            .collect(),
    )
}

fn normal(rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
    Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| rng.normal()).collect())
}

fn close(a: &Matrix, b: &Matrix) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.data.iter().zip(&b.data) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} vs {y}");
    }
}

/// Every level this CPU has, each as a runtime of `threads` threads.
fn runtimes(threads: usize) -> Vec<Runtime> {
    [Level::Baseline, Level::Avx2, Level::Avx512]
        .into_iter()
        .filter(|&l| l <= crate::simd::detected())
        .map(|l| Runtime::single().with_threads(threads).with_simd(l))
        .collect()
}

#[test]
fn products_match_the_definition() {
    let mut rng = Rng::new(5);
    let rt = Runtime::single().with_threads(2);
    for &(m, k, n) in &[
        (1, 1, 1),
        (7, 33, 5),
        (100, 70, 48),
        (3, 64, 100),
        (130, 97, 200),
    ] {
        let x = sparse(m, k, 0.2, &mut rng);
        let w = normal(k, n, &mut rng);
        let dy = normal(m, n, &mut rng);
        let mut e = Nonzeros::default();
        assert!(e.gather(&rt, &x, 1.0));
        assert_eq!(e.nonzeros(), x.data.iter().filter(|v| **v != 0.0).count());
        // the lists do not depend on how the rows were cut
        for pieces in [2, 3, 8] {
            let mut f = Nonzeros::default();
            assert!(f.gather_in_pieces(&rt, &x, 1.0, pieces, true));
            assert_eq!((&f.start, &f.row, &f.val), (&e.start, &e.row, &e.val));
            assert_eq!((&f.row_start, &f.by_row_col), (&e.row_start, &e.by_row_col));
            assert_eq!(f.by_row_val, e.by_row_val);
        }
        let b = vec![0.5; n];
        let mut y = Matrix::zeros(m, n);
        sparse_affine(&rt, &e, &w, &b, &mut y);
        let mut want = naive_matmul(&x, &w);
        want.data.iter_mut().for_each(|v| *v += 0.5);
        close(&y, &want);
        let mut dw = Matrix::from_vec(k, n, vec![9.0; k * n]); // overwritten
        sparse_matmul_tn(&rt, &mut e, &dy, &mut dw);
        close(&dw, &naive_matmul(&transpose(&x), &dy));
    }
}

/// The products' rounding is pinned: each sum runs over the nonzeros in ascending
/// order from 0.0 and is then added to the bias, except in the last `n % 64` columns,
/// which start from the bias and add each product to it. Any faster version of the
/// kernels must keep these bits, or every recorded result would move. Checked at
/// every SIMD level this CPU has (AVX-512 sums 128 columns at a time, AVX2 64) and at
/// 1, 2 and 3 threads.
#[test]
fn products_sum_in_the_documented_order() {
    let mut rng = Rng::new(9);
    let shapes = [
        (100, 784, 256),
        (37, 50, 300),
        (130, 97, 70),
        (20, 40, 200),
        (250, 300, 10),
        (64, 30, 3),
        (90, 60, 77),
        (257, 70, 130),
    ];
    for &(m, k, n) in &shapes {
        let x = sparse(m, k, 0.2, &mut rng);
        let w = normal(k, n, &mut rng);
        let dy = normal(m, n, &mut rng);
        let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let full = n - n % 64;
        let mut want_y = Matrix::zeros(m, n);
        for r in 0..m {
            for (j, &bj) in b.iter().enumerate() {
                let mut acc = if j < full { 0.0f32 } else { bj };
                for kk in 0..k {
                    let v = x.data[r * k + kk];
                    if v != 0.0 {
                        acc += v * w.data[kk * n + j];
                    }
                }
                want_y.data[r * n + j] = if j < full { bj + acc } else { acc };
            }
        }
        let mut want_dw = Matrix::zeros(k, n);
        for kk in 0..k {
            for j in 0..n {
                let mut acc = 0.0f32;
                for r in 0..m {
                    let v = x.data[r * k + kk];
                    if v != 0.0 {
                        acc += v * dy.data[r * n + j];
                    }
                }
                want_dw.data[kk * n + j] = acc;
            }
        }
        for rt in [1, 2, 3].into_iter().flat_map(runtimes) {
            let mut e = Nonzeros::default();
            assert!(e.gather(&rt, &x, 1.0));
            let mut y = Matrix::from_vec(m, n, vec![f32::NAN; m * n]); // overwritten
            sparse_affine(&rt, &e, &w, &b, &mut y);
            assert_eq!(bits(&y), bits(&want_y), "y {m}x{k}x{n} at {rt:?}");
            let mut dw = Matrix::from_vec(k, n, vec![f32::NAN; k * n]);
            sparse_matmul_tn(&rt, &mut e, &dy, &mut dw);
            assert_eq!(bits(&dw), bits(&want_dw), "dw {m}x{k}x{n} at {rt:?}");
        }
    }
}

#[test]
fn too_dense_is_refused() {
    let rt = Runtime::single().with_threads(2);
    let mut rng = Rng::new(6);
    let x = sparse(10, 50, 0.9, &mut rng);
    let mut e = Nonzeros::default();
    assert!(!e.gather(&rt, &x, MAX_DENSITY));
    assert!(e.gather(&rt, &x, 1.0));
    let zeros = Matrix::zeros(4, 9);
    assert!(e.gather(&rt, &zeros, 0.0));
    assert_eq!(e.nonzeros(), 0);
    // no columns at all, in several pieces
    assert!(e.gather_in_pieces(&rt, &Matrix::zeros(40, 0), 0.3, 2, true));
    assert_eq!(e.nonzeros(), 0);
}

/// Gathering by rows only lists the same rows as gathering both ways, and the forward
/// from either has the same bits.
#[test]
fn gathering_rows_only_gives_the_same_forward() {
    let mut rng = Rng::new(12);
    let rt = Runtime::single().with_threads(2);
    let (m, k, n) = (77, 130, 90);
    let x = sparse(m, k, 0.25, &mut rng);
    let w = normal(k, n, &mut rng);
    let b: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let (mut both, mut rows) = (Nonzeros::default(), Nonzeros::default());
    assert!(both.gather(&rt, &x, 1.0) && rows.gather_rows(&rt, &x, 1.0));
    assert!(both.has_columns() && !rows.has_columns());
    let (mut y1, mut y2) = (Matrix::zeros(m, n), Matrix::zeros(m, n));
    sparse_affine(&rt, &both, &w, &b, &mut y1);
    sparse_affine(&rt, &rows, &w, &b, &mut y2);
    assert_eq!(bits(&y1), bits(&y2));
}

/// The kernels against their definitions: the listing at every length 0-40 (every
/// remainder of its 32-wide chunks) with NaN (listed) and -0 (not) among the values,
/// its room check, and the last columns' sums at every width 0-63 from odd offsets `j`
/// into a matrix of odd width, from zero and from a bias, in the documented order.
#[test]
fn kernels_match_their_definitions() {
    let mut rng = Rng::new(21);
    for len in 0..=40 {
        let mut v: Vec<f32> = (0..len)
            .map(|_| {
                if rng.uniform() < 0.4 {
                    rng.normal()
                } else {
                    0.0
                }
            })
            .collect();
        if len > 3 {
            v[1] = f32::NAN;
            v[2] = -0.0;
        }
        let want: Vec<(u32, u32)> = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0 || x.is_nan())
            .map(|(j, x)| (j as u32, x.to_bits()))
            .collect();
        let (mut col, mut val) = (vec![u32::MAX; len], vec![f32::NAN; len]);
        // SAFETY: room for every entry.
        let n = unsafe { kernels::list_nonzeros(&v, col.as_mut_ptr(), val.as_mut_ptr(), len) };
        let got: Vec<(u32, u32)> = (0..n).map(|i| (col[i], val[i].to_bits())).collect();
        assert_eq!(got, want, "length {len}");
        if n > 0 {
            // one slot short: refused before writing past it
            let r = std::panic::catch_unwind(|| {
                let (mut c, mut x) = (vec![0u32; n - 1], vec![0f32; n - 1]);
                // SAFETY: room for n - 1 entries, which is what is passed.
                unsafe { kernels::list_nonzeros(&v, c.as_mut_ptr(), x.as_mut_ptr(), n - 1) }
            });
            assert!(r.is_err(), "length {len}: the room check");
        }
    }
    let m = normal(23, 131, &mut rng);
    let bias: Vec<f32> = (0..131).map(|_| rng.normal()).collect();
    let rows: Vec<u32> = (0..23).filter(|_| rng.uniform() < 0.6).collect();
    let vals: Vec<f32> = rows.iter().map(|_| rng.normal()).collect();
    for len in 0..64 {
        for j in [0, 1, 3, 17, 131 - 64] {
            for start in [Start::Zero, Start::Bias(&bias)] {
                let mut got = vec![f32::NAN; len];
                kernels::sum_tail(&rows, &vals, &m, j, &mut got, start);
                for (c, g) in got.iter().enumerate() {
                    let mut acc = match start {
                        Start::Zero => 0.0f32,
                        Start::Bias(b) => b[j + c],
                    };
                    for (&k, &v) in rows.iter().zip(&vals) {
                        acc += v * m.data[k as usize * 131 + j + c];
                    }
                    assert_eq!(
                        g.to_bits(),
                        acc.to_bits(),
                        "{len} columns from {j}, column {c}"
                    );
                }
            }
        }
    }
}
