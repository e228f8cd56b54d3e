//! The bf16 products against their definition: rounding, packing, every layout and
//! edge size, both kernels, thread counts.

use super::*;
use crate::rng::Rng;

/// Rounding to bf16: exact values stay, ties go to even, the rest to nearest; NaN
/// stays NaN, infinities stay, the largest finite f32 rounds up to infinity, and
/// subnormals become zeros of their sign (as `vcvtne2ps2bf16` does).
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
    assert_eq!(to_bf16(f32::from_bits(0x007f_ffff)), 0);
    assert_eq!(to_bf16(-f32::from_bits(1)), 0x8000);
    assert_eq!(to_bf16(f32::MIN_POSITIVE), 0x0080);
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

/// The kernels this CPU can run: the portable one, and the fast one where available.
fn kernels() -> &'static [bool] {
    if available() {
        &[false, true]
    } else {
        eprintln!("the AVX512-BF16 kernel is not tested: this CPU lacks it");
        &[false]
    }
}

/// Checks `product` against the reference for one layout, both kernels, with and
/// without `accumulate`, on 1 and 3 threads.
fn check(av: View<'_>, bv: View<'_>, rng: &mut Rng) {
    let (m, k, n) = (av.rows, av.cols, bv.cols);
    let (exact, scale) = reference(av, bv);
    let mut packs = Packs::default();
    for &fast in kernels() {
        for (accumulate, threads) in [(false, 1), (true, 3)] {
            let start = random(m, n, rng);
            let mut out = start.clone();
            product(threads, av, bv, &mut out.data, accumulate, fast, &mut packs);
            for e in 0..m * n {
                let before = if accumulate {
                    start.data[e] as f64
                } else {
                    0.0
                };
                let tol = (scale[e] + before.abs()) * 1e-6 + 1e-30;
                let got = out.data[e] as f64;
                assert!(
                    (got - (exact[e] + before)).abs() <= tol,
                    "({m}, {k}, {n}) fast {fast} accumulate {accumulate} element {e}: \
                     {got} vs {}",
                    exact[e] + before
                );
            }
        }
    }
}

/// Every layout backprop uses (`a b`, `a bᵀ`, `aᵀ b`) at a few shapes past whole
/// tiles and panels.
#[test]
fn products_match_the_rounded_reference_in_every_layout() {
    let mut rng = Rng::new(11);
    for &(m, k, n) in &[(10, 32, 32), (23, 17, 70), (100, 101, 45)] {
        let (a, at) = (random(m, k, &mut rng), random(k, m, &mut rng));
        let (b, bt) = (random(k, n, &mut rng), random(n, k, &mut rng));
        check(View::of(&a), View::of(&b), &mut rng);
        check(View::of(&a), View::transposed(&bt), &mut rng);
        check(View::transposed(&at), View::of(&b), &mut rng);
    }
}

/// Every edge: rows 0 to past two tiles, columns 0 to past two panels (a panel's
/// second vector empty, partial and full), inner sizes 0 to 5 (odd ones padded).
#[test]
fn products_match_the_reference_at_every_edge_size() {
    let mut rng = Rng::new(15);
    for m in [0, 1, 9, 10, 11, 21] {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 66] {
            for k in 0..=5 {
                let (a, b) = (random(m, k, &mut rng), random(k, n, &mut rng));
                check(View::of(&a), View::of(&b), &mut rng);
            }
        }
    }
}

