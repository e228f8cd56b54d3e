//! Early stopping, as Keras' `EarlyStopping(monitor="val_loss")`: training stops when
//! the validation loss has not improved for `patience` epochs, and with `restore_best`
//! the run ends with the best epoch's weights (also when it ran all its epochs).
//!
//! Whether a run has stopped is read from its history alone, so a resumed run stops
//! where the uninterrupted one did; the best epoch's weights travel in the checkpoint.

use super::EpochStats;
use crate::error::{Error, Result};
use crate::layers::Layer;

/// `[early_stop]` in a config; `--patience N` and `--restore-best` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStop {
    /// Epochs without a lower validation loss before training stops (at least 1).
    pub patience: usize,
    /// Go back to the weights of the epoch with the lowest validation loss.
    #[serde(default)]
    pub restore_best: bool,
}

impl EarlyStop {
    pub fn validate(&self, validation: usize) -> Result<()> {
        if self.patience == 0 {
            return Err(Error::config(
                "early_stop.patience",
                0,
                "must be at least 1 epoch",
            ));
        }
        if validation == 0 {
            return Err(Error::config(
                "validation",
                0,
                "early stopping watches the validation loss: hold out some training images (e.g. 5000)",
            ));
        }
        Ok(())
    }

    /// Whether the run whose epochs are `history` has stopped: the best epoch (1-based)
    /// when `patience` epochs have passed since it without a lower validation loss.
    pub fn stopped_at(&self, history: &[EpochStats]) -> Option<usize> {
        let (best, _) = best_epoch(history)?;
        (history.len() - best >= self.patience).then_some(best)
    }
}

/// The epoch (1-based) with the lowest validation loss, and that loss; the first of
/// equals, as Keras keeps the first.
pub fn best_epoch(history: &[EpochStats]) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for h in history {
        // a NaN loss is never the best (Keras starts from infinity and compares)
        if let Some(l) = h.val_loss.filter(|l| !l.is_nan())
            && best.is_none_or(|(_, b)| l < b)
        {
            best = Some((h.epoch, l));
        }
    }
    best
}

/// The net's parameters and buffers (batch norm's running statistics) at one epoch,
/// in visiting order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// 1-based.
    pub epoch: usize,
    pub values: Vec<Vec<f32>>,
}

impl Snapshot {
    pub fn take(net: &mut dyn Layer, epoch: usize) -> Snapshot {
        let mut values = Vec::new();
        net.visit_params(&mut |p| values.push(p.value.to_vec()));
        net.visit_buffers(&mut |_, b| values.push(b.to_vec()));
        Snapshot { epoch, values }
    }

    /// Keeps `net`'s values at `epoch` in `slot`: copied into the snapshot already
    /// there (no allocation after the first), else taken.
    pub fn keep(slot: &mut Option<Snapshot>, net: &mut dyn Layer, epoch: usize) {
        match slot {
            Some(s) => {
                let mut it = s.values.iter_mut();
                net.visit_params(&mut |p| it.next().expect("same net").copy_from_slice(p.value));
                net.visit_buffers(&mut |_, b| it.next().expect("same net").copy_from_slice(b));
                s.epoch = epoch;
            }
            None => *slot = Some(Snapshot::take(net, epoch)),
        }
    }

    /// The length of each tensor a snapshot of `net` holds, in visiting order.
    pub fn lengths(net: &mut dyn Layer) -> Vec<usize> {
        let mut v = Vec::new();
        net.visit_params(&mut |p| v.push(p.value.len()));
        net.visit_buffers(&mut |_, b| v.push(b.len()));
        v
    }

    /// Puts the values back into `net` (the same net the snapshot was taken of).
    pub fn restore(&self, net: &mut dyn Layer) {
        let mut it = self.values.iter();
        net.visit_params(&mut |p| p.value.copy_from_slice(it.next().expect("same net")));
        net.visit_buffers(&mut |_, b| b.copy_from_slice(it.next().expect("same net")));
    }
}
