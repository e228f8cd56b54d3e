//! `nnlab lab`: the lecture's four labs, run as the lecture's code runs them, then a
//! table against the lecture's figures.

use super::load_dataset;
use super::outln;
use super::train::{RunOptions, RunSets, run_config};
use crate::cli::LabArgs;
use nnlab::config::{LABS, LECTURE_10_LABS, TrainConfig};
use nnlab::runtime::Precision;

/// Epochs the lecture's labs train (`training_epochs = 15`).
const LECTURE_EPOCHS: usize = 15;

/// One finished lab, for the closing table.
struct Row {
    name: &'static str,
    title: &'static str,
    accuracy: f32,
    lecture: f32,
    cost_first: f32,
    cost_last: f32,
    seconds: f64,
}

pub fn run(args: &LabArgs) -> anyhow::Result<()> {
    let labs: Vec<_> = LABS
        .iter()
        .enumerate()
        .filter(|&(i, l)| (args.lab == "all" && i < LECTURE_10_LABS) || args.lab == l.name)
        .map(|(_, l)| l)
        .collect();
    if let Some(d) = &args.save_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("creating --save-dir {}: {e}", d.display()))?;
        for lab in &labs {
            super::train::check_save_target(
                &d.join(format!("{}.safetensors", lab.name)),
                args.force,
            )?;
        }
    }
    let rt = args.rt.runtime();
    let mut report = args
        .report
        .as_deref()
        .map(super::report::open)
        .transpose()?;
    let mut histories = Vec::new();
    let mut metrics = serde_json::Map::new();
    let splits = load_dataset("mnist", &args.data, args.out.quiet || args.out.json)?;
    let sets = RunSets::new(splits, nnlab::data::LAB_VALIDATION)?;
    let mut rows = Vec::new();
    for lab in labs {
        let mut cfg = TrainConfig::preset(lab.name)?;
        cfg.seed = args.seed;
        cfg.epochs = args.epochs;
        if !args.out.json && cfg.model.layers.is_empty() {
            outln!(
                "\n== Lab {}: 784-{}-10, {} init, keep_prob {} ==",
                lab.title,
                cfg.model
                    .hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join("-"),
                cfg.model.init,
                cfg.model.keep_prob
            );
        } else if !args.out.json {
            outln!("\n== Lab {}: {} ==", lab.title, cnn_line(&cfg));
        }
        let opts = RunOptions {
            save: args
                .save_dir
                .as_ref()
                .map(|d| d.join(format!("{}.safetensors", lab.name))),
            force: args.force,
            ..RunOptions::default()
        };
        let mut res = run_config(&cfg, &sets, &args.out, lab.name, &opts, rt)?;
        if let Some(r) = report.as_mut() {
            let history = res.trainer.history.clone();
            let mut m = super::report::model_pictures(
                r,
                lab.name,
                lab.title,
                &mut res.trainer.model,
                Some(super::report::Run {
                    cfg: &cfg,
                    history: &history,
                }),
                &sets.test,
                &res.trainer.rt,
            )?;
            m["lecture_accuracy"] = lab.lecture_accuracy.into();
            m["config"] = serde_json::to_value(&cfg)?;
            metrics.insert(lab.name.to_string(), m);
            histories.push((lab.name.to_string(), history));
        }
        let h = &res.trainer.history;
        rows.push(Row {
            name: lab.name,
            title: lab.title,
            accuracy: res.test_accuracy,
            lecture: lab.lecture_accuracy,
            cost_first: h.first().map_or(f32::NAN, |s| s.cost),
            cost_last: h.last().map_or(f32::NAN, |s| s.cost),
            seconds: res.train_seconds,
        });
    }
    if let Some(mut r) = report {
        for x in &rows {
            r.summary(
                &format!("{} ({})", x.title, x.name),
                format!(
                    "test accuracy {:.4}; the lecture printed {:.4}",
                    x.accuracy, x.lecture
                ),
            );
        }
        if rt.precision != Precision::F32 {
            r.summary("precision", format!("products in {}", rt.precision));
            metrics.insert("precision".into(), rt.precision.to_string().into());
        }
        r.summary(
            "epochs, seed",
            format!(
                "{} ({} in the lecture), seed {}",
                args.epochs, LECTURE_EPOCHS, args.seed
            ),
        );
        if rows.len() > 1 {
            let bars: Vec<(String, f64, f64)> = rows
                .iter()
                .map(|x| (x.name.to_string(), x.accuracy as f64, x.lecture as f64))
                .collect();
            r.accuracy_bars("labs_accuracy", "all labs", &bars)?;
            let lines = histories
                .iter()
                .map(|(n, h)| super::report::Line {
                    label: n.clone(),
                    points: h.iter().map(|s| (s.epoch as f64, s.cost as f64)).collect(),
                })
                .collect();
            let chart = super::report::LineChart {
                title: "cost per epoch, all labs".into(),
                x_label: "epoch".into(),
                y_label: "cost (log scale)".into(),
                lines,
                log_y: true,
            };
            r.line_chart("labs_cost", "all labs", &chart, "The four labs' cost curves; normal init (nn) starts two orders of magnitude higher.")?;
        }
        r.json("metrics.json", &serde_json::Value::Object(metrics))?;
        r.history_csv("history.csv", &histories)?;
        let page = r.finish("nnlab lab report: lecture 10's MNIST labs")?;
        if !args.out.json {
            outln!("report: {}", page.display());
        }
    }
    if args.out.json {
        return Ok(());
    }
    outln!(
        "\n{:<8} {:<22} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "lab",
        "",
        "accuracy",
        "lecture",
        "cost ep1",
        "cost last",
        "train s"
    );
    for r in &rows {
        outln!(
            "{:<8} {:<22} {:>9.4} {:>9.4} {:>12.6} {:>12.6} {:>9.1}",
            r.name,
            r.title,
            r.accuracy,
            r.lecture,
            r.cost_first,
            r.cost_last,
            r.seconds
        );
    }
    if args.epochs != LECTURE_EPOCHS {
        outln!(
            "(this run trained {}; the lecture's figures are after {LECTURE_EPOCHS})",
            super::plural(args.epochs, "epoch")
        );
    }
    Ok(())
}

/// One line for a CNN lab's net, e.g. `conv32-pool-conv64-pool-3136-10`.
fn cnn_line(cfg: &TrainConfig) -> String {
    use nnlab::config::LayerSpec;
    let mut parts: Vec<String> = Vec::new();
    let mut shape = nnlab::layers::Features::Image { c: 1, h: 28, w: 28 };
    for l in &cfg.model.layers {
        match l {
            LayerSpec::Conv { channels, .. } => parts.push(format!("conv{channels}")),
            LayerSpec::Maxpool { .. } => parts.push("pool".into()),
            LayerSpec::Dropout { keep } => parts.push(format!("drop{keep}")),
            LayerSpec::Dense { units, .. } => parts.push(units.to_string()),
            LayerSpec::Flatten => parts.push(shape.size().to_string()),
            _ => {}
        }
        shape = l.out_shape(shape, "").unwrap_or(shape);
    }
    parts.push("10".into());
    format!(
        "{}, Adam {}, batch {}",
        parts.join("-"),
        cfg.optimizer.lr,
        cfg.batch
    )
}
