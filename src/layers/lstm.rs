//! Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's `nn.LSTM` cell:
//!
//! `[i f g o] = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh`, `i, f, o = σ(·)`, `g = tanh(·)`,
//! `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`,
//!
//! run over the steps of a sequence from `h = c = 0`; the layer gives the last `h`.
//! Backward is backpropagation through time, step by step from the last. Examples are
//! independent until the weight gradients, so each group of examples runs through
//! all the steps on one thread (`recurrent::for_groups`), with no fork-join per step.

use super::recurrent::{RecurrentParams, RowsPtr, for_groups};
use super::{Features, Layer, Param, Pass};
use crate::init::Init;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::tensor::gates::{sigmoid_in_place, tanh_in_place, tanh_into};

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
    /// (t·batch, hidden): `tanh` of the cell states
    tcs: Matrix,
    /// (t·batch, hidden): hidden states
    hs: Matrix,
    /// (t·batch, 4·hidden): gradients of the gates before their nonlinearities
    dgates: Matrix,
    /// (batch, hidden): gradients reaching `h` and `c` of the step being undone
    dh: Matrix,
    dc: Matrix,
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
            tcs: Matrix::default(),
            hs: Matrix::default(),
            dgates: Matrix::default(),
            dh: Matrix::default(),
            dc: Matrix::default(),
            dxs: Matrix::default(),
        }
    }
}

impl Layer for Lstm {
    fn describe(&self) -> String {
        self.p.describe("lstm")
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
        // each step adds `h W_hhᵀ` and both biases to its input projection
        self.p.ready_forward(rt, true);
        self.p.project_inputs(rt, x, &mut self.xs, &mut self.gates);
        let packs = self.p.step_packs(rt, batch);
        for m in [&mut self.cs, &mut self.tcs, &mut self.hs] {
            m.reshape_for(steps * batch, hid);
        }
        let level = rt.simd;
        let (gates, cs, tcs, hs) = (
            RowsPtr::rows_of(&mut self.gates),
            RowsPtr::rows_of(&mut self.cs),
            RowsPtr::rows_of(&mut self.tcs),
            RowsPtr::rows_of(&mut self.hs),
        );
        let p = &self.p;
        for_groups(rt, batch, &|first, k0, n| {
            // SAFETY: the buffer of this block's first group, this block's alone
            let packs = unsafe { &mut packs.row(first)[0] };
            for t in 0..steps {
                {
                    // SAFETY: this group's rows (examples k0..k0+n) of every buffer,
                    // here alone (this borrow of step t's gates ends with the block,
                    // before the rows are taken one by one below); the previous step's
                    // rows were written by this thread.
                    let gt = unsafe { gates.rows(t * batch + k0, n) };
                    // SAFETY: as above, this group's rows of the previous step
                    unsafe { p.add_previous(hs, t, batch, k0, n, gt, packs) };
                }
                for k in k0..k0 + n {
                    let r = t * batch + k;
                    // SAFETY: as above.
                    let (g, c, tc, h) = unsafe { (gates.row(r), cs.row(r), tcs.row(r), hs.row(r)) };
                    let c_prev = (t > 0).then(|| unsafe { &*cs.row(r - batch) });
                    g.iter_mut().zip(&p.bias).for_each(|(a, &b)| *a += b);
                    sigmoid_in_place(level, &mut g[..2 * hid]);
                    tanh_in_place(level, &mut g[2 * hid..3 * hid]);
                    sigmoid_in_place(level, &mut g[3 * hid..]);
                    let (i, rest) = g.split_at(hid);
                    let (f, rest) = rest.split_at(hid);
                    let (gg, o) = rest.split_at(hid);
                    match c_prev {
                        Some(cp) => {
                            for u in 0..hid {
                                c[u] = f[u] * cp[u] + i[u] * gg[u];
                            }
                        }
                        None => c
                            .iter_mut()
                            .zip(i)
                            .zip(gg)
                            .for_each(|((c, i), g)| *c = i * g),
                    }
                    tanh_into(level, c, tc);
                    h.iter_mut()
                        .zip(o)
                        .zip(&*tc)
                        .for_each(|((h, o), t)| *h = o * t);
                }
            }
        });
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
        self.p.ready_backward(rt);
        let packs = self.p.step_packs(rt, batch);
        self.dgates.reshape_for(steps * batch, 4 * hid);
        self.dh.reshape_for(batch, hid);
        self.dh.data.copy_from_slice(&dy.data);
        self.dc.reshape_for(batch, hid);
        self.dc.data.fill(0.0);
        let (dgates, dcs, dhs) = (
            RowsPtr::rows_of(&mut self.dgates),
            RowsPtr::rows_of(&mut self.dc),
            RowsPtr::rows_of(&mut self.dh),
        );
        let (gates, cs, tcs, p) = (&self.gates, &self.cs, &self.tcs, &self.p);
        let level = rt.simd;
        for_groups(rt, batch, &|first, k0, n| {
            // SAFETY: the buffer of this block's first group, this block's alone
            let packs = unsafe { &mut packs.row(first)[0] };
            for t in (0..steps).rev() {
                for k in k0..k0 + n {
                    let r = t * batch + k;
                    // SAFETY: this group's rows, here alone.
                    let (dg, dc, dh) = unsafe { (dgates.row(r), dcs.row(k), &*dhs.row(k)) };
                    let c_prev = (t > 0).then(|| cs.row(r - batch));
                    step_backward(level, gates.row(r), tcs.row(r), c_prev, dh, dc, dg);
                }
                if t > 0 {
                    // dh_prev = dgates_t W_hh for this group
                    // SAFETY: as above.
                    let (dg, dh) = unsafe { (&*dgates.rows(t * batch + k0, n), dhs.rows(k0, n)) };
                    p.back_through(dg, dh, false, packs);
                }
            }
        });
        let Lstm {
            p,
            dgates,
            xs,
            hs,
            dxs,
            ..
        } = self;
        p.weight_grads(rt, dgates, dgates, xs, hs, dxs, dx);
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        self.p.visit(f);
    }
}

