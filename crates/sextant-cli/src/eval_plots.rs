//! The plots of `sextant eval --out` (SVG, plotters): every metric per configuration, recall@k
//! curves, and latency percentiles per configuration.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use sextant_service::eval::EvalReport;

const SIZE: (u32, u32) = (900, 480);

fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[i % PALETTE.len()]
}

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {what}: {e:?}")
}

/// Writes `metrics.svg`, `recall-at-k.svg` and `latency.svg` into `out`, and
/// `fusion-sweep.svg` when the report has a fusion-weight sweep.
pub fn write_plots(out: &Path, report: &EvalReport) -> Result<()> {
    metrics_plot(&out.join("metrics.svg"), report)?;
    recall_plot(&out.join("recall-at-k.svg"), report)?;
    latency_plot(&out.join("latency.svg"), report)?;
    if !sweep_lines(report).is_empty() {
        sweep_plot(&out.join("fusion-sweep.svg"), report)?;
    }
    Ok(())
}

/// Grouped bars: for each metric, one bar per configuration.
fn metrics_plot(path: &Path, r: &EvalReport) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err("metrics.svg"))?;
    let (nm, nc) = (r.metrics.len(), r.configs.len().max(1));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: metrics per configuration", r.collection),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..nm as f64, -0.08f64..1f64)
        .map_err(err("metrics.svg"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("mean over queries")
        .draw()
        .map_err(err("metrics.svg"))?;
    // Each group's metric under it.
    chart
        .draw_series(
            r.metrics
                .iter()
                .enumerate()
                .map(|(i, m)| Text::new(m.clone(), (i as f64 + 0.1, -0.02), ("sans-serif", 13))),
        )
        .map_err(err("metrics.svg"))?;
    let width = 0.8 / nc as f64;
    for (ci, c) in r.configs.iter().enumerate() {
        let bars = r.metrics.iter().enumerate().map(|(mi, m)| {
            let x0 = mi as f64 + 0.1 + ci as f64 * width;
            let v = c.means.get(m).copied().unwrap_or(0.0);
            Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], color(ci).filled())
        });
        chart
            .draw_series(bars)
            .map_err(err("metrics.svg"))?
            .label(c.name.clone())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color(ci).filled())
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err("metrics.svg"))?;
    root.present().map_err(err("metrics.svg"))?;
    Ok(())
}

/// Recall@k against k (log scale), one line per configuration.
/// The sweep's points per collection suffix (`""` for the first collection, `"@OTHER"`):
/// (dense weight, configuration) in weight order.
pub fn sweep_lines(r: &EvalReport) -> Vec<(String, Vec<(f64, usize)>)> {
    let mut lines: Vec<(String, Vec<(f64, usize)>)> = Vec::new();
    for (i, c) in r.configs.iter().enumerate() {
        let Some(rest) = c.name.strip_prefix(crate::eval::SWEEP_PREFIX) else {
            continue;
        };
        let (w, suffix) = match rest.split_once('@') {
            Some((w, other)) => (w, format!("@{other}")),
            None => (rest, String::new()),
        };
        let Ok(w) = w.parse::<f64>() else { continue };
        match lines.iter_mut().find(|l| l.0 == suffix) {
            Some(l) => l.1.push((w, i)),
            None => lines.push((suffix, vec![(w, i)])),
        }
    }
    for l in &mut lines {
        l.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    lines
}

/// Every metric (at every cut-off) against the dense weight of the hybrid fusion (BM25 gets
/// 1 − w): one line per metric and collection.
fn sweep_plot(path: &Path, r: &EvalReport) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err("fusion-sweep.svg"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: fusion-weight sweep (dense w, BM25 1 − w)",
                r.collection
            ),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(err("fusion-sweep.svg"))?;
    chart
        .configure_mesh()
        .x_desc("dense weight w")
        .y_desc("metric")
        .draw()
        .map_err(err("fusion-sweep.svg"))?;
    let mut series = 0;
    for (suffix, points) in sweep_lines(r) {
        for m in &r.metrics {
            let line: Vec<(f64, f64)> = points
                .iter()
                .map(|&(w, i)| (w, r.configs[i].means[m]))
                .collect();
            let ci = series;
            series += 1;
            chart
                .draw_series(LineSeries::new(line.clone(), color(ci).stroke_width(2)))
                .map_err(err("fusion-sweep.svg"))?
                .label(format!("{m}{suffix}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(ci)));
            chart
                .draw_series(
                    line.into_iter()
                        .map(|p| Circle::new(p, 3, color(ci).filled())),
                )
                .map_err(err("fusion-sweep.svg"))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err("fusion-sweep.svg"))?;
    root.present().map_err(err("fusion-sweep.svg"))?;
    Ok(())
}

fn recall_plot(path: &Path, r: &EvalReport) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err("recall-at-k.svg"))?;
    let kmax = r
        .configs
        .iter()
        .flat_map(|c| c.recall_curve.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{}: recall@k", r.collection), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1f64..kmax).log_scale(), 0f64..1f64)
        .map_err(err("recall-at-k.svg"))?;
    chart
        .configure_mesh()
        .x_desc("k")
        .y_desc("recall@k")
        .draw()
        .map_err(err("recall-at-k.svg"))?;
    for (ci, c) in r.configs.iter().enumerate() {
        let points: Vec<(f64, f64)> = c.recall_curve.iter().map(|&(k, v)| (k as f64, v)).collect();
        chart
            .draw_series(LineSeries::new(points, color(ci).stroke_width(2)))
            .map_err(err("recall-at-k.svg"))?
            .label(c.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(ci)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err("recall-at-k.svg"))?;
    root.present().map_err(err("recall-at-k.svg"))?;
    Ok(())
}

/// p50, p95 and p99 per configuration (milliseconds per query).
fn latency_plot(path: &Path, r: &EvalReport) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err("latency.svg"))?;
    let nc = r.configs.len().max(1);
    let top = r
        .configs
        .iter()
        .map(|c| c.latency_ms.p99)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency per query", r.collection),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..nc as f64, -0.08 * top..top)
        .map_err(err("latency.svg"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ms")
        .draw()
        .map_err(err("latency.svg"))?;
    // Each group's configuration under it.
    chart
        .draw_series(r.configs.iter().enumerate().map(|(i, c)| {
            Text::new(
                c.name.clone(),
                (i as f64 + 0.1, -0.02 * top),
                ("sans-serif", 13),
            )
        }))
        .map_err(err("latency.svg"))?;
    for (pi, (label, pick)) in [
        (
            "p50",
            (|c| c.p50) as fn(&sextant_service::eval::Latency) -> f64,
        ),
        ("p95", |c| c.p95),
        ("p99", |c| c.p99),
    ]
    .into_iter()
    .enumerate()
    {
        let bars = r.configs.iter().enumerate().map(move |(ci, c)| {
            let x0 = ci as f64 + 0.1 + pi as f64 * 0.27;
            Rectangle::new(
                [(x0, 0.0), (x0 + 0.25, pick(&c.latency_ms))],
                color(pi).filled(),
            )
        });
        chart
            .draw_series(bars)
            .map_err(err("latency.svg"))?
            .label(label)
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color(pi).filled())
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err("latency.svg"))?;
    root.present().map_err(err("latency.svg"))?;
    Ok(())
}
