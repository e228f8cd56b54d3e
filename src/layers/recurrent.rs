//! What the recurrent layers (`Rnn`, `Lstm`, `Gru`) share: PyTorch's parameters for
//! one layer of `gates` gate blocks, the move between the batch's `(b, t)` row order
//! and the steps' `(t, b)` order, and the weight gradients, which are computed once
//! for all steps as three GEMMs after backpropagation through time; and the steps'
//! products `h W_hhᵀ` and `dg W_hh`, in f32 or, in bf16 precision, on `W_hh` packed
//! once per pass.
//!
//! Each layer reads a sequence `(t, f)` (an image read as `h` rows of `w` pixels) and
//! gives its last hidden state `(hidden,)`.

use super::{Features, Param, Shape};
use crate::init::Init;
use crate::par::Disjoint;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::bf16::{self, PackedB, Packs};
use crate::tensor::{Matrix, View, gemm, gemm_here, matmul_tn};

/// One recurrent layer's weights as PyTorch names and lays them out: gate blocks
/// stacked along the rows (LSTM: i, f, g, o; GRU: r, z, n; RNN: one).
#[derive(Clone, Debug)]
pub struct RecurrentParams {
    pub steps: usize,
    pub features: usize,
    pub hidden: usize,
    pub gates: usize,
    /// (gates·hidden, features): `weight_ih_l0`
    pub w_ih: Matrix,
    /// (gates·hidden, hidden): `weight_hh_l0`
    pub w_hh: Matrix,
    /// (gates·hidden,): `bias_ih_l0`
    pub b_ih: Vec<f32>,
    /// (gates·hidden,): `bias_hh_l0`
    pub b_hh: Vec<f32>,
    pub dw_ih: Matrix,
    pub dw_hh: Matrix,
    pub db_ih: Vec<f32>,
    pub db_hh: Vec<f32>,
    /// (hidden, gates·hidden): `W_hhᵀ`, copied by each forward pass whose steps run in
    /// f32: they read it row-major, which the `gemm` crate takes without repacking
    /// the weights at every step (`examples/recurrent_products.rs`)
    w_hh_t: Matrix,
    /// `W_hhᵀ` and `W_hh` packed for the bf16 kernel by each pass whose steps run in
    /// bf16: the forward steps' and the backward steps' second operands
    bf16_fwd: PackedB,
    bf16_bwd: PackedB,
    /// Whether the steps of the pass readied last run in bf16 (`None`: not readied),
    /// forward ([`ready_forward`](Self::ready_forward)) and backward
    /// ([`ready_backward`](Self::ready_backward))
    fwd_bf16: Option<bool>,
    bwd_bf16: Option<bool>,
    /// One bf16 packing buffer per group of [`for_groups`] (a block uses its first
    /// group's), for the steps' first operands
    packs: Vec<Packs>,
    /// (gates·hidden,): the bias each step adds to its input projection, set by
    /// [`ready_forward`](Self::ready_forward): `b_ih`, plus `b_hh` where asked
    pub(crate) bias: Vec<f32>,
}

impl RecurrentParams {
    /// Readies a forward pass in `rt`'s precision: `W_hh` for the steps' products
    /// ([`add_previous`](Self::add_previous)), `W_hhᵀ` copied for f32 or packed for
    /// bf16 ([`bf16::takes`]), and the [`bias`](Self::bias) each step adds, `b_ih`,
    /// or `b_ih + b_hh` with `with_b_hh` (for layers that add both biases to the same
    /// sum).
    pub fn ready_forward(&mut self, rt: &Runtime, with_b_hh: bool) {
        let (gh, hid) = (self.gates * self.hidden, self.hidden);
        let in_bf16 = bf16::takes(rt.precision, gh);
        if in_bf16 {
            self.bf16_fwd.pack(View::transposed(&self.w_hh));
        } else {
            for (i, row) in self.w_hh.data.chunks_exact(hid).enumerate() {
                for (j, &w) in row.iter().enumerate() {
                    self.w_hh_t.data[j * gh + i] = w;
                }
            }
        }
        self.fwd_bf16 = Some(in_bf16);
        self.bias.copy_from_slice(&self.b_ih);
        if with_b_hh {
            self.bias
                .iter_mut()
                .zip(&self.b_hh)
                .for_each(|(a, &b)| *a += b);
        }
    }

