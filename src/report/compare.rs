//! Runs side by side: the runs recorded in report folders (`history.csv` and
//! `metrics.json`, as `--report DIR` writes them), read back for `nnlab compare`.

use crate::error::{Error, Result};
use crate::train::EpochStats;
use std::path::Path;

/// One training run as a report folder recorded it.
#[derive(Clone, Debug)]
pub struct RecordedRun {
    /// The folder's name, and the run's within it when the folder holds several.
    pub name: String,
    pub history: Vec<EpochStats>,
    /// Test accuracy of the final model, where the report measured it.
    pub test_accuracy: Option<f64>,
    /// The run's config as JSON, where the report holds it.
    pub config: Option<serde_json::Value>,
}

impl RecordedRun {
    /// Total training seconds over the epochs.
    pub fn seconds(&self) -> f64 {
        self.history.iter().map(|h| h.seconds).sum()
    }
}

/// The runs of the report folder `dir`: one per run in its `history.csv`, with its test
/// accuracy and config from `metrics.json` where that file has them.
pub fn read_report(dir: &Path) -> Result<Vec<RecordedRun>> {
    let csv_path = dir.join("history.csv");
    if !dir.exists() {
        return Err(Error::format(
            dir,
            "does not exist; expected a report folder written by --report DIR",
        ));
    }
    if !dir.is_dir() {
        return Err(Error::format(
            dir,
            "is not a folder; expected a report folder written by --report DIR",
        ));
    }
    if !csv_path.exists() {
        return Err(Error::format(
            dir,
            "holds no history.csv; expected a report folder written by train, lab or ensemble --report DIR",
        ));
    }
    let text = crate::files::read_regular(&csv_path, "a report's history.csv")?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::format(&csv_path, "is not UTF-8 text; expected a CSV file"))?;
    let runs = parse_history(&text, &csv_path)?;
    let metrics_path = dir.join("metrics.json");
    let metrics: serde_json::Value = if metrics_path.exists() {
        let bytes = crate::files::read_regular(&metrics_path, "a report's metrics.json")?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(&metrics_path, format!("is not valid JSON ({e})")))?
    } else {
        serde_json::Value::Null
    };
    let folder = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
    let several = runs.len() > 1;
    Ok(runs
        .into_iter()
        .map(|(run, history)| {
            let (test_accuracy, config) = figures(&metrics, &run);
            RecordedRun {
                name: if several {
                    format!("{folder}/{run}")
                } else {
                    folder.clone()
                },
                history,
                test_accuracy,
                config,
            }
        })
        .collect())
}

/// A run's test accuracy and config in a report's metrics.json: a training report's
/// top-level figures, a lab report's entry per lab, an ensemble's per member.
fn figures(m: &serde_json::Value, run: &str) -> (Option<f64>, Option<serde_json::Value>) {
    let config = m
        .get(run)
        .and_then(|r| r.get("config"))
        .or_else(|| m.get("config"))
        .cloned();
    let acc = m
        .get(run)
        .and_then(|r| r.get("test_accuracy"))
        .or_else(|| {
            let i: usize = run.strip_prefix("member")?.parse().ok()?;
            m.get("members")?.get(i)
        })
        .or_else(|| m.get("test_accuracy"))
        .and_then(|v| v.as_f64());
    (acc, config)
}

