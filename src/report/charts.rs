//! Line charts (learning curves, cost per epoch) and bar charts (accuracy against the
//! lecture), each drawn twice, as PNG and SVG.

use super::{ReportWriter, png, svg};
use crate::error::Result;
use crate::train::EpochStats;
use plotters::coord::Shift;
use plotters::prelude::*;

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
                .y_label_formatter(&|y: &f64| short(*y))
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
        let (lo, hi) = (y0 * 0.8, y1 * 1.25);
        body!(
            b.build_cartesian_2d(
                x0..x1,
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi))
            )
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

/// Tick values for a log axis from `lo` to `hi`: 1, 2 and 5 times powers of ten, or
/// every digit where those give fewer than three, or three points inside the range
/// (10% from each end and their geometric mean) where even those give fewer than two,
/// so the axis always has numbers.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |mults: &[f64]| -> Vec<f64> {
        let mut v = Vec::new();
        let mut p = 10f64.powi(lo.log10().floor() as i32);
        while p <= hi {
            for m in mults {
                let t = m * p;
                if t >= lo && t <= hi {
                    v.push(t);
                }
            }
            p *= 10.0;
        }
        v
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 3 {
        return coarse;
    }
    let fine = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    if fine.len() >= 2 {
        return fine;
    }
    let (a, b) = (lo + (hi - lo) * 0.1, hi - (hi - lo) * 0.1);
    vec![a, (a * b).sqrt(), b]
}

/// A tick label with three significant digits and no trailing zeros: 0.05, 0.123, 2, 15.
fn short(y: f64) -> String {
    if y == 0.0 || !y.is_finite() {
        return format!("{y}");
    }
    let digits = (2 - y.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{y:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').into()
    } else {
        s
    }
}

impl ReportWriter {
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

    /// Cost and validation loss per epoch (log scale) and accuracies per epoch of one
    /// run; `train_acc_caption` says how its training accuracy was measured.
    pub fn learning_curves(
        &mut self,
        name: &str,
        label: &str,
        history: &[EpochStats],
        train_acc_caption: &str,
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
            lines: [
                ("training cost", ep(&|h| Some(h.cost))),
                ("validation loss", ep(&|h| h.val_loss)),
            ]
            .into_iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(l, points)| Line {
                label: l.into(),
                points,
            })
            .collect(),
            log_y: true,
        };
        self.line_chart(
            &format!("{name}_cost"),
            label,
            &cost,
            "The lecture's cost: the mean loss of each epoch's training batches, as they were trained. \
             The validation loss is measured after each epoch on the held-out images.",
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
        self.line_chart(&format!("{name}_accuracy"), label, &acc, train_acc_caption)
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

#[cfg(test)]
mod tests {
    use super::{log_ticks, short};

    #[test]
    fn a_log_axis_always_has_labelled_ticks() {
        for (lo, hi) in [
            (0.001, 10.0),
            (0.17, 0.46),
            (0.101, 0.109),
            (2.0, 2.1),
            (0.03, 0.3),
        ] {
            let t = log_ticks(lo, hi);
            assert!(t.len() >= 2, "{lo}..{hi}: {t:?}");
            assert!(t.iter().all(|&v| v >= lo && v <= hi), "{lo}..{hi}: {t:?}");
            assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
        }
        let t = log_ticks(0.015, 0.6);
        let want = [0.02, 0.05, 0.1, 0.2, 0.5];
        assert_eq!(t.len(), want.len(), "{t:?}");
        assert!(
            t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{t:?}"
        );
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(short(0.2), "0.2");
        assert_eq!(short(0.05), "0.05");
        assert_eq!(short(0.123456), "0.123");
        assert_eq!(short(15.0), "15");
        assert_eq!(short(2.5), "2.5");
    }
}
