//! Dense (fully connected, affine) layer: `y = x W + b`, with `W` stored `(in, out)`.
//!
//! The stored matrix is the transpose of PyTorch's `nn.Linear` weight `(out, in)`;
//! the layer shows it to the outside (model files, reports, RBM loading) in PyTorch's
//! shape and order (`Param::transposed`), so saved models load there unchanged. It is
//! stored this way so that a mostly-zero input, such as an MNIST image, can skip its
//! zeros: each nonzero `x[r, k]` then adds a whole row `W[k, :]` (see `tensor::sparse`).

use super::{Features, Layer, Mode, Param, Pass, broadcast_rows, column_sums, visit_affine};
use crate::init::Init;
use crate::par::join_products;
use crate::rng::Rng;
use crate::runtime::{Precision, Runtime};
use crate::tensor::bf16::Packs;
use crate::tensor::sparse::{MAX_DENSITY, Nonzeros, sparse_affine, sparse_matmul_tn};
use crate::tensor::{Matrix, View, gemm_in, transpose};

/// An affine layer.
#[derive(Clone, Debug)]
pub struct Dense {
    /// (in, out)
    pub w: Matrix,
    /// (out,)
    pub b: Vec<f32>,
    /// (in, out)
    pub dw: Matrix,
    /// (out,)
    pub db: Vec<f32>,
    /// The last input's nonzero entries, when it had few enough (`sparse`).
    entries: Nonzeros,
    /// Whether the last forward used the sparse products (and `entries` hold its input).
    sparse: bool,
    /// Packing buffers for the forward, weight-gradient and input-gradient products
    /// in bf16, kept so that a training step allocates nothing.
    packs: [Packs; 3],
}

impl Dense {
    /// A layer `in_dim -> out_dim` with weights and biases drawn from their initialisers
    /// (weights first, in PyTorch's `(out, in)` order, then biases, from the same `rng`).
    pub fn new(in_dim: usize, out_dim: usize, init: Init, bias_init: Init, rng: &mut Rng) -> Self {
        let mut w = Matrix::zeros(out_dim, in_dim);
        init.fill(&mut w.data, in_dim, out_dim, rng);
        let mut b = vec![0.0; out_dim];
        bias_init.fill(&mut b, in_dim, out_dim, rng);
        Dense {
            w: transpose(&w),
            b,
            dw: Matrix::zeros(in_dim, out_dim),
            db: vec![0.0; out_dim],
            entries: Nonzeros::default(),
            sparse: false,
            packs: Default::default(),
        }
    }

    /// Whether the last forward pass took the sparse products (its input had at most
    /// `MAX_DENSITY` nonzeros).
    pub fn last_input_was_sparse(&self) -> bool {
        self.sparse
    }
}

impl Layer for Dense {
    fn describe(&self) -> String {
        format!("dense {} -> {}", self.w.rows, self.w.cols)
    }
    fn input(&self) -> Features {
        Features::Vector(self.w.rows)
    }
    fn output(&self) -> Features {
        Features::Vector(self.w.cols)
    }

    /// `y = x W + b`; from `x`'s nonzero entries alone when the runtime allows it and
    /// at most `MAX_DENSITY` of them are nonzero (in training they are also listed by
    /// column, for the weight gradient).
    ///
    /// # Shapes
    /// `x: (batch, in)`, `w: (in, out)`, `y: (batch, out)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let rt = pass.rt;
        self.sparse = rt.sparse
            && match pass.mode {
                Mode::Train => self.entries.gather(rt, x, MAX_DENSITY),
                Mode::Eval => self.entries.gather_rows(rt, x, MAX_DENSITY),
            };
        if rt.precision == Precision::Bf16 && pass.mode == Mode::Train {
            // room for the dense products' packs from the first step, whichever products
            // it takes, so that a later batch that takes the dense ones allocates nothing
            let (n, d, o) = (x.rows, self.w.rows, self.w.cols);
            self.packs[0].reserve(n, d, o); // x W
            self.packs[1].reserve(d, n, o); // xᵀ dy
            self.packs[2].reserve(n, o, d); // dy Wᵀ
        }
        if self.sparse {
            sparse_affine(rt, &self.entries, &self.w, &self.b, y); // y = b + x W
        } else {
            broadcast_rows(y, &self.b); // y = b
            let pack = Some(&mut self.packs[0]);
            gemm_in(rt, View::of(x), View::of(&self.w), y, true, pack); // y += x W
        }
    }

    /// `dW = xᵀ dy`, `db = Σ_batch dy`, `dx = dy Wᵀ`. When both products are dense
    /// (the same FLOP) they run at the same time, each on half the threads: one
    /// fork-join instead of two. A sparse `dW` is much the cheaper, so then each product
    /// uses every thread in turn.
    ///
    /// # Shapes
    /// `dy: (batch, out)`, `dw: (in, out)`, `db: (out,)`, `dx: (batch, in)`.
    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let Dense {
            w,
            dw,
            db,
            entries,
            sparse,
            packs: [_, pack_dw, pack_dx],
            ..
        } = self;
        let mut weight_grads = |rt: &Runtime| {
            if *sparse {
                debug_assert_eq!((entries.rows, entries.cols), x.shape());
                if !entries.has_columns() {
                    // a backward pass after an evaluation-mode forward (not training):
                    // list the same entries by column too
                    let listed = entries.gather(rt, x, MAX_DENSITY);
                    debug_assert!(listed, "the same input passed the same limit");
                }
                sparse_matmul_tn(rt, entries, dy, dw);
            } else {
                gemm_in(
                    rt,
                    View::transposed(x),
                    View::of(dy),
                    dw,
                    false,
                    Some(pack_dw),
                );
            }
            column_sums(dy, db);
        };
        let mut input_grad = |rt: &Runtime, dx: &mut Matrix| {
            gemm_in(
                rt,
                View::of(dy),
                View::transposed(w),
                dx,
                false,
                Some(pack_dx),
            )
        };
        match dx {
            Some(dx) if !*sparse => join_products(rt, weight_grads, |rt| input_grad(rt, dx)),
            Some(dx) => {
                weight_grads(rt);
                input_grad(rt, dx);
            }
            None => weight_grads(rt),
        }
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        visit_affine(&mut self.w, &self.dw, &mut self.b, &self.db, true, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outside sees PyTorch's `(out, in)` weight: element `(o, i)` of the row-major
    /// view is the stored `w[i, o]`; setting the view sets the storage.
    #[test]
    fn weight_is_seen_in_pytorch_order() {
        let mut rng = Rng::new(4);
        let mut l = Dense::new(3, 5, Init::Normal(1.0), Init::Zeros, &mut rng);
        let stored = l.w.clone();
        let mut seen = None;
        l.visit_params(&mut |p| {
            if p.name == "weight" {
                assert_eq!(p.shape.as_slice(), [5, 3]);
                seen = Some(p.to_row_major());
            }
        });
        let seen = seen.unwrap();
        for o in 0..5 {
            for i in 0..3 {
                assert_eq!(seen[o * 3 + i], stored.data[i * 5 + o]);
            }
        }
        let fresh: Vec<f32> = (0..15).map(|v| v as f32).collect();
        l.visit_params(&mut |mut p| {
            if p.name == "weight" {
                p.set_row_major(&fresh);
                assert_eq!(p.to_row_major(), fresh);
            }
        });
        assert_eq!(l.w.data[2 * 5 + 4], fresh[4 * 3 + 2]);
    }
}
