//! Early stopping (`--patience N`, `--restore-best`): a small net that overfits 500
//! real digits stops once its validation loss has not improved for N epochs; with
//! restore-best it ends with the best epoch's weights, to the bit; a run resumed from
//! a checkpoint stops and restores as the uninterrupted one does.

mod common;

use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::data::Dataset;
use nnlab::io::ModelMeta;
use nnlab::train::checkpoint::load_checkpoint;
use nnlab::train::early_stop::{EarlyStop, best_epoch};
use nnlab::train::{EpochStats, RunData, Trainer};

const PATIENCE: usize = 2;

fn config(restore_best: bool, epochs: usize) -> TrainConfig {
    let mut cfg = TrainConfig::preset("xavier").unwrap();
    cfg.model.hidden = vec![128, 128];
    cfg.optimizer.lr = 0.003;
    cfg.epochs = epochs;
    cfg.early_stop = Some(EarlyStop {
        patience: PATIENCE,
        restore_best,
    });
    cfg
}

fn data() -> (Dataset, Dataset) {
    let m = common::mnist();
    (
        m.train.slice(0..500, "500 training digits"),
        m.train.slice(500..1500, "1000 validation digits"),
    )
}

fn fit(t: &mut Trainer, train: &Dataset, val: &Dataset) {
    let data = RunData {
        train,
        val: Some(val),
        test: None,
    };
    t.fit(&data, None, &mut |_: &EpochStats| {}).unwrap();
}

#[test]
fn stops_after_patience_epochs_and_restores_the_best() {
    let (train, val) = data();
    let mut t = Trainer::new(&config(true, 40), 784, 10, Runtime::default()).unwrap();
    fit(&mut t, &train, &val);
    let best = t
        .stopped_early()
        .expect("500 digits overfit within 40 epochs");
    assert_eq!(
        t.history.len(),
        best + PATIENCE,
        "stops {PATIENCE} epochs after the best"
    );
    assert!(t.history.len() < 40);
    let losses: Vec<f32> = t.history.iter().map(|h| h.val_loss.unwrap()).collect();
    assert!(
        losses[best..].iter().all(|&l| l >= losses[best - 1]),
        "{losses:?}"
    );
    // the weights are the best epoch's: its validation loss, to the bit
    let now = t.model.evaluate(&val, &t.rt).loss;
    assert_eq!(
        now.to_bits(),
        losses[best - 1].to_bits(),
        "{now} vs {losses:?}"
    );

    // without restore-best: the same epochs, and the last epoch's weights
    let mut last = Trainer::new(&config(false, 40), 784, 10, Runtime::default()).unwrap();
    fit(&mut last, &train, &val);
    assert_eq!(last.history.len(), t.history.len());
    let now = last.model.evaluate(&val, &last.rt).loss;
    assert_eq!(now.to_bits(), losses.last().unwrap().to_bits());
    assert_ne!(
        common::weights(&mut last.model.net),
        common::weights(&mut t.model.net)
    );
}

/// A run whose best epoch is followed by fewer than `patience` epochs does not stop,
/// and with restore-best still ends with the best epoch's weights (as Keras does).
#[test]
fn restore_best_applies_when_the_epochs_run_out_first() {
    let (train, val) = data();
    let mut probe = Trainer::new(&config(true, 40), 784, 10, Runtime::default()).unwrap();
    fit(&mut probe, &train, &val);
    let best = probe.stopped_early().unwrap();
    // the same run, cut one epoch after its best: not stopped, the best restored
    let mut t = Trainer::new(&config(true, best + 1), 784, 10, Runtime::default()).unwrap();
    fit(&mut t, &train, &val);
    assert_eq!(t.stopped_early(), None);
    assert_eq!(t.restored_epoch(), Some(best));
    let now = t.model.evaluate(&val, &t.rt).loss;
    assert_eq!(
        now.to_bits(),
        t.history[best - 1].val_loss.unwrap().to_bits()
    );
    // a patience given on the command line keeps a config's restore_best
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("es.toml");
    std::fs::write(&f, "[early_stop]\npatience = 3\nrestore_best = true\n").unwrap();
    let (ok, toml, err) = common::nnlab(&[
        "train",
        "--config",
        f.to_str().unwrap(),
        "--patience",
        "5",
        "--print-config",
    ]);
    assert!(ok, "{err}");
    assert!(
        toml.contains("patience = 5") && toml.contains("restore_best = true"),
        "{toml}"
    );
}

