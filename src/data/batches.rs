//! Seeded, shuffled minibatches copied into one reused buffer: no allocation per batch.

use crate::data::Dataset;
use crate::rng::Rng;
use crate::tensor::Matrix;

/// Iterates over a dataset in shuffled minibatches.
///
/// # Shapes
/// `x: (batch, features)` (the last batch of an epoch may have fewer rows),
/// `labels: (batch,)`.
#[derive(Clone, Debug)]
pub struct Batcher {
    order: Vec<u32>,
    pos: usize,
    batch: usize,
    /// The current batch's inputs.
    pub x: Matrix,
    /// The current batch's labels.
    pub labels: Vec<u8>,
}

impl Batcher {
    /// A batcher over `n` examples of `features` each, in batches of `batch`,
    /// in order until `shuffle` is called.
    pub fn new(n: usize, features: usize, batch: usize) -> Self {
        assert!(batch > 0, "Batcher: batch must be positive");
        Batcher {
            order: (0..n as u32).collect(),
            pos: 0,
            batch,
            x: Matrix::zeros(batch, features),
            labels: Vec::with_capacity(batch),
        }
    }

    /// Starts a new epoch in a fresh random order.
    pub fn shuffle(&mut self, rng: &mut Rng) {
        self.order.sort_unstable();
        rng.shuffle(&mut self.order);
        self.pos = 0;
    }

    /// Starts a new epoch in the current order (for evaluation).
    pub fn rewind(&mut self) {
        self.pos = 0;
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }

    /// The example indices of the current order.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Copies the next batch into `x` and `labels`; false at the end of the epoch.
    pub fn next_batch(&mut self, data: &Dataset) -> bool {
        let end = (self.pos + self.batch).min(self.order.len());
        if self.pos >= end {
            return false;
        }
        let f = data.features();
        self.x.set_rows(end - self.pos);
        self.labels.clear();
        for (r, &i) in self.order[self.pos..end].iter().enumerate() {
            let i = i as usize;
            self.x.data[r * f..(r + 1) * f].copy_from_slice(&data.images.data[i * f..(i + 1) * f]);
            self.labels.push(data.labels[i]);
        }
        self.pos = end;
        true
    }
}
