//! Softmax cross-entropy on logits, fused with its gradient (TensorFlow's
//! `softmax_cross_entropy_with_logits`, averaged over the batch).
//!
//! Forward, per row: `p = softmax(z)`, `L = -log p_label = logsumexp(z) - z_label`,
//! computed with the row maximum subtracted first, so logits in the hundreds (lab
//! 10-1's first steps) give finite losses. Backward: `dL/dz = (p - onehot) / batch`.

use crate::tensor::Matrix;

/// Mean cross-entropy of `logits` against `labels`, and writes `dlogits`.
///
/// # Shapes
/// `logits, dlogits: (batch, classes)`, `labels: (batch,)`.
pub fn softmax_cross_entropy(logits: &Matrix, labels: &[u8], dlogits: &mut Matrix) -> f32 {
    let (batch, classes) = logits.shape();
    debug_assert_eq!(labels.len(), batch);
    dlogits.reshape_for(batch, classes);
    let inv_batch = 1.0 / batch as f32;
    let mut total = 0f64;
    for (r, &label) in labels.iter().enumerate() {
        let z = logits.row(r);
        let d = dlogits.row_mut(r);
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f32;
        for (d, &v) in d.iter_mut().zip(z) {
            *d = (v - max).exp();
            sum += *d;
        }
        let label = label as usize;
        // L = log Σ e^(z - max) - (z_label - max)
        total += (sum.ln() - (z[label] - max)) as f64;
        let inv_sum = 1.0 / sum;
        for d in d.iter_mut() {
            *d *= inv_sum * inv_batch; // p / batch
        }
        d[label] -= inv_batch; // (p - 1) / batch at the label
    }
    (total / batch as f64) as f32
}

/// Row-wise softmax of `logits` into `probs` (for predictions and ensembles).
///
/// # Shapes
/// `logits, probs: (batch, classes)`.
pub fn softmax(logits: &Matrix, probs: &mut Matrix) {
    probs.reshape_for(logits.rows, logits.cols);
    for r in 0..logits.rows {
        let z = logits.row(r);
        let p = probs.row_mut(r);
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f32;
        for (p, &v) in p.iter_mut().zip(z) {
            *p = (v - max).exp();
            sum += *p;
        }
        p.iter_mut().for_each(|p| *p /= sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_definition_and_is_stable() {
        let logits = Matrix::from_vec(2, 3, vec![1.0, 2.0, 3.0, 500.0, -300.0, 0.0]);
        let mut d = Matrix::zeros(2, 3);
        let loss = softmax_cross_entropy(&logits, &[2, 1], &mut d);
        // row 0: -log softmax(z)_2 = log(e^1+e^2+e^3) - 3
        let l0 = ((1f64).exp() + (2f64).exp() + (3f64).exp()).ln() - 3.0;
        let l1 = 800.0; // logsumexp ≈ 500, minus z_1 = -300
        assert!((loss as f64 - (l0 + l1) / 2.0).abs() < 1e-3, "{loss}");
        assert!(d.data.iter().all(|v| v.is_finite()));
        // gradients of each row sum to zero
        for r in 0..2 {
            assert!(d.row(r).iter().sum::<f32>().abs() < 1e-6);
        }
    }
}
