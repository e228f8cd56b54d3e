//! `nnlab train`, and the run-and-print routine `lab` shares with it.

use super::{EpochPrinter, load_dataset, wants_progress};
use super::{out, outln};
use crate::cli::{OutputOpts, TrainCmd};
use nnlab::Runtime;
use nnlab::config::TrainConfig;
use nnlab::data::{Dataset, Splits};
use nnlab::files::Lock;
use nnlab::io::{ModelMeta, model_file};
use nnlab::layers::Mode;
use nnlab::render::draw;
use nnlab::runtime::Precision;
use nnlab::train::{BatchProgress, EpochStats, Observer, RunData, Trainer, checkpoint};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// `--live`: the report folder rewritten after each epoch, the run's config and
    /// history so far.
    live: Option<(PathBuf, TrainConfig, Vec<EpochStats>)>,
}

impl Observer for Printer<'_> {
    fn pretrain(&mut self, layer: usize, epoch: usize, error: f32) {
        let out = self.printer.out;
        if out.json {
            outln!(
                "{}",
                serde_json::json!({"event": "pretrain", "run": self.printer.tag, "layer": layer, "epoch": epoch, "reconstruction_error": error})
            );
        } else if !out.quiet {
            let line = format!(
                "RBM {} pre-training epoch {epoch}: reconstruction error {error:.6}",
                layer + 1
            );
            match &self.bar {
                Some(bar) => bar.suspend(|| outln!("{line}")),
                None => outln!("{line}"),
            }
        }
    }
    fn batch(&mut self, p: &BatchProgress) {
        if let Some(bar) = &self.bar {
            if p.done == 1 {
                bar.set_length(p.total as u64);
            }
            bar.set_position(p.done as u64);
            bar.set_message(format!(
                "epoch {}: loss {:.4}, train accuracy {:.4}, {:.0} batches/s",
                p.epoch,
                p.loss,
                p.accuracy,
                bar.per_sec()
            ));
        }
    }
    fn epoch(&mut self, stats: &EpochStats) {
        if let Some(bar) = &self.bar {
            bar.suspend(|| self.printer.print(stats));
        } else {
            self.printer.print(stats);
        }
        if let Some((dir, cfg, history)) = &mut self.live {
            history.push(stats.clone());
            if let Err(e) = super::live::write_page(dir, cfg, history) {
                eprintln!("nnlab: the live page is no longer updated: {e}");
                self.live = None;
            }
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

/// Extra behaviour of a run beyond the config.
#[derive(Default)]
pub struct RunOptions {
    /// Evaluate the test set after every epoch too (for curves of the train /
    /// validation / test gap); the lecture's labs evaluate it once, at the end.
    pub test_each_epoch: bool,
    /// Save the final model here.
    pub save: Option<PathBuf>,
    /// Write a checkpoint here after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in this folder.
    pub resume: Option<PathBuf>,
    /// `--live`: rewrite this report folder after every epoch.
    pub live: Option<PathBuf>,
    /// Print the network (layers, parameter count) and settings before training.
    pub describe: bool,
    /// Replace an existing `save` file that nnlab did not write.
    pub force: bool,
}

/// Checks that a model may be saved at `path` (a new path, one of nnlab's own files,
/// or anything regular with `force`; `files::check_target`).
pub fn check_save_target(path: &Path, force: bool) -> anyhow::Result<()> {
    nnlab::files::check_target(path, "the model", force, model_file::is_nnlab_file)?;
    Ok(())
}

/// The lock file beside `path` (`.NAME.lock`) that a run holds while it may write it.
fn lock_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.lock"))
}

/// Set by Ctrl-C: training stops after the current batch.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the handler of Ctrl-C, SIGTERM and SIGHUP once: the first signal asks
/// training to stop after the current batch (then the checkpoint, if any, holds the
/// last finished epoch), a second one exits at once.
pub fn install_ctrl_c() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\nnnlab: stopping (after this batch, if training; signal again to quit now)"
            );
        });
    });
}

