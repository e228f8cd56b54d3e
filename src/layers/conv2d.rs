//! 2-D convolution (cross-correlation, as every framework computes it), lowered onto
//! the GEMM crate by im2col (`tensor::im2col`):
//!
//! `P = im2col(x)`, `Z = P Wᵀ`, `y[b, o, pixel] = Z[(b, pixel), o] + bias[o]`.
//!
//! The weight is PyTorch's `Conv2d.weight` `(out, in, kh, kw)`, stored row-major as
//! `(out, in·kh·kw)`, so a saved model loads there unchanged.

use super::{Features, Layer, Param, Pass, Shape};
use crate::init::Init;
use crate::par::join_products;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::tensor::im2col::{Window, col2im, im2col, pixels_to_planes, planes_to_pixels};
use crate::tensor::{matmul_nn, matmul_nt, matmul_tn};

/// A convolution over images `(c, h, w)` to `(out, oh, ow)`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub geometry: Window,
    pub out_channels: usize,
    /// (out, in·kh·kw)
    pub w: Matrix,
    /// (out,)
    pub b: Vec<f32>,
    /// (out, in·kh·kw)
    pub dw: Matrix,
    /// (out,)
    pub db: Vec<f32>,
    /// (batch·oh·ow, in·kh·kw): the last input's patches (kept for `dW`)
    patches: Matrix,
    /// (batch·oh·ow, out): the product, before it is moved to image layout
    z: Matrix,
    /// (batch·oh·ow, out): `dy` in the product's layout
    dz: Matrix,
    /// (batch·oh·ow, in·kh·kw): gradient of the patches
    dpatches: Matrix,
}

impl Conv2d {
    /// A convolution with `out_channels` filters over `geometry`; weights then biases
    /// drawn from `rng` (fan-in `in·kh·kw`, fan-out `out·kh·kw`, as PyTorch counts them).
    pub fn new(
        geometry: Window,
        out_channels: usize,
        init: Init,
        bias_init: Init,
        rng: &mut Rng,
    ) -> Self {
        let patch = geometry.patch();
        let (fan_in, fan_out) = (patch, out_channels * geometry.y.kernel * geometry.x.kernel);
        let mut w = Matrix::zeros(out_channels, patch);
        init.fill(&mut w.data, fan_in, fan_out, rng);
        let mut b = vec![0.0; out_channels];
        bias_init.fill(&mut b, fan_in, fan_out, rng);
        Conv2d {
            geometry,
            out_channels,
            w,
            b,
            dw: Matrix::zeros(out_channels, patch),
            db: vec![0.0; out_channels],
            patches: Matrix::default(),
            z: Matrix::default(),
            dz: Matrix::default(),
            dpatches: Matrix::default(),
        }
    }
}

impl Layer for Conv2d {
    fn describe(&self) -> String {
        let g = &self.geometry;
        format!(
            "conv {}x{} {} -> {} (stride {}, pad {})",
            g.y.kernel, g.x.kernel, g.channels, self.out_channels, g.y.stride, g.y.pad
        )
    }
    fn input(&self) -> Features {
        let g = &self.geometry;
        Features::Image {
            c: g.channels,
            h: g.y.input,
            w: g.x.input,
        }
    }
    fn output(&self) -> Features {
        let g = &self.geometry;
        Features::Image {
            c: self.out_channels,
            h: g.y.output,
            w: g.x.output,
        }
    }

    /// `P = im2col(x)`, `Z = P Wᵀ`, `y = planes(Z) + b`.
    ///
    /// # Shapes
    /// `x: (batch, c·h·w)`, `P: (batch·oh·ow, c·kh·kw)`, `W: (out, c·kh·kw)`,
    /// `Z: (batch·oh·ow, out)`, `y: (batch, out·oh·ow)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let rt = pass.rt;
        im2col(rt, &self.geometry, x, &mut self.patches);
        self.z.reshape_for(self.patches.rows, self.out_channels);
        matmul_nt(rt, &self.patches, &self.w, &mut self.z, false);
        pixels_to_planes(rt, &self.z, Some(&self.b), y);
    }

    /// `dZ = pixels(dy)`, `dW = dZᵀ P`, `db = Σ dZ`, `dP = dZ W`, `dx = col2im(dP)`.
    ///
    /// # Shapes
    /// `dy: (batch, out·oh·ow)`, `dZ: (batch·oh·ow, out)`, `dW: (out, c·kh·kw)`,
    /// `dP` like `P`, `dx: (batch, c·h·w)`.
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let Conv2d {
            geometry,
            out_channels,
            w,
            dw,
            db,
            patches,
            dz,
            dpatches,
            ..
        } = self;
        planes_to_pixels(rt, dy, *out_channels, dz);
        let dz = &*dz;
        let mut weight_grads = |rt: &Runtime| {
            matmul_tn(rt, dz, patches, dw, false);
            super::column_sums(dz, db);
        };
        match dx {
            Some(dx) => {
                dpatches.reshape_for(patches.rows, patches.cols);
                join_products(rt, weight_grads, |rt| matmul_nn(rt, dz, w, dpatches, false));
                col2im(rt, geometry, dpatches, dx);
            }
            None => weight_grads(rt),
        }
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        let g = self.geometry;
        f(Param {
            name: "weight",
            value: &mut self.w.data,
            grad: &self.dw.data,
            shape: Shape {
                dims: [self.out_channels, g.channels, g.y.kernel, g.x.kernel],
                rank: 4,
            },
            decay: true,
            transposed: false,
        });
        f(Param {
            name: "bias",
            shape: Shape::vector(self.b.len()),
            value: &mut self.b,
            grad: &self.db,
            decay: false,
            transposed: false,
        });
    }
}
