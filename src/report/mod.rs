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

/// Collects a report's files and writes its `index.html`.
pub struct ReportWriter {
    pub dir: PathBuf,
    /// (section title, file name, caption) in page order.
    items: Vec<(String, String, String)>,
}

impl ReportWriter {
    /// Creates (if needed) and checks the report folder.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating report folder", dir, e))?;
        crate::files::check_writable(&dir.join("index.html"))?;
        Ok(ReportWriter {
            dir: dir.to_path_buf(),
            items: Vec::new(),
        })
    }

    pub(crate) fn add(&mut self, section: &str, file: &str, caption: &str) {
        self.items
            .push((section.into(), file.into(), caption.into()));
    }

    /// Writes a JSON file into the report.
    pub fn json(&mut self, file: &str, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(&tidy(value.clone())).expect("json serialises");
        crate::files::write_atomic(&self.dir.join(file), text.as_bytes())?;
        self.add("data", file, "Every number behind the pictures.");
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
        self.add("data", file, "Per-epoch history of every run.");
        Ok(())
    }

    /// Writes `index.html`, showing every picture with its caption and linking the data
    /// files; returns its path.
    pub fn finish(self, title: &str) -> Result<PathBuf> {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}img{{max-width:100%;border:1px solid #ddd}}figure{{margin:1.5em 0}}figcaption{{color:#555}}</style></head><body>\n<h1>{t}</h1>\n",
            t = esc(title)
        );
        let mut section = String::new();
        for (sec, file, caption) in &self.items {
            if *sec != section {
                html += &format!("<h2>{}</h2>\n", esc(sec));
                section = sec.clone();
            }
            if file.ends_with(".png") {
                let svg = file.replace(".png", ".svg");
                let alt = if self.dir.join(&svg).exists() {
                    format!(" (<a href=\"{svg}\">SVG</a>)")
                } else {
                    String::new()
                };
                html += &format!(
                    "<figure><img src=\"{file}\" alt=\"{}\"><figcaption>{}{alt}</figcaption></figure>\n",
                    esc(caption),
                    esc(caption)
                );
            } else {
                html += &format!("<p><a href=\"{file}\">{file}</a>: {}</p>\n", esc(caption));
            }
        }
        html += "</body></html>\n";
        let path = self.dir.join("index.html");
        crate::files::write_atomic(&path, html.as_bytes())?;
        Ok(path)
    }
}