    /// `out += h_{t-1} W_hhᵀ` for the `n` examples from `k0` of a group at step `t`
    /// (nothing at step 0, whose previous state is zero), in the precision
    /// [`ready_forward`](Self::ready_forward) readied (bf16: `h` packed into `packs`).
    ///
    /// # Shapes
    /// `hs: (steps·batch, hidden)` rows step-major, `out: (n, gates·hidden)`.
    ///
    /// # Safety
    /// No other live reference to those examples' rows of step `t - 1` (each group of
    /// [`for_groups`] reads only its own rows).
    ///
    /// # Panics
    /// If no forward pass was readied.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn add_previous(
        &self,
        hs: RowsPtr,
        t: usize,
        batch: usize,
        k0: usize,
        n: usize,
        out: &mut [f32],
        packs: &mut Packs,
    ) {
        let in_bf16 = self.fwd_bf16.expect("add_previous: ready_forward first");
        if t == 0 {
            return;
        }
        // SAFETY: the caller's promise.
        let h_prev = unsafe { &*hs.rows((t - 1) * batch + k0, n) };
        let hv = View {
            data: h_prev,
            rows: n,
            cols: self.hidden,
            rs: self.hidden,
            cs: 1,
        };
        if in_bf16 {
            bf16::gemm_bf16_packed_here(hv, &self.bf16_fwd, out, true, packs);
        } else {
            gemm_here(hv, View::of(&self.w_hh_t), out, true);
        }
    }

    /// Readies a backward pass in `rt`'s precision: in bf16 ([`bf16::takes`]), packs
    /// `W_hh` for the steps' products ([`back_through`](Self::back_through)).
    pub fn ready_backward(&mut self, rt: &Runtime) {
        let in_bf16 = bf16::takes(rt.precision, self.hidden);
        if in_bf16 {
            self.bf16_bwd.pack(View::of(&self.w_hh));
        }
        self.bwd_bf16 = Some(in_bf16);
    }

    /// `dh (+)= dg W_hh`: the gradient reaching a group's previous hidden states from
    /// the gradients `dg` of its gates' pre-activations, in the precision
    /// [`ready_backward`](Self::ready_backward) readied (bf16: `dg` packed into
    /// `packs`).
    ///
    /// # Shapes
    /// `dg: (n, gates·hidden)` row-major, `dh: (n, hidden)`.
    ///
    /// # Panics
    /// If no backward pass was readied.
    pub fn back_through(&self, dg: &[f32], dh: &mut [f32], accumulate: bool, packs: &mut Packs) {
        let in_bf16 = self.bwd_bf16.expect("back_through: ready_backward first");
        let gh = self.gates * self.hidden;
        let dgv = View {
            data: dg,
            rows: dg.len() / gh,
            cols: gh,
            rs: gh,
            cs: 1,
        };
        if in_bf16 {
            bf16::gemm_bf16_packed_here(dgv, &self.bf16_bwd, dh, accumulate, packs);
        } else {
            gemm_here(dgv, View::of(&self.w_hh), dh, accumulate);
        }
    }

    /// The groups' packing buffers for a batch of `batch` (room reserved in bf16, so
    /// that no step allocates), one per group of [`for_groups`]: a block takes the one
    /// of its first group (its `g`).
    pub fn step_packs(&mut self, rt: &Runtime, batch: usize) -> Disjoint<Packs> {
        if self.packs.len() < GROUPS {
            self.packs.resize_with(GROUPS, Packs::default);
        }
        if rt.precision == crate::runtime::Precision::Bf16 {
            let rows = batch.div_ceil(GROUPS) * GROUPS;
            for p in &mut self.packs {
                p.reserve(rows, self.gates * self.hidden, 0);
            }
        }
        Disjoint::of(&mut self.packs, 1)
    }

    /// Parameters for sequences `(steps, features)` and `hidden` units, drawn in
    /// PyTorch's order (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`) from `init`;
    /// `None` is PyTorch's default, U(-1/√hidden, 1/√hidden) for all four.
    pub fn new(
        steps: usize,
        features: usize,
        hidden: usize,
        gates: usize,
        init: Option<Init>,
        rng: &mut Rng,
    ) -> Self {
        let gh = gates * hidden;
        let default = Init::Uniform(1.0 / (hidden as f32).sqrt());
        let (winit, binit) = match init {
            Some(i) => (i, Init::Zeros),
            None => (default, default),
        };
        let mut w_ih = Matrix::zeros(gh, features);
        winit.fill(&mut w_ih.data, features, hidden, rng);
        let mut w_hh = Matrix::zeros(gh, hidden);
        winit.fill(&mut w_hh.data, hidden, hidden, rng);
        let mut b_ih = vec![0.0; gh];
        binit.fill(&mut b_ih, hidden, hidden, rng);
        let mut b_hh = vec![0.0; gh];
        binit.fill(&mut b_hh, hidden, hidden, rng);
        RecurrentParams {
            steps,
            features,
            hidden,
            gates,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            dw_ih: Matrix::zeros(gh, features),
            dw_hh: Matrix::zeros(gh, hidden),
            db_ih: vec![0.0; gh],
            db_hh: vec![0.0; gh],
            w_hh_t: Matrix::zeros(hidden, gh),
            bf16_fwd: PackedB::default(),
            bf16_bwd: PackedB::default(),
            fwd_bf16: None,
            bwd_bf16: None,
            packs: Vec::new(),
            bias: vec![0.0; gh],
        }
    }

    /// The input shape: `(steps, features)`.
    pub fn input(&self) -> Features {
        Features::Sequence {
            t: self.steps,
            f: self.features,
        }
    }

    /// The output shape: the last hidden state `(hidden,)`.
    pub fn output(&self) -> Features {
        Features::Vector(self.hidden)
    }

    /// One line, e.g. `lstm 128 over 28 steps of 28`.
    pub fn describe(&self, kind: &str) -> String {
        format!(
            "{kind} {} over {} steps of {}",
            self.hidden, self.steps, self.features
        )
    }

    /// Visits the four tensors under PyTorch's names (`weight_ih_l0`, ...).
    pub fn visit(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        let gh = self.gates * self.hidden;
        f(Param {
            name: "weight_ih_l0",
            value: &mut self.w_ih.data,
            grad: &self.dw_ih.data,
            shape: Shape::matrix(gh, self.features),
            decay: true,
            transposed: false,
        });
        f(Param {
            name: "weight_hh_l0",
            value: &mut self.w_hh.data,
            grad: &self.dw_hh.data,
            shape: Shape::matrix(gh, self.hidden),
            decay: true,
            transposed: false,
        });
        f(Param {
            name: "bias_ih_l0",
            value: &mut self.b_ih,
            grad: &self.db_ih,
            shape: Shape::vector(gh),
            decay: false,
            transposed: false,
        });
        f(Param {
            name: "bias_hh_l0",
            value: &mut self.b_hh,
            grad: &self.db_hh,
            shape: Shape::vector(gh),
            decay: false,
            transposed: false,
        });
    }

    /// The input projections of every step at once, `xs = steps(x)`, `gx = xs W_ihᵀ`
    /// (no bias: each step adds [`bias`](Self::bias)).
    ///
    /// # Shapes
    /// `x: (batch, steps·features)`, `xs` made `(steps·batch, features)`, `gx` made
    /// `(steps·batch, gates·hidden)`, row `t·batch + b` for step `t` of example `b`.
    pub fn project_inputs(&self, rt: &Runtime, x: &Matrix, xs: &mut Matrix, gx: &mut Matrix) {
        let (batch, t, f) = (x.rows, self.steps, self.features);
        xs.reshape_for(t * batch, f);
        for b in 0..batch {
            for s in 0..t {
                xs.row_mut(s * batch + b)
                    .copy_from_slice(&x.row(b)[s * f..(s + 1) * f]);
            }
        }
        gx.reshape_for(t * batch, self.gates * self.hidden);
        gemm(rt, View::of(xs), View::transposed(&self.w_ih), gx, false);
    }

    /// The weight and bias gradients from every step's pre-activation gradients, and
    /// the input gradient: `dW_ih = dgxᵀ xs`, `dW_hh = dgh[1..]ᵀ hs[..-1]`,
    /// `db_ih = Σ dgx`, `db_hh = Σ dgh`, `dx = unsteps(dgx W_ih)`.
    ///
    /// # Shapes
    /// `dgx, dgh: (steps·batch, gates·hidden)` (for LSTM and RNN the same matrix,
    /// summed once),
    /// `xs: (steps·batch, features)`, `hs: (steps·batch, hidden)`, `dxs` scratch,
    /// `dx: (batch, steps·features)`.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_grads(
        &mut self,
        rt: &Runtime,
        dgx: &Matrix,
        dgh: &Matrix,
        xs: &Matrix,
        hs: &Matrix,
        dxs: &mut Matrix,
        dx: Option<&mut Matrix>,
    ) {
        let batch = xs.rows / self.steps;
        let last = (self.steps - 1) * batch;
        matmul_tn(rt, dgx, xs, &mut self.dw_ih, false);
        gemm(
            rt,
            rows_view(dgh, batch..dgh.rows).transpose(),
            rows_view(hs, 0..last),
            &mut self.dw_hh,
            false,
        );
        super::column_sums(dgx, &mut self.db_ih);
        if std::ptr::eq(dgx, dgh) {
            self.db_hh.copy_from_slice(&self.db_ih);
        } else {
            super::column_sums(dgh, &mut self.db_hh);
        }
        if let Some(dx) = dx {
            dxs.reshape_for(xs.rows, self.features);
            gemm(rt, View::of(dgx), View::of(&self.w_ih), dxs, false);
            let f = self.features;
            for b in 0..batch {
                for s in 0..self.steps {
                    dx.row_mut(b)[s * f..(s + 1) * f].copy_from_slice(dxs.row(s * batch + b));
                }
            }
        }
    }
}

