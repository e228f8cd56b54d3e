//! Restricted Boltzmann machines and greedy layer-wise pre-training: the Deep Belief
//! Net of Hinton, Osindero & Teh 2006 ("A fast learning algorithm for deep belief
//! nets"), trained by contrastive divergence as in Hinton 2010 ("A practical guide to
//! training restricted Boltzmann machines").
//!
//! Bernoulli-Bernoulli RBM with weights `W: (hidden, visible)`:
//! `p(h=1|v) = σ(v Wᵀ + b_h)`, `p(v=1|h) = σ(h W + b_v)`.
//! CD-k: from data `v0`, `h0 = p(h|v0)`, sample `h`, reconstruct `v = p(v|h)`,
//! `h = p(h|v)`, k times; then
//! `ΔW = (h0ᵀ v0 - hkᵀ vk) / batch`, `Δb_v = mean(v0 - vk)`, `Δb_h = mean(h0 - hk)`,
//! applied with momentum and L2 weight decay (the guide's section 9-10).

use crate::data::Batcher;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::{Matrix, matmul_nn, matmul_nt, matmul_tn};
use std::sync::atomic::{AtomicBool, Ordering};

/// Training settings of one RBM. Defaults follow Hinton's guide for MNIST-like data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RbmConfig {
    /// Epochs over the data.
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    /// Momentum: 0.5 for the first 5 epochs, then this (the guide's schedule).
    pub momentum: f32,
    /// L2 weight decay on W.
    pub weight_decay: f32,
    /// Gibbs steps of CD-k.
    pub k: usize,
}

impl Default for RbmConfig {
    fn default() -> Self {
        RbmConfig {
            epochs: 5,
            batch: 100,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 2e-4,
            k: 1,
        }
    }
}

impl RbmConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::config("rbm.batch", 0, "must be at least 1"));
        }
        if self.k == 0 {
            return Err(Error::config("rbm.k", 0, "CD-k needs k >= 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::config("rbm.lr", self.lr, "must be positive"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::config(
                "rbm.momentum",
                self.momentum,
                "must be in [0, 1)",
            ));
        }
        Ok(())
    }
}

fn sigmoid_inplace(m: &mut Matrix) {
    m.data
        .iter_mut()
        .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
}

/// A Bernoulli-Bernoulli RBM.
pub struct Rbm {
    /// (hidden, visible)
    pub w: Matrix,
    /// (visible,)
    pub b_v: Vec<f32>,
    /// (hidden,)
    pub b_h: Vec<f32>,
    /// (hidden, visible): last ΔW (the gradient estimate, before the step)
    pub dw: Matrix,
    pub db_v: Vec<f32>,
    pub db_h: Vec<f32>,
    /// (hidden, visible): negative-phase statistics hkᵀ vk
    dw_neg: Matrix,
    vel_w: Matrix,
    vel_v: Vec<f32>,
    vel_h: Vec<f32>,
    /// (batch, hidden): p(h|v0)
    h0: Matrix,
    /// (batch, hidden): sampled h
    hs: Matrix,
    /// (batch, visible): reconstruction
    vk: Matrix,
    /// (batch, hidden): p(h|vk)
    hk: Matrix,
}

impl Rbm {
    /// Weights N(0, 0.01²), biases zero (the guide's section 8).
    pub fn new(visible: usize, hidden: usize, rng: &mut Rng) -> Self {
        let mut w = Matrix::zeros(hidden, visible);
        w.data.iter_mut().for_each(|v| *v = 0.01 * rng.normal());
        Rbm {
            w,
            b_v: vec![0.0; visible],
            b_h: vec![0.0; hidden],
            dw: Matrix::zeros(hidden, visible),
            db_v: vec![0.0; visible],
            db_h: vec![0.0; hidden],
            dw_neg: Matrix::zeros(hidden, visible),
            vel_w: Matrix::zeros(hidden, visible),
            vel_v: vec![0.0; visible],
            vel_h: vec![0.0; hidden],
            h0: Matrix::zeros(0, hidden),
            hs: Matrix::zeros(0, hidden),
            vk: Matrix::zeros(0, visible),
            hk: Matrix::zeros(0, hidden),
        }
    }

    pub fn visible(&self) -> usize {
        self.w.cols
    }
    pub fn hidden(&self) -> usize {
        self.w.rows
    }

    /// `h = σ(v Wᵀ + b_h)`.
    ///
    /// # Shapes
    /// `v: (batch, visible)`, `h: (batch, hidden)`.
    pub fn hidden_probs(&self, rt: &Runtime, v: &Matrix, h: &mut Matrix) {
        h.reshape_for(v.rows, self.hidden());
        crate::layers::broadcast_rows(h, &self.b_h);
        matmul_nt(rt, v, &self.w, h, true);
        sigmoid_inplace(h);
    }

