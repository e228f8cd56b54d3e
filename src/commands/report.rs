//! `--report DIR` for every command that has something to show.

use nnlab::config::TrainConfig;
use nnlab::data::Dataset;
use nnlab::metrics::Confusion;
use nnlab::model::Model;
use nnlab::train::EpochStats;
use std::path::Path;

pub use nnlab::report::{Line, LineChart, ReportWriter, Table};

/// An epoch's validation accuracy and loss, as report summaries show them, if measured.
pub fn validation_line(h: &EpochStats) -> Option<String> {
    let (a, l) = (h.val_acc?, h.val_loss?);
    Some(format!("{a:.4} (loss {l:.4}, epoch {})", h.epoch))
}

/// A finished training run as its report shows it.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub cfg: &'a TrainConfig,
    pub history: &'a [EpochStats],
}

/// Opens (creating it) a report folder, checked writable before any training.
pub fn open(dir: &Path) -> anyhow::Result<ReportWriter> {
    Ok(ReportWriter::new(dir)?)
}

/// One trained model's section of a report, on a test set: its test figures, and for a
/// training run the per-epoch table and learning curves; the confusion matrix,
/// mistakes, first-layer weights or filters, its layers and config. Returns the
/// evaluation's numbers for metrics.json.
pub fn model_pictures(
    r: &mut ReportWriter,
    name: &str,
    label: &str,
    model: &mut Model,
    run: Option<Run<'_>>,
    test: &Dataset,
    rt: &nnlab::Runtime,
) -> anyhow::Result<serde_json::Value> {
    let e = model.evaluate(test, rt);
    r.text(
        label,
        format!(
            "Test accuracy {:.4} (loss {:.4}) on the {} images of {}; {} parameters.",
            e.accuracy,
            e.loss,
            test.len(),
            test.name,
            model.param_count()
        ),
    );
    let history = run.map_or(&[][..], |run| run.history);
    if let Some(run) = run.filter(|run| !run.history.is_empty()) {
        r.table(label, Table::epochs("Per epoch", run.history));
        r.learning_curves(
            name,
            label,
            run.history,
            &nnlab::report::train_accuracy_caption(run.cfg),
        )?;
    }
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
    let mut filters = None;
    nnlab::layers::Layer::visit_params(&mut model.net, &mut |p| {
        if first.is_none() && p.shape.rank == 2 && p.shape.dims[1] == test.features() {
            first = Some((p.to_row_major(), p.shape.dims[0]));
        }
        if filters.is_none() && first.is_none() && p.shape.rank == 4 {
            filters = Some((p.to_row_major(), p.shape.dims));
        }
    });
    if let Some((w, [out, c_in, kh, kw])) = filters {
        let title = format!("{label}: first convolution's filters ({out}, channel 1 of {c_in})");
        let planes: Vec<f32> = (0..out)
            .flat_map(|o| w[o * c_in * kh * kw..][..kh * kw].to_vec())
            .collect();
        r.tiles(
            &format!("{name}_filters"),
            label,
            &title,
            "What each first-layer filter looks for: white weights raise its output, black ones lower it.",
            &planes,
            out,
            kh,
            kw,
        )?;
        // the first layer's output for one test image: its feature maps
        if !test.is_empty() {
            let x =
                nnlab::tensor::Matrix::from_vec(1, test.features(), test.images.row(0).to_vec());
            let mut rng = nnlab::rng::Rng::new(0);
            model.forward(&x, nnlab::layers::Mode::Eval, &mut rng, rt);
            let first_layer = &model.net.layers()[0];
            if let nnlab::layers::Features::Image { c, h, w } = first_layer.output() {
                let maps = model.net.outputs()[0].row(0).to_vec();
                r.tiles(
                    &format!("{name}_feature_maps"),
                    label,
                    &format!("{label}: the first convolution's {c} feature maps of test image 0 (label {})", test.labels[0]),
                    "Each filter's response over the image: white where it finds its pattern.",
                    &maps,
                    c,
                    h,
                    w,
                )?;
            }
        }
    }
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
    r.details(label, "layers", model.summary());
    if let Some(run) = run {
        r.details(
            label,
            "config (TOML, as --config reads it)",
            run.cfg.to_toml(),
        );
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
