//! Optimiser updates against golden values from `scripts/golden_optim.py` (numpy,
//! float64, the papers' / PyTorch's update rules). Output of that script:
//! ```text
//! sgd 0.508481490, -1.046992979, 2.019070968, -0.069900000
//! momentum 0.526095390, -1.055220779, 1.958108568, -0.159900000
//! nesterov 0.531950962, -1.096710224, 1.981536587, -0.213639000
//! adam 0.464088640, -0.994205437, 1.843742974, -0.111089801
//! adamw 0.453547720, -0.970362613, 1.794673740, -0.110398743
//! ```

use nnlab::optim::{AdamStep, adam_update, momentum_update, sgd_update};

const P0: [f32; 4] = [0.5, -1.0, 2.0, 0.0];
const GRADS: [[f32; 4]; 3] = [
    [0.1, -0.2, 0.3, 0.0],
    [-0.4, 0.5, 0.05, 1.0],
    [0.2, 0.2, -0.6, -0.3],
];
const LR: f32 = 0.1;
const L2: f32 = 0.01;

fn close(got: &[f32], want: [f64; 4]) {
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 2e-6, "got {got:?}, want {want:?}");
    }
}

#[test]
fn sgd_matches_golden() {
    let mut p = P0;
    for g in &GRADS {
        sgd_update(&mut p, g, LR, L2);
    }
    close(&p, [0.508481490, -1.046992979, 2.019070968, -0.069900000]);
}

#[test]
fn momentum_and_nesterov_match_golden() {
    for (nesterov, want) in [
        (
            false,
            [0.526095390, -1.055220779, 1.958108568, -0.159900000],
        ),
        (true, [0.531950962, -1.096710224, 1.981536587, -0.213639000]),
    ] {
        let mut p = P0;
        let mut buf = [0f32; 4];
        for g in &GRADS {
            momentum_update(&mut p, g, &mut buf, LR, 0.9, nesterov, L2);
        }
        close(&p, want);
    }
}

#[test]
fn adam_and_adamw_match_golden() {
    for (wd, l2, want) in [
        (
            0.0,
            L2,
            [0.464088640, -0.994205437, 1.843742974, -0.111089801],
        ),
        (
            0.1,
            0.0,
            [0.453547720, -0.970362613, 1.794673740, -0.110398743],
        ),
    ] {
        let mut p = P0;
        let (mut m, mut v) = ([0f32; 4], [0f32; 4]);
        for (t, g) in GRADS.iter().enumerate() {
            let s = AdamStep {
                lr: LR,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t: t as u64 + 1,
                l2,
                weight_decay: wd,
            };
            adam_update(nnlab::simd::detected(), &mut p, g, &mut m, &mut v, s);
        }
        close(&p, want);
    }
}
