//! Training on real MNIST: an accuracy floor, determinism, and divergence handling.

mod common;

use nnlab::config::TrainConfig;
use nnlab::error::Error;
use nnlab::train::{EpochStats, RunData, Trainer};

fn weights(t: &mut Trainer) -> Vec<u32> {
    let mut all = Vec::new();
    nnlab::layers::Layer::visit_params(&mut t.model.net, &mut |p| {
        all.extend(p.value.iter().map(|v| v.to_bits()))
    });
    all
}

/// The `xavier` lab net, one epoch on the 55,000 training images: >= 95% on test.
#[test]
fn xavier_one_epoch_reaches_95_percent() {
    let m = common::mnist();
    let (train, val) = m.train.split_validation(5000).unwrap();
    let mut cfg = TrainConfig::preset("xavier").unwrap();
    cfg.epochs = 1;
    let mut t = Trainer::new(&cfg, 784, 10).unwrap();
    let mut seen = Vec::new();
    t.fit(
        &RunData {
            train: &train,
            val: Some(&val),
            test: None,
        },
        None,
        &mut |s: &EpochStats| seen.push(s.clone()),
    )
    .unwrap();
    let acc = t.model.evaluate(&m.test).accuracy;
    assert!(acc >= 0.95, "test accuracy {acc}");
    assert_eq!(seen.len(), 1);
    // the lecture's epoch-1 cost for this lab is 0.30
    assert!((0.2..0.45).contains(&seen[0].cost), "cost {}", seen[0].cost);
    assert!(seen[0].val_acc.unwrap() > 0.94);
}

/// Same seed and thread count: the same weights, bit for bit; another seed differs.
#[test]
fn same_seed_same_weights() {
    let m = common::mnist();
    let small = m.train.slice(0..3000, "small");
    let run = |seed: u64| {
        let mut cfg = TrainConfig::preset("dropout").unwrap();
        cfg.model.hidden = vec![64, 32];
        cfg.epochs = 2;
        cfg.seed = seed;
        let mut t = Trainer::new(&cfg, 784, 10).unwrap();
        t.fit(
            &RunData {
                train: &small,
                val: None,
                test: None,
            },
            None,
            &mut |_: &EpochStats| {},
        )
        .unwrap();
        weights(&mut t)
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}

/// A learning rate far too large makes training diverge: it stops with an error that
/// names the epoch and batch and suggests a fix.
#[test]
fn divergence_is_reported() {
    let m = common::mnist();
    let small = m.train.slice(0..2000, "small");
    let mut cfg = TrainConfig::preset("nn").unwrap();
    cfg.optimizer.kind = nnlab::optim::OptimizerKind::Sgd;
    cfg.optimizer.lr = 1e30;
    cfg.epochs = 3;
    let mut t = Trainer::new(&cfg, 784, 10).unwrap();
    let e = t
        .fit(
            &RunData {
                train: &small,
                val: None,
                test: None,
            },
            None,
            &mut |_: &EpochStats| {},
        )
        .unwrap_err();
    assert!(matches!(e, Error::Diverged { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("epoch 1") && msg.contains("batch") && msg.contains("--lr"),
        "{msg}"
    );
}

/// Lab 10-1's first steps have logits in the hundreds: the cost is large but finite.
#[test]
fn normal_init_lab_has_a_large_finite_first_cost() {
    let m = common::mnist();
    let small = m.train.slice(0..5000, "small");
    let mut cfg = TrainConfig::preset("nn").unwrap();
    cfg.epochs = 1;
    let mut t = Trainer::new(&cfg, 784, 10).unwrap();
    let mut cost = 0.0;
    t.fit(
        &RunData {
            train: &small,
            val: None,
            test: None,
        },
        None,
        &mut |s: &EpochStats| cost = s.cost,
    )
    .unwrap();
    assert!(cost.is_finite() && cost > 20.0, "cost {cost}");
}
