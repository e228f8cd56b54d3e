//! The recurrent layers' gate nonlinearities over slices, vectorised: `exp` by
//! Cephes' `expf` polynomial (range reduction by ln 2, degree-6 polynomial, the power
//! of two put in the exponent bits), so that a loop over a slice compiles to SIMD code
//! (the C library's `expf`/`tanhf` are calls, one element at a time). One path, used by
//! `Rnn`, `Lstm` and `Gru`; accuracy is tested against `f64` below.

/// e^x, relative error below 2e-7 for x in [-87, 88]; 0 below, `f32::MAX`-ish above.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // ln 2, split so that n·C1 is exact
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * C1 - n * C2;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5; // Cephes' 5.0000001201e-1, which is 0.5 in f32
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The logistic function `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x = 1 - 2 / (e^2x + 1)`, absolute error below 3e-7 (x clamped to ±9, where
/// tanh is 1 within 3e-8).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let x = x.clamp(-9.0, 9.0);
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
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
        let mut worst = (0f64, 0f64, 0f64);
        for k in -40_000..=40_000 {
            let x = k as f32 * 1e-3 * 2.0; // -80 .. 80
            let e = (x as f64).exp();
            worst.0 = worst.0.max((exp(x) as f64 - e).abs() / e);
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            worst.1 = worst.1.max((sigmoid(x) as f64 - s).abs());
            worst.2 = worst.2.max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(
            worst.0 < 2e-7 && worst.1 < 2e-7 && worst.2 < 3e-7,
            "{worst:?}"
        );
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) > 0.0 && exp(88.0).is_finite());
        assert!(tanh(30.0) >= 1.0 - 1e-7 && tanh(-30.0) <= -1.0 + 1e-7);
        let mut v = [0.5f32, -2.0, 10.0];
        tanh_in_place(crate::simd::detected(), &mut v);
        assert!((v[0] - 0.5f32.tanh()).abs() < 3e-7 && v[2] >= 1.0 - 1e-7);
    }
}
