//! Inverted dropout (Srivastava et al. 2014, "Dropout: a simple way to prevent neural
//! networks from overfitting"), as TensorFlow's `tf.nn.dropout`: in training each unit
//! is kept with probability `keep` and kept units are scaled by `1/keep`, with a fresh
//! mask every step; in evaluation the layer is the identity, so nothing is rescaled.

use super::{Features, Layer, Mode, Param, Pass};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::{Matrix, for_each_piece};

/// A dropout layer.
#[derive(Clone, Debug)]
pub struct Dropout {
    /// Probability of keeping a unit, in (0, 1].
    pub keep: f32,
    pub shape: Features,
    /// (batch, size): 0 or 1/keep per element, from the last training forward.
    pub mask: Matrix,
    /// When set, forward reuses `mask` instead of drawing a new one (gradient checks).
    pub frozen: bool,
    last_mode: Mode,
}

impl Dropout {
    pub fn new(keep: f32, shape: impl Into<Features>) -> Self {
        let shape = shape.into();
        Dropout {
            keep,
            shape,
            mask: Matrix::zeros(0, shape.size()),
            frozen: false,
            last_mode: Mode::Eval,
        }
    }

    /// Draws a fresh mask for `rows` rows: one 32-bit draw per element (two per `u64`).
    fn draw_mask(&mut self, rows: usize, rng: &mut Rng) {
        self.mask.set_rows(rows);
        let scale = 1.0 / self.keep;
        // keep a unit when its 32 random bits are below keep * 2^32
        let threshold = (self.keep as f64 * 4294967296.0).min(u32::MAX as f64 + 1.0) as u64;
        // 0 or 1/keep; written with integer masks because LLVM turns a comparison
        // and select into a branch here, which mispredicts on ~30% of elements
        let scale_bits = scale.to_bits();
        let keep = |bits: u64| {
            let kept = (bits.wrapping_sub(threshold) >> 63) as u32; // 1 iff bits < threshold
            f32::from_bits(scale_bits & kept.wrapping_neg())
        };
        let mut chunks = self.mask.data.chunks_exact_mut(2);
        for pair in &mut chunks {
            let r = rng.next_u64();
            pair[0] = keep(r & 0xffff_ffff);
            pair[1] = keep(r >> 32);
        }
        for m in chunks.into_remainder() {
            *m = keep(rng.next_u64() & 0xffff_ffff);
        }
    }
}

impl Layer for Dropout {
    fn describe(&self) -> String {
        format!("dropout keep {}", self.keep)
    }
    fn input(&self) -> Features {
        self.shape
    }
    fn output(&self) -> Features {
        self.shape
    }

    /// Train: `y = x ⊙ mask`, mask ∈ {0, 1/keep}. Eval: `y = x`.
    ///
    /// # Shapes
    /// `x, y, mask: (batch, size)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        self.last_mode = pass.mode;
        if pass.mode == Mode::Eval || self.keep >= 1.0 {
            for_each_piece(pass.rt, &mut y.data, &|at, y| {
                y.copy_from_slice(&x.data[at..at + y.len()])
            });
            self.last_mode = Mode::Eval;
            return;
        }
        if !self.frozen || self.mask.rows != x.rows {
            self.draw_mask(x.rows, pass.rng);
        }
        multiply(pass.rt.simd, &x.data, &self.mask.data, &mut y.data);
    }

    /// `dx = dy ⊙ mask` (the same mask as forward).
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let Some(dx) = dx else { return };
        if self.last_mode == Mode::Eval {
            dx.data.copy_from_slice(&dy.data);
            return;
        }
        multiply(rt.simd, &dy.data, &self.mask.data, &mut dx.data);
    }

    fn visit_params(&mut self, _f: &mut dyn FnMut(Param<'_>)) {}
}

crate::simd::simd_fn! {
    /// `out = a ⊙ b`.
    fn multiply(level: Level, a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a * b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_right_fraction_and_scales() {
        let mut d = Dropout::new(0.7, 1001);
        let x = Matrix::from_vec(20, 1001, vec![1.0; 20 * 1001]);
        let mut y = Matrix::zeros(20, 1001);
        let mut rng = Rng::new(1);
        let rt = Runtime::single();
        d.forward(&x, &mut y, &mut Pass::new(Mode::Train, &mut rng, &rt));
        let kept = y.data.iter().filter(|&&v| v != 0.0).count() as f32 / y.data.len() as f32;
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        assert!(
            y.data
                .iter()
                .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6)
        );
        // the mean is preserved (inverted dropout)
        let mean = y.data.iter().sum::<f32>() / y.data.len() as f32;
        assert!((mean - 1.0).abs() < 0.02);
        // a fresh mask each step
        let first = d.mask.clone();
        d.forward(&x, &mut y, &mut Pass::new(Mode::Train, &mut rng, &rt));
        assert_ne!(first, d.mask);
        // identity in evaluation
        d.forward(&x, &mut y, &mut Pass::new(Mode::Eval, &mut rng, &rt));
        assert_eq!(y, x);
    }

    /// The branch-free mask is the straightforward one: the same stream, the same
    /// comparison, for odd sizes and several keep probabilities.
    #[test]
    fn mask_matches_the_plain_definition() {
        for keep in [0.1f32, 0.5, 0.7, 0.999] {
            let mut d = Dropout::new(keep, 37);
            let (mut a, mut b) = (Rng::new(5), Rng::new(5));
            d.draw_mask(9, &mut a);
            let threshold = (keep as f64 * 4294967296.0) as u64;
            let mut want = Vec::new();
            while want.len() < 9 * 37 {
                let r = b.next_u64();
                for bits in [r & 0xffff_ffff, r >> 32] {
                    want.push(if bits < threshold { 1.0 / keep } else { 0.0 });
                }
            }
            want.truncate(9 * 37); // the odd last element: the low half of a fresh draw
            assert_eq!(d.mask.data, want, "keep {keep}");
        }
    }
}
