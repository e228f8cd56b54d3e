//! Central finite-difference gradient checks for any `Layer` (tinygrad's gradcheck,
//! in spirit). Used by the tests of every layer, activation, block and the loss.
//!
//! The scalar checked is `L = Σ y ⊙ r` for a fixed random `r`, so `dL/dy = r`.
//! Layers compute in f32; `L` is summed in f64 and the step is `h = 1e-2`, so the
//! rounding noise of a difference quotient is about `1e-7 · Σ|y ⊙ r| / h` (~1e-4 here)
//! and the truncation error `h² · f''' / 6` (~2e-5): a tolerance of
//! `2e-3 + 2e-2 · |g|` is far above both and far below any real bug (a wrong sign,
//! factor or index gives errors of order |g|).
//! Points within `h` of a kink (ReLU at 0, max ties) are detected, and skipped, when
//! the central quotients for `h` and `h/2` differ, or when the one-sided quotients
//! `(L(x+h) - L(x)) / h` and `(L(x) - L(x-h)) / h` differ by more than a quarter of
//! the larger (a near-tie of two maxima, closer than `h/2`, halves both central
//! quotients alike, but leaves one one-sided quotient whole and the other near zero). Layers run under the default runtime
//! (every core, every fast path), as a user's training does.

use crate::layers::{Layer, Mode, Pass};
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;

const H: f32 = 1e-2;
const ATOL: f64 = 2e-3;
const RTOL: f64 = 2e-2;

/// What a check compared.
#[derive(Debug, Default)]
pub struct Report {
    /// Number of (numeric, analytic) pairs compared.
    pub compared: usize,
    /// Points skipped as kinks.
    pub skipped: usize,
    /// Largest |numeric - analytic| / (ATOL + RTOL·|analytic|) seen (must be <= 1).
    pub worst: f64,
}

fn loss_of(layer: &mut dyn Layer, x: &Matrix, r: &Matrix, mode: Mode, seed: u64) -> f64 {
    let mut y = Matrix::zeros(x.rows, layer.out_dim());
    let mut rng = Rng::new(seed);
    layer.forward(
        x,
        &mut y,
        &mut Pass::new(mode, &mut rng, &Runtime::default()),
    );
    y.data
        .iter()
        .zip(&r.data)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Checks `dx` and every parameter gradient of `layer` at a random input of `batch`
/// rows (entries N(0,1) times `x_scale`). At most `max_per_tensor` entries of each
/// tensor are probed. Random layers see the same RNG stream in every forward.
/// Returns an error describing the first mismatch.
pub fn check_layer(
    layer: &mut dyn Layer,
    batch: usize,
    x_scale: f32,
    mode: Mode,
    seed: u64,
    max_per_tensor: usize,
) -> Result<Report, String> {
    let mut data_rng = Rng::new(seed ^ 0x9e37_79b9);
    let ind = layer.in_dim();
    let x = Matrix::from_vec(
        batch,
        ind,
        (0..batch * ind)
            .map(|_| x_scale * data_rng.normal())
            .collect(),
    );
    check_layer_at(layer, x, mode, seed, max_per_tensor)
}

/// `check_layer` at a given input `x: (batch, in_dim)`, e.g. one mostly of zeros.
pub fn check_layer_at(
    layer: &mut dyn Layer,
    mut x: Matrix,
    mode: Mode,
    seed: u64,
    max_per_tensor: usize,
) -> Result<Report, String> {
    let mut data_rng = Rng::new(seed ^ 0x7f4a_7c15);
    let (batch, ind, outd) = (x.rows, layer.in_dim(), layer.out_dim());
    assert_eq!(
        x.cols, ind,
        "check_layer_at: x has {} columns, the layer takes {ind}",
        x.cols
    );
    let r = Matrix::from_vec(
        batch,
        outd,
        (0..batch * outd).map(|_| data_rng.normal()).collect(),
    );
    let fwd_seed = seed.wrapping_add(1);

    // analytic
    let mut y = Matrix::zeros(batch, outd);
    let rt = Runtime::default();
    layer.forward(
        &x,
        &mut y,
        &mut Pass::new(mode, &mut Rng::new(fwd_seed), &rt),
    );
    let mut dx = Matrix::zeros(batch, ind);
    layer.backward(&x, &y, &r, Some(&mut dx), &rt);
    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    layer.visit_params(&mut |p| grads.push((p.name.to_string(), p.grad.to_vec())));

    let mut rep = Report::default();
    let l0 = loss_of(layer, &x, &r, mode, fwd_seed);
    let judge = |what: &str,
                 i: usize,
                 plus: [f64; 2],
                 minus: [f64; 2],
                 ana: f32,
                 rep: &mut Report|
     -> Result<(), String> {
        let num_h = (plus[0] - minus[0]) / (2.0 * H as f64);
        let num_h2 = (plus[1] - minus[1]) / (H as f64);
        let ana = ana as f64;
        let (fwd, bwd) = ((plus[0] - l0) / H as f64, (l0 - minus[0]) / H as f64);
        if (num_h - num_h2).abs() > ATOL + RTOL * num_h.abs()
            || (fwd - bwd).abs() > ATOL + 0.25 * fwd.abs().max(bwd.abs())
        {
            rep.skipped += 1; // a kink between x-h and x+h
            return Ok(());
        }
        let err = (num_h - ana).abs() / (ATOL + RTOL * ana.abs());
        rep.compared += 1;
        rep.worst = rep.worst.max(err);
        if err > 1.0 {
            return Err(format!(
                "gradient mismatch: d{what}[{i}] analytic {ana:.6} vs numeric {num_h:.6}"
            ));
        }
        Ok(())
    };

    // input gradient
    let n = x.data.len();
    for i in probe_indices(n, max_per_tensor, &mut data_rng) {
        let orig = x.data[i];
        let f = |delta: f32, layer: &mut dyn Layer, x: &mut Matrix| {
            x.data[i] = orig + delta;
            let l = loss_of(layer, x, &r, mode, fwd_seed);
            x.data[i] = orig;
            l
        };
        let plus = [f(H, layer, &mut x), f(H / 2.0, layer, &mut x)];
        let minus = [f(-H, layer, &mut x), f(-H / 2.0, layer, &mut x)];
        judge("x", i, plus, minus, dx.data[i], &mut rep)?;
    }

    // parameter gradients
    for (t, (name, g)) in grads.iter().enumerate() {
        for i in probe_indices(g.len(), max_per_tensor, &mut data_rng) {
            let f = |delta: f32, layer: &mut dyn Layer| {
                nudge(layer, t, i, delta);
                let l = loss_of(layer, &x, &r, mode, fwd_seed);
                nudge(layer, t, i, -delta);
                l
            };
            let plus = [f(H, layer), f(H / 2.0, layer)];
            let minus = [f(-H, layer), f(-H / 2.0, layer)];
            judge(&format!("{name}#{t}"), i, plus, minus, g[i], &mut rep)?;
        }
    }
    if rep.compared == 0 {
        return Err("gradient check compared nothing".into());
    }
    Ok(rep)
}

/// Adds `delta` to element `i` of parameter tensor `t`.
fn nudge(layer: &mut dyn Layer, t: usize, i: usize, delta: f32) {
    let mut k = 0;
    layer.visit_params(&mut |p| {
        if k == t {
            p.value[i] += delta;
        }
        k += 1;
    });
}

/// All of `0..n` if small, else `max` distinct random indices.
fn probe_indices(n: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if n > max {
        rng.shuffle(&mut idx);
        idx.truncate(max);
    }
    idx
}
