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
        common::fit(&mut t, &small).unwrap();
        weights(&mut t)
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
}

/// The elementwise kernels and the sparse products give the same bits at every SIMD
/// level (SSE2, AVX2 and, for the sparse products, AVX-512 builds of the same loops:
/// no fused multiply-adds, no reordered sums).
#[test]
fn simd_level_does_not_change_results() {
    use nnlab::config::HiddenUnit;
    use nnlab::layers::Activation;
    use nnlab::simd::{Level, detected, set_level};
    let m = common::mnist();
    let small = m.train.slice(0..1000, "small");
    for unit in [Activation::Relu, Activation::Elu(1.0), Activation::Tanh] {
        let run = |level: Level| {
            set_level(level);
            assert_eq!(nnlab::simd::level(), level.min(detected()));
            let mut cfg = TrainConfig::preset("dropout").unwrap();
            cfg.model.hidden = vec![256, 32]; // 128 columns a thread: AVX-512's panel
            cfg.model.activation = HiddenUnit::Act(unit);
            cfg.epochs = 1;
            let mut t = Trainer::new(&cfg, 784, 10).unwrap();
            common::fit(&mut t, &small).unwrap();
            set_level(detected());
            weights(&mut t)
        };
        let base = run(Level::Baseline);
        assert_eq!(base, run(Level::Avx2), "{unit} at AVX2");
        assert_eq!(base, run(Level::Avx512), "{unit} at AVX-512");
    }
}

/// Evaluation lists each dense layer's input by pairs of like rows (with AVX-512) and
/// sums both rows of a pair at once; the loss, the accuracy and every probability have
/// the bits of one row at a time.
#[test]
fn pairing_rows_does_not_change_results() {
    use nnlab::tensor::sparse::set_pairing;
    let m = common::mnist();
    let small = m.train.slice(0..3000, "small");
    let test = m.test.slice(0..1001, "test"); // an odd row out in the last chunk
    let mut cfg = TrainConfig::preset("dropout").unwrap();
    cfg.model.hidden = vec![512, 256, 100]; // paired panels, and a tail of 36 columns
    cfg.epochs = 1;
    let mut t = Trainer::new(&cfg, 784, 10).unwrap();
    common::fit(&mut t, &small).unwrap();
    let mut run = |pairs: bool| {
        set_pairing(pairs);
        let e = t.model.evaluate(&test);
        let p = t.model.predict_proba(&test);
        set_pairing(true);
        let bits: Vec<u32> = p.data.iter().map(|v| v.to_bits()).collect();
        (e.loss.to_bits(), e.accuracy.to_bits(), bits)
    };
    let (paired, one_by_one) = (run(true), run(false));
    assert!(f32::from_bits(paired.1) > 0.5, "the net learned something");
    assert!(paired == one_by_one, "pairing rows changed the results");
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
    let e = common::fit(&mut t, &small).unwrap_err();
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

/// An explicit layer list from TOML (batch norm, a residual block, a concat branch)
/// builds, trains and learns.
#[test]
fn toml_blocks_train() {
    let m = common::mnist();
    let small = m.train.slice(0..3000, "small");
    let text = r#"
epochs = 2
validation = 0
[model]
init = "he-normal"
bias_init = "zeros"
[[model.layers]]
type = "dense"
units = 128
[[model.layers]]
type = "batchnorm"
[[model.layers]]
type = "activation"
name = "relu"
[[model.layers]]
type = "residual"
layers = [{ type = "dense", units = 128 }, { type = "activation", name = "relu" }]
[[model.layers]]
type = "branch"
merge = "concat"
branches = [[{ type = "dense", units = 32 }, { type = "activation", name = "tanh" }], [{ type = "dense", units = 16 }, { type = "activation", name = "elu" }]]
"#;
    let cfg = TrainConfig::from_toml(text, "blocks.toml").unwrap();
    let mut t = Trainer::new(&cfg, 784, 10).unwrap();
    assert!(t.model.summary().contains("residual") && t.model.summary().contains("branch"));
    common::fit(&mut t, &small).unwrap();
    assert!(t.model.evaluate(&m.test).accuracy > 0.85);
    // a branch whose widths cannot be summed is refused, naming the spec
    let bad = text.replace("merge = \"concat\"", "merge = \"sum\"");
    let e = TrainConfig::from_toml(&bad, "blocks.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.layers[4].branches") && e.contains("equal output width"),
        "{e}"
    );
}

/// RBM: contrastive divergence lowers the reconstruction error on MNIST.
#[test]
fn rbm_reconstruction_error_falls() {
    let m = common::mnist();
    let small = m.train.slice(0..3000, "small");
    let mut rng = nnlab::Rng::new(1);
    let mut rbm = nnlab::rbm::Rbm::new(784, 64, &mut rng);
    let cfg = nnlab::rbm::RbmConfig {
        epochs: 3,
        ..Default::default()
    };
    let mut errs = Vec::new();
    rbm.train(&small.images, &cfg, &mut rng, &mut |_, e| errs.push(e))
        .unwrap();
    assert_eq!(errs.len(), 3);
    assert!(errs[2] < errs[0] && errs[0] < 0.1, "{errs:?}");
}

/// `bench` counts the FLOP of the network's matrix products exactly: forward and
/// weight gradient for every dense layer, input gradient for all but the first.
#[test]
fn bench_counts_the_flop_of_the_products() {
    let d = tempfile::tempdir().unwrap();
    common::write_folder(d.path(), 50, 10, 4, 4, 3);
    let s = nnlab::data::datasets::load_dir(d.path(), "toy", None).unwrap();
    let mut cfg = TrainConfig::preset("xavier").unwrap();
    cfg.model.hidden = vec![8];
    cfg.batch = 10;
    let r = nnlab::bench::bench_config("toy", &cfg, &s.train, &s.test, 1, 1).unwrap();
    // per step: layer 16->8: fwd + dW; layer 8->3: fwd + dW + dx; 5 steps per epoch
    let per_step = 2.0 * 10.0 * (16.0 * 8.0 * 2.0 + 8.0 * 3.0 * 3.0);
    assert_eq!(r.flop_per_epoch, per_step * 5.0);
    assert!(r.achieved_gflops > 0.0 && r.gemm_shapes_gflops > 0.0 && r.median_epoch_s > 0.0);
    // the time counters are wired (process-wide, so other tests' work may add to them)
    assert!(r.products_share > 0.0 && r.products_gflops > 0.0 && r.optimizer_share > 0.0);
}