#[test]
fn a_resumed_run_stops_and_restores_as_the_uninterrupted_one() {
    let (train, val) = data();
    let full_cfg = config(true, 40);
    let mut full = Trainer::new(&full_cfg, 784, 10, Runtime::default()).unwrap();
    fit(&mut full, &train, &val);
    let best = full.stopped_early().unwrap();

    // the first part ends one epoch after the best: its checkpoint holds the best weights
    let d = tempfile::tempdir().unwrap();
    let first_cfg = config(true, best + 1);
    let mut first = Trainer::new(&first_cfg, 784, 10, Runtime::default().with_threads(1)).unwrap();
    first.checkpoint = Some((
        d.path().to_path_buf(),
        ModelMeta {
            config: first_cfg.clone(),
            dataset: "mnist".into(),
            input_shape: (28, 28),
            class_names: (0..10).map(|c| c.to_string()).collect(),
            metrics: Default::default(),
        },
    ));
    fit(&mut first, &train, &val);
    assert_eq!(first.stopped_early(), None);
    drop(first);
    let mut resumed =
        load_checkpoint(d.path(), &full_cfg, Runtime::default().with_threads(3)).unwrap();
    assert_eq!(resumed.best.as_ref().map(|b| b.epoch), Some(best));
    fit(&mut resumed, &train, &val);
    assert_eq!(resumed.stopped_early(), Some(best));
    assert_eq!(resumed.history.len(), full.history.len());
    assert_eq!(
        common::weights(&mut resumed.model.net),
        common::weights(&mut full.model.net)
    );

    // a stopped run asked for more epochs trains no further
    fit(&mut resumed, &train, &val);
    assert_eq!(resumed.history.len(), full.history.len());
}

#[test]
fn the_best_epoch_is_the_first_lowest_validation_loss() {
    let h = |losses: &[f32]| -> Vec<EpochStats> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &l)| EpochStats {
                epoch: i + 1,
                cost: 0.0,
                train_acc: 0.0,
                val_acc: Some(0.0),
                val_loss: Some(l),
                test_acc: None,
                lr: 0.0,
                seconds: 0.0,
            })
            .collect()
    };
    assert_eq!(best_epoch(&h(&[0.5, 0.3, 0.3, 0.4])), Some((2, 0.3)));
    let e = EarlyStop {
        patience: 2,
        restore_best: false,
    };
    assert_eq!(e.stopped_at(&h(&[0.5, 0.3, 0.4])), None);
    assert_eq!(e.stopped_at(&h(&[0.5, 0.3, 0.4, 0.3])), Some(2));
    assert_eq!(e.stopped_at(&h(&[0.5, 0.3, 0.4, 0.2])), None);
    assert_eq!(e.stopped_at(&[]), None);
}

#[test]
fn patience_needs_a_validation_set_and_restore_best_needs_patience() {
    let mut cfg = config(true, 3);
    cfg.validation = 0;
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("validation") && e.contains("early stopping"),
        "{e}"
    );
    cfg.validation = 5000;
    cfg.early_stop = Some(EarlyStop {
        patience: 0,
        restore_best: false,
    });
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("early_stop.patience"), "{e}");
    let (ok, _, err) = common::nnlab(&["train", "--restore-best", "--epochs", "1"]);
    assert!(!ok && err.contains("--patience"), "{err}");
}
