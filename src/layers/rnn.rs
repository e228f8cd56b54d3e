//! The plain recurrent layer (Elman 1990), PyTorch's `nn.RNN` with tanh:
//!
//! `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`,
//!
//! run over the steps of a sequence from `h = 0`; the layer gives the last `h`: "the
//! network's direction turned sideways as well as forward". Backward is
//! backpropagation through time.

use super::recurrent::{RecurrentParams, RowsPtr, for_groups};
use super::{Features, Layer, Param, Pass};
use crate::init::Init;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::tensor::gates::tanh_in_place;

/// A tanh RNN layer over sequences `(t, f)` giving its last hidden state `(hidden,)`.
#[derive(Clone, Debug)]
pub struct Rnn {
    pub p: RecurrentParams,
    /// (t·batch, f): the input, step-major
    xs: Matrix,
    /// (t·batch, hidden): pre-activations, then (after each step) hidden states
    hs: Matrix,
    /// (t·batch, hidden): gradients of the pre-activations
    da: Matrix,
    /// (batch, hidden): the gradient reaching the hidden state of the step being undone
    dh: Matrix,
    /// (t·batch, f) scratch for the input gradient
    dxs: Matrix,
}

impl Rnn {
    /// An RNN of `hidden` units over sequences of `steps` x `features`.
    pub fn new(
        steps: usize,
        features: usize,
        hidden: usize,
        init: Option<Init>,
        rng: &mut Rng,
    ) -> Self {
        Rnn {
            p: RecurrentParams::new(steps, features, hidden, 1, init, rng),
            xs: Matrix::default(),
            hs: Matrix::default(),
            da: Matrix::default(),
            dh: Matrix::default(),
            dxs: Matrix::default(),
        }
    }
}

impl Layer for Rnn {
    fn describe(&self) -> String {
        self.p.describe("rnn")
    }
    fn input(&self) -> Features {
        self.p.input()
    }
    fn output(&self) -> Features {
        self.p.output()
    }

    /// # Shapes
    /// `x: (batch, t·f)`, `y: (batch, hidden)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let rt = pass.rt;
        let (batch, hid, steps) = (x.rows, self.p.hidden, self.p.steps);
        self.p.ready_forward(rt, true);
        self.p.project_inputs(rt, x, &mut self.xs, &mut self.hs);
        let packs = self.p.step_packs(rt, batch);
        let (hs, p, level) = (RowsPtr::rows_of(&mut self.hs), &self.p, rt.simd);
        for_groups(rt, batch, &|first, k0, n| {
            // SAFETY: the buffer of this block's first group, this block's alone
            let packs = unsafe { &mut packs.row(first)[0] };
            for t in 0..steps {
                // SAFETY: this group's rows (examples k0..k0+n), here alone; the
                // previous step's were written by this thread.
                let h = unsafe { hs.rows(t * batch + k0, n) };
                // SAFETY: as above, this group's rows of the previous step
                unsafe { p.add_previous(hs, t, batch, k0, n, h, packs) };
                for row in h.chunks_mut(p.bias.len()) {
                    row.iter_mut().zip(&p.bias).for_each(|(a, &b)| *a += b);
                }
                tanh_in_place(level, h);
            }
        });
        y.data
            .copy_from_slice(&self.hs.data[(steps - 1) * batch * hid..steps * batch * hid]);
    }

    /// From the last step back: `da = dh ⊙ (1 - h²)`, `dh_prev = da W_hh`.
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
        self.p.ready_backward(rt);
        let packs = self.p.step_packs(rt, batch);
        self.da.reshape_for(steps * batch, hid);
        self.dh.reshape_for(batch, hid);
        self.dh.data.copy_from_slice(&dy.data);
        let (das, dhs) = (
            RowsPtr::rows_of(&mut self.da),
            RowsPtr::rows_of(&mut self.dh),
        );
        let (hs, p) = (&self.hs, &self.p);
        for_groups(rt, batch, &|first, k0, n| {
            // SAFETY: the buffer of this block's first group, this block's alone
            let packs = unsafe { &mut packs.row(first)[0] };
            for t in (0..steps).rev() {
                // SAFETY: this group's rows, here alone.
                let (da, dh) = unsafe { (das.rows(t * batch + k0, n), dhs.rows(k0, n)) };
                let h = &hs.data[(t * batch + k0) * hid..(t * batch + k0 + n) * hid];
                for ((d, &h), &g) in da.iter_mut().zip(h).zip(&*dh) {
                    *d = g * (1.0 - h * h);
                }
                if t > 0 {
                    p.back_through(da, dh, false, packs);
                }
            }
        });
        let Rnn {
            p, da, xs, hs, dxs, ..
        } = self;
        p.weight_grads(rt, da, da, xs, hs, dxs, dx);
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        self.p.visit(f);
    }
}
