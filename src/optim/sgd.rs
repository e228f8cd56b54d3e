//! Stochastic gradient descent, plain and with (Nesterov) momentum, in PyTorch's form.
//! Each update is one pass over a parameter buffer.

/// `p -= lr · (g + l2·p)`.
///
/// # Shapes
/// `p, g: (n,)`.
pub fn sgd_update(p: &mut [f32], g: &[f32], lr: f32, l2: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * (g + l2 * *p);
    }
}

/// Momentum (Polyak 1964; Sutskever et al. 2013 for Nesterov), as `torch.optim.SGD`:
/// `g' = g + l2·p`, `buf = μ·buf + g'`, step `= buf` or, with Nesterov, `g' + μ·buf`;
/// `p -= lr · step`.
///
/// # Shapes
/// `p, g, buf: (n,)`.
pub fn momentum_update(
    p: &mut [f32],
    g: &[f32],
    buf: &mut [f32],
    lr: f32,
    mu: f32,
    nesterov: bool,
    l2: f32,
) {
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        let g = g + l2 * *p;
        *b = mu * *b + g;
        let step = if nesterov { g + mu * *b } else { *b };
        *p -= lr * step;
    }
}
