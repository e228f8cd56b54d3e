//! Lowering a convolution onto a matrix product (im2col) and its adjoint (col2im).
//!
//! A batch of images `x: (batch, c·h·w)` (each `(c, h, w)`) becomes the patch matrix
//! `p: (batch·oh·ow, c·kh·kw)`: row `(b, oy, ox)` holds the `c x kh x kw` window the
//! output pixel `(oy, ox)` of image `b` sees, zeros where it hangs over the padding.
//! A convolution is then one GEMM with the `(out, c·kh·kw)` weight (PyTorch's
//! `(out, c, kh, kw)` weight, row-major). Images are independent, so both passes run
//! one block of images per thread and the bits do not depend on the thread count.

use super::Matrix;
use crate::par::fork_blocks;
use crate::runtime::Runtime;

/// One spatial axis of a sliding window (a convolution's or a pool's): `output`
/// positions, the first starting `pad` before the input's first pixel, each `stride`
/// after the last, each `kernel` wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Padding before the first pixel (what lies past the input at the end is padding
    /// too).
    pub pad: usize,
    pub output: usize,
}

impl Axis {
    /// PyTorch's `padding = pad` on both sides: `output = (input + 2 pad - kernel) /
    /// stride + 1`. `None` when no window fits or a size is zero.
    pub fn padded(input: usize, kernel: usize, stride: usize, pad: usize) -> Option<Axis> {
        if input == 0 || kernel == 0 || stride == 0 || input + 2 * pad < kernel || pad >= kernel {
            return None;
        }
        Some(Axis {
            input,
            kernel,
            stride,
            pad,
            output: (input + 2 * pad - kernel) / stride + 1,
        })
    }

    /// TensorFlow's `SAME`: `output = ceil(input / stride)`, the padding this needs
    /// split with the smaller half before (so 7 pixels pooled 2x2 by 2 give 4, the
    /// last window half padding).
    pub fn same(input: usize, kernel: usize, stride: usize) -> Option<Axis> {
        if input == 0 || kernel == 0 || stride == 0 {
            return None;
        }
        let output = input.div_ceil(stride);
        let total = ((output - 1) * stride + kernel).saturating_sub(input);
        Some(Axis {
            input,
            kernel,
            stride,
            pad: total / 2,
            output,
        })
    }

    /// The input index of window position `k` of output `o`, if it is inside the input.
    #[inline]
    pub fn at(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.pad)
            .filter(|&i| i < self.input)
    }

    /// The window positions of output `o` that fall inside the input, `k0..k1`; the
    /// first of them reads input index `i0`.
    #[inline]
    pub fn span(&self, o: usize) -> (usize, usize, usize) {
        let start = o * self.stride; // the window's first position, in padded coordinates
        let k0 = self.pad.saturating_sub(start);
        let k1 = (self.input + self.pad).saturating_sub(start).min(self.kernel);
        (k0, k1.max(k0), start + k0 - self.pad)
    }
}

/// The geometry of a 2-D sliding window over `channels` planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub channels: usize,
    pub y: Axis,
    pub x: Axis,
}

impl Window {
    /// Input elements per image: `c·h·w`.
    pub fn in_size(&self) -> usize {
        self.channels * self.y.input * self.x.input
    }
    /// Output pixels per plane: `oh·ow`.
    pub fn out_pixels(&self) -> usize {
        self.y.output * self.x.output
    }
    /// Patch length: `c·kh·kw`.
    pub fn patch(&self) -> usize {
        self.channels * self.y.kernel * self.x.kernel
    }
}

/// Images per block when `batch` images are shared among `rt`'s threads.
pub fn images_per_block(rt: &Runtime, batch: usize) -> usize {
    batch.div_ceil(rt.threads.max(1)).max(1)
}

