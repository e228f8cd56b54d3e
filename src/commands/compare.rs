//! `nnlab compare DIR...`: runs recorded in report folders, side by side on one page.

use super::outln;
use super::report::{Line, LineChart, Table};
use crate::cli::CompareArgs;
use nnlab::report::compare::{RecordedRun, config_differences, read_report};
use nnlab::train::EpochStats;

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    };
    let out_abs = absolute(&args.out)?;
    let mut runs: Vec<RecordedRun> = Vec::new();
    for d in &args.dirs {
        if absolute(d)? == out_abs {
            anyhow::bail!(
                "--out {} is one of the folders compared: its page would be replaced; name another folder",
                args.out.display()
            );
        }
        runs.extend(read_report(d)?);
    }
    // folders of the same name (a/run, b/run, or one folder twice) get numbered
    for i in 0..runs.len() {
        let same = runs.iter().filter(|r| r.name == runs[i].name).count();
        if same > 1 {
            let name = runs[i].name.clone();
            let mut k = 0;
            for r in runs.iter_mut().filter(|r| r.name == name) {
                k += 1;
                r.name = format!("{name} ({k})");
            }
        }
    }
    let mut r = super::report::open(&args.out)?;
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
    let last = |run: &RecordedRun, f: &dyn Fn(&EpochStats) -> Option<f32>| {
        run.history.iter().rev().find_map(f).map(f64::from)
    };
    let best = runs
        .iter()
        .filter_map(|x| x.test_accuracy.map(|a| (a, &x.name)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((a, name)) = best {
        r.summary("best test accuracy", format!("{a:.4} ({name})"));
    }
    r.summary("runs", runs.len().to_string());
    r.table(
        "final figures",
        Table {
            caption: "Each run's last epoch, and its final model on the test set.".into(),
            header: [
                "run",
                "epochs",
                "last cost",
                "val acc",
                "val loss",
                "test acc",
                "seconds",
            ]
            .map(String::from)
            .to_vec(),
            rows: runs
                .iter()
                .map(|x| {
                    vec![
                        x.name.clone(),
                        x.history.len().to_string(),
                        pct(last(x, &|h| Some(h.cost))),
                        pct(last(x, &|h| h.val_acc)),
                        pct(last(x, &|h| h.val_loss)),
                        pct(x.test_accuracy.or(last(x, &|h| h.test_acc))),
                        format!("{:.1}", x.seconds()),
                    ]
                })
                .collect(),
        },
    );
    let diffs = config_differences(&runs);
    if runs.iter().any(|x| x.config.is_some()) {
        if diffs.is_empty() {
            r.text("config differences", "The runs' configs are the same.");
        } else {
            r.table(
                "config differences",
                Table {
                    caption: "Only the settings that differ ('-': not in that run's config)."
                        .into(),
                    header: std::iter::once("setting".to_string())
                        .chain(runs.iter().map(|x| x.name.clone()))
                        .collect(),
                    rows: diffs
                        .into_iter()
                        .map(|(k, v)| std::iter::once(k).chain(v).collect())
                        .collect(),
                },
            );
        }
    }
    type Pick = fn(&EpochStats) -> Option<f32>;
    let charts: [(&str, &str, &str, bool, Pick); 4] = [
        ("cost", "cost per epoch", "cost (log scale)", true, |h| {
            Some(h.cost)
        }),
        (
            "val_loss",
            "validation loss per epoch",
            "validation loss (log scale)",
            true,
            |h| h.val_loss,
        ),
        (
            "val_acc",
            "validation accuracy per epoch",
            "validation accuracy",
            false,
            |h| h.val_acc,
        ),
        (
            "test_acc",
            "test accuracy per epoch",
            "test accuracy",
            false,
            |h| h.test_acc,
        ),
    ];
    for (name, title, y, log, pick) in charts {
        let lines: Vec<Line> = runs
            .iter()
            .map(|x| Line {
                label: x.name.clone(),
                points: x
                    .history
                    .iter()
                    .filter_map(|h| pick(h).map(|v| (h.epoch as f64, v as f64)))
                    .collect(),
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        let chart = LineChart {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: y.into(),
            lines,
            log_y: log,
        };
        r.line_chart(
            &format!("compare_{name}"),
            "curves",
            &chart,
            &format!("{title}, every run on one chart."),
        )?;
    }
    let sources: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
    r.text(
        "sources",
        format!("Report folders: {}.", sources.join(", ")),
    );
    let page = r.finish("nnlab compare")?;
    outln!(
        "compared {}: {}",
        super::plural(runs.len(), "run"),
        page.display()
    );
    Ok(())
}
