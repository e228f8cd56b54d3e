//! Reports a learner can open: learning curves, the confusion matrix as a heatmap,
//! misclassified digits, first-layer weights as 28x28 tiles, and for `lab all` the
//! four labs against the lecture; with `metrics.json`, `history.csv` and an
//! `index.html` that shows everything (a static page, no scripts).
//!
//! Charts are drawn with `plotters` twice, as PNG (through our `image` encoder) and
//! SVG; image grids are PNG. Text uses the DejaVu Sans font shipped in
//! `assets/fonts` so that reports look the same on every machine. Colour scales get
//! darker monotonically, so they survive greyscale printing; lines also differ by
//! marker shape.
//!
//! By what it draws: `charts` (line charts and bars), `pictures` (the confusion
//! heatmap, misclassified digits, weight tiles); here the report folder, its data files
//! (`metrics.json`, `history.csv`) and the page that shows them.

use crate::error::{Error, Result};
use crate::train::EpochStats;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

mod charts;
pub mod compare;
mod pictures;

pub use charts::{Line, LineChart};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; failing to parse it is a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// `value` with every number that came from an `f32` written as that `f32` prints
/// (0.7, not the 0.699999988079071 its widening to `f64` gives), recursively.
pub fn tidy(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let short = x as f32;
            match format!("{short}").parse::<f64>() {
                Ok(y) if short as f64 == x && y.is_finite() => Value::from(y),
                _ => Value::Number(n),
            }
        }
        Value::Array(v) => Value::Array(v.into_iter().map(tidy).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, tidy(v))).collect()),
        v => v,
    }
}

/// How a run's training accuracy was measured, as the accuracy chart's caption says it.
pub fn train_accuracy_caption(cfg: &crate::config::TrainConfig) -> String {
    if cfg.eval_train {
        return "Training accuracy is measured over the whole training set in evaluation mode after each epoch; \
                training well above validation accuracy is the overfitting gap the lecture talks about."
            .into();
    }
    let noise = match (cfg.model.has_dropout(), cfg.augment.is_some()) {
        (true, true) => Some("dropout and augmentation"),
        (true, false) => Some("dropout"),
        (false, true) => Some("augmentation"),
        (false, false) => None,
    };
    match noise {
        Some(what) => format!(
            "Training accuracy is the running accuracy of each epoch's batches as they were trained, with {what} on, \
             so it sits below validation accuracy and says nothing of overfitting here \
             (--eval-train measures the training set in evaluation mode)."
        ),
        None => "Training accuracy is the running accuracy of each epoch's batches as they were trained; \
                 training well above validation accuracy is the overfitting gap the lecture talks about."
            .into(),
    }
}

/// Renders with a bitmap backend into an RGB buffer and writes a PNG.
pub(crate) fn png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root).map_err(|e| Error::format(path, format!("drawing failed: {e}")))?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf).expect("buffer sized for the image");
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::format(path, format!("PNG encoding failed: {e}")))?;
    crate::files::write_atomic(path, &bytes)
}

/// Renders with the SVG backend.
pub(crate) fn svg(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw(&root).map_err(|e| Error::format(path, format!("drawing failed: {e}")))?;
    }
    crate::files::write_atomic(path, text.as_bytes())
}

/// One entry of a report page, in page order under its section.
enum Item {
    /// A PNG (with its SVG twin when one was drawn) and its caption.
    Figure { file: String, caption: String },
    /// A data file linked with what it holds.
    Data { file: String, caption: String },
    /// A table of numbers.
    Table(Table),
    /// A paragraph.
    Text(String),
    /// Preformatted text folded away (a config).
    Details { summary: String, text: String },
}

