//! A run's report: `summary.json` (what scripts read), `report.md` (what people read), and the
//! plots beside them.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::run::Spent;
use crate::tally::Figures;

/// What was run, and what it measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// A name for the system under test (`--label`).
    pub label: String,
    pub target: String,
    pub api: String,
    /// The trace or the rate profile, and the selection.
    pub workload: String,
    pub functions: usize,
    pub time_scale: f64,
    pub trace_span_s: f64,
    pub warmup_s: f64,
    /// Requests in the schedule, and how many were sent (all, unless the run was cut short).
    pub scheduled: u64,
    pub sent: u64,
    pub wall_s: f64,
    /// Requests per second of wall time the schedule asked for, on average.
    pub offered_rate: f64,
    pub figures: Figures,
    /// What the watched processes (`--watch-pid`) spent.
    pub spent: Option<Spent>,
}

pub const SUMMARY: &str = "summary.json";
pub const REPORT: &str = "report.md";

pub fn write(dir: &Path, summary: &Summary, plots: &[&str]) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(summary).expect("a summary serialises");
    std::fs::write(dir.join(SUMMARY), json + "\n")
        .with_context(|| format!("cannot write {}", dir.join(SUMMARY).display()))?;
    std::fs::write(dir.join(REPORT), markdown(summary, plots))
        .with_context(|| format!("cannot write {}", dir.join(REPORT).display()))?;
    Ok(())
}

/// The report as markdown: the run, a table of figures, errors by kind, the plots.
pub fn markdown(s: &Summary, plots: &[&str]) -> String {
    let f = &s.figures;
    let l = &f.latency_ms;
    let mut md = format!(
        "# Load run: {label}\n\n\
         - target: `{target}` ({api} API)\n\
         - workload: {workload}, {functions} functions\n\
         - time scale: {scale}x ({span:.1} min of trace in {wall:.1} s); figures after a warm-up of {warm:.1} trace min\n\
         - requests: {scheduled} scheduled, {sent} sent ({offered:.1} per second offered), {measured} measured\n\n\
         | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | cold starts | cold share | errors |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n\
         | {p50:.2} | {p90:.2} | {p99:.2} | {p999:.2} | {max:.2} | {cold} | {share:.2}% | {errors} |\n\n",
        label = s.label,
        target = s.target,
        api = s.api,
        workload = s.workload,
        functions = s.functions,
        scale = s.time_scale,
        span = s.trace_span_s / 60.0,
        wall = s.wall_s,
        warm = s.warmup_s / 60.0,
        scheduled = s.scheduled,
        sent = s.sent,
        offered = s.offered_rate,
        measured = f.measured,
        p50 = l.p50,
        p90 = l.p90,
        p99 = l.p99,
        p999 = l.p999,
        max = l.max,
        cold = f.cold_starts,
        share = f.cold_share * 100.0,
        errors = f.errors.values().sum::<u64>(),
    );
    md += &format!(
        "Latency is wall time from each request's intended send time (no coordinated omission); \
         at {}x the emulator's init and handler durations are {}x shorter than the trace's. \
         Answers that said warm or cold: {} warm, {} cold; {} did not say. The generator sent \
         its requests late by at most {:.2} ms (p99 {:.2} ms).\n\n",
        s.time_scale,
        s.time_scale,
        f.warm_starts,
        f.cold_starts,
        f.start_unknown,
        f.send_lag_ms.max,
        f.send_lag_ms.p99,
    );
    if let Some(spent) = &s.spent {
        md += &format!(
            "The processes under test spent {:.2} s of CPU, {:.1} µs per request, and held at \
             most {:.1} MB resident.\n\n",
            spent.cpu_s, spent.cpu_us_per_request, spent.peak_resident_mb
        );
    }
    if !f.errors.is_empty() {
        md += "| error | requests |\n| --- | ---: |\n";
        for (kind, n) in &f.errors {
            md += &format!("| {kind} | {n} |\n");
        }
        md += "\n";
    }
    for plot in plots {
        md += &format!("![{plot}]({plot})\n\n");
    }
    md
}
