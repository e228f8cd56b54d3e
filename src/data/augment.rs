//! Seeded, on-the-fly data augmentation of a training batch: each image shifted by
//! whole pixels, rotated and scaled about its centre, and optionally bent by an
//! elastic distortion (Simard, Steinkraus and Platt, 2003: a random displacement
//! field smoothed by a Gaussian), all in one bilinear resampling with zeros outside.
//! Each batch takes one number from the run's RNG; image `i` of the batch draws its
//! transform from a generator seeded by that number and `i`, so the result does not
//! depend on the thread count, and a run with augmentation off draws nothing.

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
    /// Elastic distortion's strength α, in pixels: each pixel moves by α times a
    /// field of uniform noise in [-1, 1] smoothed by a unit-sum Gaussian (0: off;
    /// Simard et al. used 34 with `sigma` 4 on MNIST).
    pub elastic: f32,
    /// The smoothing Gaussian's standard deviation, in pixels (larger: smoother,
    /// gentler bends).
    pub sigma: f32,
}

/// The widest smoothing kernel: `sigma` is at most `MAX_SIGMA`, the kernel reaches
/// 3 sigma either side.
const MAX_SIGMA: f32 = 16.0;
const MAX_TAPS: usize = 2 * 3 * MAX_SIGMA as usize + 1;

/// The augmentation's buffers, kept across batches so training allocates nothing.
#[derive(Default)]
pub struct Scratch {
    /// A copy of the batch, read while the batch is overwritten.
    src: Matrix,
    /// Per image: the two displacement fields and the smoothing pass's buffer.
    field: Matrix,
}

