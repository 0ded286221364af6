//! Plots of a comparison, as SVG: cold-start share against the user's bill (a point per
//! policy), and the CDF of per-function cold-start share (a line per policy).
//!
//! plotters is built without its font features (they need system font libraries): text is
//! laid out by plotters' crude size estimate and written as SVG `<text>`, which the viewer
//! renders in its own sans-serif font.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::engine::Figures;
use super::report::Report;

const SIZE: (u32, u32) = (900, 600);
const FONT: &str = "sans-serif";

/// File name of the cold-start-share-against-cost plot.
pub const COST_PLOT: &str = "cold_share_vs_cost.svg";
/// File name of the CDF of per-function cold-start share.
pub const CDF_PLOT: &str = "function_cold_share_cdf.svg";

/// Writes both plots into `dir` (created if need be) and returns their paths.
pub fn write_plots(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cost = dir.join(COST_PLOT);
    let cdf = dir.join(CDF_PLOT);
    cold_share_against_cost(report, &cost)
        .map_err(|e| anyhow!("cannot draw {}: {e}", cost.display()))?;
    function_cold_share_cdf(report, &cdf)
        .map_err(|e| anyhow!("cannot draw {}: {e}", cdf.display()))?;
    Ok(vec![cost, cdf])
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// An axis range over `values` starting at zero, with head room, never empty.
fn upper_bound(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0_f64, f64::max);
    if max > 0.0 {
        max * 1.15
    } else {
        1.0
    }
}

/// An axis range around `values` (min to max, with room for the labels): the policies' bills
/// differ by tenths of a percent, which an axis from zero would draw as one point.
fn around(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let span = if hi > lo {
        hi - lo
    } else {
        lo.abs().max(1.0) * 0.01
    };
    (lo - 0.1 * span)..(hi + 0.35 * span)
}

fn caption(report: &Report, what: &str) -> String {
    format!(
        "{what}: {} ({} functions, after {:.0} min warm-up)",
        report.run.trace, report.run.functions, report.run.warmup_minutes
    )
}

/// Cold-start share (percent of invocations) against the bill, one labelled point per policy.
fn cold_share_against_cost(report: &Report, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let x_range = around(report.policies.iter().map(|f| f.bill_usd));
    let y_max = upper_bound(report.policies.iter().map(|f| f.cold_start_share * 100.0));
    let mut chart = ChartBuilder::on(&root)
        .caption(caption(report, "Cold starts against cost"), (FONT, 18))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, 0.0..y_max)?;
    chart
        .configure_mesh()
        // A light line per major division only: the finer grid hides the data.
        .max_light_lines(2)
        .x_desc("user's bill, $ (us-east-1)")
        .y_desc("cold-start share, % of invocations")
        .draw()?;
    for (i, f) in report.policies.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let point = (f.bill_usd, f.cold_start_share * 100.0);
        chart.draw_series(std::iter::once(
            EmptyElement::at(point)
                + Circle::new((0, 0), 5, color.filled())
                + Text::new(f.policy.clone(), (8, -14), (FONT, 14)),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// The empirical CDF of per-function cold-start share, as a step line.
fn cdf_steps(f: &Figures) -> Vec<(f64, f64)> {
    let shares = &f.function_cold_shares;
    let n = shares.len() as f64;
    let mut points = vec![(0.0, 0.0)];
    for (i, &share) in shares.iter().enumerate() {
        let x = share * 100.0;
        points.push((x, i as f64 / n));
        points.push((x, (i + 1) as f64 / n));
    }
    points.push((100.0, 1.0));
    points
}

/// One line per policy: the share of functions whose cold-start share is at most x.
fn function_cold_share_cdf(report: &Report, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            caption(report, "Per-function cold-start share, CDF"),
            (FONT, 18),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..100.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        // A light line per major division only: the finer grid hides the data.
        .max_light_lines(2)
        .x_desc("a function's cold-start share, % of its invocations")
        .y_desc("share of functions")
        .draw()?;
    for (i, f) in report.policies.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(cdf_steps(f), color.stroke_width(2)))?
            .label(f.policy.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::engine::Mode;
    use crate::sim::report::RunInfo;

    fn figures(policy: &str, shares: Vec<f64>) -> Figures {
        Figures {
            policy: policy.into(),
            targets: 1,
            traffic: crate::sim::engine::Traffic::First,
            invocations: 0,
            cold_starts: 0,
            cold_start_share: 0.0,
            function_cold_share_p50: 0.0,
            function_cold_share_p75: 0.0,
            function_cold_share_p90: 0.0,
            functions_counted: 2,
            throttles: 0,
            pings: 0,
            ping_throttles: 0,
            pings_refused: 0,
            unavailable: 0,
            provisioned_gb_s: 0.0,
            provisioning_refused: 0,
            on_demand_gb_s: 0.0,
            bill_usd: 0.0,
            idle_gb_s: 0.0,
            estimator: Default::default(),
            waits: 0,
            waits_then_cold: 0,
            start_delay_s: 0.0,
            start_delay_p99_ms: 0,
            start_delay_p999_ms: 0,
            replay_s: 0.0,
            function_cold_shares: shares,
            functions: Vec::new(),
            pings_by_reason: Vec::new(),
        }
    }

    #[test]
    fn the_cost_axis_spans_the_bills_not_zero_to_them() {
        let range = around([4.1495, 4.1630, 4.1505].into_iter());
        assert!(range.start < 4.1495 && range.end > 4.1630);
        assert!(range.end - range.start < 0.05, "{range:?}");
        assert!(!around([2.0].into_iter()).is_empty());
        assert_eq!(around(std::iter::empty()), 0.0..1.0);
    }

    #[test]
    fn cdf_steps_rise_to_one() {
        let f = figures("p", vec![0.0, 0.5]);
        assert_eq!(
            cdf_steps(&f),
            [
                (0.0, 0.0),
                (0.0, 0.0),
                (0.0, 0.5),
                (50.0, 0.5),
                (50.0, 1.0),
                (100.0, 1.0)
            ]
        );
    }

    #[test]
    fn both_plots_are_written_as_svg() {
        let report = Report {
            run: RunInfo {
                trace: "t".into(),
                format: "Azure Functions 2019".into(),
                functions: 2,
                invocations: 10,
                span_minutes: 120.0,
                mode: Mode::Default,
                seed: 0,
                warmup_minutes: 60.0,
                targets: 1,
                wall_s: 0.1,
            },
            policies: vec![
                figures("none", vec![0.2, 1.0]),
                figures("fixed-5min", vec![]),
            ],
        };
        let dir = std::env::temp_dir().join(format!("warmgate-plot-{}", std::process::id()));
        let paths = write_plots(&report, &dir).unwrap();
        for path in paths {
            let svg = std::fs::read_to_string(&path).unwrap();
            assert!(svg.starts_with("<svg"), "{}", path.display());
            assert!(svg.contains("fixed-5min"), "{}", path.display());
        }
    }
}
