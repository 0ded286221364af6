//! Comparison reports: the table the simulator prints (one row per policy), and the same
//! figures as CSV or JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use super::engine::{share, Figures, Mode, SimSettings, Traffic};
use super::trace::Trace;

/// What was replayed, and how: the context every figure needs.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub trace: String,
    pub format: String,
    pub functions: usize,
    pub invocations: usize,
    pub span_minutes: f64,
    pub mode: Mode,
    pub seed: u64,
    pub warmup_minutes: f64,
    /// Equivalent targets per function.
    pub targets: usize,
    /// Wall-clock seconds for all replays together (they may run in parallel).
    pub wall_s: f64,
}

impl RunInfo {
    pub fn new(trace: &Trace, settings: &SimSettings, wall: Duration) -> Self {
        RunInfo {
            trace: trace.name.clone(),
            format: trace.format.to_string(),
            functions: trace.functions.len(),
            invocations: trace.invocations(),
            span_minutes: trace.duration.as_secs_f64() / 60.0,
            mode: settings.mode,
            seed: settings.seed,
            warmup_minutes: settings.warmup.as_secs_f64() / 60.0,
            targets: settings.targets.max(1),
            wall_s: wall.as_secs_f64(),
        }
    }

    /// What the figures mean, in words: printed above the table.
    pub fn preamble(&self) -> String {
        format!(
            "trace {} ({}): {} functions{}, {} invocations over {:.0} min; {} mode, seed {}.\n\
             Figures count requests arriving at or after minute {:.0} (the warm-up, which the \
             policies do see); pings are counted apart from invocations. Replays took {:.1} s \
             of wall time in all.",
            self.trace,
            self.format,
            self.functions,
            if self.targets > 1 {
                format!(" with {} equivalent targets each", self.targets)
            } else {
                String::new()
            },
            self.invocations,
            self.span_minutes,
            self.mode.as_str(),
            self.seed,
            self.warmup_minutes,
            self.wall_s,
        )
    }
}

/// A comparison: the run and one [`Figures`] per policy.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub policies: Vec<Figures>,
}

const HEADERS: [&str; 17] = [
    "policy",
    "invocations",
    "cold starts",
    "cold %",
    "fn p50 cold %",
    "fn p75 cold %",
    "fn p90 cold %",
    "throttles",
    "pings",
    "waits",
    "start delay s",
    "delay p99.9 ms",
    "provisioned GB-s",
    "bill $",
    "idle GB-s",
    "refused PC changes",
    "replay s",
];

fn percent(share: f64) -> String {
    format!("{:.2}", share * 100.0)
}

/// One table row, as text cells in [`HEADERS`] order.
fn cells(f: &Figures) -> [String; 17] {
    [
        f.policy.clone(),
        f.invocations.to_string(),
        f.cold_starts.to_string(),
        percent(f.cold_start_share),
        percent(f.function_cold_share_p50),
        percent(f.function_cold_share_p75),
        percent(f.function_cold_share_p90),
        f.throttles.to_string(),
        f.pings.to_string(),
        f.waits.to_string(),
        format!("{:.0}", f.start_delay_s),
        f.start_delay_p999_ms.to_string(),
        format!("{:.0}", f.provisioned_gb_s),
        format!("{:.4}", f.bill_usd),
        format!("{:.0}", f.idle_gb_s),
        f.provisioning_refused.to_string(),
        format!("{:.2}", f.replay_s),
    ]
}

const ESTIMATOR_HEADERS: [&str; 11] = [
    "policy",
    "targets",
    "traffic",
    "cold starts",
    "cold %",
    "est. samples",
    "est. MAE",
    "est. exact %",
    "est. within 1 %",
    "est. p99 err",
    "est. bias",
];

/// One row of the routing and estimator table, in [`ESTIMATOR_HEADERS`] order.
fn estimator_cells(f: &Figures) -> [String; 11] {
    let e = &f.estimator;
    [
        f.policy.clone(),
        f.targets.to_string(),
        f.traffic.as_str().to_string(),
        f.cold_starts.to_string(),
        percent(f.cold_start_share),
        e.samples.to_string(),
        format!("{:.3}", e.mean_abs_error),
        percent(e.exact_share),
        percent(e.within_1_share),
        e.p99_abs_error.to_string(),
        format!("{:+.3}", e.mean_error),
    ]
}

/// A Markdown table with aligned columns (it reads in a terminal and pastes into docs): the
/// first column left-aligned, the figures right-aligned.
fn markdown<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (c, cell) in cells.iter().enumerate() {
            // The policy name reads left-aligned, the figures right-aligned.
            if c == 0 {
                let _ = write!(out, " {cell:<w$} |", w = widths[c]);
            } else {
                let _ = write!(out, " {cell:>w$} |", w = widths[c]);
            }
        }
        out.push('\n');
        out
    };
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = line(&header);
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(c, &w)| {
            if c == 0 {
                "-".repeat(w)
            } else {
                format!("{}:", "-".repeat(w - 1))
            }
        })
        .collect();
    out.push_str(&line(&rule));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

