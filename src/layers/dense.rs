//! Dense (fully connected, affine) layer: `y = x W + b`, with `W` stored `(in, out)`.
//!
//! The stored matrix is the transpose of PyTorch's `nn.Linear` weight `(out, in)`;
//! the layer shows it to the outside (model files, reports, RBM loading) in PyTorch's
//! shape and order (`Param::transposed`), so saved models load there unchanged. It is
//! stored this way so that a mostly-zero input, such as an MNIST image, can skip its
//! zeros: each nonzero `x[r, k]` then adds a whole row `W[k, :]` (see `tensor::sparse`).

use super::{Handoff, Layer, Mode, Param, broadcast_rows, column_sums, visit_affine};
use crate::init::Init;
use crate::rng::Rng;
use crate::tensor::sparse::{
    MAX_DENSITY, Nonzeros, PairChoice, sparse_affine, sparse_affine_relu,
    sparse_affine_relu_listing, sparse_enabled, sparse_matmul_tn,
};
use crate::tensor::{
    Matrix, for_each_piece, join_products, matmul_nn, matmul_nt, matmul_tn, transpose,
};

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
    /// Whether listing the input (when not given) and the output by pairs of rows has
    /// paid lately, in evaluation (`Layer::infer`).
    input_pairs: PairChoice,
    output_pairs: PairChoice,
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
            input_pairs: PairChoice::default(),
            output_pairs: PairChoice::default(),
        }
    }

    /// Whether the last forward pass took the sparse products (its input had at most
    /// `MAX_DENSITY` nonzeros).
    pub fn last_input_was_sparse(&self) -> bool {
        self.sparse
    }

    /// `y = x W + b`, then `max(0, y)` if `relu`; from `x`'s nonzero entries alone
    /// when at most `MAX_DENSITY` of them are nonzero.
    fn affine(&mut self, x: &Matrix, y: &mut Matrix, mode: Mode, relu: bool) {
        // (evaluation needs no weight gradient, so no by-column lists)
        self.sparse = sparse_enabled()
            && match mode {
                Mode::Train => self.entries.gather(x, MAX_DENSITY),
                Mode::Eval => self.entries.gather_rows(x, MAX_DENSITY),
            };
        if self.sparse && relu {
            sparse_affine_relu(&self.entries, &self.w, &self.b, y); // y = max(0, b + x W)
        } else if self.sparse {
            sparse_affine(&self.entries, &self.w, &self.b, y); // y = b + x W
        } else {
            self.dense_affine(x, y, relu);
        }
    }

    /// `y = x W + b`, then `max(0, y)` if `relu`, through the dense product.
    fn dense_affine(&self, x: &Matrix, y: &mut Matrix, relu: bool) {
        broadcast_rows(y, &self.b); // y = b
        matmul_nn(x, &self.w, y, true); // y += x W
        if relu {
            for_each_piece(&mut y.data, &|_, y| {
                for v in y {
                    *v = v.max(0.0); // as `Activation::Relu`
                }
            });
        }
    }
}

impl Layer for Dense {
    fn describe(&self) -> String {
        format!("dense {} -> {}", self.w.rows, self.w.cols)
    }
    fn in_dim(&self) -> usize {
        self.w.rows
    }
    fn out_dim(&self) -> usize {
        self.w.cols
    }

    /// `y = x W + b`; from `x`'s nonzero entries alone when at most `MAX_DENSITY` of
    /// them are nonzero.
    ///
    /// # Shapes
    /// `x: (batch, in)`, `w: (in, out)`, `y: (batch, out)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, mode: Mode, _rng: &mut Rng) {
        self.affine(x, y, mode, false);
    }

    /// `y = x W + b`, then `max(0, y)` if `relu` (always applied: returns `relu`). On
    /// the sparse path the ReLU is applied to each row of `y` as it is stored, and
    /// `y`'s nonzero entries are listed for the next layer if `io` asks: by pairs of
    /// like rows where the forward sums pairs (`Nonzeros::gather_pairs`) and pairs have
    /// paid lately (`PairChoice`), else one row at a time as each is stored. On the
    /// dense path it is a pass after the product. `x`'s entries are read from `io` if
    /// the layer before listed them, else gathered (by pairs, the same way).
    fn infer(
        &mut self,
        x: &Matrix,
        y: &mut Matrix,
        relu: bool,
        io: &mut Handoff,
        _rng: &mut Rng,
    ) -> bool {
        let given = io.given && sparse_enabled();
        debug_assert!(!given || (io.input.rows, io.input.cols) == x.shape());
        // `entries` and `sparse` describe `x` only when gathered here (a backward
        // after this would need them; `Sequential::infer` allows none)
        self.sparse = !given
            && sparse_enabled()
            && if self.input_pairs.pairs() {
                let listed = self.entries.gather_pairs(x, MAX_DENSITY);
                self.input_pairs.judge(&self.entries);
                listed
            } else {
                self.entries.gather_rows(x, MAX_DENSITY)
            };
        let e = if given && io.input.within(MAX_DENSITY) {
            &io.input
        } else if self.sparse {
            &self.entries
        } else {
            self.dense_affine(x, y, relu);
            return relu;
        };
        if relu && io.wanted && self.output_pairs.pairs() {
            // the next layer reads `y`'s entries by pairs of like rows, listed after the
            // product (which rows pair up depends on them all)
            sparse_affine_relu(e, &self.w, &self.b, y);
            io.listed = io.output.gather_pairs(y, MAX_DENSITY);
            self.output_pairs.judge(&io.output);
        } else if relu && io.wanted {
            io.listed = sparse_affine_relu_listing(e, &self.w, &self.b, y, &mut io.output);
        } else if relu {
            sparse_affine_relu(e, &self.w, &self.b, y);
        } else {
            sparse_affine(e, &self.w, &self.b, y);
        }
        relu
    }

    fn takes_entries(&self) -> bool {
        true
    }

    /// `dW = xᵀ dy`, `db = Σ_batch dy`, `dx = dy Wᵀ`. When both products are dense
    /// (the same FLOP) they run at the same time, each on half the threads: one
    /// fork-join instead of two. A sparse `dW` is much the cheaper, so then each product
    /// uses every thread in turn (examples/paired_backward.rs measures both).
    ///
    /// # Shapes
    /// `dy: (batch, out)`, `dw: (in, out)`, `db: (out,)`, `dx: (batch, in)`.
    fn backward(&mut self, x: &Matrix, _y: &Matrix, dy: &Matrix, dx: Option<&mut Matrix>) {
        let Dense {
            w,
            dw,
            db,
            entries,
            sparse,
            ..
        } = self;
        let mut weight_grads = || {
            if *sparse {
                debug_assert_eq!((entries.rows, entries.cols), x.shape());
                if !entries.has_columns() {
                    // a backward pass after an evaluation-mode forward (not training):
                    // list the same entries by column too
                    let listed = entries.gather(x, MAX_DENSITY);
                    debug_assert!(listed, "the same input passed the same limit");
                }
                sparse_matmul_tn(entries, dy, dw);
            } else {
                matmul_tn(x, dy, dw, false);
            }
            column_sums(dy, db);
        };
        match dx {
            Some(dx) if !*sparse => join_products(weight_grads, || matmul_nt(dy, w, dx, false)),
            Some(dx) => {
                weight_grads();
                matmul_nt(dy, w, dx, false);
            }
            None => weight_grads(),
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
