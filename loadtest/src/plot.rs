//! A run's plots, as SVG: the latency CDF, and cold starts and latency over trace time.
//!
//! plotters is built without its font features (see `warmgate::sim::plot`): text is written
//! as SVG `<text>` for the viewer's own sans-serif font.

use std::path::Path;

use anyhow::anyhow;
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::tally::Tally;

pub const CDF_PLOT: &str = "latency_cdf.svg";
pub const TIME_PLOT: &str = "over_time.svg";

const FONT: &str = "sans-serif";

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Writes both plots into `dir`; `title` names the run.
pub fn write(dir: &Path, tally: &Tally, title: &str) -> anyhow::Result<Vec<&'static str>> {
    let cdf = dir.join(CDF_PLOT);
    latency_cdf(tally.latency(), title, &cdf)
        .map_err(|e| anyhow!("cannot draw {}: {e}", cdf.display()))?;
    let time = dir.join(TIME_PLOT);
    over_time(tally, title, &time).map_err(|e| anyhow!("cannot draw {}: {e}", time.display()))?;
    Ok(vec![CDF_PLOT, TIME_PLOT])
}

/// The empirical CDF of latency, in ms on a log axis.
fn latency_cdf(h: &Histogram<u64>, title: &str, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = h.len().max(1) as f64;
    let mut seen = 0u64;
    let mut points = Vec::new();
    for v in h.iter_recorded() {
        seen += v.count_since_last_iteration();
        points.push((v.value_iterated_to().max(1) as f64 / 1e3, seen as f64 / n));
    }
    let lo = (h.min().max(1) as f64 / 1e3 * 0.8).max(0.001);
    let hi = (h.max().max(1) as f64 / 1e3 * 1.25).max(lo * 10.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Latency CDF: {title}"), (FONT, 18))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .max_light_lines(2)
        .x_desc("latency from intended send, ms (log scale)")
        .y_desc("share of requests at most x")
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// Two panels over trace time: cold starts per bucket; p50 and p99 latency per bucket.
fn over_time(t: &Tally, title: &str, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(300);
    let width_min = t.bucket_width.as_secs_f64() / 60.0;
    let x = |i: usize| i as f64 * width_min;
    let x_max = x(t.buckets.len()).max(width_min);

    let cold_max = t.buckets.iter().map(|b| b.cold).max().unwrap_or(0).max(1) as f64 * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("Cold starts over time: {title}"), (FONT, 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..cold_max)?;
    chart
        .configure_mesh()
        .max_light_lines(2)
        .x_desc("trace time, min")
        .y_desc(format!("cold starts per {:.2} min", width_min))
        .draw()?;
    chart.draw_series(t.buckets.iter().enumerate().map(|(i, b)| {
        Rectangle::new(
            [(x(i), 0.0), (x(i + 1), b.cold as f64)],
            RED.mix(0.6).filled(),
        )
    }))?;

    let used: Vec<(usize, f64, f64)> = t
        .buckets
        .iter()
        .enumerate()
        .filter(|(_, b)| b.requests > 0)
        .map(|(i, b)| {
            let q = |q: f64| b.latency.value_at_quantile(q).max(1) as f64 / 1e3;
            (i, q(0.5), q(0.99))
        })
        .collect();
    let lat_max = used.iter().map(|p| p.2).fold(0.0, f64::max).max(0.01) * 1.5;
    let lat_min = used.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let lat_min = if lat_min.is_finite() {
        lat_min * 0.7
    } else {
        0.001
    };
    let mut chart = ChartBuilder::on(&bottom)
        .caption("Latency over time (p50, p99 per bucket)", (FONT, 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (lat_min..lat_max).log_scale())?;
    chart
        .configure_mesh()
        .max_light_lines(2)
        .x_desc("trace time, min")
        .y_desc("latency, ms (log scale)")
        .draw()?;
    let mid = |i: usize| x(i) + width_min / 2.0;
    chart
        .draw_series(LineSeries::new(
            used.iter().map(|&(i, p50, _)| (mid(i), p50)),
            BLUE.stroke_width(2),
        ))?
        .label("p50")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            used.iter().map(|&(i, _, p99)| (mid(i), p99)),
            RED.stroke_width(2),
        ))?
        .label("p99")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}
