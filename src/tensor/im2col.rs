//! Lowering a convolution onto a matrix product (im2col) and its adjoint (col2im).
//!
//! An image `(c, h, w)` becomes the column matrix `cols: (c·kh·kw, oh·ow)`: column
//! `(oy, ox)` holds the `c x kh x kw` window the output pixel `(oy, ox)` sees, zeros
//! where it hangs over the padding. A convolution of the image is then one GEMM,
//! `y = W cols`, with PyTorch's `(out, c, kh, kw)` weight read as `(out, c·kh·kw)`,
//! and `y: (out, oh·ow)` is already the image layout of the output. Rows of `cols` are
//! filled by whole runs of input pixels (contiguous at stride 1).

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
        let k1 = (self.input + self.pad)
            .saturating_sub(start)
            .min(self.kernel);
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
    /// A pooling layer over this window, as layer summaries print it:
    /// `maxpool 2x2 (stride 2, pad 0) 28x28 -> 14x14`.
    pub fn describe_pool(&self, kind: &str) -> String {
        let (y, x) = (&self.y, &self.x);
        format!(
            "{kind} {}x{} (stride {}, pad {}) {}x{} -> {}x{}",
            y.kernel, x.kernel, y.stride, y.pad, y.input, x.input, y.output, x.output
        )
    }

    /// Input elements per image: `c·h·w`.
    pub fn in_size(&self) -> usize {
        self.channels * self.y.input * self.x.input
    }
    /// Output pixels per plane: `oh·ow`.
    pub fn out_pixels(&self) -> usize {
        self.y.output * self.x.output
    }
    /// The image the window slides over: `(c, h, w)`.
    pub fn input_shape(&self) -> crate::layers::Features {
        crate::layers::Features::Image {
            c: self.channels,
            h: self.y.input,
            w: self.x.input,
        }
    }
    /// The image of `channels` planes of its outputs: `(channels, oh, ow)`.
    pub fn output_shape(&self, channels: usize) -> crate::layers::Features {
        crate::layers::Features::Image {
            c: channels,
            h: self.y.output,
            w: self.x.output,
        }
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

impl Axis {
    /// The outputs `o0..o1` whose window position `k` falls inside the input; output
    /// `o` reads input `o·stride + k - pad`.
    #[inline]
    pub fn outputs_reading(&self, k: usize) -> (usize, usize) {
        // o·s + k >= pad  and  o·s + k - pad < input
        let o0 = self.pad.saturating_sub(k).div_ceil(self.stride);
        let o1 = match (self.input + self.pad).checked_sub(k + 1) {
            Some(last) => (last / self.stride + 1).min(self.output),
            None => 0,
        };
        (o0.min(o1), o1)
    }
}

/// One image's columns: `cols = im2col(img)`, row `(c, ky, kx)` holding, for every
/// output pixel `(oy, ox)`, the input pixel that window position sees (0 in padding).
///
/// # Shapes
/// `img: (c·h·w,)`, `cols: (c·kh·kw, oh·ow)`.
pub fn im2col(g: &Window, img: &[f32], cols: &mut [f32]) {
    let (h, w, pix, ow) = (g.y.input, g.x.input, g.out_pixels(), g.x.output);
    assert_eq!(
        (img.len(), cols.len()),
        (g.in_size(), g.patch() * pix),
        "im2col"
    );
    let mut k = 0;
    for c in 0..g.channels {
        let plane = &img[c * h * w..(c + 1) * h * w];
        for ky in 0..g.y.kernel {
            let (oy0, oy1) = g.y.outputs_reading(ky);
            for kx in 0..g.x.kernel {
                let (ox0, ox1) = g.x.outputs_reading(kx);
                let row = &mut cols[k * pix..(k + 1) * pix];
                k += 1;
                row.fill(0.0);
                for oy in oy0..oy1 {
                    let src = &plane[(oy * g.y.stride + ky - g.y.pad) * w..][..w];
                    let dst = &mut row[oy * ow..(oy + 1) * ow];
                    let first = ox0 * g.x.stride + kx - g.x.pad;
                    if g.x.stride == 1 {
                        dst[ox0..ox1].copy_from_slice(&src[first..first + (ox1 - ox0)]);
                    } else {
                        for (j, d) in dst[ox0..ox1].iter_mut().enumerate() {
                            *d = src[first + j * g.x.stride];
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: each column entry added back to the pixel it was copied
/// from (`img` overwritten).
///
/// # Shapes
/// `cols: (c·kh·kw, oh·ow)`, `img: (c·h·w,)`.
pub fn col2im(g: &Window, cols: &[f32], img: &mut [f32]) {
    let (h, w, pix, ow) = (g.y.input, g.x.input, g.out_pixels(), g.x.output);
    assert_eq!(
        (img.len(), cols.len()),
        (g.in_size(), g.patch() * pix),
        "col2im"
    );
    img.fill(0.0);
    let mut k = 0;
    for c in 0..g.channels {
        let plane = &mut img[c * h * w..(c + 1) * h * w];
        for ky in 0..g.y.kernel {
            let (oy0, oy1) = g.y.outputs_reading(ky);
            for kx in 0..g.x.kernel {
                let (ox0, ox1) = g.x.outputs_reading(kx);
                let row = &cols[k * pix..(k + 1) * pix];
                k += 1;
                for oy in oy0..oy1 {
                    let dst = &mut plane[(oy * g.y.stride + ky - g.y.pad) * w..][..w];
                    let src = &row[oy * ow..(oy + 1) * ow];
                    let first = ox0 * g.x.stride + kx - g.x.pad;
                    if g.x.stride == 1 {
                        let dst = &mut dst[first..first + (ox1 - ox0)];
                        dst.iter_mut()
                            .zip(&src[ox0..ox1])
                            .for_each(|(d, &v)| *d += v);
                    } else {
                        for (j, &v) in src[ox0..ox1].iter().enumerate() {
                            dst[first + j * g.x.stride] += v;
                        }
                    }
                }
            }
        }
    }
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
            for k in 0..a.kernel {
                let (o0, o1) = a.outputs_reading(k);
                let reading: Vec<usize> = (0..a.output).filter(|&o| a.at(o, k).is_some()).collect();
                assert_eq!(reading, (o0..o1).collect::<Vec<_>>(), "{a:?} position {k}");
            }
        }
    }

    /// `<im2col(x), p> = <x, col2im(p)>`: col2im is im2col's adjoint; and every
    /// column entry is the pixel its window position sees.
    #[test]
    fn col2im_is_the_adjoint_and_columns_hold_the_windows() {
        let mut rng = crate::rng::Rng::new(3);
        for g in [
            Window {
                channels: 2,
                y: Axis::padded(5, 3, 2, 1).unwrap(),
                x: Axis::padded(6, 2, 1, 0).unwrap(),
            },
            Window {
                channels: 1,
                y: Axis::same(7, 2, 2).unwrap(),
                x: Axis::padded(4, 3, 3, 2).unwrap(),
            },
        ] {
            let x: Vec<f32> = (0..g.in_size()).map(|_| rng.normal()).collect();
            let mut p = vec![0.0; g.patch() * g.out_pixels()];
            im2col(&g, &x, &mut p);
            let (kh, kw, pix) = (g.y.kernel, g.x.kernel, g.out_pixels());
            for (k, row) in p.chunks(pix).enumerate() {
                let (c, ky, kx) = (k / (kh * kw), k / kw % kh, k % kw);
                for (o, &v) in row.iter().enumerate() {
                    let (oy, ox) = (o / g.x.output, o % g.x.output);
                    let want = match (g.y.at(oy, ky), g.x.at(ox, kx)) {
                        (Some(iy), Some(ix)) => x[c * g.y.input * g.x.input + iy * g.x.input + ix],
                        _ => 0.0,
                    };
                    assert_eq!(v, want, "{g:?} k {k} o {o}");
                }
            }
            let q: Vec<f32> = (0..p.len()).map(|_| rng.normal()).collect();
            let mut dx = vec![0.0; g.in_size()];
            col2im(&g, &q, &mut dx);
            let a: f64 = p.iter().zip(&q).map(|(&a, &b)| a as f64 * b as f64).sum();
            let b: f64 = x.iter().zip(&dx).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "{a} {b}");
        }
    }
}
