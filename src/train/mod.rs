//! The training loop: epochs of seeded, shuffled minibatches, the lecture's per-epoch
//! cost, validation/test accuracy after each epoch, and divergence detection.
//! Printing is the caller's business (an observer sees each epoch).

pub mod checkpoint;
pub mod early_stop;
pub mod threads;

use crate::config::TrainConfig;
use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::runtime::Runtime;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What one epoch did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean of the epoch's batch losses (the lecture's `cost`).
    pub cost: f32,
    /// Training accuracy: over the whole training set in evaluation mode when
    /// `eval_train` is set, else the running accuracy of the epoch's training batches.
    pub train_acc: f32,
    pub val_acc: Option<f32>,
    pub val_loss: Option<f32>,
    pub test_acc: Option<f32>,
    pub lr: f32,
    /// Wall time of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
}

/// Sees training as it happens (for progress bars, printing, reports).
pub trait Observer {
    /// After each RBM pre-training epoch: hidden layer (0-based), epoch, mean
    /// reconstruction error.
    fn pretrain(&mut self, _layer: usize, _epoch: usize, _error: f32) {}
    /// After each batch.
    fn batch(&mut self, _progress: &BatchProgress) {}
    /// After each epoch.
    fn epoch(&mut self, stats: &EpochStats);
}

/// Where an epoch stands after a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchProgress {
    /// 1-based.
    pub epoch: usize,
    /// Batches done in this epoch, and how many it has.
    pub done: usize,
    pub total: usize,
    /// Mean loss of the epoch's batches so far (what the epoch's cost will be).
    pub loss: f32,
    /// Share of the epoch's training examples so far classified right (in training
    /// mode: with dropout on).
    pub accuracy: f32,
}

/// An observer from a closure over epochs.
impl<F: FnMut(&EpochStats)> Observer for F {
    fn epoch(&mut self, stats: &EpochStats) {
        self(stats)
    }
}

/// Data for a run: training set, and optionally validation and test sets that are
/// evaluated after every epoch.
pub struct RunData<'a> {
    pub train: &'a Dataset,
    pub val: Option<&'a Dataset>,
    pub test: Option<&'a Dataset>,
}

/// A trainer: the model, its optimiser, the run's one RNG, and the runtime it
/// computes with.
pub struct Trainer {
    pub cfg: TrainConfig,
    /// How training uses the machine; not part of the run's identity (see `runtime`:
    /// any thread count or SIMD level gives the same bits).
    pub rt: Runtime,
    pub model: Model,
    pub opt: Optimizer,
    pub rng: Rng,
    pub history: Vec<EpochStats>,
    /// When set, a checkpoint is written to this folder after every epoch.
    pub checkpoint: Option<(std::path::PathBuf, crate::io::ModelMeta)>,
    /// With early stopping's `restore_best`: the weights of the best epoch so far.
    pub best: Option<early_stop::Snapshot>,
}

impl Trainer {
    /// Builds the model from `cfg` (initial weights from the seed) for examples of
    /// shape `input` (`Dataset::shape`) and `classes` classes, to train under `rt`.
    pub fn new(
        cfg: &TrainConfig,
        input: impl Into<crate::layers::Features>,
        classes: usize,
        rt: Runtime,
    ) -> Result<Trainer> {
        cfg.validate()?;
        let input = input.into();
        crate::memory::check_fits(
            "training this net",
            crate::footprint::run_bytes(cfg, input, classes, rt.threads)?,
            "use fewer or narrower layers, or a smaller batch",
        )?;
        let mut rng = Rng::new(cfg.seed);
        let mut model = Model::build(&cfg.model, input, classes, &mut rng)?;
        let opt = Optimizer::new(cfg.optimizer.clone(), &mut model.net);
        Ok(Trainer {
            cfg: cfg.clone(),
            rt,
            model,
            opt,
            rng,
            history: Vec::new(),
            checkpoint: None,
            best: None,
        })
    }

    /// Greedy RBM pre-training of the hidden layers (a Deep Belief Net), then copies
    /// the stack into the network; fine-tuning is the ordinary training that follows.
    /// `stop`, when set (Ctrl-C), ends it after the current batch.
    pub fn pretrain(
        &mut self,
        train: &Dataset,
        stop: Option<&AtomicBool>,
        observe: &mut dyn Observer,
    ) -> Result<()> {
        let rcfg = crate::rbm::RbmConfig {
            epochs: self.cfg.model.pretrain_epochs,
            ..Default::default()
        };
        let stack = crate::rbm::pretrain_stack(
            &self.rt,
            &train.images,
            &self.cfg.model.hidden,
            &rcfg,
            &mut self.rng,
            stop,
            &mut |l, e, err| observe.pretrain(l, e, err),
        )?;
        self.model.load_rbm_stack(&stack);
        Ok(())
    }

    /// The best epoch (1-based) when early stopping has ended the run.
    pub fn stopped_early(&self) -> Option<usize> {
        self.cfg.early_stop?.stopped_at(&self.history)
    }

