//! `--report DIR` for every command that has something to show.

use nnlab::data::Dataset;
use nnlab::metrics::Confusion;
use nnlab::model::Model;
use nnlab::train::EpochStats;
use std::path::Path;

pub use nnlab::report::{Line, LineChart, ReportWriter};

/// Opens (creating it) a report folder, checked writable before any training.
pub fn open(dir: &Path) -> anyhow::Result<ReportWriter> {
    Ok(ReportWriter::new(dir)?)
}

/// The pictures of one trained model on a test set: learning curves (if a history is
/// given), confusion matrix, mistakes, first-layer weights. Returns the evaluation's
/// numbers for metrics.json.
pub fn model_pictures(
    r: &mut ReportWriter,
    name: &str,
    label: &str,
    model: &mut Model,
    history: &[EpochStats],
    test: &Dataset,
    rt: &nnlab::Runtime,
) -> anyhow::Result<serde_json::Value> {
    if !history.is_empty() {
        r.learning_curves(name, label, history)?;
    }
    let e = model.evaluate(test, rt);
    let conf = Confusion::new(&test.labels, &e.predictions, test.classes());
    r.confusion(
        &format!("{name}_confusion"),
        label,
        &conf,
        &test.class_names,
    )?;
    let probs = model.predict_proba(test, rt);
    r.mistakes(
        &format!("{name}_mistakes"),
        label,
        test,
        &e.predictions,
        &probs,
    )?;
    let mut first = None;
    nnlab::layers::Layer::visit_params(&mut model.net, &mut |p| {
        if first.is_none() && p.shape.rank == 2 && p.shape.dims[1] == test.features() {
            first = Some((p.to_row_major(), p.shape.dims[0]));
        }
    });
    if let Some((w, units)) = first {
        r.weight_tiles(
            &format!("{name}_weights"),
            label,
            &w,
            units,
            test.height,
            test.width,
        )?;
    }
    Ok(serde_json::json!({
        "test_accuracy": e.accuracy,
        "test_loss": e.loss,
        "precision": (0..test.classes()).map(|c| conf.precision(c)).collect::<Vec<_>>(),
        "recall": (0..test.classes()).map(|c| conf.recall(c)).collect::<Vec<_>>(),
        "confusion": conf.rows(),
        "history": history,
    }))
}
