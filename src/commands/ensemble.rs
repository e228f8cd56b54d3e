//! `nnlab ensemble`: trains members from different seeds, then reports each member's
//! test accuracy and the ensemble's, by averaged probabilities and by majority vote.

use super::load_dataset;
use super::train::{RunSets, run_meta};
use super::{out, outln};
use crate::cli::{EnsembleArgs, Parallel};
use nnlab::ensemble::{Hooks, argmax_rows, average, train_members, vote};
use nnlab::io::model_file;
use nnlab::tensor::Matrix;
use nnlab::train::RunData;
use std::sync::Mutex;
use std::time::Instant;

pub fn run(args: &EnsembleArgs) -> anyhow::Result<()> {
    let t = &args.train;
    if args.members == 0 {
        anyhow::bail!("invalid --members 0: an ensemble needs at least 1 member");
    }
    let cfg = t.resolve()?;
    if t.print_config {
        out!("{}", cfg.to_toml());
        return Ok(());
    }
    if let Some(d) = &args.save_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("creating --save-dir {}: {e}", d.display()))?;
        for i in 0..args.members.min(1000) {
            super::train::check_save_target(
                &d.join(format!("member-{i}.safetensors")),
                args.force,
            )?;
        }
    }
    let quiet = t.out.quiet || t.out.json;
    let mut report = t.report.as_deref().map(super::report::open).transpose()?;
    let sets = RunSets::new(load_dataset(&cfg.dataset, &t.data, quiet)?, cfg.validation)?;
    let rt = t.rt.runtime();
    let parallel = match args.parallel {
        Parallel::Yes => true,
        Parallel::No => false,
        Parallel::Auto => args.members >= rt.threads && rt.threads > 1,
    };
    if !quiet {
        outln!(
            "training {} of {} ({} each, seeds {}..{}), {}",
            super::plural(args.members, "member"),
            t.preset.as_deref().unwrap_or("the given config"),
            super::plural(cfg.epochs, "epoch"),
            cfg.seed,
            cfg.seed + args.members as u64 - 1,
            if parallel {
                "in parallel, one thread each"
            } else {
                "one after another"
            }
        );
    }
    let start = Instant::now();
    let data = RunData {
        train: &sets.train,
        val: sets.val.as_ref(),
        test: None,
    };
    let meta = run_meta(&cfg, &sets);
    let epochs = cfg.epochs;
    let progress = |i: usize, s: &nnlab::train::EpochStats| {
        if !quiet {
            let val = s
                .val_acc
                .map_or(String::new(), |a| format!(", validation {a:.4}"));
            eprintln!(
                "nnlab: member {i} epoch {}/{epochs}: cost {:.6}{val} ({:.1} s)",
                s.epoch, s.cost, s.seconds
            );
        }
    };
    // each member is evaluated and saved as it finishes, so an interrupted or failed
    // run keeps the members trained before it
    let test = &sets.test;
    // grown as members finish (sized up front, an absurd --members would allocate
    // before the memory check refuses it)
    let finished: Mutex<Vec<Option<(f32, Matrix)>>> = Mutex::new(Vec::new());
    super::train::install_ctrl_c();
    let members = train_members(
        &cfg,
        args.members,
        &data,
        &rt,
        parallel,
        Hooks {
            stop: Some(&super::train::STOP),
            epoch: &progress,
            done: &|i, tr| {
                let e = tr.model.evaluate(test, &tr.rt);
                let probs = tr.model.predict_proba(test, &tr.rt);
                if let Some(d) = &args.save_dir {
                    let mut meta = meta.clone();
                    meta.config = tr.cfg.clone();
                    meta.metrics.insert("test_accuracy".into(), e.accuracy);
                    model_file::save_model(
                        &d.join(format!("member-{i}.safetensors")),
                        &mut tr.model,
                        &meta,
                    )?;
                }
                if !quiet {
                    let early = super::train::early_stop_line(tr)
                        .map_or(String::new(), |l| format!(": {}", l.to_lowercase()));
                    let saved = args
                        .save_dir
                        .as_ref()
                        .map_or(String::new(), |d| format!(", saved in {}", d.display()));
                    eprintln!(
                        "nnlab: member {i} (seed {}) done{early}: test accuracy {:.4}{saved}",
                        tr.cfg.seed, e.accuracy
                    );
                }
                let mut f = finished.lock().expect("no member panicked");
                if f.len() <= i {
                    f.resize_with(i + 1, || None);
                }
                f[i] = Some((e.accuracy, probs));
                Ok(())
            },
        },
    )
    .map_err(|e| {
        // in parallel the finished members need not be the first ones: name them
        let done: Vec<String> = finished.lock().map_or(Vec::new(), |f| {
            (0..f.len())
                .filter(|&i| f[i].is_some())
                .map(|i| i.to_string())
                .collect()
        });
        let which = match done.len() {
            1 => format!("member {} finished", done[0]),
            _ => format!("members {} finished", done.join(", ")),
        };
        let kept = match (&args.save_dir, done.is_empty()) {
            (_, true) => "no member had finished".to_string(),
            (Some(d), false) => format!("{which}, saved in {}", d.display()),
            (None, false) => format!("{which} (not saved: no --save-dir)"),
        };
        anyhow::anyhow!("{e}; {kept}")
    })?;
    // training, and each member's test as it finished (JSON: `train_seconds`)
    let seconds = start.elapsed().as_secs_f64();
    let histories: Vec<(String, Vec<nnlab::train::EpochStats>)> = members
        .into_iter()
        .enumerate()
        .map(|(i, m)| (format!("member{i}"), m.history))
        .collect();
    let (accs, probs): (Vec<f32>, Vec<Matrix>) = finished
        .into_inner()
        .expect("no member panicked")
        .into_iter()
        .map(|m| m.expect("every member finished"))
        .unzip();
    let avg = average(&probs);
    let preds: Vec<Vec<u8>> = probs.iter().map(argmax_rows).collect();
    let acc = |p: &[u8]| {
        p.iter().zip(&test.labels).filter(|(a, b)| a == b).count() as f32 / test.len() as f32
    };
    let by_avg = acc(&argmax_rows(&avg));
    let by_vote = acc(&vote(&preds, &avg));
    let mean = accs.iter().sum::<f32>() / accs.len() as f32;
    let summary = serde_json::json!({
        "members": accs, "member_mean": mean, "ensemble_average": by_avg,
        "ensemble_vote": by_vote, "train_seconds": seconds, "parallel": parallel,
        "config": cfg,
    });
    if let Some(r) = report.as_mut() {
        r.summary(
            "ensemble",
            format!("{by_avg:.4} by averaged probabilities, {by_vote:.4} by majority vote"),
        );
        r.summary(
            "members",
            format!(
                "{}: mean {mean:.4}, best {:.4}; trained and tested in {seconds:.1} s",
                super::plural(accs.len(), "member"),
                accs.iter().cloned().fold(0f32, f32::max)
            ),
        );
        r.table(
            "members",
            super::report::Table {
                caption: "Each member's test accuracy; members differ only by seed.".into(),
                header: vec!["member".into(), "seed".into(), "test acc".into()],
                rows: accs
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        vec![
                            i.to_string(),
                            (cfg.seed + i as u64).to_string(),
                            format!("{a:.4}"),
                        ]
                    })
                    .collect(),
            },
        );
        r.details("members", "config (TOML)", cfg.to_toml());
        let ens_pred = argmax_rows(&avg);
        let conf = nnlab::metrics::Confusion::new(&test.labels, &ens_pred, test.classes());
        r.confusion(
            "ensemble_confusion",
            "ensemble (averaged probabilities)",
            &conf,
            &test.class_names,
        )?;
        r.mistakes(
            "ensemble_mistakes",
            "ensemble (averaged probabilities)",
            test,
            &ens_pred,
            &avg,
        )?;
        // validation accuracy when the members held images out for it, else the
        // training accuracy of their batches (a preset such as cnn-best holds none out)
        let validated = histories
            .iter()
            .any(|(_, h)| h.iter().any(|s| s.val_acc.is_some()));
        let (what, file, note) = if validated {
            (
                "validation accuracy",
                "members_validation",
                "Each member's validation accuracy; members differ only by seed.",
            )
        } else {
            (
                "training accuracy",
                "members_training",
                "Each member's accuracy on its training batches (no images were held out \
                 for validation); members differ only by seed.",
            )
        };
        let chart = super::report::LineChart {
            title: format!("members' {what} per epoch"),
            x_label: "epoch".into(),
            y_label: what.into(),
            lines: histories
                .iter()
                .map(|(n, h)| super::report::Line {
                    label: n.clone(),
                    points: h
                        .iter()
                        .filter_map(|s| {
                            let a = if validated {
                                s.val_acc
                            } else {
                                Some(s.train_acc)
                            };
                            a.map(|a| (s.epoch as f64, a as f64))
                        })
                        .collect(),
                })
                .collect(),
            log_y: false,
        };
        r.line_chart(file, "members", &chart, note)?;
        r.json("metrics.json", &summary)?;
        r.history_csv("history.csv", &histories)?;
    }
    if let Some(r) = report {
        let page = r.finish("nnlab ensemble report")?;
        if !t.out.json {
            outln!("report: {}", page.display());
        }
    }
    if t.out.json {
        super::print_json(summary);
    } else {
        for (i, a) in accs.iter().enumerate() {
            outln!(
                "member {i} (seed {}): test accuracy {a:.4}",
                cfg.seed + i as u64
            );
        }
        let best = accs.iter().cloned().fold(0f32, f32::max);
        outln!("members: mean {mean:.4}, best {best:.4}");
        outln!(
            "ensemble, averaged probabilities: {by_avg:.4} ({:+.4} over the mean member, {:+.4} over the best)",
            by_avg - mean,
            by_avg - best
        );
        outln!(
            "ensemble, majority vote:          {by_vote:.4} ({:+.4} over the mean member)",
            by_vote - mean
        );
        outln!("trained and tested in {seconds:.1} s");
    }
    Ok(())
}