    /// `v = σ(h W + b_v)`.
    ///
    /// # Shapes
    /// `h: (batch, hidden)`, `v: (batch, visible)`.
    pub fn visible_probs(&self, rt: &Runtime, h: &Matrix, v: &mut Matrix) {
        v.reshape_for(h.rows, self.visible());
        crate::layers::broadcast_rows(v, &self.b_v);
        matmul_nn(rt, h, &self.w, v, true);
        sigmoid_inplace(v);
    }

    /// The CD-k gradient estimate for a batch: fills `dw`, `db_v`, `db_h`. The first
    /// hidden sample is drawn from `p(h|v0)`, or taken from `h_sample` (so that a test
    /// can fix it); `rng` draws the others. Returns the mean squared reconstruction
    /// error.
    pub fn gradient(
        &mut self,
        rt: &Runtime,
        v0: &Matrix,
        h_sample: Option<&Matrix>,
        k: usize,
        rng: &mut Rng,
    ) -> f32 {
        let n = v0.rows as f32;
        let mut h0 = std::mem::take(&mut self.h0);
        let mut vk = std::mem::take(&mut self.vk);
        let mut hk = std::mem::take(&mut self.hk);
        let mut hs = std::mem::take(&mut self.hs);
        self.hidden_probs(rt, v0, &mut h0);
        match h_sample {
            Some(given) => {
                hs.reshape_for(given.rows, given.cols);
                hs.data.copy_from_slice(&given.data);
            }
            None => sample(&h0, &mut hs, rng),
        }
        for step in 0..k {
            if step > 0 {
                sample(&hk, &mut hs, rng);
            }
            self.visible_probs(rt, &hs, &mut vk);
            self.hidden_probs(rt, &vk, &mut hk);
        }
        // ΔW = (h0ᵀ v0 - hkᵀ vk) / n: positive phase in dw, negative phase in dw_neg
        matmul_tn(rt, &h0, v0, &mut self.dw, false);
        matmul_tn(rt, &hk, &vk, &mut self.dw_neg, false);
        for (d, &neg) in self.dw.data.iter_mut().zip(&self.dw_neg.data) {
            *d = (*d - neg) / n;
        }
        for j in 0..self.visible() {
            let mut s = 0.0;
            for r in 0..v0.rows {
                s += v0.data[r * self.visible() + j] - vk.data[r * self.visible() + j];
            }
            self.db_v[j] = s / n;
        }
        for j in 0..self.hidden() {
            let mut s = 0.0;
            for r in 0..v0.rows {
                s += h0.data[r * self.hidden() + j] - hk.data[r * self.hidden() + j];
            }
            self.db_h[j] = s / n;
        }
        let err = v0
            .data
            .iter()
            .zip(&vk.data)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / v0.data.len() as f32;
        self.h0 = h0;
        self.vk = vk;
        self.hk = hk;
        self.hs = hs;
        err
    }

    /// One CD-k step on a batch: sample `h ~ p(h|v0)`, estimate the gradient, and
    /// update with momentum and weight decay. Returns the reconstruction error.
    ///
    /// # Shapes
    /// `v0: (batch, visible)`.
    pub fn cd_step(
        &mut self,
        rt: &Runtime,
        v0: &Matrix,
        cfg: &RbmConfig,
        momentum: f32,
        rng: &mut Rng,
    ) -> f32 {
        let err = self.gradient(rt, v0, None, cfg.k, rng);
        let lr = cfg.lr;
        for ((vel, &g), w) in self
            .vel_w
            .data
            .iter_mut()
            .zip(&self.dw.data)
            .zip(self.w.data.iter_mut())
        {
            *vel = momentum * *vel + lr * (g - cfg.weight_decay * *w);
            *w += *vel;
        }
        for ((vel, &g), b) in self
            .vel_v
            .iter_mut()
            .zip(&self.db_v)
            .zip(self.b_v.iter_mut())
        {
            *vel = momentum * *vel + lr * g;
            *b += *vel;
        }
        for ((vel, &g), b) in self
            .vel_h
            .iter_mut()
            .zip(&self.db_h)
            .zip(self.b_h.iter_mut())
        {
            *vel = momentum * *vel + lr * g;
            *b += *vel;
        }
        err
    }

    /// Trains on `data` (rows in [0, 1]) for `cfg.epochs`, calling `epoch_done(epoch,
    /// mean reconstruction error)` after each. `stop`, when set (Ctrl-C), ends training
    /// after the current batch with [`Error::Interrupted`].
    pub fn train(
        &mut self,
        rt: &Runtime,
        data: &Matrix,
        cfg: &RbmConfig,
        rng: &mut Rng,
        stop: Option<&AtomicBool>,
        epoch_done: &mut dyn FnMut(usize, f32),
    ) -> Result<()> {
        cfg.validate()?;
        let mut batcher = Batcher::new(data.rows, data.cols, cfg.batch);
        for epoch in 0..cfg.epochs {
            batcher.shuffle(rng);
            let momentum = if epoch < 5 {
                0.5f32.min(cfg.momentum)
            } else {
                cfg.momentum
            };
            let (mut total, mut batches) = (0f64, 0usize);
            while batcher.next_rows(rt, data) {
                total += self.cd_step(rt, &batcher.x, cfg, momentum, rng) as f64;
                batches += 1;
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    return Err(Error::Interrupted(format!(
                        "interrupted in RBM epoch {}, after batch {batches}",
                        epoch + 1
                    )));
                }
            }
            let err = (total / batches.max(1) as f64) as f32;
            if !err.is_finite() {
                return Err(Error::Diverged {
                    epoch: epoch + 1,
                    batch: batches,
                    what: "the RBM reconstruction error".into(),
                    value: err,
                });
            }
            epoch_done(epoch + 1, err);
        }
        Ok(())
    }
}

