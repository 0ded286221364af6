//! warmgate's own history: one record per invocation the gateway made for a client, with
//! the figures of its REPORT line (`[history]` in the gateway's configuration writes it).
//!
//! ```text
//! function,target,at_unix_ms,duration_ms,billed_duration_ms,memory_mb,max_memory_used_mb,init_ms,restore_ms,architecture
//! embed,live,1764614400123,41.20,42,1024,180,,,x86_64
//! embed,live,1764614400500,40.02,41,1024,181,1480.22,,x86_64
//! ```
//!
//! `init_ms` is set on a cold start, `restore_ms` on a SnapStart restore; both are empty on a
//! warm start. Read as a trace, a function is the gateway's function (its targets are one
//! pool of the same code), time zero is the first record's minute, memory and architecture
//! are the last record's, and the init a replay gives its cold starts is the one seen
//! (restores count as inits: they are what a cold start of that function takes).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::csv_file::CsvFile;
use super::durations::from_ms;
use super::{
    lambda_memory_mb, single_file, trace_name, Arrival, DurationModel, LambdaFacts, Trace,
    TraceError, TraceFormat, TraceFunction,
};
use crate::platform::dist::Dist;
use crate::platform::spec::Architecture;

/// The header the gateway writes, column by column.
pub const HISTORY_COLUMNS: [&str; 10] = [
    "function",
    "target",
    "at_unix_ms",
    "duration_ms",
    "billed_duration_ms",
    "memory_mb",
    "max_memory_used_mb",
    "init_ms",
    "restore_ms",
    "architecture",
];

const EXPECT_HISTORY: &str = "warmgate history: function,target,at_unix_ms,duration_ms,\
    billed_duration_ms,memory_mb,max_memory_used_mb,init_ms,restore_ms,architecture";

/// Whether `name` is a history file's name (`warmgate-history*.csv`).
pub(super) fn is_file_name(name: &str) -> bool {
    name.starts_with("warmgate-history") && name.ends_with(".csv")
}

/// What the history saw of one function beyond its load: what `warmgate advise` weighs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The targets that served it, in order of first use.
    pub targets: Vec<String>,
    /// The largest `Max Memory Used` reported.
    pub max_memory_used_mb: u32,
    /// Init durations of its cold starts, in ms, in the order seen.
    pub inits_ms: Vec<f64>,
    /// Restore durations of its SnapStart restores, in ms.
    pub restores_ms: Vec<f64>,
}

/// A history read: the trace, and what each function's records said beyond its load.
#[derive(Debug, Clone)]
pub struct HistoryTrace {
    pub trace: Trace,
    /// `observed[i]` is `trace.functions[i]`'s.
    pub observed: Vec<Observed>,
    /// The Unix time of the trace's time zero, in ms.
    pub start_unix_ms: f64,
}

/// Reads a history file (or a directory holding exactly one) as a trace.
pub fn read_warmgate_history(path: &Path) -> Result<Trace, TraceError> {
    read_history(path).map(|history| history.trace)
}

