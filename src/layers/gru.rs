//! Gated recurrent unit (Cho et al. 2014), PyTorch's `nn.GRU` cell:
//!
//! `[r z n]ₓ = x W_ihᵀ + b_ih`, `[r z n]ₕ = h W_hhᵀ + b_hh`,
//! `r = σ(rₓ + rₕ)`, `z = σ(zₓ + zₕ)`, `n = tanh(nₓ + r ⊙ nₕ)`,
//! `h' = (1 - z) ⊙ n + z ⊙ h`,
//!
//! run over the steps of a sequence from `h = 0`; the layer gives the last `h`.
//! Backward is backpropagation through time.

use super::recurrent::RecurrentParams;
use crate::tensor::gates::{sigmoid, tanh};
use super::{Features, Layer, Param, Pass};
use crate::init::Init;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// A GRU layer over sequences `(t, f)` giving its last hidden state `(hidden,)`.
#[derive(Clone, Debug)]
pub struct Gru {
    pub p: RecurrentParams,
    /// (t·batch, f): the input, step-major
    xs: Matrix,
    /// (t·batch, 3·hidden): `x W_ihᵀ + b_ih`, then `r z n` after their nonlinearities
    gates: Matrix,
    /// (t·batch, hidden): `nₕ` of every step (the new gate's hidden part)
    nh: Matrix,
    /// (t·batch, hidden): hidden states
    hs: Matrix,
    /// (batch, 3·hidden): one step's `h W_hhᵀ + b_hh`
    gh: Matrix,
    /// (t·batch, 3·hidden): gradients of `x W_ihᵀ + b_ih` and of `h W_hhᵀ + b_hh`
    dgx: Matrix,
    dgh: Matrix,
    /// (batch, hidden): the gradient reaching the hidden state of the step being undone
    dh: Matrix,
    /// (batch, hidden): its part through `z ⊙ h`
    dh_direct: Vec<f32>,
    /// (t·batch, f) scratch for the input gradient
    dxs: Matrix,
}

impl Gru {
    /// A GRU of `hidden` units over sequences of `steps` x `features`.
    pub fn new(
        steps: usize,
        features: usize,
        hidden: usize,
        init: Option<Init>,
        rng: &mut Rng,
    ) -> Self {
        Gru {
            p: RecurrentParams::new(steps, features, hidden, 3, init, rng),
            xs: Matrix::default(),
            gates: Matrix::default(),
            nh: Matrix::default(),
            hs: Matrix::default(),
            gh: Matrix::default(),
            dgx: Matrix::default(),
            dgh: Matrix::default(),
            dh: Matrix::default(),
            dh_direct: Vec::new(),
            dxs: Matrix::default(),
        }
    }
}

impl Layer for Gru {
    fn describe(&self) -> String {
        format!(
            "gru {} over {} steps of {}",
            self.p.hidden, self.p.steps, self.p.features
        )
    }
    fn input(&self) -> Features {
        self.p.input()
    }
    fn output(&self) -> Features {
        Features::Vector(self.p.hidden)
    }

    /// # Shapes
    /// `x: (batch, t·f)`, `y: (batch, hidden)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let rt = pass.rt;
        let (batch, hid, steps) = (x.rows, self.p.hidden, self.p.steps);
        self.p.project_inputs(rt, x, &mut self.xs, &mut self.gates);
        self.nh.reshape_for(steps * batch, hid);
        self.hs.reshape_for(steps * batch, hid);
        for t in 0..steps {
            let rows = t * batch..(t + 1) * batch;
            if t > 0 {
                self.p
                    .project_hidden(rt, &self.hs, rows.start - batch..rows.start, &mut self.gh);
            } else {
                self.gh.reshape_for(batch, 3 * hid);
                super::broadcast_rows(&mut self.gh, &self.p.b_hh);
            }
            for (k, r) in rows.enumerate() {
                let gh = self.gh.row(k);
                let g = self.gates.row_mut(r);
                for u in 0..hid {
                    let rg = sigmoid(g[u] + gh[u]);
                    let z = sigmoid(g[hid + u] + gh[hid + u]);
                    let n = tanh(g[2 * hid + u] + rg * gh[2 * hid + u]);
                    let h_prev = if t > 0 { self.hs.data[(r - batch) * hid + u] } else { 0.0 };
                    (g[u], g[hid + u], g[2 * hid + u]) = (rg, z, n);
                    self.nh.data[r * hid + u] = gh[2 * hid + u];
                    self.hs.data[r * hid + u] = (1.0 - z) * n + z * h_prev;
                }
            }
        }
        y.data
            .copy_from_slice(&self.hs.data[(steps - 1) * batch * hid..steps * batch * hid]);
    }

    /// From the last step back: `dn = dh ⊙ (1 - z)`, `dz = dh ⊙ (h_prev - n)`,
    /// through the nonlinearities to `dnₓ = dn (1 - n²)`, `dnₕ = dnₓ ⊙ r`,
    /// `dr = dnₓ ⊙ nₕ`; then `dh_prev = dh ⊙ z + dgh W_hh`.
    ///
    /// # Shapes
    /// `dy: (batch, hidden)`, `dx: (batch, t·f)`.
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let (batch, hid, steps) = (dy.rows, self.p.hidden, self.p.steps);
        self.dgx.reshape_for(steps * batch, 3 * hid);
        self.dgh.reshape_for(steps * batch, 3 * hid);
        self.dh.reshape_for(batch, hid);
        self.dh.data.copy_from_slice(&dy.data);
        self.dh_direct.resize(batch * hid, 0.0);
        for t in (0..steps).rev() {
            for k in 0..batch {
                let r = t * batch + k;
                let g = self.gates.row(r);
                let (dgx, dgh) = (self.dgx.row_mut(r), self.dgh.row_mut(r));
                for u in 0..hid {
                    let (rg, z, n) = (g[u], g[hid + u], g[2 * hid + u]);
                    let h_prev = if t > 0 { self.hs.data[(r - batch) * hid + u] } else { 0.0 };
                    let dh = self.dh.data[k * hid + u];
                    let dn = dh * (1.0 - z) * (1.0 - n * n);
                    let dz = dh * (h_prev - n) * z * (1.0 - z);
                    let dr = dn * self.nh.data[r * hid + u] * rg * (1.0 - rg);
                    (dgx[u], dgx[hid + u], dgx[2 * hid + u]) = (dr, dz, dn);
                    (dgh[u], dgh[hid + u], dgh[2 * hid + u]) = (dr, dz, dn * rg);
                    self.dh_direct[k * hid + u] = dh * z;
                }
            }
            if t > 0 {
                let rows = t * batch..(t + 1) * batch;
                self.dh.data.copy_from_slice(&self.dh_direct);
                self.p.back_to_hidden(rt, &self.dgh, rows, &mut self.dh, true);
            }
        }
        let Gru {
            p, dgx, dgh, xs, hs, dxs, ..
        } = self;
        p.weight_grads(rt, dgx, dgh, xs, hs, dxs, dx);
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        self.p.visit(f);
    }
}
