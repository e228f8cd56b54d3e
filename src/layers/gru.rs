//! Gated recurrent unit (Cho et al. 2014), PyTorch's `nn.GRU` cell:
//!
//! `[r z n]ₓ = x W_ihᵀ + b_ih`, `[r z n]ₕ = h W_hhᵀ + b_hh`,
//! `r = σ(rₓ + rₕ)`, `z = σ(zₓ + zₕ)`, `n = tanh(nₓ + r ⊙ nₕ)`,
//! `h' = (1 - z) ⊙ n + z ⊙ h`,
//!
//! run over the steps of a sequence from `h = 0`; the layer gives the last `h`.
//! Backward is backpropagation through time.

use super::recurrent::{RecurrentParams, RowsPtr, for_groups};
use super::{Features, Layer, Param, Pass};
use crate::init::Init;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::tensor::gates::{sigmoid_in_place, tanh_in_place};

/// A GRU layer over sequences `(t, f)` giving its last hidden state `(hidden,)`.
#[derive(Clone, Debug)]
pub struct Gru {
    pub p: RecurrentParams,
    /// (t·batch, f): the input, step-major
    xs: Matrix,
    /// (t·batch, 3·hidden): `x W_ihᵀ` (each step adds `b_ih`), then `r z n` after their
    /// nonlinearities
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
            dxs: Matrix::default(),
        }
    }
}

impl Layer for Gru {
    fn describe(&self) -> String {
        self.p.describe("gru")
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
        self.p.ready_forward(rt, false);
        self.p.project_inputs(rt, x, &mut self.xs, &mut self.gates);
        let packs = self.p.step_packs(rt, batch);
        self.nh.reshape_for(steps * batch, hid);
        self.hs.reshape_for(steps * batch, hid);
        self.gh.reshape_for(batch, 3 * hid);
        let (gates, nh, hs, gh) = (
            RowsPtr::rows_of(&mut self.gates),
            RowsPtr::rows_of(&mut self.nh),
            RowsPtr::rows_of(&mut self.hs),
            RowsPtr::rows_of(&mut self.gh),
        );
        let (p, level) = (&self.p, rt.simd);
        for_groups(rt, batch, &|first, k0, n| {
            // SAFETY: the buffer of this block's first group, this block's alone
            let packs = unsafe { &mut packs.row(first)[0] };
            for t in 0..steps {
                // SAFETY: this group's rows (examples k0..k0+n) of every buffer, here
                // alone; the previous step's rows were written by this thread.
                let ghg = unsafe { gh.rows(k0, n) };
                for row in ghg.chunks_mut(3 * hid) {
                    row.copy_from_slice(&p.b_hh);
                }
                // SAFETY: as above, this group's rows of the previous step
                unsafe { p.add_previous(hs, t, batch, k0, n, ghg, packs) };
                for k in k0..k0 + n {
                    let r = t * batch + k;
                    // SAFETY: as above.
                    let (g, nr, h) = unsafe { (gates.row(r), nh.row(r), hs.row(r)) };
                    let h_prev = (t > 0).then(|| unsafe { &*hs.row(r - batch) });
                    let ghr = &ghg[(k - k0) * 3 * hid..][..3 * hid];
                    // r, z = σ(x part + h part); n = tanh(x part + r ⊙ h part), the
                    // x part's bias b_ih added here
                    g.iter_mut().zip(&p.bias).for_each(|(a, &b)| *a += b);
                    g[..2 * hid].iter_mut().zip(ghr).for_each(|(a, &b)| *a += b);
                    sigmoid_in_place(level, &mut g[..2 * hid]);
                    let (rz, gn) = g.split_at_mut(2 * hid);
                    let nh_r = &ghr[2 * hid..];
                    for u in 0..hid {
                        gn[u] += rz[u] * nh_r[u];
                    }
                    tanh_in_place(level, gn);
                    nr.copy_from_slice(nh_r);
                    let z = &rz[hid..];
                    match h_prev {
                        Some(hp) => {
                            for u in 0..hid {
                                h[u] = (1.0 - z[u]) * gn[u] + z[u] * hp[u];
                            }
                        }
                        None => h
                            .iter_mut()
                            .zip(z)
                            .zip(&*gn)
                            .for_each(|((h, z), n)| *h = (1.0 - z) * n),
                    }
                }
            }
        });
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
        self.p.ready_backward(rt);
        let packs = self.p.step_packs(rt, batch);
        self.dgx.reshape_for(steps * batch, 3 * hid);
        self.dgh.reshape_for(steps * batch, 3 * hid);
        self.dh.reshape_for(batch, hid);
        self.dh.data.copy_from_slice(&dy.data);
        let (dgxs, dghs, dhs) = (
            RowsPtr::rows_of(&mut self.dgx),
            RowsPtr::rows_of(&mut self.dgh),
            RowsPtr::rows_of(&mut self.dh),
        );
        let (gates, nh, hs, p) = (&self.gates, &self.nh, &self.hs, &self.p);
        let level = rt.simd;
        for_groups(rt, batch, &|first, k0, n| {
            // SAFETY: the buffer of this block's first group, this block's alone
            let packs = unsafe { &mut packs.row(first)[0] };
            for t in (0..steps).rev() {
                for k in k0..k0 + n {
                    let r = t * batch + k;
                    // SAFETY: this group's rows, here alone.
                    let (dgx, dgh, dh) = unsafe { (dgxs.row(r), dghs.row(r), dhs.row(k)) };
                    let h_prev = (t > 0).then(|| hs.row(r - batch));
                    step_backward(level, gates.row(r), nh.row(r), h_prev, dgx, dgh, dh);
                }
                if t > 0 {
                    // dh_prev += dgh_t W_hh for this group
                    // SAFETY: as above.
                    let (dg, dh) = unsafe { (&*dghs.rows(t * batch + k0, n), dhs.rows(k0, n)) };
                    p.back_through(dg, dh, true, packs);
                }
            }
        });
        let Gru {
            p,
            dgx,
            dgh,
            xs,
            hs,
            dxs,
            ..
        } = self;
        p.weight_grads(rt, dgx, dgh, xs, hs, dxs, dx);
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        self.p.visit(f);
    }
}