crate::simd::simd_fn! {
    /// One example's step of backpropagation through time (see `Lstm::backward`):
    /// from its gates `g = [i f g o]`, `tanh c`, the previous cell state (`None` at
    /// step 0: zeros) and the gradient `dh` reaching `h`, the gates' gradients before
    /// their nonlinearities into `dg`, and `dc` from the gradient reaching this step's
    /// `c` to the one reaching the previous step's.
    ///
    /// # Shapes
    /// `g, dg: (4·hidden,)`, `tc, c_prev, dh, dc: (hidden,)`.
    fn step_backward(
        level: Level,
        g: &[f32],
        tc: &[f32],
        c_prev: Option<&[f32]>,
        dh: &[f32],
        dc: &mut [f32],
        dg: &mut [f32],
    ) {
        let hid = dc.len();
        let (i, f, gg, o) = (&g[..hid], &g[hid..2 * hid], &g[2 * hid..3 * hid], &g[3 * hid..4 * hid]);
        let (tc, dh) = (&tc[..hid], &dh[..hid]);
        let (di, rest) = dg[..4 * hid].split_at_mut(hid);
        let (df, rest) = rest.split_at_mut(hid);
        let (dgg, d_o) = rest.split_at_mut(hid);
        // (a macro, not a closure: LLVM left the closure uninlined, one unit at a time)
        macro_rules! units {
            ($cp:expr) => {
                for u in 0..hid {
                    let dcu = dc[u] + dh[u] * o[u] * (1.0 - tc[u] * tc[u]);
                    di[u] = dcu * gg[u] * i[u] * (1.0 - i[u]);
                    df[u] = dcu * $cp(u) * f[u] * (1.0 - f[u]);
                    dgg[u] = dcu * i[u] * (1.0 - gg[u] * gg[u]);
                    d_o[u] = dh[u] * tc[u] * o[u] * (1.0 - o[u]);
                    dc[u] = dcu * f[u];
                }
            };
        }
        match c_prev {
            Some(cp) => {
                let cp = &cp[..hid];
                units!(|u: usize| cp[u])
            }
            None => units!(|_| 0.0f32),
        }
    }
}