/// `history.csv`'s runs in file order: `run,epoch,cost,train_acc,val_acc,val_loss,
/// test_acc,lr,seconds`, empty fields where a figure was not measured.
pub fn parse_history(text: &str, path: &Path) -> Result<Vec<(String, Vec<EpochStats>)>> {
    const HEADER: &str = "run,epoch,cost,train_acc,val_acc,val_loss,test_acc,lr,seconds";
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(HEADER) {
        return Err(Error::format(
            path,
            format!("does not start with the header {HEADER}; expected a report's history.csv"),
        ));
    }
    let mut runs: Vec<(String, Vec<EpochStats>)> = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| Error::format(path, format!("line {}: {what}", i + 2));
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() != 9 {
            return Err(bad(&format!("{} fields, expected 9", f.len())));
        }
        let num = |k: usize| -> Result<f64> {
            f[k].parse::<f64>()
                .map_err(|_| bad(&format!("{:?} is not a number", f[k])))
        };
        let opt = |k: usize| -> Result<Option<f32>> {
            if f[k].is_empty() {
                Ok(None)
            } else {
                Ok(Some(num(k)? as f32))
            }
        };
        let epoch = f[1]
            .parse::<usize>()
            .map_err(|_| bad(&format!("epoch {:?} is not a whole number", f[1])))?;
        let stats = EpochStats {
            epoch,
            cost: num(2)? as f32,
            train_acc: num(3)? as f32,
            val_acc: opt(4)?,
            val_loss: opt(5)?,
            test_acc: opt(6)?,
            lr: num(7)? as f32,
            seconds: num(8)?,
        };
        match runs.iter_mut().find(|(r, _)| r == f[0]) {
            Some((_, h)) => h.push(stats),
            None => runs.push((f[0].to_string(), vec![stats])),
        }
    }
    if runs.is_empty() {
        return Err(Error::format(path, "holds no epochs"));
    }
    Ok(runs)
}

/// The config settings (dotted paths such as `optimizer.lr`) whose values differ
/// between runs, with each run's value (`-` where a run has none).
pub fn config_differences(runs: &[RecordedRun]) -> Vec<(String, Vec<String>)> {
    fn flatten(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(x, &key, out);
                }
            }
            serde_json::Value::String(x) => out.push((prefix.to_string(), x.clone())),
            x => out.push((prefix.to_string(), x.to_string())),
        }
    }
    let flat: Vec<Vec<(String, String)>> = runs
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            if let Some(c) = &r.config {
                flatten(c, "", &mut out);
            }
            out
        })
        .collect();
    let mut keys: Vec<&String> = flat.iter().flatten().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<String> = flat
                .iter()
                .map(|f| {
                    f.iter()
                        .find(|(x, _)| x == k)
                        .map_or("-".into(), |(_, v)| v.clone())
                })
                .collect();
            values
                .iter()
                .any(|v| *v != values[0])
                .then(|| (k.clone(), values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_round_trips_and_bad_lines_are_named() {
        let p = Path::new("h.csv");
        let text = "run,epoch,cost,train_acc,val_acc,val_loss,test_acc,lr,seconds\n\
                    a,1,0.5,0.8,0.9,0.3,,0.001,1.5\na,2,0.25,0.9,0.95,0.2,,0.001,1.25\nb,1,0.7,0.7,,,0.6,0.01,2\n";
        let runs = parse_history(text, p).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].1.len(), 2);
        assert_eq!(runs[0].1[1].val_loss, Some(0.2));
        assert_eq!(runs[1].1[0].val_acc, None);
        assert_eq!(runs[1].1[0].test_acc, Some(0.6));
        let e = parse_history(&text.replace("0.25", "x"), p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("h.csv") && e.contains("line 3") && e.contains("\"x\""),
            "{e}"
        );
        let e = parse_history("epoch,cost\n1,2\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("header"), "{e}");
    }

    #[test]
    fn differences_list_only_what_differs() {
        let run = |lr: f64, seed: u64, extra: bool| RecordedRun {
            name: String::new(),
            history: vec![],
            test_accuracy: None,
            config: Some(if extra {
                serde_json::json!({"seed": seed, "optimizer": {"lr": lr}, "augment": {"shift": 2}})
            } else {
                serde_json::json!({"seed": seed, "optimizer": {"lr": lr}})
            }),
        };
        let d = config_differences(&[run(0.001, 1, false), run(0.01, 1, true)]);
        assert_eq!(
            d,
            vec![
                (
                    "augment.shift".to_string(),
                    vec!["-".to_string(), "2".to_string()]
                ),
                (
                    "optimizer.lr".to_string(),
                    vec!["0.001".to_string(), "0.01".to_string()]
                ),
            ]
        );
    }
}