/// A table for a report page: header and rows of cells, already formatted.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// `x` with `digits` decimals, or `-` when absent.
pub fn cell(x: Option<f32>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

impl Table {
    /// The per-epoch table of a run: cost, training and validation accuracy,
    /// validation loss, test accuracy where measured, learning rate and seconds.
    pub fn epochs(caption: &str, history: &[EpochStats]) -> Table {
        let has_test = history.iter().any(|h| h.test_acc.is_some());
        let mut header = vec!["epoch", "cost", "train acc", "val acc", "val loss"];
        if has_test {
            header.push("test acc");
        }
        header.extend(["lr", "seconds"]);
        let rows = history
            .iter()
            .map(|h| {
                let mut r = vec![
                    h.epoch.to_string(),
                    format!("{:.6}", h.cost),
                    format!("{:.4}", h.train_acc),
                    cell(h.val_acc, 4),
                    cell(h.val_loss, 4),
                ];
                if has_test {
                    r.push(cell(h.test_acc, 4));
                }
                r.push(format!("{}", h.lr));
                r.push(format!("{:.1}", h.seconds));
                r
            })
            .collect();
        Table {
            caption: caption.into(),
            header: header.into_iter().map(String::from).collect(),
            rows,
        }
    }
}

/// Collects a report's files and writes its `index.html`: a summary of the figures
/// that matter first, then each section's tables, pictures and data files.
pub struct ReportWriter {
    pub dir: PathBuf,
    /// (name, value) pairs shown at the top of the page.
    summary: Vec<(String, String)>,
    /// (section title, item) in page order.
    items: Vec<(String, Item)>,
    /// Seconds after which a browser reloads the page (a live report), if set.
    refresh: Option<u32>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table_html(t: &Table) -> String {
    let mut h = String::from("<table>");
    if !t.caption.is_empty() {
        h += &format!("<caption>{}</caption>", esc(&t.caption));
    }
    h += "<thead><tr>";
    for c in &t.header {
        h += &format!("<th>{}</th>", esc(c));
    }
    h += "</tr></thead><tbody>\n";
    for r in &t.rows {
        h += "<tr>";
        for (i, c) in r.iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            h += &format!("<{tag}>{}</{tag}>", esc(c));
        }
        h += "</tr>\n";
    }
    h + "</tbody></table>\n"
}

impl ReportWriter {
    /// Creates (if needed) and checks the report folder.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating report folder", dir, e))?;
        crate::files::check_writable(&dir.join("index.html"))?;
        Ok(ReportWriter {
            dir: dir.to_path_buf(),
            summary: Vec::new(),
            items: Vec::new(),
            refresh: None,
        })
    }

    pub(crate) fn add(&mut self, section: &str, file: &str, caption: &str) {
        self.items.push((
            section.into(),
            Item::Figure {
                file: file.into(),
                caption: caption.into(),
            },
        ));
    }

    /// Makes the page reload itself every `seconds` (a report that a running
    /// training updates).
    pub fn refresh_every(&mut self, seconds: u32) {
        self.refresh = Some(seconds);
    }

    /// A figure the page opens with (final accuracy, the net, ...).
    pub fn summary(&mut self, name: &str, value: impl Into<String>) {
        self.summary.push((name.into(), value.into()));
    }

    /// A table of numbers in `section`.
    pub fn table(&mut self, section: &str, table: Table) {
        self.items.push((section.into(), Item::Table(table)));
    }

    /// A paragraph in `section`.
    pub fn text(&mut self, section: &str, text: impl Into<String>) {
        self.items.push((section.into(), Item::Text(text.into())));
    }

    /// Preformatted text (a config, a net's layers) folded under `summary`.
    pub fn details(&mut self, section: &str, summary: &str, text: impl Into<String>) {
        self.items.push((
            section.into(),
            Item::Details {
                summary: summary.into(),
                text: text.into(),
            },
        ));
    }

    fn data(&mut self, file: &str, caption: &str) {
        self.items.push((
            "data".into(),
            Item::Data {
                file: file.into(),
                caption: caption.into(),
            },
        ));
    }

    /// Writes a JSON file into the report.
    pub fn json(&mut self, file: &str, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(&tidy(value.clone())).expect("json serialises");
        crate::files::write_atomic(&self.dir.join(file), text.as_bytes())?;
        self.data(file, "Every number behind the pictures.");
        Ok(())
    }

    /// Writes the per-epoch history of runs as CSV (`run,epoch,cost,...`).
    pub fn history_csv(&mut self, file: &str, runs: &[(String, Vec<EpochStats>)]) -> Result<()> {
        let opt = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
        let mut s = String::from("run,epoch,cost,train_acc,val_acc,val_loss,test_acc,lr,seconds\n");
        for (run, hist) in runs {
            for h in hist {
                s += &format!(
                    "{run},{},{},{},{},{},{},{},{}\n",
                    h.epoch,
                    h.cost,
                    h.train_acc,
                    opt(h.val_acc),
                    opt(h.val_loss),
                    opt(h.test_acc),
                    h.lr,
                    h.seconds
                );
            }
        }
        crate::files::write_atomic(&self.dir.join(file), s.as_bytes())?;
        self.data(file, "Per-epoch history of every run.");
        Ok(())
    }

    /// The page as HTML: the summary first, then each section in order.
    pub fn html(&self, title: &str) -> String {
        let mut html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{r}<title>{t}</title>\n<style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
            t = esc(title),
            r = self.refresh.map_or(String::new(), |s| format!(
                "<meta http-equiv=\"refresh\" content=\"{s}\">"
            ))
        );
        if !self.summary.is_empty() {
            html += "<table class=\"summary\"><tbody>\n";
            for (k, v) in &self.summary {
                html += &format!("<tr><th>{}</th><td>{}</td></tr>\n", esc(k), esc(v));
            }
            html += "</tbody></table>\n";
        }
        let mut section = String::new();
        for (sec, item) in &self.items {
            if *sec != section {
                html += &format!("<h2>{}</h2>\n", esc(sec));
                section = sec.clone();
            }
            html += &match item {
                Item::Figure { file, caption } => {
                    let svg = file.replace(".png", ".svg");
                    let alt = if self.dir.join(&svg).exists() {
                        format!(" (<a href=\"{}\">SVG</a>)", esc(&svg))
                    } else {
                        String::new()
                    };
                    format!(
                        "<figure><img src=\"{}\" alt=\"{c}\"><figcaption>{c}{alt}</figcaption></figure>\n",
                        esc(file),
                        c = esc(caption)
                    )
                }
                Item::Data { file, caption } => format!(
                    "<p><a href=\"{f}\">{f}</a>: {}</p>\n",
                    esc(caption),
                    f = esc(file)
                ),
                Item::Table(t) => table_html(t),
                Item::Text(t) => format!("<p>{}</p>\n", esc(t)),
                Item::Details { summary, text } => format!(
                    "<details><summary>{}</summary><pre>{}</pre></details>\n",
                    esc(summary),
                    esc(text)
                ),
            };
        }
        html + "</body></html>\n"
    }

    /// Writes `index.html` (see [`ReportWriter::html`]); returns its path.
    pub fn finish(self, title: &str) -> Result<PathBuf> {
        let path = self.dir.join("index.html");
        crate::files::write_atomic(&path, self.html(title).as_bytes())?;
        Ok(path)
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{color:#555}\
table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
thead th{background:#f0f0f0}caption{caption-side:top;text-align:left;color:#555;padding:.3em 0}\
table.summary th{text-align:left;background:#f6f6f6}table.summary td{text-align:left;font-weight:bold}\
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}";
