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

use crate::error::{Error, Result};
use crate::metrics::Confusion;
use crate::train::EpochStats;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; failing to parse it is a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A line of a chart: label and points.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub log_y: bool,
}

const LINE_COLOURS: [RGBColor; 6] = [
    RGBColor(0, 0, 0),
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(120, 120, 120),
];

fn draw_line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let pts = c.lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if y.is_finite() && (!c.log_y || y > 0.0) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = if c.log_y {
        0.0
    } else {
        ((y1 - y0) * 0.05).max(1e-3)
    };
    let mut b = ChartBuilder::on(root);
    b.caption(&c.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(74);
    // integer x values (epochs, layers) get integer tick labels
    let integer_x = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter())
        .all(|p| p.0.fract() == 0.0);
    let x_ticks = if integer_x {
        ((x1 - x0) as usize + 1).min(16)
    } else {
        10
    };
    let x_fmt = move |x: &f64| {
        if integer_x {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    };
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_labels(x_ticks)
                .x_label_formatter(&x_fmt)
                .x_desc(c.x_label.as_str())
                .y_desc(c.y_label.as_str())
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(e)?;
            for (i, l) in c.lines.iter().enumerate() {
                let colour = LINE_COLOURS[i % LINE_COLOURS.len()];
                let style = ShapeStyle::from(&colour).stroke_width(2);
                let pts: Vec<(f64, f64)> = l
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite() && (!c.log_y || p.1 > 0.0))
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(e)?
                    .label(l.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
                // markers differ by shape as well as colour (greyscale printing)
                match i % 3 {
                    0 => chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, style.filled())))
                        .map(|_| ()),
                    1 => chart
                        .draw_series(
                            pts.iter()
                                .map(|&p| TriangleMarker::new(p, 5, style.filled())),
                        )
                        .map(|_| ()),
                    _ => chart
                        .draw_series(pts.iter().map(|&p| Cross::new(p, 4, style)))
                        .map(|_| ()),
                }
                .map_err(e)?;
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(e)?;
        }};
    }
    if c.log_y {
        body!(
            b.build_cartesian_2d(x0..x1, (y0 * 0.8..y1 * 1.25).log_scale())
                .map_err(e)?
        );
    } else {
        body!(
            b.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(e)?
        );
    }
    root.present().map_err(e)
}

/// Renders with a bitmap backend into an RGB buffer and writes a PNG.
fn png(
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
    crate::data::fetch::write_atomic(path, &bytes)
}

