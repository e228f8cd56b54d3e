//! Optimisers: SGD, momentum, Nesterov, Adam and AdamW, with coupled L2 and a
//! learning-rate schedule. State (momentum buffers, Adam moments) is allocated once,
//! in `Optimizer::new`, in the order the model visits its parameters.

pub mod adam;
pub mod schedule;
pub mod sgd;

pub use adam::{AdamStep, adam_update};
pub use schedule::Schedule;
pub use sgd::{momentum_update, sgd_update};

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::runtime::Runtime;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    AdamW,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "sgd" => OptimizerKind::Sgd,
            "momentum" => OptimizerKind::Momentum,
            "nesterov" => OptimizerKind::Nesterov,
            "adam" => OptimizerKind::Adam,
            "adamw" => OptimizerKind::AdamW,
            _ => {
                return Err(Error::UnknownName {
                    kind: "optimizer",
                    name: s.to_string(),
                    options: "sgd, momentum, nesterov, adam, adamw".into(),
                });
            }
        })
    }
}

/// Optimiser settings. Defaults are Adam's from Kingma & Ba (and the lecture).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f32,
    /// Momentum coefficient μ (momentum, nesterov).
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Coupled L2 penalty λ: adds λ·w to each weight's gradient (not biases).
    pub l2: f32,
    /// Decoupled weight decay (AdamW only).
    pub weight_decay: f32,
    pub schedule: Schedule,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimizerKind::Adam,
            lr: 0.001,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            l2: 0.0,
            weight_decay: 0.01,
            schedule: Schedule::Constant,
        }
    }
}

impl OptimConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let pos = |name: &str, v: f32| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::config(name, v, "must be a positive finite number"))
            }
        };
        let unit = |name: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(name, v, "must be in [0, 1)"))
            }
        };
        let nonneg = |name: &str, v: f32| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::config(name, v, "must be zero or positive"))
            }
        };
        pos("optimizer.lr", self.lr)?;
        unit("optimizer.momentum", self.momentum)?;
        unit("optimizer.beta1", self.beta1)?;
        unit("optimizer.beta2", self.beta2)?;
        pos("optimizer.eps", self.eps)?;
        nonneg("optimizer.l2", self.l2)?;
        nonneg("optimizer.weight_decay", self.weight_decay)?;
        if let Schedule::Cosine { min_lr } = self.schedule
            && !(0.0..=self.lr).contains(&min_lr)
        {
            return Err(Error::config(
                "optimizer.schedule",
                self.schedule,
                format!(
                    "the cosine schedule's floor must be in [0, lr = {}]: the rate falls \
                     from lr to the floor",
                    self.lr
                ),
            ));
        }
        Ok(())
    }
}

/// Elements per parallel chunk of an update. Updates are elementwise, so splitting a
/// buffer across threads gives the same bits as one pass.
const CHUNK: usize = 16 * 1024;

/// Applies `f` to matching pieces of `p`, `g` and the state buffers, cut into one
/// piece per thread of `rt` (recursive halves, `par::join`) while they are large (no
/// allocation). `m`/`v` may be empty (state the update does not use).
fn par_update<F>(rt: &Runtime, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], f: &F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    split_update(rt.threads, p, g, m, v, f)
}

/// `par_update` within a budget of `pieces` threads.
fn split_update<F>(pieces: usize, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], f: &F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    let n = p.len();
    if n < 2 * CHUNK || pieces <= 1 {
        return f(p, g, m, v);
    }
    let half = pieces / 2;
    // cut in proportion to the pieces each side gets, on a chunk boundary
    let mid = (n * half / pieces).div_ceil(CHUNK) * CHUNK;
    let (p1, p2) = p.split_at_mut(mid);
    let (g1, g2) = g.split_at(mid);
    let (m1, m2) = if m.is_empty() {
        (&mut [][..], &mut [][..])
    } else {
        m.split_at_mut(mid)
    };
    let (v1, v2) = if v.is_empty() {
        (&mut [][..], &mut [][..])
    } else {
        v.split_at_mut(mid)
    };
    crate::par::join(
        || split_update(half, p1, g1, m1, v1, f),
        || split_update(pieces - half, p2, g2, m2, v2, f),
    );
}

/// An optimiser with its per-parameter state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optimizer {
    pub cfg: OptimConfig,
    /// Steps taken so far.
    pub t: u64,
    /// First moment (Adam) or momentum buffer, one per parameter tensor.
    pub m: Vec<Vec<f32>>,
    /// Second moment (Adam), one per parameter tensor.
    pub v: Vec<Vec<f32>>,
}

impl Optimizer {
    /// Allocates state for every parameter of `model`.
    pub fn new(cfg: OptimConfig, model: &mut dyn Layer) -> Self {
        let mut sizes = Vec::new();
        model.visit_params(&mut |p| sizes.push(p.value.len()));
        let needs_m = cfg.kind != OptimizerKind::Sgd;
        let needs_v = matches!(cfg.kind, OptimizerKind::Adam | OptimizerKind::AdamW);
        let alloc = |on: bool| -> Vec<Vec<f32>> {
            sizes
                .iter()
                .map(|&n| vec![0.0; if on { n } else { 0 }])
                .collect()
        };
        Optimizer {
            m: alloc(needs_m),
            v: alloc(needs_v),
            cfg,
            t: 0,
        }
    }

    /// One update of every parameter from its gradient, at learning rate `lr`.
    pub fn step(&mut self, model: &mut dyn Layer, lr: f32, rt: &Runtime) {
        let _timer = crate::timers::Timer::start(&crate::timers::OPTIMISER);
        self.update(model, lr, rt);
    }

    fn update(&mut self, model: &mut dyn Layer, lr: f32, rt: &Runtime) {
        self.t += 1;
        let cfg = &self.cfg;
        let t = self.t;
        let (ms, vs) = (&mut self.m, &mut self.v);
        let mut i = 0;
        model.visit_params(&mut |p| {
            let l2 = if p.decay { cfg.l2 } else { 0.0 };
            match cfg.kind {
                OptimizerKind::Sgd => {
                    par_update(rt, p.value, p.grad, &mut [], &mut [], &|p, g, _, _| {
                        sgd_update(p, g, lr, l2)
                    })
                }
                OptimizerKind::Momentum | OptimizerKind::Nesterov => {
                    let nesterov = cfg.kind == OptimizerKind::Nesterov;
                    par_update(rt, p.value, p.grad, &mut ms[i], &mut [], &|p, g, m, _| {
                        momentum_update(p, g, m, lr, cfg.momentum, nesterov, l2)
                    })
                }
                OptimizerKind::Adam | OptimizerKind::AdamW => {
                    let wd = if cfg.kind == OptimizerKind::AdamW && p.decay {
                        cfg.weight_decay
                    } else {
                        0.0
                    };
                    let s = AdamStep {
                        lr,
                        beta1: cfg.beta1,
                        beta2: cfg.beta2,
                        eps: cfg.eps,
                        t,
                        l2,
                        weight_decay: wd,
                    };
                    par_update(
                        rt,
                        p.value,
                        p.grad,
                        &mut ms[i],
                        &mut vs[i],
                        &|p, g, m, v| adam_update(rt.simd, p, g, m, v, s),
                    )
                }
            }
            i += 1;
        });
    }
}
