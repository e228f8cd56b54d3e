//! Seeded, on-the-fly data augmentation of a training batch: each image shifted by
//! whole pixels, rotated and scaled about its centre (bilinear resampling, zeros
//! outside). Each batch takes one number from the run's RNG; image `i` of the batch
//! draws its transform from a generator seeded by that number and `i`, so the result
//! does not depend on the thread count, and a run with augmentation off draws nothing.

use crate::error::{Error, Result};
use crate::par::{Disjoint, fork_blocks};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// How far each transform may go; every one is drawn uniformly within its range.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Largest shift, in whole pixels, along each axis.
    pub shift: usize,
    /// Largest rotation, in degrees, either way.
    pub rotate: f32,
    /// Largest relative change of size, either way (0.1: 90% to 110%).
    pub scale: f32,
}

impl Default for Augment {
    /// What `--augment` turns on: shifts up to 2 pixels, rotations up to 10 degrees,
    /// scaling by up to 10%.
    fn default() -> Self {
        Augment {
            shift: 2,
            rotate: 10.0,
            scale: 0.1,
        }
    }
}

impl Augment {
    /// Checks the ranges, naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=180.0).contains(&self.rotate) {
            return Err(Error::config(
                "augment.rotate",
                self.rotate,
                "degrees in [0, 180]",
            ));
        }
        if !(0.0..0.9).contains(&self.scale) {
            return Err(Error::config(
                "augment.scale",
                self.scale,
                "a fraction in [0, 0.9)",
            ));
        }
        if self.shift > 64 {
            return Err(Error::config(
                "augment.shift",
                self.shift,
                "at most 64 pixels",
            ));
        }
        Ok(())
    }

    /// Transforms every image of `x` (each `h x w`) in place; `src` is scratch.
    ///
    /// # Shapes
    /// `x: (batch, h·w)`.
    pub fn apply(
        &self,
        rt: &Runtime,
        seed: u64,
        h: usize,
        w: usize,
        x: &mut Matrix,
        src: &mut Matrix,
    ) {
        src.reshape_for(x.rows, x.cols);
        src.data.copy_from_slice(&x.data);
        let out = Disjoint::rows_of(x);
        let src = &*src;
        let per = x.rows.div_ceil(rt.threads.max(1)).max(1);
        fork_blocks(0, x.rows, per, &|b0, n| {
            for b in b0..b0 + n {
                // SAFETY: image b's row of x, written by this block alone.
                let dst = unsafe { out.row(b) };
                self.warp(seed, b, h, w, src.row(b), dst);
            }
        });
    }

    /// One image: `dst(p) = src(A⁻¹ (p - c - t) + c)`, `A` the rotation and scaling,
    /// `c` the centre, `t` the shift.
    fn warp(&self, seed: u64, index: usize, h: usize, w: usize, src: &[f32], dst: &mut [f32]) {
        let mut rng = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let s = self.shift as isize;
        let span = 2 * self.shift + 1;
        let (ty, tx) = (rng.below(span) as isize - s, rng.below(span) as isize - s);
        let angle = rng.uniform_range(-self.rotate, self.rotate).to_radians();
        let scale = 1.0 + rng.uniform_range(-self.scale, self.scale);
        if self.rotate == 0.0 && self.scale == 0.0 {
            // whole-pixel shifts move pixels exactly
            dst.fill(0.0);
            for y in 0..h as isize {
                let sy = y - ty;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                for x in 0..w as isize {
                    let sx = x - tx;
                    if sx >= 0 && sx < w as isize {
                        dst[y as usize * w + x as usize] = src[sy as usize * w + sx as usize];
                    }
                }
            }
            return;
        }
        let (sin, cos) = angle.sin_cos();
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        for y in 0..h {
            for x in 0..w {
                // inverse map: undo the shift, then the rotation and scaling
                let (dy, dx) = (y as f32 - cy - ty as f32, x as f32 - cx - tx as f32);
                let sy = (cos * dy - sin * dx) / scale + cy;
                let sx = (sin * dy + cos * dx) / scale + cx;
                dst[y * w + x] = bilinear(src, h, w, sy, sx);
            }
        }
    }
}

/// `src` at fractional `(y, x)`, zero outside.
fn bilinear(src: &[f32], h: usize, w: usize, y: f32, x: f32) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let at = |yy: f32, xx: f32| {
        if yy < 0.0 || xx < 0.0 || yy >= h as f32 || xx >= w as f32 {
            0.0
        } else {
            src[yy as usize * w + xx as usize]
        }
    };
    (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1.0))
        + fy * ((1.0 - fx) * at(y0 + 1.0, x0) + fx * at(y0 + 1.0, x0 + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 12x12 batch with a blob inside the 3-pixel margin.
    fn batch() -> Matrix {
        let mut x = Matrix::zeros(6, 144);
        for b in 0..6 {
            for y in 4..8 {
                for xx in 3..9 {
                    x.data[b * 144 + y * 12 + xx] = (b + y + xx) as f32 / 20.0;
                }
            }
        }
        x
    }

    #[test]
    fn same_seed_same_images_at_any_thread_count() {
        let a = Augment::default();
        let run = |threads, seed| {
            let mut x = batch();
            a.apply(
                &Runtime::new(threads),
                seed,
                12,
                12,
                &mut x,
                &mut Matrix::default(),
            );
            x
        };
        let one = run(1, 7);
        assert_eq!(one, run(3, 7));
        assert_ne!(one, run(1, 8));
        assert_ne!(one, batch());
    }

    #[test]
    fn shifts_keep_the_pixel_mass_and_move_it() {
        let a = Augment {
            shift: 2,
            rotate: 0.0,
            scale: 0.0,
        };
        let before = batch();
        let mut x = before.clone();
        a.apply(
            &Runtime::single(),
            3,
            12,
            12,
            &mut x,
            &mut Matrix::default(),
        );
        let mut moved = 0;
        for b in 0..6 {
            let mass = |m: &Matrix| m.row(b).iter().sum::<f32>();
            assert!((mass(&x) - mass(&before)).abs() < 1e-5, "image {b}");
            moved += (x.row(b) != before.row(b)) as usize;
        }
        assert!(moved >= 3, "only {moved} of 6 images moved");
    }

    #[test]
    fn ranges_are_checked() {
        let bad = Augment {
            scale: 1.5,
            ..Augment::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("augment.scale")
        );
    }
}
