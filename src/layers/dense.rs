//! Dense (fully connected, affine) layer: `y = x Wᵀ + b`. Weights are stored
//! `(out, in)`, PyTorch's `nn.Linear` layout, so saved models load there unchanged.

use super::{Layer, Mode, Param, broadcast_rows, column_sums, visit_affine};
use crate::init::Init;
use crate::rng::Rng;
use crate::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};

/// An affine layer.
#[derive(Clone, Debug)]
pub struct Dense {
    /// (out, in)
    pub w: Matrix,
    /// (out,)
    pub b: Vec<f32>,
    /// (out, in)
    pub dw: Matrix,
    /// (out,)
    pub db: Vec<f32>,
}

impl Dense {
    /// A layer `in_dim -> out_dim` with weights and biases drawn from their initialisers
    /// (weights first, then biases, from the same `rng`).
    pub fn new(in_dim: usize, out_dim: usize, init: Init, bias_init: Init, rng: &mut Rng) -> Self {
        let mut w = Matrix::zeros(out_dim, in_dim);
        init.fill(&mut w.data, in_dim, out_dim, rng);
        let mut b = vec![0.0; out_dim];
        bias_init.fill(&mut b, in_dim, out_dim, rng);
        Dense {
            w,
            b,
            dw: Matrix::zeros(out_dim, in_dim),
            db: vec![0.0; out_dim],
        }
    }
}

impl Layer for Dense {
    fn describe(&self) -> String {
        format!("dense {} -> {}", self.w.cols, self.w.rows)
    }
    fn in_dim(&self) -> usize {
        self.w.cols
    }
    fn out_dim(&self) -> usize {
        self.w.rows
    }

    /// `y = x Wᵀ + b`.
    ///
    /// # Shapes
    /// `x: (batch, in)`, `w: (out, in)`, `y: (batch, out)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, _mode: Mode, _rng: &mut Rng) {
        broadcast_rows(y, &self.b); // y = b
        matmul_nt(x, &self.w, y, true); // y += x Wᵀ
    }

    /// `dW = dyᵀ x`, `db = Σ_batch dy`, `dx = dy W`.
    ///
    /// # Shapes
    /// `dy: (batch, out)`, `dw: (out, in)`, `db: (out,)`, `dx: (batch, in)`.
    fn backward(&mut self, x: &Matrix, _y: &Matrix, dy: &Matrix, dx: Option<&mut Matrix>) {
        matmul_tn(dy, x, &mut self.dw, false);
        column_sums(dy, &mut self.db);
        if let Some(dx) = dx {
            matmul_nn(dy, &self.w, dx, false);
        }
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        visit_affine(&mut self.w, &self.dw, &mut self.b, &self.db, f);
    }
}