    /// Trains for the remaining epochs of `cfg.epochs`, calling `observe` after each,
    /// or until early stopping ends the run; with `restore_best` the best epoch's
    /// weights are put back at the end (as Keras does). `stop`, when set (Ctrl-C), ends training after the
    /// current batch.
    pub fn fit(
        &mut self,
        data: &RunData<'_>,
        stop: Option<&AtomicBool>,
        observe: &mut dyn Observer,
    ) -> Result<()> {
        let train = data.train;
        let rt = self.rt;
        let _fp = rt.enter();
        if train.features() != self.model.in_dim || train.classes() > self.model.classes {
            return Err(Error::Shape {
                op: "train",
                expected: format!(
                    "{} features, at most {} classes",
                    self.model.in_dim, self.model.classes
                ),
                got: format!(
                    "{} features, {} classes in {}",
                    train.features(),
                    train.classes(),
                    train.name
                ),
            });
        }
        if self.cfg.early_stop.is_some() && data.val.is_none() {
            return Err(Error::config(
                "validation",
                0,
                "early stopping watches the validation loss: hold out some training images",
            ));
        }
        if self.cfg.model.pretrain_epochs > 0 && self.history.is_empty() {
            self.pretrain(train, stop, observe)?;
        }
        let mut batcher = Batcher::new(train.len(), train.features(), self.cfg.batch);
        let mut scratch = crate::data::augment::Scratch::default();
        let batches = batcher.batches_per_epoch();
        let mut tuner = threads::ThreadTuner::new(&rt);
        for epoch in self.history.len()..self.cfg.epochs {
            if self.stopped_early().is_some() {
                break;
            }
            let lr = self
                .cfg
                .optimizer
                .schedule
                .lr(self.cfg.optimizer.lr, epoch, self.cfg.epochs);
            batcher.shuffle(&mut self.rng);
            let start = Instant::now();
            let mut cost = 0f64;
            let mut correct = 0usize;
            let mut seen = 0usize;
            let mut b = 0;
            let mut step_start = Instant::now();
            loop {
                // this step's thread count (the bits do not depend on it)
                let rt = tuner.runtime(&rt);
                if !batcher.next_batch(&rt, train) {
                    break;
                }
                if let Some(a) = &self.cfg.augment {
                    let seed = self.rng.next_u64();
                    let (h, w) = (train.height, train.width);
                    a.apply(&rt, seed, h, w, &mut batcher.x, &mut scratch);
                }
                let (loss, ok) = self.model.train_step(
                    &batcher.x,
                    &batcher.labels,
                    &mut self.opt,
                    lr,
                    &mut self.rng,
                    &rt,
                );
                if !loss.is_finite() {
                    return Err(Error::Diverged {
                        epoch: epoch + 1,
                        batch: b + 1,
                        what: "the loss".into(),
                        value: loss,
                    });
                }
                cost += loss as f64 / batches as f64;
                correct += ok;
                b += 1;
                seen += batcher.x.rows;
                observe.batch(&BatchProgress {
                    epoch: epoch + 1,
                    done: b,
                    total: batches,
                    loss: (cost * batches as f64 / b as f64) as f32,
                    accuracy: correct as f32 / seen as f32,
                });
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    return Err(Error::Interrupted(format!(
                        "interrupted in epoch {} after batch {b}",
                        epoch + 1
                    )));
                }
                let now = Instant::now();
                tuner.record((now - step_start).as_secs_f64());
                step_start = now;
            }
            let seconds = start.elapsed().as_secs_f64();
            if let Err((what, value)) = self.model.check_finite() {
                return Err(Error::Diverged {
                    epoch: epoch + 1,
                    batch: b,
                    what,
                    value,
                });
            }
            let train_acc = if self.cfg.eval_train {
                self.model.evaluate(train, &rt).accuracy
            } else {
                correct as f32 / train.len() as f32
            };
            let val = data.val.map(|v| self.model.evaluate(v, &rt));
            let test_acc = data.test.map(|t| self.model.evaluate(t, &rt).accuracy);
            let stats = EpochStats {
                epoch: epoch + 1,
                cost: cost as f32,
                train_acc,
                val_acc: val.as_ref().map(|v| v.accuracy),
                val_loss: val.as_ref().map(|v| v.loss),
                test_acc,
                lr,
                seconds,
            };
            self.history.push(stats.clone());
            if self.cfg.early_stop.is_some_and(|e| e.restore_best)
                && early_stop::best_epoch(&self.history).is_some_and(|(b, _)| b == epoch + 1)
            {
                early_stop::Snapshot::keep(&mut self.best, &mut self.model.net, epoch + 1);
            }
            if let Some((dir, meta)) = self.checkpoint.take() {
                let res = checkpoint::save_checkpoint(&dir, self, &meta);
                self.checkpoint = Some((dir, meta));
                res?;
            }
            observe.epoch(&stats);
        }
        if let Some(best) = self.restored_epoch()
            && let Some(snap) = &self.best
        {
            debug_assert_eq!(snap.epoch, best);
            snap.restore(&mut self.model.net);
        }
        Ok(())
    }

    /// With `restore_best`: the best epoch (1-based) when its weights are not the last
    /// epoch's, so the run ends with them (whether or not it stopped early).
    pub fn restored_epoch(&self) -> Option<usize> {
        let e = self.cfg.early_stop?;
        let (best, _) = early_stop::best_epoch(&self.history)?;
        (e.restore_best && best < self.history.len() && self.best.is_some()).then_some(best)
    }

    /// Lets go of the buffers that training and evaluation grew (each layer's outputs
    /// and gradients at their largest batch: a gigabyte for a CNN evaluated in batches
    /// of 1000) by rebuilding the net and copying its values (parameters, batch norm's
    /// statistics) across: the same bits out, for a finished model that waits while
    /// others train. The optimiser's state stays. The copy is not checked against the
    /// memory free at the moment (it needs less than it frees), so a member that has
    /// trained is never lost to a refusal here.
    pub fn release_buffers(&mut self) -> Result<()> {
        let values = early_stop::Snapshot::take(&mut self.model.net, 0);
        let m = &self.model;
        let mut lean = Model::assemble(&m.config, m.input, m.classes, &mut Rng::new(0))?;
        values.restore(&mut lean.net);
        self.model = lean;
        Ok(())
    }
}
