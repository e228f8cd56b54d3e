//! Ensembles (the lecture's last fix for overfitting): several models trained from
//! different seeds, combined by averaging their predicted probabilities or by a
//! majority vote of their predicted classes.

use crate::config::TrainConfig;
use crate::error::Result;
use crate::runtime::Runtime;
use crate::tensor::Matrix;
use crate::train::{EpochStats, RunData, Trainer};
use std::sync::atomic::AtomicBool;

/// Mean of the members' probability matrices.
///
/// # Shapes
/// each `probs[i]: (n, classes)` -> `(n, classes)`.
pub fn average(probs: &[Matrix]) -> Matrix {
    let mut out = Matrix::zeros(probs[0].rows, probs[0].cols);
    for p in probs {
        for (o, &v) in out.data.iter_mut().zip(&p.data) {
            *o += v;
        }
    }
    let k = 1.0 / probs.len() as f32;
    out.data.iter_mut().for_each(|v| *v *= k);
    out
}

/// Class of the largest value in each row.
pub fn argmax_rows(m: &Matrix) -> Vec<u8> {
    (0..m.rows).map(|r| m.argmax_row(r) as u8).collect()
}

/// Majority vote of the members' predicted classes; ties go to the class with the
/// larger averaged probability (`avg`).
pub fn vote(predictions: &[Vec<u8>], avg: &Matrix) -> Vec<u8> {
    let classes = avg.cols;
    let mut counts = vec![0u32; classes];
    (0..avg.rows)
        .map(|r| {
            counts.fill(0);
            for p in predictions {
                counts[p[r] as usize] += 1;
            }
            let best = *counts.iter().max().expect("classes > 0");
            let row = avg.row(r);
            (0..classes)
                .filter(|&c| counts[c] == best)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("one class has the most votes") as u8
        })
        .collect()
}

/// What a caller of [`train_members`] hears and says while the members train.
#[derive(Clone, Copy)]
pub struct Hooks<'a> {
    /// Set (by a signal's handler) to end the run after the members' current batches.
    pub stop: Option<&'a AtomicBool>,
    /// Called after each of member `i`'s epochs.
    pub epoch: &'a (dyn Fn(usize, &EpochStats) + Sync),
    /// Called as member `i` finishes, before it lets go of its buffers; an error ends
    /// the run.
    pub done: &'a (dyn Fn(usize, &mut Trainer) -> Result<()> + Sync),
}

/// Trains `members` copies of `cfg` with seeds `cfg.seed, cfg.seed + 1, ...`.
/// With `parallel`, members train at the same time, one thread each, on a pool of
/// `rt.threads` threads; otherwise one after another, each with all of `rt`'s threads.
/// Either way each member's weights are the same bits. `hooks.stop` ends the run
/// after the members' current batches, with [`crate::error::Error::Interrupted`];
/// `hooks.done` sees each member as it finishes (to report, evaluate or save it while
/// the others train); then the member lets go of its working buffers
/// (`Trainer::release_buffers`), so finished members hold only their values (and,
/// with early stopping's `restore_best`, the best epoch's snapshot).
pub fn train_members(
    cfg: &TrainConfig,
    members: usize,
    data: &RunData<'_>,
    rt: &Runtime,
    parallel: bool,
    hooks: Hooks<'_>,
) -> Result<Vec<Trainer>> {
    let Hooks { stop, epoch, done } = hooks;
    if members == 0 {
        return Ok(Vec::new());
    }
    use rayon::prelude::*;
    let input = data.train.shape();
    let classes = data.train.classes();
    let member_rt = if parallel { rt.with_threads(1) } else { *rt };
    // how many members hold their training buffers at once
    let at_once = if parallel {
        rt.threads.clamp(1, members)
    } else {
        1
    };
    crate::memory::check_fits(
        &format!("an ensemble of {members} members"),
        crate::footprint::ensemble_bytes(cfg, input, classes, members, at_once, member_rt.threads)?,
        "train fewer members, or smaller ones",
    )?;
    let one = |i: usize| -> Result<Trainer> {
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(crate::error::Error::Interrupted(format!(
                "interrupted before member {i} began"
            )));
        }
        let mut c = cfg.clone();
        c.seed = cfg.seed.wrapping_add(i as u64);
        let mut t = Trainer::new(&c, input, classes, member_rt)?;
        t.fit(data, stop, &mut |s: &EpochStats| epoch(i, s))?;
        done(i, &mut t)?;
        t.release_buffers()?;
        Ok(t)
    };
    if parallel {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(rt.threads.max(1))
            .build()
            .map_err(|e| crate::error::Error::Interrupted(format!("cannot start threads: {e}")))?;
        pool.install(|| (0..members).into_par_iter().map(one).collect())
    } else {
        (0..members).map(one).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_and_vote() {
        let a = Matrix::from_vec(2, 3, vec![0.6, 0.3, 0.1, 0.2, 0.5, 0.3]);
        let b = Matrix::from_vec(2, 3, vec![0.1, 0.8, 0.1, 0.3, 0.3, 0.4]);
        let c = Matrix::from_vec(2, 3, vec![0.5, 0.4, 0.1, 0.1, 0.2, 0.7]);
        let avg = average(&[a.clone(), b.clone(), c.clone()]);
        assert!((avg.data[1] - 0.5).abs() < 1e-6);
        assert_eq!(argmax_rows(&avg), vec![1, 2]);
        let preds = vec![argmax_rows(&a), argmax_rows(&b), argmax_rows(&c)];
        // row 0: votes 0, 1, 0 -> 0 (majority beats the average's 1)
        // row 1: votes 1, 2, 2 -> 2
        assert_eq!(vote(&preds, &avg), vec![0, 2]);
        // a tie (one vote each) goes to the larger averaged probability
        let tie = vote(&[vec![0], vec![1]], &Matrix::from_vec(1, 2, vec![0.3, 0.7]));
        assert_eq!(tie, vec![1]);
    }
}