impl Default for Augment {
    /// What `--augment` turns on: shifts up to 2 pixels, rotations up to 10 degrees,
    /// scaling by up to 10%, no elastic distortion (`--elastic` adds it).
    fn default() -> Self {
        Augment {
            shift: 2,
            rotate: 10.0,
            scale: 0.1,
            elastic: 0.0,
            sigma: 4.0,
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
        if !(0.0..=100.0).contains(&self.elastic) {
            return Err(Error::config(
                "augment.elastic",
                self.elastic,
                "pixels in [0, 100]",
            ));
        }
        if !(0.5..=MAX_SIGMA).contains(&self.sigma) {
            return Err(Error::config(
                "augment.sigma",
                self.sigma,
                format!("pixels in [0.5, {MAX_SIGMA}]"),
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

    /// Transforms every image of `x` (each `h x w`) in place.
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
        scratch: &mut Scratch,
    ) {
        let Scratch { src, field } = scratch;
        src.reshape_for(x.rows, x.cols);
        src.data.copy_from_slice(&x.data);
        let mut taps = [0f32; MAX_TAPS];
        let kernel = if self.elastic > 0.0 {
            field.reshape_for(x.rows, 3 * h * w);
            gaussian(self.sigma, &mut taps)
        } else {
            &[][..]
        };
        let out = Disjoint::rows_of(x);
        let fields = Disjoint::rows_of(field);
        let src = &*src;
        let per = x.rows.div_ceil(rt.threads.max(1)).max(1);
        fork_blocks(0, x.rows, per, &|b0, n| {
            for b in b0..b0 + n {
                // SAFETY: image b's rows of x and of the fields, used by this block alone.
                let dst = unsafe { out.row(b) };
                let field = match kernel.is_empty() {
                    true => &mut [][..],
                    // SAFETY: as above.
                    false => unsafe { fields.row(b) },
                };
                self.warp(seed, b, h, w, src.row(b), dst, kernel, field);
            }
        });
    }

    /// One image: `dst(p) = src(A⁻¹ (p + α·d(p) - c - t) + c)`, `A` the rotation and
    /// scaling, `c` the centre, `t` the shift, `d` the smoothed noise field (when
    /// `kernel` is not empty; `field` is its room, `3·h·w`).
    #[allow(clippy::too_many_arguments)]
    fn warp(
        &self,
        seed: u64,
        index: usize,
        h: usize,
        w: usize,
        src: &[f32],
        dst: &mut [f32],
        kernel: &[f32],
        field: &mut [f32],
    ) {
        let mut rng = Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let s = self.shift as isize;
        let span = 2 * self.shift + 1;
        let (ty, tx) = (rng.below(span) as isize - s, rng.below(span) as isize - s);
        let angle = rng.uniform_range(-self.rotate, self.rotate).to_radians();
        let scale = 1.0 + rng.uniform_range(-self.scale, self.scale);
        let elastic = !kernel.is_empty();
        if self.rotate == 0.0 && self.scale == 0.0 && !elastic {
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
        let (fy, fx) = if elastic {
            let (fy, rest) = field.split_at_mut(h * w);
            let (fx, tmp) = rest.split_at_mut(h * w);
            // drawn after the affine part, so runs without it keep their bits
            for v in fy.iter_mut().chain(fx.iter_mut()) {
                *v = self.elastic * rng.uniform_range(-1.0, 1.0);
            }
            smooth(fy, tmp, h, w, kernel);
            smooth(fx, tmp, h, w, kernel);
            (&*fy, &*fx)
        } else {
            (&[][..], &[][..])
        };
        let (sin, cos) = angle.sin_cos();
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        for y in 0..h {
            for x in 0..w {
                let (mut py, mut px) = (y as f32, x as f32);
                if elastic {
                    py += fy[y * w + x];
                    px += fx[y * w + x];
                }
                // inverse map: undo the shift, then the rotation and scaling
                let (dy, dx) = (py - cy - ty as f32, px - cx - tx as f32);
                let sy = (cos * dy - sin * dx) / scale + cy;
                let sx = (sin * dy + cos * dx) / scale + cx;
                dst[y * w + x] = bilinear(src, h, w, sy, sx);
            }
        }
    }
}

/// The unit-sum Gaussian of standard deviation `sigma`, reaching `ceil(3 sigma)` taps
/// either side, written into the front of `taps`.
fn gaussian(sigma: f32, taps: &mut [f32; MAX_TAPS]) -> &[f32] {
    let r = (3.0 * sigma).ceil() as usize;
    let k = &mut taps[..2 * r + 1];
    for (j, t) in k.iter_mut().enumerate() {
        let d = j as f32 - r as f32;
        *t = (-d * d / (2.0 * sigma * sigma)).exp();
    }
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|t| *t /= sum);
    k
}

/// Convolves the `h x w` field `f` with `kernel` along rows, then along columns,
/// counting the noise beyond the border as zeros (as the common reference,
/// `scipy.ndimage.gaussian_filter(..., mode="constant")`, does: the bends fade near
/// the edges instead of growing there); `tmp` holds the first pass.
fn smooth(f: &mut [f32], tmp: &mut [f32], h: usize, w: usize, kernel: &[f32]) {
    let r = kernel.len() / 2;
    // the taps j of output i that land inside 0..n: i + j - r in 0..n
    let taps = |i: usize, n: usize| r.saturating_sub(i)..kernel.len().min(n + r - i);
    for y in 0..h {
        let row = &f[y * w..(y + 1) * w];
        for x in 0..w {
            let js = taps(x, w);
            let k = &kernel[js.clone()];
            let v = &row[x + js.start - r..x + js.end - r];
            tmp[y * w + x] = k.iter().zip(v).map(|(k, v)| k * v).sum();
        }
    }
    for y in 0..h {
        let js = taps(y, h);
        let out = &mut f[y * w..(y + 1) * w];
        out.fill(0.0);
        for j in js {
            let (k, src) = (kernel[j], &tmp[(y + j - r) * w..(y + j - r + 1) * w]);
            for (o, s) in out.iter_mut().zip(src) {
                *o += k * s;
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
        for a in [
            Augment::default(),
            Augment {
                elastic: 20.0,
                sigma: 3.0,
                ..Augment::default()
            },
        ] {
            same_images(a);
        }
    }

    fn same_images(a: Augment) {
        let run = |threads, seed| {
            let mut x = batch();
            a.apply(
                &Runtime::new(threads),
                seed,
                12,
                12,
                &mut x,
                &mut Scratch::default(),
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
            ..Augment::default()
        };
        let before = batch();
        let mut x = before.clone();
        a.apply(
            &Runtime::single(),
            3,
            12,
            12,
            &mut x,
            &mut Scratch::default(),
        );
        let mut moved = 0;
        for b in 0..6 {
            let mass = |m: &Matrix| m.row(b).iter().sum::<f32>();
            assert!((mass(&x) - mass(&before)).abs() < 1e-5, "image {b}");
            moved += (x.row(b) != before.row(b)) as usize;
        }
        assert!(moved >= 3, "only {moved} of 6 images moved");
    }

    /// The elastic field alone, read back from a ramp image: bilinear resampling
    /// reproduces a linear ramp exactly, so `dst(y, x) - x` is the horizontal
    /// displacement at `(y, x)` (kept where the source stays inside the image).
    fn displacements(a: Augment, seed: u64) -> Vec<f32> {
        let (h, w) = (28, 28);
        let mut x = Matrix::zeros(4, h * w);
        for b in 0..4 {
            for y in 0..h {
                for xx in 0..w {
                    x.data[b * h * w + y * w + xx] = xx as f32;
                }
            }
        }
        a.apply(
            &Runtime::single(),
            seed,
            h,
            w,
            &mut x,
            &mut Scratch::default(),
        );
        let mut d = vec![f32::NAN; 4 * h * w];
        for b in 0..4 {
            // the 10x10 middle: displacements of a few pixels keep inside
            for y in 9..19 {
                for xx in 9..19 {
                    d[b * h * w + y * w + xx] = x.data[b * h * w + y * w + xx] - xx as f32;
                }
            }
        }
        d
    }

    #[test]
    fn elastic_fields_are_smooth_and_as_strong_as_asked() {
        let elastic = |alpha| Augment {
            shift: 0,
            rotate: 0.0,
            scale: 0.0,
            elastic: alpha,
            sigma: 4.0,
        };
        let d = displacements(elastic(34.0), 5);
        let cells: Vec<usize> = (0..d.len()).filter(|&i| d[i].is_finite()).collect();
        let mean_abs = cells.iter().map(|&i| d[i].abs()).sum::<f32>() / cells.len() as f32;
        // unit-sum smoothing of U(-1, 1) noise over ~4π·16 pixels leaves a std of
        // about 0.58 / 14.2, times 34: about 1.4 pixels (mean |d| about 1.1)
        assert!((0.4..3.0).contains(&mean_abs), "mean |d| {mean_abs}");
        // neighbours move together: a step's change is a small part of the move
        let step: Vec<f32> = cells
            .iter()
            .filter(|&&i| d[i + 1].is_finite())
            .map(|&i| (d[i + 1] - d[i]).abs())
            .collect();
        let mean_step = step.iter().sum::<f32>() / step.len() as f32;
        assert!(
            mean_step < 0.3 * mean_abs,
            "step {mean_step}, |d| {mean_abs}"
        );
        // the strength scales the field: half α, half the displacements
        let half = displacements(elastic(17.0), 5);
        for &i in &cells {
            assert!(
                (2.0 * half[i] - d[i]).abs() < 1e-3,
                "pixel {i}: {} {}",
                half[i],
                d[i]
            );
        }
    }

    /// Smoothed noise: at the centre its variance is the theory's, `(1/3)(Σ k²)²` for
    /// U(-1, 1) noise and the kernel `k` along each axis; towards the border and in the
    /// corner it is no larger (zeros beyond the border), where repeating the edge
    /// values would make the corner's about 22 times the centre's.
    #[test]
    fn smoothed_noise_is_as_strong_as_theory_says_and_fades_at_the_border() {
        let (h, w, trials) = (28, 28, 400);
        let mut taps = [0f32; MAX_TAPS];
        let k = gaussian(4.0, &mut taps);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let theory = (k.iter().map(|t| (t * t) as f64).sum::<f64>()).powi(2) / 3.0;
        let mut rng = Rng::new(4);
        let (mut f, mut tmp) = (vec![0f32; h * w], vec![0f32; h * w]);
        let mut var = vec![0f64; h * w];
        for _ in 0..trials {
            f.iter_mut().for_each(|v| *v = rng.uniform_range(-1.0, 1.0));
            smooth(&mut f, &mut tmp, h, w, k);
            for (s, v) in var.iter_mut().zip(&f) {
                *s += (*v as f64).powi(2) / trials as f64;
            }
        }
        let centre = (12..16)
            .flat_map(|y| (12..16).map(move |x| y * w + x))
            .map(|i| var[i])
            .sum::<f64>()
            / 16.0;
        assert!(
            (centre / theory - 1.0).abs() < 0.2,
            "centre {centre}, theory {theory}"
        );
        for (name, i) in [("corner", 0), ("edge", 14), ("far corner", h * w - 1)] {
            assert!(
                var[i] <= 1.1 * centre,
                "{name}: {} against {centre}",
                var[i]
            );
        }
    }

    #[test]
    fn ranges_are_checked() {
        let bad = Augment {
            sigma: 0.0,
            elastic: 10.0,
            ..Augment::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("augment.sigma")
        );
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
