//! `nnlab train`, and the run-and-print routine `lab` shares with it.

use super::{EpochPrinter, load_dataset, wants_progress};
use crate::cli::{OutputOpts, TrainArgs};
use nnlab::config::TrainConfig;
use nnlab::data::{Dataset, Splits};
use nnlab::layers::Mode;
use nnlab::render::draw;
use nnlab::train::{EpochStats, Observer, RunData, Trainer};
use std::time::Instant;

/// What a finished run reports.
pub struct RunResult {
    pub trainer: Trainer,
    pub test_accuracy: f32,
    pub train_seconds: f64,
}

struct Printer<'a> {
    printer: EpochPrinter<'a>,
    bar: Option<indicatif::ProgressBar>,
}

impl Observer for Printer<'_> {
    fn batch(&mut self, epoch: usize, done: usize, total: usize) {
        if let Some(bar) = &self.bar {
            if done == 1 {
                bar.set_length(total as u64);
                bar.set_message(format!("epoch {epoch}"));
            }
            bar.set_position(done as u64);
        }
    }
    fn epoch(&mut self, stats: &EpochStats) {
        if let Some(bar) = &self.bar {
            bar.suspend(|| self.printer.print(stats));
        } else {
            self.printer.print(stats);
        }
    }
}

/// The datasets of a run: training, validation (split off the start of the training
/// part) and test. Built once and shared by runs, so the full training part is not
/// kept beside its split copy.
pub struct RunSets {
    pub train: Dataset,
    pub val: Option<Dataset>,
    pub test: Dataset,
}

impl RunSets {
    pub fn new(splits: Splits, validation: usize) -> anyhow::Result<RunSets> {
        let (train, val) = if validation > 0 {
            let (t, v) = splits.train.split_validation(validation)?;
            (t, Some(v))
        } else {
            (splits.train, None)
        };
        Ok(RunSets {
            train,
            val,
            test: splits.test,
        })
    }
}

/// Trains `cfg` on `sets`, printing as
/// `out` asks, then prints the lecture's closing lines. With `test_each_epoch` the
/// test set is also evaluated after every epoch (for curves of the train /
/// validation / test gap); the lecture's labs evaluate it once, at the end.
pub fn run_config(
    cfg: &TrainConfig,
    sets: &RunSets,
    out: &OutputOpts,
    tag: &str,
    test_each_epoch: bool,
) -> anyhow::Result<RunResult> {
    nnlab::tensor::set_threads(cfg.threads);
    let (train, val, test) = (&sets.train, &sets.val, &sets.test);
    let mut trainer = Trainer::new(cfg, train.features(), train.classes().max(test.classes()))?;
    let bar = wants_progress(out).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "  {msg} {bar:30} {pos}/{len} batches {per_sec} eta {eta}",
            )
            .expect("static template"),
        );
        b
    });
    let mut obs = Printer {
        printer: EpochPrinter { out, tag },
        bar,
    };
    let start = Instant::now();
    trainer.fit(
        &RunData {
            train,
            val: val.as_ref(),
            test: test_each_epoch.then_some(test),
        },
        None,
        &mut obs,
    )?;
    if let Some(b) = &obs.bar {
        b.finish_and_clear();
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let eval = trainer.model.evaluate(test);
    // The lecture's closing lines: one random test image, its label and the prediction.
    let r = trainer.rng.below(test.len());
    let x = test.slice(r..r + 1, "sample");
    let mut rng = trainer.rng.clone();
    let pred = trainer
        .model
        .forward(&x.images, Mode::Eval, &mut rng)
        .argmax_row(0);
    if out.json {
        let v = serde_json::json!({
            "event": "result",
            "run": tag,
            "test_accuracy": eval.accuracy,
            "test_loss": eval.loss,
            "train_seconds": train_seconds,
            "sample_index": r,
            "sample_label": test.labels[r],
            "sample_prediction": pred,
        });
        println!("{v}");
    } else {
        println!("Learning Finished!");
        println!("Accuracy: {:.4}", eval.accuracy);
        if !out.quiet {
            println!("Label:  [{}]", test.labels[r]);
            println!("Prediction:  [{pred}]");
            println!(
                "{}",
                draw(x.images.row(0), test.height, test.width, out.style())
            );
        }
    }
    Ok(RunResult {
        trainer,
        test_accuracy: eval.accuracy,
        train_seconds,
    })
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    if args.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let splits = load_dataset(&cfg.dataset, &args.data, args.out.json || args.out.quiet)?;
    if !args.out.quiet && !args.out.json {
        let mut probe = Trainer::new(&cfg, splits.train.features(), splits.train.classes())?;
        println!(
            "nnlab train: {} ({} parameters), {} epochs, batch {}, {:?} lr {}, seed {}",
            cfg.dataset,
            probe.model.param_count(),
            cfg.epochs,
            cfg.batch,
            cfg.optimizer.kind,
            cfg.optimizer.lr,
            cfg.seed
        );
        println!("{}", probe.model.summary());
    }
    let sets = RunSets::new(splits, cfg.validation)?;
    run_config(&cfg, &sets, &args.out, "train", true)?;
    Ok(())
}
