//! 2-D convolution (cross-correlation, as every framework computes it), lowered onto
//! the GEMM crate by im2col (`tensor::im2col`), image by image:
//!
//! `cols_b = im2col(x_b)`, `y_b = W cols_b + bias`,
//!
//! with `y_b: (out, oh·ow)` already in the image layout. The weight is PyTorch's
//! `Conv2d.weight` `(out, in, kh, kw)`, stored row-major as `(out, in·kh·kw)`, so a
//! saved model loads there unchanged. Images are independent: forward and the input
//! gradient run one block of images per thread; the weight gradient, a sum over
//! images, is summed in fixed chunks of images, the chunks' sums then added in order,
//! so the bits do not depend on the thread count. With `--precision bf16` the three
//! products run on the bf16 kernel (`tensor::bf16`), each block packing its operands
//! into buffers of its own.

use super::{Features, Layer, Param, Pass, Shape};
use crate::init::Init;
use crate::par::{Disjoint, fork_blocks};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::bf16::Packs;
use crate::tensor::im2col::{Window, col2im, im2col, images_per_block};
use crate::tensor::{Matrix, View, gemm_here_in};

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
    /// (batch·in·kh·kw, oh·ow): the last input's columns, image after image (kept for
    /// `dW`)
    cols: Matrix,
    /// like `cols`: their gradient
    dcols: Matrix,
    /// (chunks·out, in·kh·kw): each chunk of images' part of `dW`
    partials: Matrix,
    /// The bf16 products' packing buffers, one per block of a parallel loop (at most
    /// one block per thread), so that no training step allocates
    packs: Vec<Packs>,
}

