//! `nnlab study <experiment>`: the lecture's claims, checked on MNIST.

use super::load_dataset;
use super::{out, outln};
use crate::cli::{Experiment, StudyArgs};
use nnlab::study::{self, StudyData, StudyOptions};

pub fn run(args: &StudyArgs) -> anyhow::Result<()> {
    let s = load_dataset("mnist", &args.data, args.json)?;
    // quick: the first 5,000 training images; full: the lab's 55,000
    let (train, _) = s.train.split_validation(nnlab::data::LAB_VALIDATION)?;
    let train = if args.quick {
        train.slice(0..5000, "mnist train (5,000)")
    } else {
        train
    };
    let data = StudyData {
        train: &train,
        test: &s.test,
    };
    let o = StudyOptions {
        quick: args.quick,
        seed: args.seed,
        rt: args.rt.runtime(),
    };
    let mut report = args
        .report
        .as_deref()
        .map(super::report::open)
        .transpose()?;
    let start = std::time::Instant::now();
    let table = match args.experiment {
        Experiment::Depth => study::depth(&data, &o)?,
        Experiment::Init => study::init(&data, &o)?,
        Experiment::Activation => study::activation(&data, &o)?,
        Experiment::Dropout => study::dropout(&data, &o)?,
        Experiment::Ensemble => study::ensemble(&data, &o)?,
    };
    if let Some(mut r) = report.take() {
        r.summary("study", table.title.clone());
        r.summary(
            "conclusion",
            table.conclusion.trim_start_matches("Conclusion: "),
        );
        r.text(&table.title, table.setup.clone());
        r.table(&table.title, study_table(&table));
        // one chart per series name, a line per row
        let mut names: Vec<String> = Vec::new();
        for row in &table.rows {
            for (n, _) in &row.series {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        for n in &names {
            let lines: Vec<super::report::Line> = table
                .rows
                .iter()
                .filter_map(|row| {
                    let s = &row.series.iter().find(|(k, _)| k == n)?.1;
                    (!s.is_empty()).then(|| super::report::Line {
                        label: row.label.clone(),
                        points: s
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| ((i + 1) as f64, v))
                            .collect(),
                    })
                })
                .collect();
            if lines.is_empty() {
                continue;
            }
            let (x, y, log) = match n.as_str() {
                "grad_norm_per_layer" => (
                    "layer (1 = first)",
                    "weight-gradient L2 norm (log scale)",
                    true,
                ),
                "cost" => ("epoch", "cost (log scale)", true),
                _ => ("epoch", "accuracy", false),
            };
            // the depth study has many rows: chart only the deepest nets' gradients
            let lines = if n == "grad_norm_per_layer" {
                let deepest = lines.iter().map(|l| l.points.len()).max().unwrap_or(0);
                lines
                    .into_iter()
                    .filter(|l| l.points.len() == deepest)
                    .collect()
            } else {
                lines
            };
            let chart = super::report::LineChart {
                title: format!("{}: {n}", format!("{:?}", args.experiment).to_lowercase()),
                x_label: x.into(),
                y_label: y.into(),
                lines,
                log_y: log,
            };
            r.line_chart(&format!("study_{n}"), &table.title, &chart, &table.setup)?;
        }
        r.json("metrics.json", &serde_json::to_value(&table)?)?;
        let page = r.finish(&format!(
            "nnlab study {}",
            format!("{:?}", args.experiment).to_lowercase()
        ))?;
        if !args.json {
            outln!("report: {}", page.display());
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string(&table)?);
    } else {
        out!("{}", table.render());
        outln!("\n({:.0} s)", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The study's numbers as a report table.
fn study_table(t: &study::Table) -> super::report::Table {
    let header = std::iter::once(String::new())
        .chain(
            t.rows
                .first()
                .into_iter()
                .flat_map(|r| r.values.iter().map(|(k, _)| k.clone())),
        )
        .collect();
    let rows = t
        .rows
        .iter()
        .map(|r| {
            std::iter::once(r.label.clone())
                .chain(r.values.iter().map(|(_, v)| study::number(*v)))
                .collect()
        })
        .collect();
    super::report::Table {
        caption: String::new(),
        header,
        rows,
    }
}
