//! Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's `nn.LSTM` cell:
//!
//! `[i f g o] = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh`, `i, f, o = σ(·)`, `g = tanh(·)`,
//! `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`,
//!
//! run over the steps of a sequence from `h = c = 0`; the layer gives the last `h`.
//! Backward is backpropagation through time, step by step from the last.

use super::recurrent::{RecurrentParams, sigmoid};
use super::{Features, Layer, Param, Pass};
use crate::init::Init;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// An LSTM layer over sequences `(t, f)` giving its last hidden state `(hidden,)`.
#[derive(Clone, Debug)]
pub struct Lstm {
    pub p: RecurrentParams,
    /// (t·batch, f): the input, step-major
    xs: Matrix,
    /// (t·batch, 4·hidden): the gates `i f g o` after their nonlinearities
    gates: Matrix,
    /// (t·batch, hidden): cell states
    cs: Matrix,
    /// (t·batch, hidden): hidden states
    hs: Matrix,
    /// (batch, 4·hidden): one step's `h W_hhᵀ + b_hh`
    gh: Matrix,
    /// (t·batch, 4·hidden): gradients of the gates before their nonlinearities
    dgates: Matrix,
    /// (batch, hidden): gradients reaching `h` and `c` of the step being undone
    dh: Matrix,
    dc: Vec<f32>,
    /// (t·batch, f) scratch for the input gradient
    dxs: Matrix,
}

impl Lstm {
    /// An LSTM of `hidden` units over sequences of `steps` x `features`.
    pub fn new(
        steps: usize,
        features: usize,
        hidden: usize,
        init: Option<Init>,
        rng: &mut Rng,
    ) -> Self {
        Lstm {
            p: RecurrentParams::new(steps, features, hidden, 4, init, rng),
            xs: Matrix::default(),
            gates: Matrix::default(),
            cs: Matrix::default(),
            hs: Matrix::default(),
            gh: Matrix::default(),
            dgates: Matrix::default(),
            dh: Matrix::default(),
            dc: Vec::new(),
            dxs: Matrix::default(),
        }
    }
}

impl Layer for Lstm {
    fn describe(&self) -> String {
        format!(
            "lstm {} over {} steps of {}",
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
        self.cs.reshape_for(steps * batch, hid);
        self.hs.reshape_for(steps * batch, hid);
        for t in 0..steps {
            let rows = t * batch..(t + 1) * batch;
            if t > 0 {
                self.p
                    .project_hidden(rt, &self.hs, rows.start - batch..rows.start, &mut self.gh);
            } else {
                self.gh.reshape_for(batch, 4 * hid);
                super::broadcast_rows(&mut self.gh, &self.p.b_hh);
            }
            for (k, r) in rows.enumerate() {
                let g = self.gates.row_mut(r);
                for (a, &b) in g.iter_mut().zip(self.gh.row(k)) {
                    *a += b;
                }
                let (i, rest) = g.split_at_mut(hid);
                let (f, rest) = rest.split_at_mut(hid);
                let (gg, o) = rest.split_at_mut(hid);
                let prev = (t > 0).then(|| r - batch);
                for u in 0..hid {
                    i[u] = sigmoid(i[u]);
                    f[u] = sigmoid(f[u]);
                    gg[u] = gg[u].tanh();
                    o[u] = sigmoid(o[u]);
                    let c_prev = prev.map_or(0.0, |p| self.cs.data[p * hid + u]);
                    let c = f[u] * c_prev + i[u] * gg[u];
                    self.cs.data[r * hid + u] = c;
                    self.hs.data[r * hid + u] = o[u] * c.tanh();
                }
            }
        }
        y.data
            .copy_from_slice(&self.hs.data[(steps - 1) * batch * hid..steps * batch * hid]);
    }

    /// From the last step back: `dc += dh ⊙ o ⊙ (1 - tanh² c)`, the gates' gradients
    /// `do = dh ⊙ tanh c`, `di = dc ⊙ g`, `dg = dc ⊙ i`, `df = dc ⊙ c_prev` through
    /// their nonlinearities, then `dh_prev = dgates W_hh`, `dc_prev = dc ⊙ f`.
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
        self.dgates.reshape_for(steps * batch, 4 * hid);
        self.dh.reshape_for(batch, hid);
        self.dh.data.copy_from_slice(&dy.data);
        self.dc.clear();
        self.dc.resize(batch * hid, 0.0);
        for t in (0..steps).rev() {
            for k in 0..batch {
                let r = t * batch + k;
                let g = self.gates.row(r);
                let (i, f, gg, o) = (&g[..hid], &g[hid..2 * hid], &g[2 * hid..3 * hid], &g[3 * hid..]);
                let dg = self.dgates.row_mut(r);
                for u in 0..hid {
                    let c = self.cs.data[r * hid + u];
                    let c_prev = if t > 0 { self.cs.data[(r - batch) * hid + u] } else { 0.0 };
                    let tc = c.tanh();
                    let dh = self.dh.data[k * hid + u];
                    let dc = &mut self.dc[k * hid + u];
                    *dc += dh * o[u] * (1.0 - tc * tc);
                    dg[u] = *dc * gg[u] * i[u] * (1.0 - i[u]);
                    dg[hid + u] = *dc * c_prev * f[u] * (1.0 - f[u]);
                    dg[2 * hid + u] = *dc * i[u] * (1.0 - gg[u] * gg[u]);
                    dg[3 * hid + u] = dh * tc * o[u] * (1.0 - o[u]);
                    *dc *= f[u];
                }
            }
            if t > 0 {
                let rows = t * batch..(t + 1) * batch;
                self.p.back_to_hidden(rt, &self.dgates, rows, &mut self.dh, false);
            }
        }
        let Lstm {
            p, dgates, xs, hs, dxs, ..
        } = self;
        p.weight_grads(rt, dgates, dgates, xs, hs, dxs, dx);
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        self.p.visit(f);
    }
}
