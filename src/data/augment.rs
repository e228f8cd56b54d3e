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
    assert!(
        (0.5..=MAX_SIGMA).contains(&sigma),
        "augment: sigma {sigma} outside [0.5, {MAX_SIGMA}] (Augment::validate first)"
    );
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
/// `scipy.ndimage.gaussian_filter(..., mode="constant")`, does, though its kernel
/// reaches 4 sigma: the bends fade near the edges instead of growing there); `tmp`
/// holds the first pass.
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

    const GOLDEN_DIGEST: u64 = 0xe23b_e6f9_a162_ef2a;

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

    /// The elastic field alone, read back from ramp images: bilinear resampling
    /// reproduces a linear ramp exactly, so with `src(y, x) = x`, `dst(y, x) - x` is
    /// the horizontal displacement at `(y, x)`, and with `src(y, x) = y` the vertical
    /// one. Kept over the middle 20x20 (the bends there stay inside the image); NaN
    /// elsewhere. Returns (vertical, horizontal), 16 images each.
    fn displacements(a: Augment, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let (n, h, w) = (16, 28, 28);
        let read = |ramp: &dyn Fn(usize, usize) -> f32| {
            let mut x = Matrix::zeros(n, h * w);
            for b in 0..n {
                for y in 0..h {
                    for xx in 0..w {
                        x.data[b * h * w + y * w + xx] = ramp(y, xx);
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
            let mut d = vec![f32::NAN; n * h * w];
            for b in 0..n {
                for y in 4..24 {
                    for xx in 4..24 {
                        let i = b * h * w + y * w + xx;
                        d[i] = x.data[i] - ramp(y, xx);
                    }
                }
            }
            d
        };
        (read(&|y, _| y as f32), read(&|_, x| x as f32))
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
        let (dy, dx) = displacements(elastic(34.0), 5);
        let cells: Vec<usize> = (0..dx.len()).filter(|&i| dx[i].is_finite()).collect();
        let mean = |f: &dyn Fn(usize) -> f32| {
            cells.iter().map(|&i| f(i)).sum::<f32>() / cells.len() as f32
        };
        // unit-sum smoothing of U(-1, 1) noise over ~4π·16 pixels leaves a std of
        // about 0.58 / 14.2, times 34: about 1.4 pixels along each axis
        for (name, d) in [("vertical", &dy), ("horizontal", &dx)] {
            let rms = mean(&|i| d[i] * d[i]).sqrt();
            assert!((0.7..2.8).contains(&rms), "{name}: rms {rms}");
            // neighbours move together: a step's change is a small part of the move
            let pairs: Vec<usize> = cells
                .iter()
                .copied()
                .filter(|&i| d[i + 1].is_finite())
                .collect();
            let step =
                pairs.iter().map(|&i| (d[i + 1] - d[i]).abs()).sum::<f32>() / pairs.len() as f32;
            assert!(step < 0.3 * rms, "{name}: step {step}, rms {rms}");
        }
        // the two axes draw their own noise
        let corr =
            mean(&|i| dx[i] * dy[i]) / (mean(&|i| dx[i] * dx[i]) * mean(&|i| dy[i] * dy[i])).sqrt();
        assert!(corr.abs() < 0.5, "the axes' fields correlate: {corr}");
        // the strength scales the field: half α, half the displacements
        let (_, half) = displacements(elastic(17.0), 5);
        for &i in &cells {
            assert!(
                (2.0 * half[i] - dx[i]).abs() < 1e-3,
                "pixel {i}: {} {}",
                half[i],
                dx[i]
            );
        }
    }

    /// The kernel is a Gaussian of the asked width: neighbouring taps in the ratio
    /// `exp(-1/(2σ²))` at the centre, unit sum, variance σ² (less the tails beyond 3σ).
    #[test]
    fn the_kernel_is_the_asked_gaussian() {
        for sigma in [0.5f32, 1.5, 4.0, 16.0] {
            let mut taps = [0f32; MAX_TAPS];
            let k = gaussian(sigma, &mut taps);
            let r = k.len() / 2;
            assert_eq!(r, (3.0 * sigma).ceil() as usize);
            let ratio = k[r + 1] / k[r];
            assert!(
                (ratio - (-1.0 / (2.0 * sigma * sigma)).exp()).abs() < 1e-5,
                "σ {sigma}: {ratio}"
            );
            let var: f32 = k
                .iter()
                .enumerate()
                .map(|(j, t)| t * (j as f32 - r as f32).powi(2))
                .sum();
            // (a kernel of 5 taps, σ 0.5, is too coarse for the continuous variance)
            if sigma >= 1.5 {
                assert!(
                    (var / (sigma * sigma) - 1.0).abs() < 0.05,
                    "σ {sigma}: variance {var}"
                );
            }
        }
    }

    /// The separable smoothing is the 2-D convolution with the kernel's outer product,
    /// zeros beyond the border, at sizes smaller and larger than the kernel.
    #[test]
    fn smoothing_is_the_plain_convolution_with_zeros_outside() {
        let mut rng = Rng::new(9);
        for (h, w) in [(1, 1), (2, 3), (28, 28), (7, 40)] {
            for sigma in [0.5f32, 4.0, 16.0] {
                let mut taps = [0f32; MAX_TAPS];
                let k = gaussian(sigma, &mut taps);
                let r = k.len() as isize / 2;
                let f: Vec<f32> = (0..h * w).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
                let mut want = vec![0f64; h * w];
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        let mut acc = 0f64;
                        for dy in -r..=r {
                            for dx in -r..=r {
                                let (sy, sx) = (y + dy, x + dx);
                                if sy >= 0 && sx >= 0 && sy < h as isize && sx < w as isize {
                                    let kk =
                                        k[(dy + r) as usize] as f64 * k[(dx + r) as usize] as f64;
                                    acc += kk * f[sy as usize * w + sx as usize] as f64;
                                }
                            }
                        }
                        want[y as usize * w + x as usize] = acc;
                    }
                }
                let (mut got, mut tmp) = (f.clone(), vec![0f32; h * w]);
                smooth(&mut got, &mut tmp, h, w, k);
                for (i, (g, w_)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w_).abs() < 1e-5,
                        "{h}x{w} σ {sigma} at {i}: {g} against {w_}"
                    );
                }
            }
        }
    }

    /// Runs without the elastic field keep the bits they had before it existed (the
    /// field's noise is drawn after the affine part, and only when it is on): a digest
    /// of `Augment::default()` on `batch()` at seed 7, recorded from the code of
    /// 73a78f8, whose `cnn-best` epoch-1 cost (seed 777) matched that of 6b9cef1, the
    /// code before the field, to the last printed digit (0.505709).
    #[test]
    fn runs_without_the_field_keep_their_bits() {
        let mut x = batch();
        Augment::default().apply(&Runtime::new(2), 7, 12, 12, &mut x, &mut Scratch::default());
        let digest = x.data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
            (h ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!(digest, GOLDEN_DIGEST, "digest {digest:#x}");
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