/// Reads a history file as a trace, with what each function's records said beyond its load.
pub fn read_history(path: &Path) -> Result<HistoryTrace, TraceError> {
    let file = single_file(
        path,
        is_file_name,
        "warmgate-history*.csv",
        "history",
        EXPECT_HISTORY,
    )?;
    let mut csv = CsvFile::open(&file, EXPECT_HISTORY)?;
    let [function, target, at, duration, _billed, memory, max_used, init, restore, arch] =
        HISTORY_COLUMNS.map(|c| csv.require(c, EXPECT_HISTORY));
    let (function, target, at, duration, memory, max_used, init, restore, arch) = (
        function?, target?, at?, duration?, memory?, max_used?, init?, restore?, arch?,
    );

    struct Building {
        id: String,
        memory_mb: u32,
        architecture: Architecture,
        /// Arrivals as Unix milliseconds, with their durations.
        calls: Vec<(f64, Duration)>,
        observed: Observed,
    }
    let mut functions: Vec<Building> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let optional = |csv: &CsvFile, i: usize| -> Result<Option<f64>, TraceError> {
        if csv.text(i)?.is_empty() {
            Ok(None)
        } else {
            csv.number(i).map(Some)
        }
    };
    while csv.next_record()? {
        let name = csv.id(function)?;
        let i = match index.get(name) {
            Some(&i) => i,
            None => {
                functions.push(Building {
                    id: name.to_string(),
                    memory_mb: 0,
                    architecture: Architecture::default(),
                    calls: Vec::new(),
                    observed: Observed::default(),
                });
                index.insert(name.to_string(), functions.len() - 1);
                functions.len() - 1
            }
        };
        let architecture = match csv.text(arch)? {
            "" | "x86_64" => Architecture::X86_64,
            "arm64" => Architecture::Arm64,
            other => {
                return Err(csv.cell_error(
                    arch,
                    format!("{other:?} is not an architecture; expected x86_64 or arm64"),
                ))
            }
        };
        let record = (
            csv.text(target)?.to_string(),
            csv.number(at)?,
            csv.number(duration)?,
            csv.number(memory)?,
            csv.number(max_used)?,
            optional(&csv, init)?,
            optional(&csv, restore)?,
        );
        let (target, at_ms, duration_ms, memory_mb, max_used_mb, init_ms, restore_ms) = record;
        let f = &mut functions[i];
        f.memory_mb = lambda_memory_mb(memory_mb);
        f.architecture = architecture;
        f.calls.push((at_ms, from_ms(duration_ms)));
        let seen = &mut f.observed;
        if !seen.targets.contains(&target) {
            seen.targets.push(target);
        }
        seen.max_memory_used_mb = seen.max_memory_used_mb.max(max_used_mb.max(0.0) as u32);
        seen.inits_ms.extend(init_ms);
        seen.restores_ms.extend(restore_ms);
    }
    // Time zero: the first record's minute, so that minutes of the replay are the clock's.
    let first_ms = functions
        .iter()
        .flat_map(|f| f.calls.iter().map(|c| c.0))
        .fold(f64::INFINITY, f64::min);
    let zero_ms = if first_ms.is_finite() {
        (first_ms / 60_000.0).floor() * 60_000.0
    } else {
        0.0
    };
    let mut end = Duration::ZERO;
    let mut observed = Vec::with_capacity(functions.len());
    let functions = functions
        .into_iter()
        .map(|mut f| {
            f.calls.sort_by(|a, b| a.0.total_cmp(&b.0));
            let arrivals: Vec<Arrival> = f
                .calls
                .iter()
                .map(|&(at_ms, duration)| Arrival {
                    at: from_ms(at_ms - zero_ms),
                    duration: Some(duration),
                    tokens: None,
                })
                .collect();
            if let Some(last) = arrivals.last() {
                end = end.max(last.at + last.duration.unwrap_or_default());
            }
            let mut samples: Vec<Duration> = arrivals.iter().filter_map(|a| a.duration).collect();
            let cold: Vec<f64> = f
                .observed
                .inits_ms
                .iter()
                .chain(&f.observed.restores_ms)
                .copied()
                .collect();
            observed.push(f.observed);
            TraceFunction {
                app: f.id.clone(),
                id: f.id,
                trigger: None,
                memory_mb: f.memory_mb,
                durations: DurationModel::from_samples(&mut samples)
                    .unwrap_or(DurationModel::Fixed(Duration::ZERO)),
                arrivals,
                lambda: LambdaFacts {
                    architecture: f.architecture,
                    init_ms: init_dist(&cold),
                },
            }
        })
        .collect();
    let trace = Trace {
        name: trace_name(path),
        format: TraceFormat::WarmgateHistory,
        functions,
        // Whole minutes, as the per-minute traces have.
        duration: Duration::from_secs(end.as_secs().div_ceil(60) * 60),
    };
    Ok(HistoryTrace {
        trace,
        observed,
        start_unix_ms: zero_ms,
    })
}

