//! The recurrent layers' gate nonlinearities over slices, vectorised: `tanh` as a
//! rational function (odd degree-13 numerator over even degree-6 denominator, the
//! minimax fit Eigen uses in `generic_fast_tanh_float`, its coefficients), and the
//! logistic function from it, `σ(x) = (1 + tanh(x/2)) / 2`. Multiplications, additions
//! and one division, no table and no exponent tricks, so a loop over a slice compiles
//! to SIMD code (the C library's `expf`/`tanhf` are calls, one element at a time). One
//! path, used by `Rnn`, `Lstm` and `Gru`; accuracy is tested against `f64` below.

/// `tanh x` within 4e-7 absolutely, never past ±1: x clamped to ±7.90531110763549805
/// (where the fit reaches 1; past it the fit overshoots, up to 1.0000002 by 9), then
/// `x p(x²) / q(x²)`.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn tanh(x: f32) -> f32 {
    const EDGE: f32 = 7.905_311;
    let x = x.clamp(-EDGE, EDGE);
    let x2 = x * x;
    let p = -2.76076847742355e-16 * x2 + 2.00018790482477e-13;
    let p = p * x2 + -8.60467152213735e-11;
    let p = p * x2 + 5.12229709037114e-08;
    let p = p * x2 + 1.48572235717979e-05;
    let p = p * x2 + 6.37261928875436e-04;
    let p = p * x2 + 4.89352455891786e-03;
    let q = 1.19825839466702e-06 * x2 + 1.18534705686654e-04;
    let q = q * x2 + 2.26843463243900e-03;
    let q = q * x2 + 4.89352518554385e-03;
    x * p / q
}

/// The logistic function `1 / (1 + e^-x) = (1 + tanh(x/2)) / 2`, within 2e-7
/// absolutely, in `[0, 1]`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    0.5 * tanh(0.5 * x) + 0.5
}

crate::simd::simd_fn! {
    /// `x = σ(x)` elementwise.
    pub fn sigmoid_in_place(level: Level, x: &mut [f32]) {
        x.iter_mut().for_each(|v| *v = sigmoid(*v));
    }
}

crate::simd::simd_fn! {
    /// `x = tanh(x)` elementwise.
    pub fn tanh_in_place(level: Level, x: &mut [f32]) {
        x.iter_mut().for_each(|v| *v = tanh(*v));
    }
}

crate::simd::simd_fn! {
    /// `y = tanh(x)` elementwise.
    pub fn tanh_into(level: Level, x: &[f32], y: &mut [f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = tanh(x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_f64_over_the_range_that_matters() {
        let mut worst = (0f64, 0f64);
        for k in -40_000..=40_000 {
            let x = k as f32 * 1e-3 * 2.0; // -80 .. 80
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            let (sg, th) = (sigmoid(x), tanh(x));
            assert!(
                (0.0..=1.0).contains(&sg) && (-1.0..=1.0).contains(&th),
                "{x}: {sg} {th}"
            );
            worst.0 = worst.0.max((sg as f64 - s).abs());
            worst.1 = worst.1.max((th as f64 - (x as f64).tanh()).abs());
        }
        // the clamp's edge, just inside and past it
        for x in [7.905_311f32, 8.0, 8.5, 9.0, 20.0] {
            assert_eq!(tanh(x), tanh(7.905_311), "{x}");
            assert_eq!(tanh(-x), -tanh(x), "{x}");
            assert!(tanh(x) <= 1.0 && tanh(x) >= 0.999_999_9, "{x}: {}", tanh(x));
        }
        eprintln!(
            "worst absolute errors: sigmoid {:.1e}, tanh {:.1e}",
            worst.0, worst.1
        );
        assert!(worst.0 < 2e-7 && worst.1 < 4e-7, "{worst:?}");
        assert!(tanh(30.0) >= 1.0 - 1e-7 && tanh(-30.0) <= -1.0 + 1e-7);
        assert!(sigmoid(-100.0) >= 0.0 && sigmoid(100.0) <= 1.0);
        assert!(tanh(f32::NAN).is_nan() && sigmoid(f32::NAN).is_nan());
        let mut v = [0.5f32, -2.0, 10.0];
        tanh_in_place(crate::simd::detected(), &mut v);
        assert!((v[0] - 0.5f32.tanh()).abs() < 4e-7 && v[2] >= 1.0 - 1e-7);
    }
}