/// `out = 1` with probability `p`, else 0, elementwise.
fn sample(p: &Matrix, out: &mut Matrix, rng: &mut Rng) {
    out.reshape_for(p.rows, p.cols);
    for (o, &q) in out.data.iter_mut().zip(&p.data) {
        *o = if rng.uniform() < q { 1.0 } else { 0.0 };
    }
}

/// Greedy layer-wise pre-training: an RBM on the data, then each next RBM on the
/// hidden probabilities of the one below; returns one RBM per entry of `hidden`.
/// `report(layer, epoch, error)` after each RBM epoch. `stop`, when set (Ctrl-C), ends
/// it after the current batch with [`Error::Interrupted`], naming the layer.
pub fn pretrain_stack(
    rt: &Runtime,
    data: &Matrix,
    hidden: &[usize],
    cfg: &RbmConfig,
    rng: &mut Rng,
    stop: Option<&AtomicBool>,
    report: &mut dyn FnMut(usize, usize, f32),
) -> Result<Vec<Rbm>> {
    // the layer below's hidden probabilities, the input of the next (the first layer
    // reads `data` itself: no copy of the training set)
    let mut below: Option<Matrix> = None;
    let mut stack = Vec::new();
    for (layer, &h) in hidden.iter().enumerate() {
        let input = below.as_ref().unwrap_or(data);
        let mut rbm = Rbm::new(input.cols, h, rng);
        rbm.train(rt, input, cfg, rng, stop, &mut |e, err| {
            report(layer, e, err)
        })
        .map_err(|e| match e {
            Error::Interrupted(msg) => Error::Interrupted(format!(
                "{} (pre-training layer {} of {})",
                msg,
                layer + 1,
                hidden.len()
            )),
            e => e,
        })?;
        if layer + 1 == hidden.len() {
            // the top layer feeds no other: its probabilities of the whole set (the
            // largest matrix of a DBN's pre-training) are not needed
            stack.push(rbm);
            break;
        }
        let mut next = Matrix::zeros(0, h);
        // hidden probabilities of the whole set, in chunks
        let mut out = Matrix::zeros(input.rows, h);
        let mut chunk = Matrix::zeros(0, input.cols);
        let mut start = 0;
        while start < input.rows {
            let n = 1000.min(input.rows - start);
            chunk.reshape_for(n, input.cols);
            chunk
                .data
                .copy_from_slice(&input.data[start * input.cols..(start + n) * input.cols]);
            rbm.hidden_probs(rt, &chunk, &mut next);
            out.data[start * h..(start + n) * h].copy_from_slice(&next.data);
            start += n;
        }
        below = Some(out);
        stack.push(rbm);
    }
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// CD-1 on a 2-visible, 1-hidden RBM with a fixed hidden sample, against the
    /// update worked out by hand.
    #[test]
    fn cd1_matches_hand_computation() {
        let mut rbm = Rbm::new(2, 1, &mut Rng::new(0));
        rbm.w.data = vec![0.5, -0.5];
        rbm.b_v = vec![0.1, -0.2];
        rbm.b_h = vec![0.3];
        let v0 = Matrix::from_vec(1, 2, vec![1.0, 0.0]);
        let hs = Matrix::from_vec(1, 1, vec![1.0]);
        rbm.gradient(&Runtime::single(), &v0, Some(&hs), 1, &mut Rng::new(0));
        // by hand:
        let h0 = sig(0.5 * 1.0 + 0.3); // p(h|v0)
        let v1 = [sig(0.5 + 0.1), sig(-0.5 - 0.2)]; // p(v|h=1)
        let h1 = sig(0.5 * v1[0] - 0.5 * v1[1] + 0.3); // p(h|v1)
        let dw = [h0 * 1.0 - h1 * v1[0], h0 * 0.0 - h1 * v1[1]];
        let dbv = [1.0 - v1[0], 0.0 - v1[1]];
        let dbh = h0 - h1;
        for j in 0..2 {
            assert!((rbm.dw.data[j] as f64 - dw[j]).abs() < 1e-6, "dw {j}");
            assert!((rbm.db_v[j] as f64 - dbv[j]).abs() < 1e-6, "dbv {j}");
        }
        assert!((rbm.db_h[0] as f64 - dbh).abs() < 1e-6);
    }
}
