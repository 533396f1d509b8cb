//! The plots of `sextant eval --out` (SVG, plotters): every metric per configuration, recall@k
//! curves, and latency percentiles per configuration.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use sextant_service::eval::EvalReport;

const SIZE: (u32, u32) = (1150, 520);
/// Width of the legend column right of each chart (the legend never covers data).
const LEGEND_W: u32 = 260;

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// 20 distinguishable colours (tab20's order: each hue dark, then light).
fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 20] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(174, 199, 232),
        RGBColor(255, 187, 120),
        RGBColor(152, 223, 138),
        RGBColor(255, 152, 150),
        RGBColor(197, 176, 213),
        RGBColor(196, 156, 148),
        RGBColor(247, 182, 210),
        RGBColor(199, 199, 199),
        RGBColor(219, 219, 141),
        RGBColor(158, 218, 229),
    ];
    PALETTE[i % PALETTE.len()]
}

/// The chart area and the legend column of a new plot.
fn areas<'a>(path: &'a Path, what: &str) -> Result<(Area<'a>, Area<'a>)> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err(what))?;
    Ok(root.split_horizontally(SIZE.0 - LEGEND_W))
}

/// A legend in its own column: a swatch and the name of each series.
fn legend(side: &Area<'_>, what: &str, items: &[(String, RGBColor)]) -> Result<()> {
    let step = (((SIZE.1 - 60) / items.len().max(1) as u32).clamp(11, 20)) as i32;
    let size = (step - 4).clamp(9, 14);
    for (i, (name, c)) in items.iter().enumerate() {
        let y = 45 + i as i32 * step;
        side.draw(&Rectangle::new([(6, y - 5), (20, y + 5)], c.filled()))
            .map_err(err(what))?;
        side.draw(&Text::new(
            name.clone(),
            (26, y - size / 2 - 1),
            ("sans-serif", size),
        ))
        .map_err(err(what))?;
    }
    Ok(())
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
    let (root, side) = areas(path, "metrics.svg")?;
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
        chart.draw_series(bars).map_err(err("metrics.svg"))?;
    }
    let items: Vec<(String, RGBColor)> = r
        .configs
        .iter()
        .enumerate()
        .map(|(ci, c)| (c.name.clone(), color(ci)))
        .collect();
    legend(&side, "metrics.svg", &items)?;
    root.present().map_err(err("metrics.svg"))?;
    Ok(())
}

/// The sweep's points per collection suffix (`""` for the first collection, `"@OTHER"`):
/// (dense weight, configuration) in weight order.
pub fn sweep_lines(r: &EvalReport) -> Vec<(String, Vec<(f64, usize)>)> {
    let mut lines: Vec<(String, Vec<(f64, usize)>)> = Vec::new();
    for (i, c) in r.configs.iter().enumerate() {
        let Some(rest) = c.name.strip_prefix(sextant_service::eval::SWEEP_PREFIX) else {
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
    let (root, side) = areas(path, "fusion-sweep.svg")?;
    let mut items = Vec::new();
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
                .map_err(err("fusion-sweep.svg"))?;
            items.push((format!("{m}{suffix}"), color(ci)));
            chart
                .draw_series(
                    line.into_iter()
                        .map(|p| Circle::new(p, 3, color(ci).filled())),
                )
                .map_err(err("fusion-sweep.svg"))?;
        }
    }
    legend(&side, "fusion-sweep.svg", &items)?;
    root.present().map_err(err("fusion-sweep.svg"))?;
    Ok(())
}

/// Recall@k against k (log scale), one line per configuration.
fn recall_plot(path: &Path, r: &EvalReport) -> Result<()> {
    let (root, side) = areas(path, "recall-at-k.svg")?;
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
        .margin_right(30)
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
            .map_err(err("recall-at-k.svg"))?;
    }
    let items: Vec<(String, RGBColor)> = r
        .configs
        .iter()
        .enumerate()
        .map(|(ci, c)| (c.name.clone(), color(ci)))
        .collect();
    legend(&side, "recall-at-k.svg", &items)?;
    root.present().map_err(err("recall-at-k.svg"))?;
    Ok(())
}

/// p50, p95 and p99 per configuration (milliseconds per query).
fn latency_plot(path: &Path, r: &EvalReport) -> Result<()> {
    let (root, side) = areas(path, "latency.svg")?;
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
        .x_label_area_size(20)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..nc as f64, 0f64..top)
        .map_err(err("latency.svg"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ms")
        .draw()
        .map_err(err("latency.svg"))?;
    // Each group's number under it; the legend column names the configurations.
    chart
        .draw_series(r.configs.iter().enumerate().map(|(i, _)| {
            Text::new(
                (i + 1).to_string(),
                (i as f64 + 0.4, 0.0),
                ("sans-serif", 12),
            )
        }))
        .map_err(err("latency.svg"))?;
    for (pi, (_, pick)) in [
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
        chart.draw_series(bars).map_err(err("latency.svg"))?;
    }
    let mut items: Vec<(String, RGBColor)> = ["p50", "p95", "p99"]
        .iter()
        .enumerate()
        .map(|(pi, l)| (l.to_string(), color(pi)))
        .collect();
    items.extend(
        r.configs
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{}: {}", i + 1, c.name), WHITE)),
    );
    legend(&side, "latency.svg", &items)?;
    root.present().map_err(err("latency.svg"))?;
    Ok(())
}