crate::simd::simd_fn! {
    /// One example's step of backpropagation through time (see `Gru::backward`): from
    /// its gates `g = [r z n]`, `nh = h_{t-1} W_hnᵀ + b_hn`, the previous hidden state
    /// (`None` at step 0: zeros) and the gradient `dh` reaching `h`, the gates'
    /// gradients before their nonlinearities, for the input projections (`dgx`) and
    /// for the recurrent ones (`dgh`, whose `n` part is scaled by `r`), and `dh` made
    /// the part of the previous step's gradient that flows through `z ⊙ h_{t-1}`.
    ///
    /// # Shapes
    /// `g, dgx, dgh: (3·hidden,)`, `nh, h_prev, dh: (hidden,)`.
    fn step_backward(
        level: Level,
        g: &[f32],
        nh: &[f32],
        h_prev: Option<&[f32]>,
        dgx: &mut [f32],
        dgh: &mut [f32],
        dh: &mut [f32],
    ) {
        let hid = dh.len();
        let (rg, z, nn) = (&g[..hid], &g[hid..2 * hid], &g[2 * hid..3 * hid]);
        let nh = &nh[..hid];
        let (dxr, rest) = dgx[..3 * hid].split_at_mut(hid);
        let (dxz, dxn) = rest.split_at_mut(hid);
        let (dhr, rest) = dgh[..3 * hid].split_at_mut(hid);
        let (dhz, dhn) = rest.split_at_mut(hid);
        // (a macro, not a closure, so that LLVM vectorises the loop)
        macro_rules! units {
            ($hp:expr) => {
                for u in 0..hid {
                    let dn = dh[u] * (1.0 - z[u]) * (1.0 - nn[u] * nn[u]);
                    let dz = dh[u] * ($hp(u) - nn[u]) * z[u] * (1.0 - z[u]);
                    let dr = dn * nh[u] * rg[u] * (1.0 - rg[u]);
                    (dxr[u], dxz[u], dxn[u]) = (dr, dz, dn);
                    (dhr[u], dhz[u], dhn[u]) = (dr, dz, dn * rg[u]);
                    dh[u] *= z[u];
                }
            };
        }
        match h_prev {
            Some(hp) => {
                let hp = &hp[..hid];
                units!(|u: usize| hp[u])
            }
            None => units!(|_| 0.0f32),
        }
    }
}