/// A raw pointer shared by blocks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: blocks write disjoint rows (whole images) and the fork-join outlives them.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// `p = im2col(x)`.
///
/// # Shapes
/// `x: (batch, g.in_size())`, `p` made `(batch·oh·ow, g.patch())`.
pub fn im2col(rt: &Runtime, g: &Window, x: &Matrix, p: &mut Matrix) {
    let (batch, pix, patch) = (x.rows, g.out_pixels(), g.patch());
    assert_eq!(x.cols, g.in_size(), "im2col: input width");
    p.reshape_for(batch * pix, patch);
    let out = Shared(p.data.as_mut_ptr());
    let (h, w) = (g.y.input, g.x.input);
    fork_blocks(0, batch, images_per_block(rt, batch), &|b0, nb| {
        let out = out;
        for b in b0..b0 + nb {
            // SAFETY: image b's rows of p, disjoint between blocks, inside p.
            let rows =
                unsafe { std::slice::from_raw_parts_mut(out.0.add(b * pix * patch), pix * patch) };
            let img = x.row(b);
            for oy in 0..g.y.output {
                let (ky0, ky1, iy0) = g.y.span(oy);
                for ox in 0..g.x.output {
                    let row = &mut rows[(oy * g.x.output + ox) * patch..][..patch];
                    let (kx0, kx1, ix0) = g.x.span(ox);
                    let inside = ky1 - ky0 == g.y.kernel && kx1 - kx0 == g.x.kernel;
                    if !inside {
                        row.fill(0.0);
                    }
                    let (kh, kw, n) = (g.y.kernel, g.x.kernel, kx1 - kx0);
                    for c in 0..g.channels {
                        for ky in ky0..ky1 {
                            let src = &img[c * h * w + (iy0 + ky - ky0) * w + ix0..][..n];
                            let dst = &mut row[(c * kh + ky) * kw + kx0..][..n];
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d = s;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// `dx = col2im(dp)`: the adjoint of [`im2col`], each patch entry added back to the
/// pixel it was copied from (overwrites `dx`).
///
/// # Shapes
/// `dp: (batch·oh·ow, g.patch())`, `dx: (batch, g.in_size())`.
pub fn col2im(rt: &Runtime, g: &Window, dp: &Matrix, dx: &mut Matrix) {
    let (pix, patch) = (g.out_pixels(), g.patch());
    let batch = dx.rows;
    assert_eq!(dx.cols, g.in_size(), "col2im: input width");
    assert_eq!((dp.rows, dp.cols), (batch * pix, patch), "col2im: patches");
    let out = Shared(dx.data.as_mut_ptr());
    let (h, w, size) = (g.y.input, g.x.input, g.in_size());
    fork_blocks(0, batch, images_per_block(rt, batch), &|b0, nb| {
        let out = out;
        for b in b0..b0 + nb {
            // SAFETY: image b's row of dx, disjoint between blocks, inside dx.
            let img = unsafe { std::slice::from_raw_parts_mut(out.0.add(b * size), size) };
            img.fill(0.0);
            let rows = &dp.data[b * pix * patch..(b + 1) * pix * patch];
            for oy in 0..g.y.output {
                let (ky0, ky1, iy0) = g.y.span(oy);
                for ox in 0..g.x.output {
                    let row = &rows[(oy * g.x.output + ox) * patch..][..patch];
                    let (kx0, kx1, ix0) = g.x.span(ox);
                    let (kh, kw, n) = (g.y.kernel, g.x.kernel, kx1 - kx0);
                    for c in 0..g.channels {
                        for ky in ky0..ky1 {
                            let dst = &mut img[c * h * w + (iy0 + ky - ky0) * w + ix0..][..n];
                            let src = &row[(c * kh + ky) * kw + kx0..][..n];
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d += s;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Moves each image's `(pixels, channels)` block to `(channels, pixels)`, adding
/// `bias[channel]` when given: the product's `(batch·pixels, channels)` output to the
/// `(batch, c·h·w)` image layout.
///
/// # Shapes
/// `z: (batch·pixels, channels)`, `y: (batch, channels·pixels)`, `bias: (channels,)`.
pub fn pixels_to_planes(rt: &Runtime, z: &Matrix, bias: Option<&[f32]>, y: &mut Matrix) {
    let (batch, ch) = (y.rows, z.cols);
    let pix = y.cols / ch.max(1);
    assert_eq!((z.rows, y.cols), (batch * pix, ch * pix), "pixels_to_planes");
    let out = Shared(y.data.as_mut_ptr());
    fork_blocks(0, batch, images_per_block(rt, batch), &|b0, nb| {
        let out = out;
        for b in b0..b0 + nb {
            // SAFETY: image b's row of y, disjoint between blocks, inside y.
            let img = unsafe { std::slice::from_raw_parts_mut(out.0.add(b * ch * pix), ch * pix) };
            let src = &z.data[b * pix * ch..(b + 1) * pix * ch];
            for c in 0..ch {
                let add = bias.map_or(0.0, |bias| bias[c]);
                for (s, v) in img[c * pix..(c + 1) * pix].iter_mut().enumerate() {
                    *v = src[s * ch + c] + add;
                }
            }
        }
    });
}

/// The inverse move: each image's `(channels, pixels)` to `(pixels, channels)`.
///
/// # Shapes
/// `y: (batch, channels·pixels)`, `z` made `(batch·pixels, channels)`.
pub fn planes_to_pixels(rt: &Runtime, y: &Matrix, channels: usize, z: &mut Matrix) {
    let batch = y.rows;
    let pix = y.cols / channels.max(1);
    z.reshape_for(batch * pix, channels);
    let out = Shared(z.data.as_mut_ptr());
    fork_blocks(0, batch, images_per_block(rt, batch), &|b0, nb| {
        let out = out;
        for b in b0..b0 + nb {
            // SAFETY: image b's rows of z, disjoint between blocks, inside z.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(out.0.add(b * pix * channels), pix * channels) };
            let img = y.row(b);
            for c in 0..channels {
                for (s, &v) in img[c * pix..(c + 1) * pix].iter().enumerate() {
                    dst[s * channels + c] = v;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        let a = Axis::same(7, 2, 2).unwrap();
        assert_eq!((a.output, a.pad), (4, 0));
        assert_eq!(a.at(3, 1), None); // the last window's second pixel is padding
        let a = Axis::padded(7, 2, 2, 1).unwrap(); // PyTorch's padded pool
        assert_eq!((a.output, a.pad), (4, 1));
        assert_eq!(a.at(0, 0), None);
        assert_eq!(Axis::padded(28, 3, 1, 1).unwrap().output, 28);
        assert_eq!(Axis::padded(28, 5, 2, 0).unwrap().output, 12);
        assert!(Axis::padded(2, 5, 1, 1).is_none());
        assert!(Axis::padded(5, 3, 1, 3).is_none());
        assert_eq!(Axis::same(28, 3, 1).unwrap().pad, 1);
        // spans agree with `at` at every output of awkward axes
        for a in [
            Axis::padded(7, 3, 2, 2).unwrap(),
            Axis::padded(5, 4, 1, 1).unwrap(),
            Axis::same(7, 2, 2).unwrap(),
            Axis::same(6, 5, 3).unwrap(),
        ] {
            for o in 0..a.output {
                let (k0, k1, i0) = a.span(o);
                let inside: Vec<usize> = (0..a.kernel).filter(|&k| a.at(o, k).is_some()).collect();
                assert_eq!(inside, (k0..k1).collect::<Vec<_>>(), "{a:?} at {o}");
                assert_eq!(a.at(o, k0), Some(i0).filter(|_| k1 > k0));
            }
        }
    }

    /// `<im2col(x), p> = <x, col2im(p)>`: col2im is im2col's adjoint.
    #[test]
    fn col2im_is_the_adjoint() {
        let mut rng = crate::rng::Rng::new(3);
        let g = Window {
            channels: 2,
            y: Axis::padded(5, 3, 2, 1).unwrap(),
            x: Axis::padded(6, 2, 1, 0).unwrap(),
        };
        let x = Matrix::from_vec(3, g.in_size(), (0..3 * g.in_size()).map(|_| rng.normal()).collect());
        let rt = Runtime::new(3);
        let mut p = Matrix::default();
        im2col(&rt, &g, &x, &mut p);
        let q = Matrix::from_vec(p.rows, p.cols, (0..p.data.len()).map(|_| rng.normal()).collect());
        let mut dx = Matrix::zeros(3, g.in_size());
        col2im(&rt, &g, &q, &mut dx);
        let a: f64 = p.data.iter().zip(&q.data).map(|(&a, &b)| a as f64 * b as f64).sum();
        let b: f64 = x.data.iter().zip(&dx.data).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "{a} {b}");
    }

    #[test]
    fn planes_round_trip() {
        let rt = Runtime::new(2);
        let y = Matrix::from_vec(2, 6, (0..12).map(|v| v as f32).collect());
        let mut z = Matrix::default();
        planes_to_pixels(&rt, &y, 3, &mut z);
        assert_eq!(z.data[..6], [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        let mut back = Matrix::zeros(2, 6);
        pixels_to_planes(&rt, &z, Some(&[0.0; 3]), &mut back);
        assert_eq!(back, y);
    }
}