/// The metadata a model file or checkpoint of this run carries.
pub fn run_meta(cfg: &TrainConfig, sets: &RunSets) -> ModelMeta {
    ModelMeta {
        config: cfg.clone(),
        dataset: cfg.dataset.clone(),
        input_shape: (sets.train.height, sets.train.width),
        class_names: sets.train.class_names.clone(),
        metrics: Default::default(),
    }
}

/// Trains `cfg` on `sets`, printing as `out` asks, then prints the lecture's closing
/// lines; saves and checkpoints as `opts` asks.
pub fn run_config(
    cfg: &TrainConfig,
    sets: &RunSets,
    out: &OutputOpts,
    tag: &str,
    opts: &RunOptions,
    rt: Runtime,
) -> anyhow::Result<RunResult> {
    install_ctrl_c();
    // Held for the whole run: a second run with the same --save path or checkpoint
    // folder is refused, naming this one's process.
    let mut _locks = Vec::new();
    if let Some(p) = &opts.save {
        check_save_target(p, opts.force)?;
        _locks.push(Lock::acquire(&lock_beside(p), &p.display().to_string())?);
    }
    if let Some(dir) = &opts.resume
        && !dir.is_dir()
    {
        anyhow::bail!("--resume {}: no such folder", dir.display());
    }
    if let Some(dir) = opts.checkpoint_dir.as_ref().or(opts.resume.as_ref()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("creating the checkpoint folder {}: {e}", dir.display())
        })?;
        let what = format!("the checkpoint folder {}", dir.display());
        _locks.push(Lock::acquire(&dir.join(".lock"), &what)?);
        nnlab::files::remove_stale_temps(dir, "checkpoint.safetensors");
    }
    let (train, val, test) = (&sets.train, &sets.val, &sets.test);
    let mut meta = run_meta(cfg, sets);
    let mut trainer = match &opts.resume {
        Some(dir) => {
            let t = checkpoint::load_checkpoint(dir, cfg, rt)?;
            if !out.json && !out.quiet {
                outln!(
                    "resuming from {} after epoch {}",
                    checkpoint::checkpoint_path(dir).display(),
                    t.history.len()
                );
            }
            t
        }
        None => Trainer::new(cfg, train.shape(), train.classes().max(test.classes()), rt)?,
    };
    if let Some(dir) = opts.checkpoint_dir.as_ref().or(opts.resume.as_ref()) {
        trainer.checkpoint = Some((dir.clone(), meta.clone()));
    }
    if opts.describe && !out.quiet && !out.json {
        outln!(
            "nnlab train: {} ({}), {}, batch {}, {:?} lr {}, seed {}",
            cfg.dataset,
            super::plural(trainer.model.param_count(), "parameter"),
            super::plural(cfg.epochs, "epoch"),
            cfg.batch,
            cfg.optimizer.kind,
            cfg.optimizer.lr,
            cfg.seed
        );
        outln!("{}", trainer.model.summary());
    }
    let bar = wants_progress(out).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "  {bar:30} {pos}/{len} batches, eta {eta}  {msg}",
            )
            .expect("static template"),
        );
        b
    });
    let mut obs = Printer {
        printer: EpochPrinter { out, tag },
        bar,
        live: opts
            .live
            .clone()
            .map(|d| (d, cfg.clone(), trainer.history.clone())),
    };
    let start = Instant::now();
    let fitted = trainer.fit(
        &RunData {
            train,
            val: val.as_ref(),
            test: opts.test_each_epoch.then_some(test),
        },
        Some(&STOP),
        &mut obs,
    );
    if let Some(b) = &obs.bar {
        b.finish_and_clear();
    }
    if let Err(nnlab::Error::Interrupted(msg)) = &fitted {
        let how = match opts.checkpoint_dir.as_ref().or(opts.resume.as_ref()) {
            Some(_) if trainer.history.is_empty() => format!(
                "no training epoch had finished{}, so there is nothing to resume from",
                if trainer.cfg.model.pretrain_epochs > 0 {
                    " (pre-training keeps no checkpoint)"
                } else {
                    ""
                }
            ),
            Some(dir) => format!(
                "the checkpoint in {} holds epoch {}; continue with the same command plus --resume {}",
                dir.display(),
                trainer.history.len(),
                dir.display()
            ),
            None => {
                "nothing was saved (pass --checkpoint-dir DIR to be able to resume)".to_string()
            }
        };
        anyhow::bail!("{msg}; {how}");
    }
    fitted?;
    let train_seconds = start.elapsed().as_secs_f64();
    if let Some(line) = early_stop_line(&trainer)
        && !out.json
    {
        outln!("{line}");
    }
    let eval = trainer.model.evaluate(test, &rt);
    // The lecture's closing lines: one random test image, its label and the prediction.
    let r = trainer.rng.below(test.len());
    let x = test.slice(r..r + 1, "sample");
    let mut rng = trainer.rng.clone();
    let pred = trainer
        .model
        .forward(&x.images, Mode::Eval, &mut rng, &rt)
        .argmax_row(0);
    if let Some(p) = &opts.save {
        meta.metrics.insert("test_accuracy".into(), eval.accuracy);
        meta.metrics.insert("test_loss".into(), eval.loss);
        if let Some(last) = trainer.history.last() {
            meta.metrics.insert("train_accuracy".into(), last.train_acc);
            if let Some(v) = last.val_acc {
                meta.metrics.insert("validation_accuracy".into(), v);
            }
        }
        model_file::save_model(p, &mut trainer.model, &meta)?;
    }
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
            "saved": opts.save,
            "stopped_early_best_epoch": trainer.stopped_early(),
        });
        super::print_json(v);
    } else {
        outln!("Learning Finished!");
        outln!("Accuracy: {:.4}", eval.accuracy);
        if !out.quiet {
            outln!("Label:  [{}]", test.labels[r]);
            outln!("Prediction:  [{pred}]");
            outln!(
                "{}",
                draw(x.images.row(0), test.height, test.width, out.style())
            );
            outln!(
                "(trained in {train_seconds:.1} s{})",
                if cfg.model.pretrain_epochs > 0 {
                    ", RBM pre-training included"
                } else {
                    ""
                }
            );
        }
        if let Some(p) = &opts.save {
            outln!("saved {}", p.display());
        }
    }
    Ok(RunResult {
        trainer,
        test_accuracy: eval.accuracy,
        train_seconds,
    })
}

