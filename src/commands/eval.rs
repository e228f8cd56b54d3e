//! `nnlab eval`: accuracy, loss, per-class precision/recall and the confusion matrix
//! of one or more saved models, and of their ensemble.

use super::outln;
use super::{check_fits, load_dataset, load_model};
use crate::cli::{EvalArgs, Split};
use nnlab::ensemble::{argmax_rows, average, vote};
use nnlab::loss::softmax_cross_entropy;
use nnlab::metrics::Confusion;
use nnlab::tensor::Matrix;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let rt = args.rt.runtime();
    let _fp = rt.enter();
    let models = args
        .models
        .iter()
        .map(|p| load_model(p, args.json))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dataset = match &args.dataset {
        Some(d) => d.clone(),
        None if !models[0].meta.dataset.is_empty() => models[0].meta.dataset.clone(),
        None => "mnist".into(),
    };
    let mut report = args
        .report
        .as_deref()
        .map(super::report::open)
        .transpose()?;
    let splits = load_dataset(&dataset, &args.data, args.json)?;
    let d = if args.split == Split::Train {
        &splits.train
    } else {
        &splits.test
    };
    let mut probs = Vec::new();
    let mut results = Vec::new();
    let count = models.len();
    // every model was loaded first, so that a bad file fails before any work; each is
    // dropped once evaluated, with its evaluation buffers (a CNN's are about a
    // gigabyte): what stays per model is its probabilities, and until its turn its
    // weights and their gradients (about twice its file)
    for (i, mut m) in models.into_iter().enumerate() {
        check_fits(&m, d)?;
        if let Some(r) = report.as_mut() {
            let label = format!("model {} ({})", i + 1, m.path.display());
            super::report::model_pictures(
                r,
                &format!("model{}", i + 1),
                &label,
                &mut m.model,
                None,
                d,
                &rt,
            )?;
        }
        let e = m.model.evaluate(d, &rt);
        let conf = Confusion::new(&d.labels, &e.predictions, d.classes());
        if !args.json {
            outln!(
                "{}: accuracy {:.4}, loss {:.4} on {} ({})",
                m.path.display(),
                e.accuracy,
                e.loss,
                d.name,
                super::plural(d.len(), "image")
            );
            if args.models.len() == 1 {
                outln!("\n{}", conf.table(&d.class_names));
            }
        }
        if let Some(r) = report.as_mut() {
            r.summary(
                &m.path.display().to_string(),
                format!(
                    "accuracy {:.4}, loss {:.4} on {} ({})",
                    e.accuracy,
                    e.loss,
                    d.name,
                    super::plural(d.len(), "image")
                ),
            );
        }
        results.push(serde_json::json!({
            "model": m.path, "accuracy": e.accuracy, "loss": e.loss,
            "precision": (0..d.classes()).map(|c| conf.precision(c)).collect::<Vec<_>>(),
            "recall": (0..d.classes()).map(|c| conf.recall(c)).collect::<Vec<_>>(),
            "confusion": conf.rows(),
        }));
        probs.push(m.model.predict_proba(d, &rt));
    }
    let mut ensemble = serde_json::Value::Null;
    if count > 1 {
        let avg = average(&probs);
        let by_avg = argmax_rows(&avg);
        let preds: Vec<Vec<u8>> = probs.iter().map(argmax_rows).collect();
        let by_vote = vote(&preds, &avg);
        let acc = |p: &[u8]| {
            p.iter().zip(&d.labels).filter(|(a, b)| a == b).count() as f32 / d.len() as f32
        };
        let logits = Matrix::from_vec(
            avg.rows,
            avg.cols,
            avg.data.iter().map(|p| p.max(1e-30).ln()).collect(),
        );
        let mut scratch = Matrix::zeros(0, avg.cols);
        let loss = softmax_cross_entropy(&logits, &d.labels, &mut scratch);
        let conf = Confusion::new(&d.labels, &by_avg, d.classes());
        if let Some(r) = report.as_mut() {
            r.summary(
                &format!("ensemble of {count}"),
                format!(
                    "accuracy {:.4} by averaged probabilities, {:.4} by majority vote",
                    acc(&by_avg),
                    acc(&by_vote)
                ),
            );
            r.confusion(
                "ensemble_confusion",
                "ensemble (averaged probabilities)",
                &conf,
                &d.class_names,
            )?;
            r.mistakes(
                "ensemble_mistakes",
                "ensemble (averaged probabilities)",
                d,
                &by_avg,
                &avg,
            )?;
        }
        if !args.json {
            outln!(
                "\nensemble of {}: accuracy {:.4} by averaged probabilities (loss {:.4}), {:.4} by majority vote",
                count,
                acc(&by_avg),
                loss,
                acc(&by_vote)
            );
            outln!("\n{}", conf.table(&d.class_names));
        }
        ensemble = serde_json::json!({
            "members": count, "accuracy_average": acc(&by_avg), "loss_average": loss,
            "accuracy_vote": acc(&by_vote), "confusion": conf.rows(),
        });
    }
    let summary = serde_json::json!({ "dataset": d.name, "models": results, "ensemble": ensemble });
    if let Some(mut r) = report {
        r.json("metrics.json", &summary)?;
        let page = r.finish(&format!("nnlab eval report: {}", d.name))?;
        if !args.json {
            outln!("report: {}", page.display());
        }
    }
    if args.json {
        super::print_json(summary);
    }
    Ok(())
}
