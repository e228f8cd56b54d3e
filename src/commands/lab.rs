//! `nnlab lab`: the lecture's four labs, run as the lecture's code runs them, then a
//! table against the lecture's figures.

use super::load_dataset;
use super::train::{RunOptions, RunSets, run_config};
use crate::cli::LabArgs;
use nnlab::config::{LABS, TrainConfig};

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
        .filter(|l| args.lab == "all" || args.lab == l.name)
        .collect();
    if let Some(d) = &args.save_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("creating --save-dir {}: {e}", d.display()))?;
        nnlab::io::model_file::check_writable(&d.join("probe.safetensors"))?;
    }
    let splits = load_dataset("mnist", &args.data, args.out.quiet || args.out.json)?;
    let sets = RunSets::new(splits, nnlab::data::LAB_VALIDATION)?;
    let mut rows = Vec::new();
    for lab in labs {
        let mut cfg = TrainConfig::preset(lab.name)?;
        cfg.seed = args.seed;
        cfg.epochs = args.epochs;
        cfg.threads = args.threads;
        if !args.out.json {
            println!(
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
        }
        let opts = RunOptions {
            save: args
                .save_dir
                .as_ref()
                .map(|d| d.join(format!("{}.safetensors", lab.name))),
            ..RunOptions::default()
        };
        let res = run_config(&cfg, &sets, &args.out, lab.name, &opts)?;
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
    if args.out.json {
        return Ok(());
    }
    println!(
        "\n{:<8} {:<22} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "lab", "", "accuracy", "lecture", "cost ep1", "cost last", "train s"
    );
    for r in &rows {
        println!(
            "{:<8} {:<22} {:>9.4} {:>9.4} {:>12.6} {:>12.6} {:>9.1}",
            r.name, r.title, r.accuracy, r.lecture, r.cost_first, r.cost_last, r.seconds
        );
    }
    Ok(())
}
