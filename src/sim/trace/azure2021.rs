//! Azure Functions 2021: one record per invocation, `app,func,end_timestamp,duration` in seconds.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::csv_file::CsvFile;
use super::durations::from_secs;
use super::{
    lambda_memory_mb, single_file, trace_name, Arrival, DurationModel, Trace, TraceError,
    TraceFormat, TraceFunction, MIN_MEMORY_MB,
};

const EXPECT_2021: &str =
    "Azure Functions 2021 invocations: app,func,end_timestamp,duration (seconds)";

/// Whether `name` is the file of an Azure 2021 trace.
pub(super) fn is_file_name(name: &str) -> bool {
    (name.starts_with("Azure2021") || name.starts_with("AzureFunctionsInvocationTrace"))
        && (name.ends_with(".csv") || name.ends_with(".txt"))
}

/// Options of the Azure Functions 2021 reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Azure2021Options {
    /// Memory of every function; the trace has none. Default 128 MB. Clamped to Lambda's range.
    pub memory_mb: u32,
}

impl Default for Azure2021Options {
    fn default() -> Self {
        Azure2021Options {
            memory_mb: MIN_MEMORY_MB,
        }
    }
}

/// Reads an Azure Functions 2021 trace: `path` is the file (`app,func,end_timestamp,duration`,
/// seconds), or a directory holding exactly one file named `Azure2021*.csv` or
/// `AzureFunctionsInvocationTrace*`.
///
/// Each record is one invocation of the function `(app, func)`: it arrives at
/// `end_timestamp - duration` (clamped at 0) and runs for `duration`. The function's
/// [`DurationModel`] is the percentile model of its observed durations
/// ([`DurationModel::from_samples`]); memory is [`Azure2021Options::memory_mb`]. The trace's
/// duration is the last `end_timestamp`.
pub fn read_azure_2021(path: &Path, opts: &Azure2021Options) -> Result<Trace, TraceError> {
    let file = single_file(
        path,
        is_file_name,
        "Azure2021*.csv",
        "Azure 2021",
        EXPECT_2021,
    )?;
    let mut csv = CsvFile::open(&file, EXPECT_2021)?;
    let app = csv.require("app", EXPECT_2021)?;
    let func = csv.require("func", EXPECT_2021)?;
    let end = csv.require("end_timestamp", EXPECT_2021)?;
    let dur = csv.require("duration", EXPECT_2021)?;

    struct Building {
        app: String,
        func: String,
        arrivals: Vec<Arrival>,
        unsorted: bool,
    }
    let mut functions: Vec<Building> = Vec::new();
    let mut by_func: HashMap<String, Vec<usize>> = HashMap::new();
    let mut last_end = 0.0f64;
    while csv.next_record()? {
        let app_id = csv.id(app)?;
        let func_id = csv.id(func)?;
        let end_s = csv.number(end)?;
        let duration_s = csv.number(dur)?;
        last_end = last_end.max(end_s);
        let found = by_func
            .get(func_id)
            .and_then(|v| v.iter().copied().find(|&i| functions[i].app == app_id));
        let index = match found {
            Some(i) => i,
            None => {
                functions.push(Building {
                    app: app_id.to_string(),
                    func: func_id.to_string(),
                    arrivals: Vec::new(),
                    unsorted: false,
                });
                let i = functions.len() - 1;
                by_func.entry(func_id.to_string()).or_default().push(i);
                i
            }
        };
        let at = from_secs(end_s - duration_s);
        let f = &mut functions[index];
        if f.arrivals.last().is_some_and(|a| a.at > at) {
            f.unsorted = true;
        }
        f.arrivals.push(Arrival {
            at,
            duration: Some(from_secs(duration_s)),
            tokens: None,
        });
    }
    let memory_mb = lambda_memory_mb(f64::from(opts.memory_mb));
    let functions = functions
        .into_iter()
        .map(|mut f| {
            if f.unsorted {
                f.arrivals.sort_by_key(|a| a.at);
            }
            let mut samples: Vec<Duration> = f.arrivals.iter().filter_map(|a| a.duration).collect();
            let shared = by_func.get(&f.func).is_some_and(|v| v.len() > 1);
            TraceFunction {
                lambda: Default::default(),
                id: if shared {
                    format!("{}/{}", f.app, f.func)
                } else {
                    f.func
                },
                app: f.app,
                trigger: None,
                memory_mb,
                durations: DurationModel::from_samples(&mut samples)
                    .unwrap_or(DurationModel::Fixed(Duration::ZERO)),
                arrivals: f.arrivals,
            }
        })
        .collect();
    Ok(Trace {
        name: trace_name(path),
        format: TraceFormat::Azure2021,
        functions,
        duration: from_secs(last_end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::testing::{shared, temp_dir, write};
    use crate::sim::trace::{detect, load, LoadOptions};

    #[test]
    fn azure_2021_arrivals_are_end_minus_duration() {
        let dir = temp_dir("a2021");
        write(
            &dir,
            "Azure2021_test.csv",
            "app,func,end_timestamp,duration\n\
             a,f,10.5,0.5\n\
             b,g,0.2,0.3\n\
             a,f,8.0,1.0\n\
             c,f,20.0,2.0\n",
        );
        assert_eq!(detect(&dir).unwrap(), TraceFormat::Azure2021);
        let opts = LoadOptions {
            azure_2021: Azure2021Options { memory_mb: 64 },
            ..LoadOptions::default()
        };
        let trace = load(&dir, &opts).unwrap();
        assert_eq!(trace.duration, Duration::from_secs(20));
        let ids: Vec<&str> = trace.functions.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["a/f", "g", "c/f"]);
        let f = &trace.functions[0];
        assert_eq!(
            (f.app.as_str(), f.memory_mb, f.trigger.as_ref()),
            ("a", 128, None)
        );
        let arrivals: Vec<(Duration, Option<Duration>)> =
            f.arrivals.iter().map(|a| (a.at, a.duration)).collect();
        assert_eq!(
            arrivals,
            [
                (Duration::from_secs(7), Some(Duration::from_secs(1))),
                (Duration::from_secs(10), Some(Duration::from_millis(500)))
            ],
            "sorted by arrival"
        );
        assert_eq!(
            trace.functions[1].arrivals[0].at,
            Duration::ZERO,
            "clamped at 0"
        );
        assert_eq!(f.durations.average(), Duration::from_millis(750));

        write(
            &dir,
            "Azure2021_test.csv",
            "app,func,end_timestamp,duration\na,f,1.0,zero\n",
        );
        let message = load(&dir, &opts).unwrap_err().to_string();
        assert!(
            message.contains(
                "Azure2021_test.csv line 2, column \"duration\": \
                 expected a non-negative number, found \"zero\""
            ),
            "{message}"
        );
    }

    #[test]
    fn real_azure_2021_sample() {
        let dir = shared("azure_functions_2021_invitro_first200");
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        assert_eq!(trace.format, TraceFormat::Azure2021);
        assert_eq!(trace.invocations(), 199);
        assert_eq!(trace.functions.len(), 31);
        let apps: std::collections::HashSet<&str> =
            trace.functions.iter().map(|f| f.app.as_str()).collect();
        assert_eq!(apps.len(), 13);
        assert!(trace.duration > Duration::from_secs(1_260));
        assert!(trace.duration < Duration::from_secs(1_261));
    }
}