pub fn run(cmd: &TrainCmd) -> anyhow::Result<()> {
    let args = &cmd.train;
    let cfg = args.resolve()?;
    if args.print_config {
        out!("{}", cfg.to_toml());
        return Ok(());
    }
    if let Some(p) = &cmd.save {
        check_save_target(p, cmd.force)?;
    }
    let mut report = args
        .report
        .as_deref()
        .map(super::report::open)
        .transpose()?;
    let splits = load_dataset(&cfg.dataset, &args.data, args.out.json || args.out.quiet)?;
    let sets = RunSets::new(splits, cfg.validation)?;
    let opts = RunOptions {
        test_each_epoch: true,
        save: cmd.save.clone(),
        checkpoint_dir: cmd.checkpoint_dir.clone(),
        resume: cmd.resume.clone(),
        describe: true,
        force: cmd.force,
        live: cmd.live.then(|| args.report.clone()).flatten(),
    };
    let live = match &opts.live {
        Some(dir) => {
            let addr = super::live::start(dir, cmd.live_port)?;
            install_ctrl_c();
            say_live(
                args.out.json,
                &format!(
                    "live report: http://{addr}/ (updated after every epoch; it stays up after training until Ctrl-C)"
                ),
            );
            Some(addr)
        }
        None => None,
    };
    let mut res = run_config(&cfg, &sets, &args.out, "train", &opts, args.rt.runtime())?;
    if let Some(r) = report.as_mut() {
        let history = res.trainer.history.clone();
        let mut metrics = super::report::model_pictures(
            r,
            "train",
            "training run",
            &mut res.trainer.model,
            Some(super::report::Run {
                cfg: &cfg,
                history: &history,
            }),
            &sets.test,
            &res.trainer.rt,
        )?;
        summarise_run(r, &cfg, &history, &mut res);
        metrics["config"] = serde_json::to_value(&cfg)?;
        metrics["precision"] = res.trainer.rt.precision.to_string().into();
        r.json("metrics.json", &metrics)?;
        r.history_csv("history.csv", &[("train".into(), history)])?;
    }
    if let Some(r) = report {
        let page = r.finish("nnlab train report")?;
        if !args.out.json {
            outln!("report: {}", page.display());
        }
    }
    if let Some(addr) = live {
        say_live(
            args.out.json,
            &format!("the final report is at http://{addr}/ until Ctrl-C"),
        );
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Ok(())
}

/// The figures a training report opens with.
fn summarise_run(
    r: &mut super::report::ReportWriter,
    cfg: &TrainConfig,
    history: &[nnlab::train::EpochStats],
    res: &mut RunResult,
) {
    r.summary("test accuracy", format!("{:.4}", res.test_accuracy));
    if let Some(last) = history.last() {
        // the validation figures of the weights the run ends with
        let at = res
            .trainer
            .restored_epoch()
            .map_or(last, |b| &history[b - 1]);
        if let Some(line) = super::report::validation_line(at) {
            r.summary("validation accuracy", line);
        }
        r.summary(
            "training",
            format!(
                "{} on {}, {:.1} s; last cost {:.6}",
                super::plural(history.len(), "epoch"),
                cfg.dataset,
                res.train_seconds,
                last.cost
            ),
        );
    }
    if let Some(line) = early_stop_line(&res.trainer) {
        r.summary("early stopping", line);
    }
    if res.trainer.rt.precision != Precision::F32 {
        r.summary(
            "precision",
            format!("products in {}", res.trainer.rt.precision),
        );
    }
    let m = &mut res.trainer.model;
    r.summary(
        "net",
        format!(
            "{} ({})",
            m.net
                .layers()
                .iter()
                .map(|l| l.describe())
                .collect::<Vec<_>>()
                .join(", "),
            super::plural(m.param_count(), "parameter")
        ),
    );
    r.summary(
        "optimizer",
        format!(
            "{:?} lr {} ({} schedule), batch {}, seed {}{}",
            cfg.optimizer.kind,
            cfg.optimizer.lr,
            cfg.optimizer.schedule,
            cfg.batch,
            cfg.seed,
            if cfg.augment.is_some() {
                ", augmented"
            } else {
                ""
            }
        ),
    );
}

/// What early stopping did: when it ended the run, or when the run ends with an
/// earlier epoch's weights (`--restore-best`).
pub fn early_stop_line(t: &nnlab::train::Trainer) -> Option<String> {
    let e = t.cfg.early_stop?;
    let (stopped, restored) = (t.stopped_early(), t.restored_epoch());
    if stopped.is_none() && restored.is_none() {
        return None;
    }
    let (best, loss) = nnlab::train::early_stop::best_epoch(&t.history)?;
    let n = t.history.len();
    let when = if stopped.is_some() && n < t.cfg.epochs {
        format!(
            "Early stop after epoch {n}: the validation loss has not gone below {loss:.4} (epoch {best}) for {}",
            super::plural(e.patience, "epoch")
        )
    } else {
        format!("Epoch {n}, the last: the lowest validation loss was {loss:.4}, at epoch {best}")
    };
    let weights = match restored {
        Some(b) => format!("the weights of epoch {b} are restored"),
        None => format!("the weights are the last epoch's (--restore-best keeps epoch {best}'s)"),
    };
    Some(format!("{when}; {weights}"))
}

/// A line about the live report: on stdout, or on stderr when stdout is for `--json`.
fn say_live(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        outln!("{line}");
    }
}
