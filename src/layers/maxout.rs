//! Maxout (Goodfellow et al. 2013, "Maxout networks"): each output unit is the max of
//! `k` affine pieces, `y_j = max_p (x W_{jk+p}ᵀ + b_{jk+p})`. It learns its own
//! piecewise-linear activation, so no activation layer follows it.

use super::{Features, Layer, Param, Pass, broadcast_rows, column_sums, visit_affine};
use crate::init::Init;
use crate::par::join_products;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};

/// A maxout layer with `k` pieces per unit.
#[derive(Clone, Debug)]
pub struct Maxout {
    pub k: usize,
    /// (out * k, in): rows `j*k .. j*k+k` are unit j's pieces.
    pub w: Matrix,
    /// (out * k,)
    pub b: Vec<f32>,
    /// (out * k, in)
    pub dw: Matrix,
    /// (out * k,)
    pub db: Vec<f32>,
    /// (batch, out * k): all pieces from the last forward.
    z: Matrix,
    /// (batch, out * k): dL/dz, nonzero only at each unit's winning piece.
    dz: Matrix,
    /// (batch * out,): index of the winning piece of each unit.
    arg: Vec<u32>,
}

impl Maxout {
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        k: usize,
        init: Init,
        bias_init: Init,
        rng: &mut Rng,
    ) -> Self {
        let mut w = Matrix::zeros(out_dim * k, in_dim);
        init.fill(&mut w.data, in_dim, out_dim, rng);
        let mut b = vec![0.0; out_dim * k];
        bias_init.fill(&mut b, in_dim, out_dim, rng);
        Maxout {
            k,
            dw: Matrix::zeros(out_dim * k, in_dim),
            db: vec![0.0; out_dim * k],
            w,
            b,
            z: Matrix::zeros(0, out_dim * k),
            dz: Matrix::zeros(0, out_dim * k),
            arg: Vec::new(),
        }
    }
}

impl Layer for Maxout {
    fn describe(&self) -> String {
        format!(
            "maxout {} -> {} (k = {})",
            self.w.cols,
            self.out_dim(),
            self.k
        )
    }
    fn input(&self) -> Features {
        Features::Vector(self.w.cols)
    }
    fn output(&self) -> Features {
        Features::Vector(self.w.rows / self.k)
    }

    /// `z = x Wᵀ + b`, `y_j = max_p z_{jk+p}`.
    ///
    /// # Shapes
    /// `x: (batch, in)`, `z: (batch, out*k)`, `y: (batch, out)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let (k, out) = (self.k, self.out_dim());
        self.z.set_rows(x.rows);
        broadcast_rows(&mut self.z, &self.b);
        matmul_nt(pass.rt, x, &self.w, &mut self.z, true);
        self.arg.resize(x.rows * out, 0);
        for r in 0..x.rows {
            let z = self.z.row(r);
            for j in 0..out {
                let pieces = &z[j * k..(j + 1) * k];
                let best = crate::tensor::argmax(pieces);
                self.arg[r * out + j] = best as u32;
                y.data[r * out + j] = pieces[best];
            }
        }
    }

    /// `dz` routes `dy` to each unit's winning piece; then as a dense layer:
    /// `dW = dzᵀ x`, `db = Σ dz`, `dx = dz W`.
    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let (k, out) = (self.k, self.out_dim());
        self.dz.set_rows(x.rows);
        self.dz.fill(0.0);
        for r in 0..x.rows {
            for j in 0..out {
                let p = self.arg[r * out + j] as usize;
                self.dz.data[r * out * k + j * k + p] = dy.data[r * out + j];
            }
        }
        let (dz, w, dw, db) = (&self.dz, &self.w, &mut self.dw, &mut self.db);
        let mut weight_grads = |rt: &Runtime| {
            matmul_tn(rt, dz, x, dw, false);
            column_sums(dz, db);
        };
        match dx {
            // both gradients at once, each on half the threads
            Some(dx) => join_products(rt, weight_grads, |rt| matmul_nn(rt, dz, w, dx, false)),
            None => weight_grads(rt),
        }
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        visit_affine(&mut self.w, &self.dw, &mut self.b, &self.db, false, f);
    }
}
