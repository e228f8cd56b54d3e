//! Pixel grids: the confusion matrix as a heatmap with counts, misclassified digits,
//! and first-layer weights as tiles.

use super::{ReportWriter, png, svg};
use crate::error::Result;
use crate::metrics::Confusion;
use plotters::coord::Shift;
use plotters::prelude::*;

impl ReportWriter {
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
        let title = format!(
            "{section}: first-layer weights, one tile per hidden unit ({shown} of {units})"
        );
        let caption = "What each first-layer unit looks for: white pixels raise its input, black ones lower it.";
        self.tiles(
            name, section, &title, caption, weights, units, height, width,
        )
    }

    /// Grey tiles of `count` planes of `height x width` (each scaled to its own
    /// range: black negative, white positive), at most 256, under `title`.
    ///
    /// # Shapes
    /// `planes: (count, height * width)`.
    #[allow(clippy::too_many_arguments)]
    pub fn tiles(
        &mut self,
        name: &str,
        section: &str,
        title: &str,
        caption: &str,
        weights: &[f32],
        units: usize,
        height: usize,
        width: usize,
    ) -> Result<()> {
        let shown = units.min(256);
        let cols = (shown as f64).sqrt().ceil() as u32;
        let rows = (shown as u32).div_ceil(cols);
        // small planes (3x3 filters) drawn larger
        let scale = (48 / height.max(width).max(1)).clamp(2, 16) as u32;
        let (tw, th) = (width as u32 * scale + 4, height as u32 * scale + 4);
        // wide enough for the title (about 9 pixels a character at 18 px)
        let size = (
            (cols * tw + 20).max(title.chars().count() as u32 * 9 + 20),
            rows * th + 60,
        );
        let title = title.to_string();
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
        self.add(section, &format!("{name}.png"), caption);
        Ok(())
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
