//! Adam (Kingma & Ba 2014, "Adam: a method for stochastic optimization", Algorithm 1)
//! and AdamW (Loshchilov & Hutter 2019, decoupled weight decay), in PyTorch's form:
//!
//! ```text
//! g  = grad + l2·p                    (coupled L2, optional)
//! m  = β1·m + (1-β1)·g
//! v  = β2·v + (1-β2)·g²
//! p -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
//! ```
//! AdamW first shrinks `p *= 1 - lr·wd`. One pass over each parameter buffer.

/// Hyper-parameters of one Adam step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Step number, starting at 1.
    pub t: u64,
    /// Coupled L2 coefficient (added to the gradient).
    pub l2: f32,
    /// Decoupled weight decay (AdamW); 0 for Adam.
    pub weight_decay: f32,
}

crate::simd::simd_fn! {
    /// One Adam/AdamW update of `p` in place, vectorised at `level`.
    ///
    /// # Shapes
    /// `p, g, m, v: (n,)`.
    pub fn adam_update(level: Level, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
        let bc1 = 1.0 - (s.beta1 as f64).powi(s.t as i32);
        let bc2 = 1.0 - (s.beta2 as f64).powi(s.t as i32);
        let step_size = (s.lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let decay = 1.0 - s.lr * s.weight_decay;
        let (b1, b2, eps, l2) = (s.beta1, s.beta2, s.eps, s.l2);
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g + l2 * *p;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let denom = v.sqrt() * inv_sqrt_bc2 + eps;
            *p = *p * decay - step_size * *m / denom;
        }
    }
}