/// The tiles write inside their rows and columns and nowhere else: an output wider
/// than the product, guarded by NaNs, keeps its guards for every tile size.
#[test]
fn tiles_write_only_their_elements() {
    let mut rng = Rng::new(16);
    let kp = 3;
    let ap: Vec<u32> = (0..kp * MR)
        .map(|_| pair(rng.normal(), rng.normal()))
        .collect();
    let bp: Vec<u32> = (0..kp * NR)
        .map(|_| pair(rng.normal(), rng.normal()))
        .collect();
    let ld = NR + 3;
    for &fast in kernels() {
        for rows in 1..=MR {
            for cols in 1..=NR {
                for accumulate in [false, true] {
                    let mut buf = vec![f32::NAN; (MR + 1) * ld];
                    for r in 0..rows {
                        buf[r * ld..r * ld + cols].fill(0.0);
                    }
                    let out = TileOut {
                        ptr: buf.as_mut_ptr(),
                        ld,
                        rows,
                        cols,
                        accumulate,
                    };
                    // SAFETY: `buf` holds MR + 1 rows of `ld >= cols` elements.
                    unsafe { run_tile(fast, kp, &ap, &bp, out) };
                    for (e, v) in buf.iter().enumerate() {
                        let inside = e / ld < rows && e % ld < cols;
                        assert_eq!(
                            inside,
                            !v.is_nan(),
                            "fast {fast} {rows}x{cols} accumulate {accumulate} element {e}"
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
        let rt = Runtime::new(threads);
        gemm_bf16(&rt, View::of(&a), View::of(&b), &mut out, false, None);
        out.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    let one = run(1);
    for t in [2, 3, 5] {
        assert_eq!(run(t), one, "{t} threads");
    }
}

/// A `b` packed once gives the bits of the product that packs it each time, for
/// either layout of `b`, at edge sizes, with and without `accumulate`; one `PackedB`
/// repacked from shape to shape (larger, then smaller) holds only the last.
#[test]
fn products_with_b_packed_beforehand_are_the_same() {
    let mut rng = Rng::new(17);
    let mut packed = PackedB::default();
    for &(m, k, n) in &[(50, 128, 512), (3, 7, 33), (21, 512, 128), (10, 1, 16)] {
        let (a, b, bt) = (
            random(m, k, &mut rng),
            random(k, n, &mut rng),
            random(n, k, &mut rng),
        );
        for bv in [View::of(&b), View::transposed(&bt)] {
            packed.pack(bv);
            for accumulate in [false, true] {
                let start = random(m, n, &mut rng);
                let (mut want, mut got) = (start.data.clone(), start.data);
                gemm_bf16_here(
                    View::of(&a),
                    bv,
                    &mut want,
                    accumulate,
                    &mut Packs::default(),
                );
                gemm_bf16_packed_here(
                    View::of(&a),
                    &packed,
                    &mut got,
                    accumulate,
                    &mut Packs::default(),
                );
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "({m}, {k}, {n}) {accumulate}");
            }
        }
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
        None,
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

/// The AVX512 packing gives the portable loop's bits in both layouts it handles, past
/// whole panels, with an odd `k`, with runs of 17-31 values left, and on zeros,
/// subnormals, NaNs, infinities and ties. The two buffers start with different words,
/// so a word the fast packing leaves unwritten shows (it writes every one, unfilled).
#[test]
fn fast_packing_matches_the_portable_loop() {
    if !available() {
        eprintln!("skipped: this CPU lacks AVX512-BF16");
        return;
    }
    let mut rng = Rng::new(14);
    let specials = [
        0.0,
        -0.0,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::from_bits(1.0f32.to_bits() + 0x8000),
        f32::MIN_POSITIVE,
    ];
    for &(rows, cols) in &[
        (1, 1),
        (3, 7),
        (10, 33),
        (37, 25),
        (13, 50),
        (37, 65),
        (100, 512),
    ] {
        let mut m = random(rows, cols, &mut rng);
        for (i, v) in m.data.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
            *v = specials[i % specials.len()];
        }
        for v in [View::of(&m), View::transposed(&m)] {
            let (r, c) = (v.rows, v.cols);
            let (mut slow, mut fast) = (vec![7; packed_len_a(r, c)], vec![9; packed_len_a(r, c)]);
            pack_a(v, &mut slow, false);
            pack_a(v, &mut fast, true);
            assert_eq!(slow, fast, "a {r}x{c}");
            let j0 = c / 3;
            let len = packed_len_b(r, c - j0);
            let (mut slow, mut fast) = (vec![7; len], vec![9; len]);
            pack_b(v, j0, c - j0, &mut slow, false);
            pack_b(v, j0, c - j0, &mut fast, true);
            assert_eq!(slow, fast, "b {r}x{c}");
        }
    }
}

/// In a bf16 runtime, `gemm` sends a product of 16 columns or more here and keeps a
/// narrower one (the 10-class layer's) in f32.
#[test]
fn gemm_routes_by_width() {
    let (rt, why) = Runtime::new(2).with_precision(crate::runtime::Precision::Bf16);
    if let Some(why) = why {
        eprintln!("skipped: {why}");
        return;
    }
    let mut rng = Rng::new(17);
    for (n, bf16_expected) in [(15, false), (16, true)] {
        let (a, b) = (random(30, 64, &mut rng), random(64, n, &mut rng));
        let run = |rt: &Runtime| {
            let mut out = Matrix::zeros(30, n);
            crate::tensor::gemm(rt, View::of(&a), View::of(&b), &mut out, false);
            out.data
        };
        let mut direct = Matrix::zeros(30, n);
        gemm_bf16(&rt, View::of(&a), View::of(&b), &mut direct, false, None);
        let (low, full) = (run(&rt), run(&Runtime::new(2)));
        assert_eq!(low == direct.data, bf16_expected, "{n} columns");
        assert_eq!(low == full, !bf16_expected, "{n} columns");
    }
}

/// Products that sum nothing: with `k == 0`, `out` becomes zeros, or stays as it was
/// when accumulating; with no rows or no columns nothing is touched (and nothing
/// panics). The same in f32, bf16 and bf16 on a packed `b`, on this thread and on the
/// pool.
#[test]
fn products_over_nothing_zero_or_keep_the_output() {
    let mut rng = Rng::new(18);
    for &(m, k, n) in &[(3, 0, 5), (3, 0, 32), (0, 4, 5), (3, 4, 0), (0, 0, 0)] {
        let (a, b) = (random(m, k, &mut rng), random(k, n, &mut rng));
        let mut packed = PackedB::default();
        packed.pack(View::of(&b));
        for accumulate in [false, true] {
            let start = random(m, n, &mut rng).data;
            let want = if k == 0 && !accumulate {
                vec![0.0; m * n]
            } else {
                start.clone()
            };
            type Run<'a> = (&'a str, &'a dyn Fn(&mut [f32]));
            // the pool's product (`gemm_in`), in f32 and routed to bf16
            let pooled = |precision, out: &mut [f32]| {
                let rt = Runtime {
                    precision,
                    ..Runtime::default().with_threads(2)
                };
                let mut o = Matrix::from_vec(m, n, out.to_vec());
                crate::tensor::gemm(&rt, View::of(&a), View::of(&b), &mut o, accumulate);
                out.copy_from_slice(&o.data);
            };
            let runs: [Run; 5] = [
                ("f32", &|out| {
                    crate::tensor::gemm_here(View::of(&a), View::of(&b), out, accumulate)
                }),
                ("f32 pooled", &|out| pooled(Precision::F32, out)),
                ("bf16 pooled", &|out| pooled(Precision::Bf16, out)),
                ("bf16", &|out| {
                    gemm_bf16_here(
                        View::of(&a),
                        View::of(&b),
                        out,
                        accumulate,
                        &mut Packs::default(),
                    )
                }),
                ("bf16 packed", &|out| {
                    gemm_bf16_packed_here(
                        View::of(&a),
                        &packed,
                        out,
                        accumulate,
                        &mut Packs::default(),
                    )
                }),
            ];
            for (name, run) in runs {
                let mut out = start.clone();
                run(&mut out);
                assert_eq!(out, want, "{name} ({m}, {k}, {n}) accumulate {accumulate}");
            }
        }
    }
}