/// Images per chunk of the weight gradient's sum: fixed, so that the sum's order, and
/// so its bits, do not depend on the thread count.
const CHUNK: usize = 10;

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
            cols: Matrix::default(),
            dcols: Matrix::default(),
            partials: Matrix::default(),
            packs: Vec::new(),
        }
    }

    /// The packing buffers of blocks `0 .. threads`, for a parallel loop's blocks
    /// to take one each (block `b0 / per`). In bf16 each has room for all three
    /// products, so that a block first used by a later, smaller batch allocates
    /// nothing.
    fn packs_for(&mut self, rt: &Runtime) -> Disjoint<Packs> {
        let blocks = rt.threads.max(1);
        if self.packs.len() < blocks {
            self.packs.resize_with(blocks, Packs::default);
        }
        if rt.precision == crate::runtime::Precision::Bf16 {
            let (out, patch, pix) = (
                self.out_channels,
                self.geometry.patch(),
                self.geometry.out_pixels(),
            );
            for p in &mut self.packs {
                p.reserve(out, patch, pix); // W cols
                p.reserve(out, pix, patch); // dy colsᵀ
                p.reserve(patch, out, pix); // Wᵀ dy
            }
        }
        Disjoint::of(&mut self.packs, 1)
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
        self.geometry.input_shape()
    }
    fn output(&self) -> Features {
        self.geometry.output_shape(self.out_channels)
    }

    /// Per image: `cols = im2col(x_b)`, `y_b = W cols + b`.
    ///
    /// # Shapes
    /// `x: (batch, c·h·w)`, `cols_b: (c·kh·kw, oh·ow)`, `W: (out, c·kh·kw)`,
    /// `y: (batch, out·oh·ow)`, each row `y_b: (out, oh·ow)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let g = self.geometry;
        let (batch, patch, pix, out) = (x.rows, g.patch(), g.out_pixels(), self.out_channels);
        self.cols.reshape_for(batch * patch, pix);
        let (cols, ys) = (
            Disjoint::of(&mut self.cols.data, 1),
            Disjoint::of(&mut y.data, 1),
        );
        let (rt, per) = (pass.rt, images_per_block(pass.rt, batch));
        let packs = self.packs_for(rt);
        let (w, bias) = (&self.w, &self.b);
        fork_blocks(0, batch, per, &|b0, n| {
            // SAFETY: block b0 / per's buffers, this block's alone.
            let pack = unsafe { &mut packs.slice(b0 / per, 1)[0] };
            for b in b0..b0 + n {
                // SAFETY: image b's columns and output row, this block's alone.
                let (c, yb) = unsafe {
                    (
                        cols.slice(b * patch * pix, patch * pix),
                        ys.slice(b * out * pix, out * pix),
                    )
                };
                im2col(&g, x.row(b), c);
                for (plane, &bo) in yb.chunks_mut(pix).zip(bias) {
                    plane.fill(bo);
                }
                let cv = View {
                    data: c,
                    rows: patch,
                    cols: pix,
                    rs: pix,
                    cs: 1,
                };
                gemm_here_in(rt.precision, View::of(w), cv, yb, true, pack);
            }
        });
    }

    /// `dW = Σ_b dy_b cols_bᵀ` (in fixed chunks of images), `db = Σ dy`; per image
    /// `dcols = Wᵀ dy_b`, `dx_b = col2im(dcols)`.
    ///
    /// # Shapes
    /// `dy: (batch, out·oh·ow)`, `dW: (out, c·kh·kw)`, `dcols_b` like `cols_b`,
    /// `dx: (batch, c·h·w)`.
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let g = self.geometry;
        let (batch, patch, pix, out) = (dy.rows, g.patch(), g.out_pixels(), self.out_channels);
        let dy_b = |b: usize| View {
            data: dy.row(b),
            rows: out,
            cols: pix,
            rs: pix,
            cs: 1,
        };
        // dW: each chunk of images sums its products into its own partial, the
        // partials are added in chunk order; chunks are fixed, threads take them
        let chunks = batch.div_ceil(CHUNK);
        self.partials.reshape_for(chunks * out, patch);
        let parts = Disjoint::of(&mut self.partials.data, 1);
        let packs = self.packs_for(rt);
        let cols = &self.cols;
        let per = chunks.div_ceil(rt.threads.max(1)).max(1);
        fork_blocks(0, chunks, per, &|c0, n| {
            // SAFETY: block c0 / per's buffers, this block's alone.
            let pack = unsafe { &mut packs.slice(c0 / per, 1)[0] };
            for c in c0..c0 + n {
                // SAFETY: chunk c's partial, this block's alone.
                let part = unsafe { parts.slice(c * out * patch, out * patch) };
                for b in c * CHUNK..((c + 1) * CHUNK).min(batch) {
                    let cols_t = View {
                        data: &cols.data[b * patch * pix..(b + 1) * patch * pix],
                        rows: pix,
                        cols: patch,
                        rs: 1,
                        cs: pix,
                    };
                    let acc = b > c * CHUNK;
                    gemm_here_in(rt.precision, dy_b(b), cols_t, part, acc, pack);
                }
            }
        });
        self.dw
            .data
            .copy_from_slice(&self.partials.data[..out * patch]);
        for part in self.partials.data.chunks(out * patch).skip(1) {
            self.dw
                .data
                .iter_mut()
                .zip(part)
                .for_each(|(d, &p)| *d += p);
        }
        self.db.fill(0.0);
        for b in 0..batch {
            for (d, plane) in self.db.iter_mut().zip(dy.row(b).chunks(pix)) {
                *d += plane.iter().sum::<f32>();
            }
        }
        let Some(dx) = dx else { return };
        self.dcols.reshape_for(batch * patch, pix);
        let (dcols, dxs) = (
            Disjoint::of(&mut self.dcols.data, 1),
            Disjoint::of(&mut dx.data, 1),
        );
        let packs = self.packs_for(rt);
        let (w, size, per) = (&self.w, g.in_size(), images_per_block(rt, batch));
        fork_blocks(0, batch, per, &|b0, n| {
            // SAFETY: block b0 / per's buffers, this block's alone.
            let pack = unsafe { &mut packs.slice(b0 / per, 1)[0] };
            for b in b0..b0 + n {
                // SAFETY: image b's column gradient and input-gradient row, this
                // block's alone.
                let (dc, dxb) = unsafe {
                    (
                        dcols.slice(b * patch * pix, patch * pix),
                        dxs.slice(b * size, size),
                    )
                };
                gemm_here_in(rt.precision, View::transposed(w), dy_b(b), dc, false, pack);
                col2im(&g, dc, dxb);
            }
        });
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