impl Report {
    /// The table, one row per policy, as a Markdown table with aligned columns.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 17]> = self.policies.iter().map(cells).collect();
        markdown(&HEADERS, &rows)
    }

    /// The second table: per policy, its targets and traffic, its cold starts, and the
    /// warm-pool estimator's error against the platform's ground truth (samples: a target of
    /// a function at a whole minute after the warm-up where the estimate or the truth was not
    /// zero; bias: mean of estimate minus truth).
    pub fn estimator_table(&self) -> String {
        let rows: Vec<[String; 11]> = self.policies.iter().map(estimator_cells).collect();
        markdown(&ESTIMATOR_HEADERS, &rows)
    }

    /// Whether the run has anything of routing to show: several targets, or traffic other
    /// than to the first target.
    pub fn has_routing(&self) -> bool {
        self.run.targets > 1 || self.policies.iter().any(|f| f.traffic != Traffic::First)
    }

    /// The figures as CSV, one row per policy, shares as fractions (not percent), without the
    /// per-function shares (JSON carries those).
    pub fn to_csv(&self) -> String {
        let rows = self.policies.iter().map(|f| PolicyRow {
            policy: &f.policy,
            invocations: f.invocations,
            cold_starts: f.cold_starts,
            cold_start_share: f.cold_start_share,
            function_cold_share_p50: f.function_cold_share_p50,
            function_cold_share_p75: f.function_cold_share_p75,
            function_cold_share_p90: f.function_cold_share_p90,
            functions_counted: f.functions_counted,
            throttles: f.throttles,
            pings: f.pings,
            ping_throttles: f.ping_throttles,
            pings_refused: f.pings_refused,
            provisioned_gb_s: f.provisioned_gb_s,
            provisioning_refused: f.provisioning_refused,
            on_demand_gb_s: f.on_demand_gb_s,
            bill_usd: f.bill_usd,
            idle_gb_s: f.idle_gb_s,
            replay_s: f.replay_s,
            targets: f.targets,
            traffic: f.traffic.as_str(),
            estimator_samples: f.estimator.samples,
            estimator_mean_abs_error: f.estimator.mean_abs_error,
            estimator_exact_share: f.estimator.exact_share,
            estimator_within_1_share: f.estimator.within_1_share,
            estimator_p99_abs_error: f.estimator.p99_abs_error,
            estimator_mean_error: f.estimator.mean_error,
            waits: f.waits,
            waits_then_cold: f.waits_then_cold,
            start_delay_s: f.start_delay_s,
            start_delay_p99_ms: f.start_delay_p99_ms,
            start_delay_p999_ms: f.start_delay_p999_ms,
            mode: self.run.mode.as_str(),
            seed: self.run.seed,
            warmup_minutes: self.run.warmup_minutes,
            trace: &self.run.trace,
        });
        csv_of(rows)
    }

    /// Every function's figures under every policy, as CSV (one row per policy and function):
    /// where the cold starts, the pings and the dollars are.
    pub fn per_function_csv(&self) -> String {
        let rows = self.policies.iter().flat_map(|f| {
            f.functions.iter().map(|g| FunctionRow {
                policy: &f.policy,
                function: &g.function,
                memory_mb: g.memory_mb,
                invocations: g.invocations,
                cold_starts: g.cold_starts,
                cold_start_share: share(g.cold_starts, g.invocations),
                throttles: g.throttles,
                pings: g.pings,
                cold_pings: g.cold_pings,
                bill_usd: g.bill_usd,
                provisioned_usd: g.provisioned_usd,
            })
        });
        csv_of(rows)
    }

    /// Every policy's pings by why they were sent, as CSV (one row per policy and reason):
    /// where the pings go.
    pub fn pings_csv(&self) -> String {
        let rows = self.policies.iter().flat_map(|f| {
            f.pings_by_reason.iter().map(|k| ReasonRow {
                policy: &f.policy,
                reason: k.reason,
                pings: k.pings,
                cold_pings: k.cold_pings,
                fresh_pings: k.fresh_pings,
                unused_environments: k.unused_environments,
            })
        });
        csv_of(rows)
    }

    /// Writes the report as CSV or JSON, by the file's extension.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => self.to_csv(),
            Some("json") => serde_json::to_string_pretty(self)? + "\n",
            _ => bail!(
                "{}: the report is written as .csv or .json; name the file so",
                path.display()
            ),
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// One policy's row of the CSV; the field names are the header.
#[derive(Serialize)]
struct PolicyRow<'a> {
    policy: &'a str,
    invocations: u64,
    cold_starts: u64,
    cold_start_share: f64,
    function_cold_share_p50: f64,
    function_cold_share_p75: f64,
    function_cold_share_p90: f64,
    functions_counted: usize,
    throttles: u64,
    pings: u64,
    ping_throttles: u64,
    pings_refused: u64,
    provisioned_gb_s: f64,
    provisioning_refused: u64,
    on_demand_gb_s: f64,
    bill_usd: f64,
    idle_gb_s: f64,
    replay_s: f64,
    targets: usize,
    traffic: &'a str,
    estimator_samples: u64,
    estimator_mean_abs_error: f64,
    estimator_exact_share: f64,
    estimator_within_1_share: f64,
    estimator_p99_abs_error: u32,
    estimator_mean_error: f64,
    waits: u64,
    waits_then_cold: u64,
    start_delay_s: f64,
    start_delay_p99_ms: u64,
    start_delay_p999_ms: u64,
    mode: &'a str,
    seed: u64,
    warmup_minutes: f64,
    trace: &'a str,
}