/// Rows `rows` of `m` as a view.
pub fn rows_view(m: &Matrix, rows: std::ops::Range<usize>) -> View<'_> {
    View {
        data: &m.data[rows.start * m.cols..rows.end * m.cols],
        rows: rows.len(),
        cols: m.cols,
        rs: m.cols,
        cs: 1,
    }
}

/// A buffer's rows, for groups of [`for_groups`] that each write their own rows.
pub type RowsPtr = crate::par::Disjoint<f32>;

/// Groups of examples per batch in [`for_groups`]: a fixed number, whatever the thread
/// count, so that the batch is cut the same way on one thread or many.
pub const GROUPS: usize = 4;

/// Runs `f(g, k0, n)` for examples `k0..k0 + n` of `0..batch` (`g` the index of the
/// first of their groups), cut into [`GROUPS`] groups
/// (fewer for a smaller batch), the groups shared among `rt`'s threads: each thread
/// takes a run of whole groups through every step of a recurrence, as one block of
/// rows (one product per step for its groups together: on 2 threads, two blocks of
/// 50 rows rather than four of 25). Each row's sums in those products do not depend on
/// how many rows share them, so neither do the bits (tested at 1, 2 and 3 threads).
pub fn for_groups(rt: &Runtime, batch: usize, f: &(impl Fn(usize, usize, usize) + Sync)) {
    let per = batch.div_ceil(GROUPS).max(1);
    let groups = batch.div_ceil(per);
    let per_thread = groups.div_ceil(rt.threads.max(1)).max(1);
    crate::par::fork_blocks(0, groups, per_thread, &|g0, m| {
        let k0 = g0 * per;
        f(g0, k0, (m * per).min(batch - k0));
    });
}