/// Renders with the SVG backend.
fn svg(
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
    crate::data::fetch::write_atomic(path, text.as_bytes())
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
        crate::io::model_file::check_writable(&dir.join("index.html"))?;
        Ok(ReportWriter {
            dir: dir.to_path_buf(),
            items: Vec::new(),
        })
    }

    fn add(&mut self, section: &str, file: &str, caption: &str) {
        self.items
            .push((section.into(), file.into(), caption.into()));
    }

    /// A line chart as `name.png` and `name.svg`.
    pub fn line_chart(
        &mut self,
        name: &str,
        section: &str,
        chart: &LineChart,
        caption: &str,
    ) -> Result<()> {
        let size = (900, 520);
        png(&self.dir.join(format!("{name}.png")), size, |r| {
            draw_line_chart(r, chart)
        })?;
        svg(&self.dir.join(format!("{name}.svg")), size, |r| {
            draw_line_chart(r, chart)
        })?;
        self.add(section, &format!("{name}.png"), caption);
        Ok(())
    }

    /// Cost per epoch (log scale) and accuracies per epoch of one run.
    pub fn learning_curves(
        &mut self,
        name: &str,
        label: &str,
        history: &[EpochStats],
    ) -> Result<()> {
        let ep = |f: &dyn Fn(&EpochStats) -> Option<f32>| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|h| f(h).map(|v| (h.epoch as f64, v as f64)))
                .collect()
        };
        let cost = LineChart {
            title: format!("{label}: cost per epoch"),
            x_label: "epoch".into(),
            y_label: "cost (mean cross-entropy, log scale)".into(),
            lines: vec![Line {
                label: "training cost".into(),
                points: ep(&|h| Some(h.cost)),
            }],
            log_y: true,
        };
        self.line_chart(
            &format!("{name}_cost"),
            label,
            &cost,
            "The lecture's cost, the mean batch loss of each epoch.",
        )?;
        let mut lines = vec![Line {
            label: "train".into(),
            points: ep(&|h| Some(h.train_acc)),
        }];
        for (l, f) in [
            (
                "validation",
                &(|h: &EpochStats| h.val_acc) as &dyn Fn(&EpochStats) -> Option<f32>,
            ),
            ("test", &|h: &EpochStats| h.test_acc),
        ] {
            let p = ep(f);
            if !p.is_empty() {
                lines.push(Line {
                    label: l.into(),
                    points: p,
                });
            }
        }
        let acc = LineChart {
            title: format!("{label}: accuracy per epoch"),
            x_label: "epoch".into(),
            y_label: "accuracy (fraction correct)".into(),
            lines,
            log_y: false,
        };
        self.line_chart(
            &format!("{name}_accuracy"),
            label,
            &acc,
            "Training accuracy above validation/test accuracy is the overfitting gap the lecture talks about.",
        )
    }

    /// Up to 100 misclassified images in a grid, each with its true label, the
    /// prediction and the predicted probability.
    ///
    /// # Shapes
    /// `probs: (data.len(), classes)`.
    pub fn mistakes(
        &mut self,
        name: &str,
        section: &str,
        data: &crate::data::Dataset,
        predictions: &[u8],
        probs: &crate::tensor::Matrix,
    ) -> Result<()> {
        let wrong: Vec<usize> = (0..data.len())
            .filter(|&i| predictions[i] != data.labels[i])
            .take(100)
            .collect();
        let (h, w) = (data.height as u32, data.width as u32);
        let scale = 3u32;
        let cols = 10u32;
        let (tw, th) = (w * scale + 12, h * scale + 30);
        let rows = (wrong.len() as u32).div_ceil(cols).max(1);
        let size = (cols * tw + 20, rows * th + 60);
        let title = format!(
            "{section}: misclassified test images ({} shown)",
            wrong.len()
        );
        png(&self.dir.join(format!("{name}.png")), size, |root| {
            let e = |e: DrawingAreaErrorKind<_>| format!("{e:?}");
            root.fill(&WHITE).map_err(e)?;
            root.draw(&Text::new(title.clone(), (10, 10), ("sans-serif", 20)))
                .map_err(e)?;
            for (n, &i) in wrong.iter().enumerate() {
                let (x0, y0) = (10 + (n as u32 % cols) * tw, 44 + (n as u32 / cols) * th);
                let px = data.images.row(i);
                for y in 0..h * scale {
                    for x in 0..w * scale {
                        let v = px[((y / scale) * w + x / scale) as usize];
                        let g = (255.0 * (1.0 - v)).round() as u8; // ink dark on white
                        root.draw_pixel(((x0 + x) as i32, (y0 + y) as i32), &RGBColor(g, g, g))
                            .map_err(e)?;
                    }
                }
                let p = predictions[i] as usize;
                let label = format!("{}→{} {:.0}%", data.labels[i], p, 100.0 * probs.row(i)[p]);
                root.draw(&Text::new(
                    label,
                    (x0 as i32, (y0 + h * scale + 4) as i32),
                    ("sans-serif", 13),
                ))
                .map_err(e)?;
            }
            root.present().map_err(e)
        })?;
        self.add(section, &format!("{name}.png"), "Each tile: true label → predicted label, and the probability the model gave its prediction.");
        Ok(())
    }

    /// A layer's weights as a grid of `height x width` tiles, one per unit (up to 256),
    /// grey: black negative, white positive, each tile scaled to its own range.
    ///
    /// # Shapes
    /// `weights: (units, height * width)`.
    pub fn weight_tiles(
        &mut self,
        name: &str,
        section: &str,
        weights: &[f32],
        units: usize,
        height: usize,
        width: usize,
    ) -> Result<()> {
        let shown = units.min(256);
        let cols = (shown as f64).sqrt().ceil() as u32;
        let rows = (shown as u32).div_ceil(cols);
        let scale = 2u32;
        let (tw, th) = (width as u32 * scale + 4, height as u32 * scale + 4);
        let size = (cols * tw + 20, rows * th + 60);
        let title = format!(
            "{section}: first-layer weights, one tile per hidden unit ({shown} of {units})"
        );
        png(&self.dir.join(format!("{name}.png")), size, |root| {
            let e = |e: DrawingAreaErrorKind<_>| format!("{e:?}");
            root.fill(&WHITE).map_err(e)?;
            root.draw(&Text::new(title.clone(), (10, 10), ("sans-serif", 18)))
                .map_err(e)?;
            for u in 0..shown {
                let w = &weights[u * height * width..(u + 1) * height * width];
                let m = w.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
                let (x0, y0) = (10 + (u as u32 % cols) * tw, 40 + (u as u32 / cols) * th);
                for y in 0..height as u32 * scale {
                    for x in 0..width as u32 * scale {
                        let v = w[(y / scale) as usize * width + (x / scale) as usize] / m;
                        let g = (127.5 + 127.5 * v).round().clamp(0.0, 255.0) as u8;
                        root.draw_pixel(((x0 + x) as i32, (y0 + y) as i32), &RGBColor(g, g, g))
                            .map_err(e)?;
                    }
                }
            }
            root.present().map_err(e)
        })?;
        self.add(section, &format!("{name}.png"), "What each first-layer unit looks for: white pixels raise its input, black ones lower it.");
        Ok(())
    }

    /// Bars of this run's test accuracy beside the lecture's, per lab.
    pub fn accuracy_bars(
        &mut self,
        name: &str,
        section: &str,
        labs: &[(String, f64, f64)],
    ) -> Result<()> {
        let size = (900, 500);
        png(&self.dir.join(format!("{name}.png")), size, |r| {
            draw_bars(r, labs)
        })?;
        svg(&self.dir.join(format!("{name}.svg")), size, |r| {
            draw_bars(r, labs)
        })?;
        self.add(
            section,
            &format!("{name}.png"),
            "Each lab's test accuracy in this run next to the lecture's.",
        );
        Ok(())
    }

    /// Writes a JSON file into the report.
    pub fn json(&mut self, file: &str, value: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("json serialises");
        crate::data::fetch::write_atomic(&self.dir.join(file), text.as_bytes())?;
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
        crate::data::fetch::write_atomic(&self.dir.join(file), s.as_bytes())?;
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
        crate::data::fetch::write_atomic(&path, html.as_bytes())?;
        Ok(path)
    }

    /// The confusion matrix as a labelled heatmap with counts.
    pub fn confusion(
        &mut self,
        name: &str,
        section: &str,
        conf: &Confusion,
        names: &[String],
    ) -> Result<()> {
        let k = conf.classes;
        let max = conf.counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        let cell = 56u32;
        let (left, top) = (150u32, 70u32);
        let size = (left + cell * k as u32 + 30, top + cell * k as u32 + 90);
        let title = format!("{section}: confusion matrix");
        png(&self.dir.join(format!("{name}.png")), size, |r| {
            draw_confusion(r, conf, names, max, cell, left, top, &title)
        })?;
        svg(&self.dir.join(format!("{name}.svg")), size, |r| {
            draw_confusion(r, conf, names, max, cell, left, top, &title)
        })?;
        self.add(
            section,
            &format!("{name}.png"),
            "Counts of test images by true and predicted class; the diagonal is correct.",
        );
        Ok(())
    }
}

