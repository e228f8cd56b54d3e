//! Average pooling over each channel's plane. A window hanging over the edge averages
//! its pixels inside only (TensorFlow's `SAME`, PyTorch's `count_include_pad=False`).

use super::{Features, Layer, Param, Pass};
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::tensor::im2col::Window;

/// An average pool over images `(c, h, w)` to `(c, oh, ow)`.
#[derive(Clone, Debug)]
pub struct AvgPool2d {
    pub geometry: Window,
}

impl AvgPool2d {
    /// A pool over `geometry`.
    pub fn new(geometry: Window) -> Self {
        AvgPool2d { geometry }
    }

    /// Calls `f(input pixel, output pixel, 1 / pixels in the window)` for every pair
    /// of one plane, in a fixed order.
    fn each_pair(&self, mut f: impl FnMut(usize, usize, f32)) {
        let g = &self.geometry;
        for oy in 0..g.y.output {
            for ox in 0..g.x.output {
                let inside = |k: usize, a: &crate::tensor::im2col::Axis, o| {
                    (0..k).filter(|&k| a.at(o, k).is_some()).count()
                };
                let n = inside(g.y.kernel, &g.y, oy) * inside(g.x.kernel, &g.x, ox);
                let scale = 1.0 / n as f32;
                for ky in 0..g.y.kernel {
                    let Some(iy) = g.y.at(oy, ky) else { continue };
                    for kx in 0..g.x.kernel {
                        let Some(ix) = g.x.at(ox, kx) else { continue };
                        f(iy * g.x.input + ix, oy * g.x.output + ox, scale);
                    }
                }
            }
        }
    }
}

impl Layer for AvgPool2d {
    fn describe(&self) -> String {
        self.geometry.describe_pool("avgpool")
    }
    fn input(&self) -> Features {
        self.geometry.input_shape()
    }
    fn output(&self) -> Features {
        self.geometry.output_shape(self.geometry.channels)
    }

    /// `y[b, c, o] = mean of x[b, c, ·] over o's window (inside pixels only)`.
    ///
    /// # Shapes
    /// `x: (batch, c·h·w)`, `y: (batch, c·oh·ow)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, _pass: &mut Pass<'_>) {
        let g = self.geometry;
        let (hw, ohw) = (g.y.input * g.x.input, g.out_pixels());
        y.data.fill(0.0);
        for b in 0..x.rows {
            for c in 0..g.channels {
                let plane = &x.row(b)[c * hw..(c + 1) * hw];
                let out = &mut y.data[b * y.cols + c * ohw..][..ohw];
                self.each_pair(|i, o, s| out[o] += s * plane[i]);
            }
        }
    }

    /// `dx[b, c, i] = Σ over windows o holding i of dy[b, c, o] / |o|`.
    ///
    /// # Shapes
    /// `dy: (batch, c·oh·ow)`, `dx: (batch, c·h·w)`.
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        _rt: &Runtime,
    ) {
        let Some(dx) = dx else { return };
        let g = self.geometry;
        let (hw, ohw) = (g.y.input * g.x.input, g.out_pixels());
        dx.data.fill(0.0);
        for b in 0..dy.rows {
            for c in 0..g.channels {
                let grad = &dy.row(b)[c * ohw..(c + 1) * ohw];
                let plane = &mut dx.data[b * dx.cols + c * hw..][..hw];
                self.each_pair(|i, o, s| plane[i] += s * grad[o]);
            }
        }
    }

    fn visit_params(&mut self, _f: &mut dyn FnMut(Param<'_>)) {}
}
