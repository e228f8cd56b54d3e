//! Max pooling over each channel's plane. Padding is never the maximum: a window
//! hanging over the edge takes the maximum of its pixels inside (PyTorch's padded
//! `MaxPool2d`, TensorFlow's `SAME`). The gradient goes to the pixel that won (the
//! first, on ties).

use super::{Features, Layer, Param, Pass};
use crate::par::{Disjoint, fork_blocks};
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::tensor::im2col::{Window, images_per_block};

/// A max pool over images `(c, h, w)` to `(c, oh, ow)`.
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    pub geometry: Window,
    /// (batch, c·oh·ow): the index within its plane of each output's winning pixel
    winners: Vec<u32>,
}

impl MaxPool2d {
    /// A pool over `geometry`.
    pub fn new(geometry: Window) -> Self {
        MaxPool2d {
            geometry,
            winners: Vec::new(),
        }
    }
}

impl Layer for MaxPool2d {
    fn describe(&self) -> String {
        self.geometry.describe_pool("maxpool")
    }
    fn input(&self) -> Features {
        self.geometry.input_shape()
    }
    fn output(&self) -> Features {
        self.geometry.output_shape(self.geometry.channels)
    }

    /// `y[b, c, oy, ox] = max over the window of x[b, c, ·, ·]`.
    ///
    /// # Shapes
    /// `x: (batch, c·h·w)`, `y, winners: (batch, c·oh·ow)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let g = self.geometry;
        let (batch, out) = (x.rows, y.cols);
        self.winners.resize(batch * out, 0);
        let (ys, ws) = (
            Disjoint::of(&mut y.data, out),
            Disjoint::of(&mut self.winners, out),
        );
        let (hw, ohw) = (g.y.input * g.x.input, g.out_pixels());
        fork_blocks(0, batch, images_per_block(pass.rt, batch), &|b0, nb| {
            let (ys, ws) = (ys, ws);
            for b in b0..b0 + nb {
                // SAFETY: image b's rows of y and winners: disjoint between blocks.
                let (yb, wb) = unsafe { (ys.row(b), ws.row(b)) };
                for c in 0..g.channels {
                    let plane = &x.row(b)[c * hw..(c + 1) * hw];
                    for oy in 0..g.y.output {
                        let (ky0, ky1, iy0) = g.y.span(oy);
                        for ox in 0..g.x.output {
                            let (kx0, kx1, ix0) = g.x.span(ox);
                            // every window holds a pixel inside (`Axis` checks): start
                            // from the first and keep the first of equal maxima
                            let mut at = iy0 * g.x.input + ix0;
                            let mut best = plane[at];
                            for iy in iy0..iy0 + (ky1 - ky0) {
                                for ix in ix0..ix0 + (kx1 - kx0) {
                                    let i = iy * g.x.input + ix;
                                    let v = plane[i];
                                    // selects, not branches: which pixel wins is data
                                    let better = v > best;
                                    best = if better { v } else { best };
                                    at = if better { i } else { at };
                                }
                            }
                            let o = c * ohw + oy * g.x.output + ox;
                            yb[o] = best;
                            wb[o] = at as u32;
                        }
                    }
                }
            }
        });
    }

    /// `dx[b, c, winner] += dy[b, c, oy, ox]`, zero elsewhere.
    ///
    /// # Shapes
    /// `dy: (batch, c·oh·ow)`, `dx: (batch, c·h·w)`.
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let Some(dx) = dx else { return };
        let g = self.geometry;
        let (batch, out) = (dy.rows, dy.cols);
        let (hw, ohw) = (g.y.input * g.x.input, g.out_pixels());
        let dxs = Disjoint::rows_of(dx);
        let winners = &self.winners;
        fork_blocks(0, batch, images_per_block(rt, batch), &|b0, nb| {
            for b in b0..b0 + nb {
                // SAFETY: image b's row of dx: disjoint between blocks.
                let db = unsafe { dxs.row(b) };
                db.fill(0.0);
                for c in 0..g.channels {
                    for o in c * ohw..(c + 1) * ohw {
                        db[c * hw + winners[b * out + o] as usize] += dy.data[b * out + o];
                    }
                }
            }
        });
    }

    fn visit_params(&mut self, _f: &mut dyn FnMut(Param<'_>)) {}
}