/// One row of the `--pings` CSV.
#[derive(Serialize)]
struct ReasonRow<'a> {
    policy: &'a str,
    reason: &'a str,
    pings: u64,
    cold_pings: u64,
    fresh_pings: u64,
    unused_environments: u64,
}

/// One function's row of the per-function CSV under one policy.
#[derive(Serialize)]
struct FunctionRow<'a> {
    policy: &'a str,
    function: &'a str,
    memory_mb: u32,
    invocations: u64,
    cold_starts: u64,
    cold_start_share: f64,
    throttles: u64,
    pings: u64,
    cold_pings: u64,
    bill_usd: f64,
    provisioned_usd: f64,
}

/// Rows as CSV, with a header from their field names (quoted where a value needs it).
fn csv_of<R: Serialize>(rows: impl Iterator<Item = R>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    for row in rows {
        out.serialize(row)
            .expect("a row of plain values serializes");
    }
    String::from_utf8(out.into_inner().expect("writing to memory cannot fail"))
        .expect("CSV of UTF-8 values is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(policy: &str, cold_share: f64) -> Figures {
        Figures {
            policy: policy.into(),
            targets: 1,
            traffic: Traffic::First,
            invocations: 100,
            cold_starts: (cold_share * 100.0) as u64,
            cold_start_share: cold_share,
            function_cold_share_p50: 0.0,
            function_cold_share_p75: 0.5,
            function_cold_share_p90: 1.0,
            functions_counted: 3,
            throttles: 0,
            pings: 7,
            ping_throttles: 0,
            pings_refused: 0,
            unavailable: 0,
            provisioned_gb_s: 0.0,
            provisioning_refused: 0,
            on_demand_gb_s: 1.0,
            bill_usd: 0.0123,
            idle_gb_s: 12.0,
            waits: 0,
            waits_then_cold: 0,
            start_delay_s: 2.5,
            start_delay_p99_ms: 1000,
            start_delay_p999_ms: 1500,
            estimator: Default::default(),
            replay_s: 0.5,
            function_cold_shares: vec![0.0, 0.5, 1.0],
            functions: Vec::new(),
            pings_by_reason: Vec::new(),
        }
    }

    fn report() -> Report {
        Report {
            run: RunInfo {
                trace: "t".into(),
                format: "Azure Functions 2019".into(),
                functions: 3,
                invocations: 120,
                span_minutes: 480.0,
                mode: Mode::Default,
                seed: 0,
                warmup_minutes: 60.0,
                targets: 1,
                wall_s: 1.0,
            },
            policies: vec![figures("none", 0.25), figures("fixed-5min", 0.1)],
        }
    }

    #[test]
    fn the_table_has_a_row_per_policy_with_aligned_columns() {
        let table = report().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("| none "));
        assert!(lines[3].contains("  10.00 |"), "{table}");
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{table}");
    }

    #[test]
    fn csv_has_a_header_and_a_line_per_policy() {
        let csv = report().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
        assert!(lines[1].starts_with("none,100,25,0.25,"));
    }

    #[test]
    fn csv_fields_with_commas_are_quoted_and_read_back() {
        let mut r = report();
        r.run.trace = "azure, day 1".into();
        let csv = r.to_csv();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let trace = headers.iter().position(|h| h == "trace").unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|row| &row[trace] == "azure, day 1"));
    }

    #[test]
    fn only_csv_and_json_are_written() {
        let dir = std::env::temp_dir().join(format!("warmgate-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = report();
        r.write(&dir.join("r.json")).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
        assert_eq!(back["policies"][1]["policy"], "fixed-5min");
        let err = r.write(&dir.join("r.txt")).unwrap_err().to_string();
        assert!(err.contains(".csv or .json"), "{err}");
    }
}
