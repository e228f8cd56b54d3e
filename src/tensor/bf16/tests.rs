use super::*;
use crate::rng::Rng;

/// Rounding to bf16: exact values stay, ties go to even, the rest to nearest; NaN
/// stays NaN, infinities stay, the largest finite f32 rounds up to infinity.
#[test]
fn rounds_to_nearest_even() {
    for x in [
        0.0f32,
        -0.0,
        1.0,
        -2.5,
        0.15625,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        assert_eq!(from_bf16(to_bf16(x)).to_bits(), x.to_bits(), "{x}");
    }
    let one = 1.0f32.to_bits();
    // halfway between 1 and the next bf16 (1 + 2^-7): ties to even, down to 1
    assert_eq!(from_bf16(to_bf16(f32::from_bits(one + 0x8000))), 1.0);
    // halfway above 1 + 2^-7 (odd): up to 1 + 2^-6
    let odd = one + 0x1_0000;
    assert_eq!(
        to_bf16(f32::from_bits(odd + 0x8000)),
        ((odd >> 16) + 1) as u16
    );
    // just above halfway: up
    assert_eq!(from_bf16(to_bf16(f32::from_bits(one + 0x8001))), 1.0078125);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
}

fn random(rows: usize, cols: usize, rng: &mut Rng) -> Matrix {
    let data = (0..rows * cols).map(|_| rng.normal()).collect();
    Matrix::from_vec(rows, cols, data)
}

/// `a · b` in f64 from the bf16-rounded operands, and `Σ |a||b|` for each element
/// (the scale of its rounding error).
fn reference(a: View<'_>, b: View<'_>) -> (Vec<f64>, Vec<f64>) {
    let r = |x: f32| from_bf16(to_bf16(x)) as f64;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let (mut exact, mut scale) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let v = r(a.data[i * a.rs + p * a.cs]) * r(b.data[p * b.rs + j * b.cs]);
                exact[i * n + j] += v;
                scale[i * n + j] += v.abs();
            }
        }
    }
    (exact, scale)
}

/// Every layout backprop uses (`a b`, `a bᵀ`, `aᵀ b`), odd inner sizes, rows past a
/// whole tile and columns past a whole panel, with and without `accumulate`: both
/// kernels give the f64 product of the rounded operands to f32 rounding of the sums.
#[test]
fn products_match_the_rounded_reference_in_every_layout() {
    let mut rng = Rng::new(11);
    let kernels: &[bool] = if available() {
        &[false, true]
    } else {
        &[false]
    };
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (10, 32, 32),
        (23, 17, 70),
        (100, 101, 45),
    ] {
        let a = random(m, k, &mut rng);
        let at = random(k, m, &mut rng);
        let b = random(k, n, &mut rng);
        let bt = random(n, k, &mut rng);
        let layouts = [
            (View::of(&a), View::of(&b)),
            (View::of(&a), View::transposed(&bt)),
            (View::transposed(&at), View::of(&b)),
        ];
        for (av, bv) in layouts {
            let (exact, scale) = reference(av, bv);
            for &fast in kernels {
                for accumulate in [false, true] {
                    let start = random(m, n, &mut rng);
                    let mut out = start.clone();
                    product(&Runtime::new(2), av, bv, &mut out, accumulate, fast);
                    for e in 0..m * n {
                        let want = exact[e]
                            + if accumulate {
                                start.data[e] as f64
                            } else {
                                0.0
                            };
                        let tol = (scale[e] + start.data[e].abs() as f64) * 1e-6 + 1e-30;
                        let got = out.data[e] as f64;
                        assert!(
                            (got - want).abs() <= tol,
                            "({m}, {k}, {n}) fast {fast} accumulate {accumulate} element {e}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

/// The bits do not depend on how many threads share the columns.
#[test]
fn bits_do_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(12);
    let (a, b) = (random(100, 96, &mut rng), random(96, 300, &mut rng));
    let run = |threads: usize| {
        let mut out = Matrix::zeros(100, 300);
        gemm_bf16(
            &Runtime::new(threads),
            View::of(&a),
            View::of(&b),
            &mut out,
            false,
        );
        out.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    let one = run(1);
    for t in [2, 3, 5] {
        assert_eq!(run(t), one, "{t} threads");
    }
}

/// Against the f32 product, the error is bf16's: about 2^-8 of `Σ |a||b|`, no more.
#[test]
fn error_against_f32_is_bf16_sized() {
    let mut rng = Rng::new(13);
    let (a, b) = (random(20, 256, &mut rng), random(256, 40, &mut rng));
    let mut out = Matrix::zeros(20, 40);
    gemm_bf16(
        &Runtime::single(),
        View::of(&a),
        View::of(&b),
        &mut out,
        false,
    );
    let f32_product = crate::tensor::naive_matmul(&a, &b);
    let mut worst = 0f64;
    for i in 0..20 {
        for j in 0..40 {
            let scale: f64 = (0..256)
                .map(|p| (a.data[i * 256 + p] * b.data[p * 40 + j]).abs() as f64)
                .sum();
            let err = (out.data[i * 40 + j] - f32_product.data[i * 40 + j]).abs() as f64;
            worst = worst.max(err / scale);
        }
    }
    assert!(worst < 2f64.powi(-7), "relative error {worst}");
    assert!(worst > 0.0, "the products were rounded");
}

/// The AVX512 packing gives the portable loop's bits in both layouts it handles (and
/// past whole panels, with an odd `k`).
#[test]
fn fast_packing_matches_the_portable_loop() {
    if !available() {
        return;
    }
    let mut rng = Rng::new(14);
    for &(rows, cols) in &[(1, 1), (3, 7), (10, 33), (37, 65), (100, 512)] {
        let m = random(rows, cols, &mut rng);
        for v in [View::of(&m), View::transposed(&m)] {
            let (mut slow, mut fast) = (Vec::new(), Vec::new());
            pack_a(v, &mut slow, false);
            pack_a(v, &mut fast, true);
            assert_eq!(slow, fast, "a {rows}x{cols}");
            let j0 = v.cols / 3;
            pack_b(v, j0, v.cols - j0, &mut slow, false);
            pack_b(v, j0, v.cols - j0, &mut fast, true);
            assert_eq!(slow, fast, "b {rows}x{cols}");
        }
    }
}
