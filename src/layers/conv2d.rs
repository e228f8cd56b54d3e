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
//!
//! An image's columns are `c·kh·kw` times its input, and live only while that image
//! is worked on: each block keeps one image's worth ([`Scratch`]), and the weight
//! gradient builds them again from the input. Keeping a batch's columns for backward
//! would write and read back `(c·kh·kw)·(oh·ow)` floats per image through memory
//! instead of the cache (BENCHMARKS.md, "A convolution keeps one image's columns").

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
    /// (chunks·out, in·kh·kw): each chunk of images' part of `dW`
    partials: Matrix,
    /// (threads,): one per block of a parallel loop (at most one block per thread),
    /// so that no training step allocates
    scratch: Vec<Scratch>,
}

/// A block's buffers.
#[derive(Clone, Debug, Default)]
struct Scratch {
    /// (in·kh·kw, oh·ow): one image's columns, or their gradient
    cols: Vec<f32>,
    /// the bf16 products' packing buffers
    packs: Packs,
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
            partials: Matrix::default(),
            scratch: Vec::new(),
        }
    }

    /// The buffers of blocks `0 .. threads`, for a parallel loop's blocks to take one
    /// each (block `b0 / per`): one image's columns and, in bf16, packing room for
    /// all three products, so that a block first used by a later, smaller batch
    /// allocates nothing.
    fn scratch_for(&mut self, rt: &Runtime) -> Disjoint<Scratch> {
        let blocks = rt.threads.max(1);
        if self.scratch.len() < blocks {
            self.scratch.resize_with(blocks, Scratch::default);
        }
        let (out, patch, pix) = (
            self.out_channels,
            self.geometry.patch(),
            self.geometry.out_pixels(),
        );
        for s in &mut self.scratch {
            s.cols.resize(patch * pix, 0.0);
            if rt.precision == crate::runtime::Precision::Bf16 {
                s.packs.reserve(out, patch, pix); // W cols
                s.packs.reserve(out, pix, patch); // dy colsᵀ
                s.packs.reserve(patch, out, pix); // Wᵀ dy
            }
        }
        Disjoint::of(&mut self.scratch, 1)
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
        let ys = Disjoint::of(&mut y.data, 1);
        let (rt, per) = (pass.rt, images_per_block(pass.rt, batch));
        let scratch = self.scratch_for(rt);
        let (w, bias) = (&self.w, &self.b);
        fork_blocks(0, batch, per, &|b0, n| {
            // SAFETY: block b0 / per's buffers, this block's alone.
            let Scratch { cols, packs } = unsafe { &mut scratch.slice(b0 / per, 1)[0] };
            for b in b0..b0 + n {
                // SAFETY: image b's output row, this block's alone.
                let yb = unsafe { ys.slice(b * out * pix, out * pix) };
                im2col(&g, x.row(b), cols);
                for (plane, &bo) in yb.chunks_mut(pix).zip(bias) {
                    plane.fill(bo);
                }
                let cv = View {
                    data: cols,
                    rows: patch,
                    cols: pix,
                    rs: pix,
                    cs: 1,
                };
                gemm_here_in(rt.precision, View::of(w), cv, yb, true, packs);
            }
        });
    }

    /// `dW = Σ_b dy_b cols_bᵀ` (in fixed chunks of images, `cols_b = im2col(x_b)`
    /// built again), `db = Σ dy`; per image `dcols = Wᵀ dy_b`, `dx_b = col2im(dcols)`.
    ///
    /// # Shapes
    /// `dy: (batch, out·oh·ow)`, `dW: (out, c·kh·kw)`, `dcols_b` like `cols_b`,
    /// `dx: (batch, c·h·w)`.
    fn backward(
        &mut self,
        x: &Matrix,
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
        let scratch = self.scratch_for(rt);
        let per = chunks.div_ceil(rt.threads.max(1)).max(1);
        fork_blocks(0, chunks, per, &|c0, n| {
            // SAFETY: block c0 / per's buffers, this block's alone.
            let Scratch { cols, packs } = unsafe { &mut scratch.slice(c0 / per, 1)[0] };
            for c in c0..c0 + n {
                // SAFETY: chunk c's partial, this block's alone.
                let part = unsafe { parts.slice(c * out * patch, out * patch) };
                for b in c * CHUNK..((c + 1) * CHUNK).min(batch) {
                    im2col(&g, x.row(b), cols);
                    let cols_t = View {
                        data: cols,
                        rows: pix,
                        cols: patch,
                        rs: 1,
                        cs: pix,
                    };
                    let acc = b > c * CHUNK;
                    gemm_here_in(rt.precision, dy_b(b), cols_t, part, acc, packs);
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
        let dxs = Disjoint::of(&mut dx.data, 1);
        let scratch = self.scratch_for(rt);
        let (w, size, per) = (&self.w, g.in_size(), images_per_block(rt, batch));
        fork_blocks(0, batch, per, &|b0, n| {
            // SAFETY: block b0 / per's buffers, this block's alone.
            let Scratch { cols: dcols, packs } = unsafe { &mut scratch.slice(b0 / per, 1)[0] };
            for b in b0..b0 + n {
                // SAFETY: image b's input-gradient row, this block's alone.
                let dxb = unsafe { dxs.slice(b * size, size) };
                gemm_here_in(
                    rt.precision,
                    View::transposed(w),
                    dy_b(b),
                    dcols,
                    false,
                    packs,
                );
                col2im(&g, dcols, dxb);
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
