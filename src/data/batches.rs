//! Seeded, shuffled minibatches copied into one reused buffer: no allocation per batch.

use crate::data::Dataset;
use crate::rng::Rng;
use crate::runtime::Runtime;
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
    ///
    /// # Shapes
    /// `x: (batch, features)` (the last batch may be shorter), `labels: (batch,)`.
    pub fn next_batch(&mut self, rt: &Runtime, data: &Dataset) -> bool {
        let from = self.pos;
        if !self.next_rows(rt, &data.images) {
            return false;
        }
        self.labels.clear();
        self.labels.extend(
            self.order[from..self.pos]
                .iter()
                .map(|&i| data.labels[i as usize]),
        );
        true
    }

    /// Copies the next batch of `images`' rows into `x` (`labels` is left empty), for
    /// training without labels (an RBM); false at the end of the epoch.
    ///
    /// # Shapes
    /// `images: (n, features)`; `x: (batch, features)` (the last batch may be shorter).
    pub fn next_rows(&mut self, rt: &Runtime, images: &Matrix) -> bool {
        let end = (self.pos + self.batch).min(self.order.len());
        if self.pos >= end {
            return false;
        }
        let f = images.cols;
        assert_eq!(
            f, self.x.cols,
            "Batcher: rows of {f} features, batches of {}",
            self.x.cols
        );
        let idx = &self.order[self.pos..end];
        self.x.set_rows(idx.len());
        self.labels.clear();
        // The rows are scattered over the whole training set, so the copy waits on
        // memory; two threads keep twice as many rows in flight.
        let rows = &mut self.x.data[..idx.len() * f];
        let copy = |rows: &mut [f32], idx: &[u32]| {
            for (row, &i) in rows.chunks_exact_mut(f).zip(idx) {
                row.copy_from_slice(images.row(i as usize));
            }
        };
        if rt.threads > 1 && idx.len() >= 32 {
            let half = idx.len() / 2;
            let (r0, r1) = rows.split_at_mut(half * f);
            crate::par::join(|| copy(r0, &idx[..half]), || copy(r1, &idx[half..]));
        } else {
            copy(rows, idx);
        }
        self.pos = end;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example exactly once per epoch, each row with its own label, in the
    /// shuffled order, the last batch short; the same with one thread or two.
    #[test]
    fn batches_hold_the_shuffled_examples() {
        let (n, f) = (253, 7);
        let data = Dataset {
            name: "rows".into(),
            images: Matrix::from_vec(n, f, (0..n * f).map(|v| v as f32).collect()),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            height: 1,
            width: f,
            class_names: (0..10).map(|c| c.to_string()).collect(),
        };
        for threads in [1, 2] {
            let rt = Runtime::single().with_threads(threads);
            let mut b = Batcher::new(n, f, 50);
            b.shuffle(&mut Rng::new(3));
            let order = b.order().to_vec();
            let mut seen = Vec::new();
            while b.next_batch(&rt, &data) {
                for (r, &label) in b.labels.iter().enumerate() {
                    let i = b.x.data[r * f] as usize / f;
                    let want: Vec<f32> = (i * f..(i + 1) * f).map(|v| v as f32).collect();
                    assert_eq!(&b.x.data[r * f..(r + 1) * f], &want[..]);
                    assert_eq!(label, data.labels[i]);
                    seen.push(i as u32);
                }
            }
            assert_eq!(seen, order, "{threads} threads");
            assert_eq!(b.x.rows, 3); // 253 = 5 x 50 + 3
            // rows without labels (an RBM's batches): the same rows, in the same order
            let mut rows = Batcher::new(n, f, 50);
            rows.shuffle(&mut Rng::new(3));
            b.rewind();
            while b.next_batch(&rt, &data) {
                assert!(rows.next_rows(&rt, &data.images));
                assert_eq!(rows.x, b.x);
                assert!(rows.labels.is_empty());
            }
            assert!(!rows.next_rows(&rt, &data.images));
        }
    }
}