/// The init a replay draws for a function whose cold starts took `seen_ms`: log-normal with
/// their median and geometric spread (one sample: that value).
pub fn init_dist(seen_ms: &[f64]) -> Option<Dist> {
    let logs: Vec<f64> = seen_ms
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| v.ln())
        .collect();
    match logs.len() {
        0 => None,
        1 => Some(Dist::Fixed(seen_ms.iter().copied().fold(0.0, f64::max))),
        n => {
            let mut sorted = logs.clone();
            sorted.sort_by(f64::total_cmp);
            let median = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            let mean = logs.iter().sum::<f64>() / n as f64;
            let variance = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            Some(Dist::LogNormal {
                median: median.exp(),
                spread: variance.sqrt().exp().max(1.0),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::testing::{temp_dir, write};
    use crate::sim::trace::{detect, load, LoadOptions};

    const HEADER: &str = "function,target,at_unix_ms,duration_ms,billed_duration_ms,memory_mb,\
        max_memory_used_mb,init_ms,restore_ms,architecture\n";

    #[test]
    fn history_reads_as_a_trace_from_its_first_minute() {
        let dir = temp_dir("history");
        write(
            &dir,
            "warmgate-history.csv",
            &format!(
                "{HEADER}\
                 embed,live,1764614430000,40.5,41,1024,180,1500,,arm64\n\
                 embed,standby,1764614490000,20,20,1024,200,,,arm64\n\
                 caption,live,1764614460000,100,100,2048,900,,250,x86_64\n\
                 embed,live,1764614440000,30,30,1024,170,2500,,arm64\n"
            ),
        );
        assert_eq!(detect(&dir).unwrap(), TraceFormat::WarmgateHistory);
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        let history = read_history(&dir).unwrap();
        let observed = history.observed;
        assert_eq!(history.start_unix_ms, 1_764_614_400_000.0);
        let ids: Vec<&str> = trace.functions.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["embed", "caption"]);
        let embed = &trace.functions[0];
        // 1764614400000 is a whole minute: the first record is 30 s into it.
        let at: Vec<(u64, Option<Duration>)> = embed
            .arrivals
            .iter()
            .map(|a| (a.at.as_millis() as u64, a.duration))
            .collect();
        assert_eq!(
            at,
            [
                (30_000, Some(Duration::from_micros(40_500))),
                (40_000, Some(Duration::from_millis(30))),
                (90_000, Some(Duration::from_millis(20))),
            ],
            "sorted, from the first record's minute"
        );
        assert_eq!(embed.memory_mb, 1024);
        assert_eq!(embed.lambda.architecture, Architecture::Arm64);
        match embed.lambda.init_ms {
            Some(Dist::LogNormal { median, spread }) => {
                assert!(
                    (median - (1500.0f64 * 2500.0).sqrt()).abs() < 1e-6,
                    "{median}"
                );
                assert!(spread > 1.0);
            }
            other => panic!("expected a log-normal init, got {other:?}"),
        }
        assert_eq!(observed[0].targets, ["live", "standby"]);
        assert_eq!(observed[0].max_memory_used_mb, 200);
        assert_eq!(observed[0].inits_ms, [1500.0, 2500.0]);
        assert_eq!(observed[1].restores_ms, [250.0]);
        assert_eq!(
            trace.functions[1].lambda.init_ms,
            Some(Dist::Fixed(250.0)),
            "a restore is what a SnapStart function's cold start takes"
        );
        assert_eq!(trace.duration, Duration::from_secs(120));
    }

    #[test]
    fn a_bad_history_cell_is_named() {
        let dir = temp_dir("history-bad");
        write(
            &dir,
            "warmgate-history-1.csv",
            &format!("{HEADER}embed,live,1764614430000,40,41,1024,180,,,sparc\n"),
        );
        let err = load(&dir, &LoadOptions::default()).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("architecture") && err.contains("sparc"),
            "{err}"
        );
        write(
            &dir,
            "warmgate-history-1.csv",
            &format!("{HEADER}embed,live,soon,40,41,1024,180,,,x86_64\n"),
        );
        let err = load(&dir, &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("at_unix_ms"), "{err}");
    }
}