/// White to dark blue, darker for larger values: monotonic in luminance.
fn heat(v: f64) -> RGBColor {
    let t = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

#[allow(clippy::too_many_arguments)]
fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    conf: &Confusion,
    names: &[String],
    max: f64,
    cell: u32,
    left: u32,
    top: u32,
    title: &str,
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let k = conf.classes;
    root.draw(&Text::new(title.to_string(), (10, 12), ("sans-serif", 20)))
        .map_err(e)?;
    root.draw(&Text::new(
        "predicted class →".to_string(),
        (left as i32, top as i32 - 28),
        ("sans-serif", 15),
    ))
    .map_err(e)?;
    for (t, name) in names.iter().enumerate().take(k) {
        let short: String = name.chars().take(14).collect();
        root.draw(&Text::new(
            short,
            (8, (top + cell * t as u32 + cell / 2 - 8) as i32),
            ("sans-serif", 15),
        ))
        .map_err(e)?;
        for p in 0..k {
            let n = conf.get(t, p);
            // sqrt scale so off-diagonal counts stay visible next to the diagonal
            let v = (n as f64 / max).sqrt();
            let (x, y) = (
                (left + cell * p as u32) as i32,
                (top + cell * t as u32) as i32,
            );
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32, y + cell as i32)],
                heat(v).filled(),
            ))
            .map_err(e)?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell as i32, y + cell as i32)],
                RGBColor(200, 200, 200),
            ))
            .map_err(e)?;
            let colour = if v > 0.55 { WHITE } else { BLACK };
            let s = n.to_string();
            let tx = x + cell as i32 / 2 - 4 * s.len() as i32;
            root.draw(&Text::new(
                s,
                (tx, y + cell as i32 / 2 - 8),
                ("sans-serif", 14).into_font().color(&colour),
            ))
            .map_err(e)?;
        }
    }
    for p in 0..k {
        let x = (left + cell * p as u32 + cell / 2 - 5) as i32;
        root.draw(&Text::new(
            p.to_string(),
            (x, (top + cell * k as u32 + 8) as i32),
            ("sans-serif", 15),
        ))
        .map_err(e)?;
    }
    root.draw(&Text::new(
        "rows: true class (names on the left); colour: sqrt(count / max)".to_string(),
        (10, (top + cell * k as u32 + 40) as i32),
        ("sans-serif", 14),
    ))
    .map_err(e)?;
    root.present().map_err(e)
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labs: &[(String, f64, f64)],
) -> std::result::Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let lo = (labs.iter().flat_map(|l| [l.1, l.2]).fold(1.0f64, f64::min) - 0.01).max(0.0);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "test accuracy: this run (dark) and the lecture (light)",
            ("sans-serif", 20),
        )
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(74)
        .build_cartesian_2d(0f64..labs.len() as f64, lo..1.0)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("accuracy (fraction correct)")
        .x_desc("lab")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(e)?;
    for (i, (name, ours, lecture)) in labs.iter().enumerate() {
        let x = i as f64;
        chart
            .draw_series([Rectangle::new(
                [(x + 0.15, lo), (x + 0.48, *ours)],
                RGBColor(0, 60, 120).filled(),
            )])
            .map_err(e)?;
        chart
            .draw_series([Rectangle::new(
                [(x + 0.52, lo), (x + 0.85, *lecture)],
                RGBColor(170, 200, 230).filled(),
            )])
            .map_err(e)?;
        chart
            .draw_series([Text::new(
                format!("{ours:.4}"),
                (x + 0.13, *ours + 0.0015),
                ("sans-serif", 13),
            )])
            .map_err(e)?;
        chart
            .draw_series([Text::new(
                format!("{lecture:.4}"),
                (x + 0.52, *lecture + 0.0015),
                ("sans-serif", 13),
            )])
            .map_err(e)?;
        chart
            .draw_series([Text::new(
                name.clone(),
                (x + 0.38, lo + (1.0 - lo) * 0.96),
                ("sans-serif", 16),
            )])
            .map_err(e)?;
    }
    root.present().map_err(e)
}
