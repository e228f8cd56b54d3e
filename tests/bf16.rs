//! `--precision bf16`: training in bf16 products on real MNIST, where the CPU has
//! AVX512-BF16 (elsewhere the runtime falls back to f32 and says why).

mod common;

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::runtime::Precision;
use nnlab::tensor::bf16;

fn bf16_runtime(threads: usize) -> Option<Runtime> {
    let (rt, why) = Runtime::default()
        .with_threads(threads)
        .with_precision(Precision::Bf16);
    match why {
        Some(why) => {
            assert!(!bf16::available());
            assert!(why.contains("AVX512-BF16"), "{why}");
            assert_eq!(rt.precision, Precision::F32);
            eprintln!("skipped: {why}");
            None
        }
        None => {
            assert_eq!(rt.precision, Precision::Bf16);
            Some(rt)
        }
    }
}

/// The `deep` lab's net (four hidden layers of 512, dense products in the hidden
/// layers), one epoch in bf16: >= 95% on the 10,000 test images, within a point of
/// the same run in f32.
#[test]
fn deep_lab_one_epoch_in_bf16_reaches_95_percent() {
    let Some(rt) = bf16_runtime(0) else { return };
    let m = common::mnist();
    let mut cfg = TrainConfig::preset("deep").unwrap();
    cfg.epochs = 1;
    let run = |rt: Runtime| {
        let mut t = nnlab::train::Trainer::new(&cfg, 784, 10, rt).unwrap();
        common::fit(&mut t, &m.train).unwrap();
        t.model.evaluate(&m.test, &t.rt).accuracy
    };
    let (low, full) = (run(rt), run(Runtime::default()));
    eprintln!("one epoch of the deep net: bf16 {low}, f32 {full}");
    assert!(low >= 0.95, "bf16 test accuracy {low} (f32: {full})");
    assert!((low - full).abs() < 0.01, "bf16 {low} against f32 {full}");
}

/// In bf16 as in f32 the bits do not depend on the thread count, and they differ
/// from f32's (the products did run in bf16): an MLP with dropout, and the course's
/// first CNN (whose convolutions run in bf16 too).
#[test]
fn bf16_training_is_the_same_at_any_thread_count() {
    let Some(one) = bf16_runtime(1) else { return };
    let m = common::mnist();
    let small = m.train.slice(0..2000, "small");
    for preset in ["dropout", "cnn1"] {
        let mut cfg = TrainConfig::preset(preset).unwrap();
        cfg.epochs = 1;
        let run = |rt: Runtime| {
            let mut t = nnlab::train::Trainer::new(&cfg, small.shape(), 10, rt).unwrap();
            common::fit(&mut t, &small).unwrap();
            common::weights(&mut t.model.net)
        };
        let bits = run(one);
        assert!(
            bits == run(bf16_runtime(2).unwrap()),
            "{preset}: 1 and 2 threads differ"
        );
        assert!(
            bits == run(bf16_runtime(3).unwrap()),
            "{preset}: 1 and 3 threads differ"
        );
        assert!(
            bits != run(Runtime::single()),
            "{preset}: bf16 gave f32's bits"
        );
    }
}

/// The course's first CNN, one epoch on 10,000 training images with its convolutions
/// in bf16: >= 90% on the test images, within a point of the same run in f32.
#[test]
fn cnn_in_bf16_learns_as_in_f32() {
    let Some(rt) = bf16_runtime(0) else { return };
    let m = common::mnist();
    let part = m.train.slice(0..10_000, "part");
    let mut cfg = TrainConfig::preset("cnn1").unwrap();
    cfg.epochs = 1;
    let run = |rt: Runtime| {
        let mut t = nnlab::train::Trainer::new(&cfg, part.shape(), 10, rt).unwrap();
        common::fit(&mut t, &part).unwrap();
        t.model.evaluate(&m.test, &t.rt).accuracy
    };
    let (low, full) = (run(rt), run(Runtime::default()));
    eprintln!("cnn1, one epoch of 10,000 images: bf16 {low}, f32 {full}");
    assert!(low >= 0.90, "bf16 test accuracy {low} (f32: {full})");
    assert!((low - full).abs() < 0.01, "bf16 {low} against f32 {full}");
}
