//! Azure LLM inference 2023: one record per request, `TIMESTAMP,ContextTokens,GeneratedTokens`;
//! each file is one function.

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::UtcDateTime;

use super::csv_file::{shown, CsvFile};
use super::durations::from_ms;
use super::{
    file_names, lambda_memory_mb, trace_name, Arrival, DurationModel, Trace, TraceError,
    TraceFormat, TraceFunction, MAX_MEMORY_MB,
};

const EXPECT_LLM: &str = "Azure LLM inference 2023: TIMESTAMP,ContextTokens,GeneratedTokens \
    in files named AzureLLMInferenceTrace_<name>.csv";

const LLM_PREFIX: &str = "AzureLLMInferenceTrace_";

/// Whether `name` is a file of the Azure LLM inference 2023 trace.
pub(super) fn is_file_name(name: &str) -> bool {
    name.starts_with(LLM_PREFIX) && name.ends_with(".csv")
}

/// Options of the Azure LLM inference 2023 reader.
///
/// The handler duration of a request is
/// `ContextTokens * ms_per_context_token + GeneratedTokens * ms_per_generated_token`.
/// The defaults are a stand-in, not a measurement: a small model on a Lambda CPU, prefill at
/// 0.05 ms per context token and decoding at 20 ms per generated token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmOptions {
    /// Milliseconds per context (input) token. Default 0.05.
    pub ms_per_context_token: f64,
    /// Milliseconds per generated (output) token. Default 20.
    pub ms_per_generated_token: f64,
    /// Memory of each function. Default 10,240 MB, the most Lambda offers: CPU inference wants
    /// every vCPU, and Lambda allots vCPUs in proportion to memory (6 at 10,240 MB).
    pub memory_mb: u32,
}

impl Default for LlmOptions {
    fn default() -> Self {
        LlmOptions {
            ms_per_context_token: 0.05,
            ms_per_generated_token: 20.0,
            memory_mb: MAX_MEMORY_MB,
        }
    }
}

/// Reads the Azure LLM inference 2023 trace: `path` is a directory (every
/// `AzureLLMInferenceTrace_<name>.csv` in it) or one such file.
///
/// Each file is one function, id `<name>` (`code`, `conv`), its own app, trigger unknown. Each
/// record is one request arriving at its `TIMESTAMP`, relative to the earliest timestamp of all
/// files read (so the functions share one clock), with its token counts kept on the arrival and
/// a handler duration derived from them by the rule of [`LlmOptions`]. Timestamps are
/// `YYYY-MM-DD HH:MM:SS[.fraction]` (a `T` separator and a `Z` or `±HH:MM` suffix are accepted),
/// UTC unless an offset says otherwise. The trace's duration is the last arrival's time.
pub fn read_azure_llm_2023(path: &Path, opts: &LlmOptions) -> Result<Trace, TraceError> {
    for (what, v) in [
        ("ms_per_context_token", opts.ms_per_context_token),
        ("ms_per_generated_token", opts.ms_per_generated_token),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(TraceError::Options(format!(
                "{what} must be a non-negative number, got {v}"
            )));
        }
    }
    let files: Vec<PathBuf> = if path.is_dir() {
        let files: Vec<PathBuf> = file_names(path)?
            .into_iter()
            .filter(|n| is_file_name(n))
            .map(|n| path.join(n))
            .collect();
        if files.is_empty() {
            return Err(TraceError::MissingFile {
                file: path.join(format!("{LLM_PREFIX}code.csv")),
                expected: EXPECT_LLM.to_string(),
            });
        }
        files
    } else {
        vec![path.to_path_buf()]
    };

    /// Requests of one file as (ns since the epoch, context tokens, generated tokens).
    type Requests = Vec<(i128, u32, u32)>;
    let mut read: Vec<(String, Requests)> = Vec::with_capacity(files.len());
    for file in &files {
        let name = trace_name(file);
        let id = name
            .strip_prefix(LLM_PREFIX)
            .unwrap_or(&name)
            .strip_suffix(".csv")
            .unwrap_or(&name)
            .to_string();
        let mut csv = CsvFile::open(file, EXPECT_LLM)?;
        let timestamp = csv.require("TIMESTAMP", EXPECT_LLM)?;
        let context = csv.require("ContextTokens", EXPECT_LLM)?;
        let generated = csv.require("GeneratedTokens", EXPECT_LLM)?;
        let mut requests = Vec::new();
        let tokens = |csv: &CsvFile, i: usize| -> Result<u32, TraceError> {
            let n = csv.whole(i)?;
            u32::try_from(n).map_err(|_| csv.cell_error(i, format!("{n} tokens is too many")))
        };
        while csv.next_record()? {
            let text = csv.text(timestamp)?;
            let at = parse_timestamp(text).ok_or_else(|| {
                csv.cell_error(
                    timestamp,
                    format!(
                        "expected a time like 2023-11-16 18:17:03.9799600, found {}",
                        shown(text.as_bytes())
                    ),
                )
            })?;
            requests.push((at, tokens(&csv, context)?, tokens(&csv, generated)?));
        }
        read.push((id, requests));
    }

    let zero = read
        .iter()
        .flat_map(|(_, r)| r.iter().map(|&(at, _, _)| at))
        .min()
        .unwrap_or(0);
    let memory_mb = lambda_memory_mb(f64::from(opts.memory_mb));
    let mut last = Duration::ZERO;
    let functions = read
        .into_iter()
        .map(|(id, requests)| {
            let mut arrivals: Vec<Arrival> = requests
                .into_iter()
                .map(|(at, context, generated)| Arrival {
                    at: Duration::from_nanos((at - zero) as u64),
                    duration: Some(from_ms(
                        f64::from(context) * opts.ms_per_context_token
                            + f64::from(generated) * opts.ms_per_generated_token,
                    )),
                    tokens: Some((context, generated)),
                })
                .collect();
            arrivals.sort_by_key(|a| a.at);
            if let Some(a) = arrivals.last() {
                last = last.max(a.at);
            }
            let mut samples: Vec<Duration> = arrivals.iter().filter_map(|a| a.duration).collect();
            TraceFunction {
                lambda: Default::default(),
                app: id.clone(),
                id,
                trigger: None,
                memory_mb,
                durations: DurationModel::from_samples(&mut samples)
                    .unwrap_or(DurationModel::Fixed(Duration::ZERO)),
                arrivals,
            }
        })
        .collect();
    Ok(Trace {
        name: trace_name(path),
        format: TraceFormat::AzureLlm2023,
        functions,
        duration: last,
    })
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z|±HH:MM]`. Fraction digits beyond the ninth are dropped.
const TIMESTAMP: &[BorrowedFormatItem<'_>] = format_description!(
    version = 2,
    "[year range:standard]-[month]-[day][first [ ][T]][hour]:[minute]:[second]\
     [optional [.[subsecond]]][optional [[first [Z][[offset_hour sign:mandatory]:[offset_minute]]]]]"
);

/// Nanoseconds since 1970-01-01 00:00 UTC of a [`TIMESTAMP`], UTC unless an offset says
/// otherwise. `None` if it is not such a time.
fn parse_timestamp(text: &str) -> Option<i128> {
    let text = text.trim();
    // `[year]` also takes a sign, which no trace's timestamp has.
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let at = UtcDateTime::parse(text, TIMESTAMP).ok()?;
    Some(at.unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::trace::testing::{shared, temp_dir, write, MIN};
    use crate::sim::trace::{detect, load, LoadOptions};

    #[test]
    fn llm_requests_share_one_clock_and_derive_durations_from_tokens() {
        let dir = temp_dir("llm");
        write(
            &dir,
            "AzureLLMInferenceTrace_code.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\r\n\
             2023-11-16 18:17:03.9799600,1000,10\r\n\
             2023-11-16 18:17:04.0319600,3180,8\r\n",
        );
        write(
            &dir,
            "AzureLLMInferenceTrace_conv.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n",
        );
        assert_eq!(detect(&dir).unwrap(), TraceFormat::AzureLlm2023);
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        let ids: Vec<&str> = trace.functions.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["code", "conv"]);
        let code = &trace.functions[0];
        let first = code.arrivals[0];
        assert_eq!(
            first.at,
            Duration::from_nanos(77_299_370_000),
            "after conv's first request"
        );
        assert_eq!(first.tokens, Some((1000, 10)));
        assert_eq!(
            first.duration,
            Some(Duration::from_millis(250)),
            "1000 * 0.05 + 10 * 20 ms"
        );
        assert_eq!(trace.functions[1].arrivals[0].at, Duration::ZERO);
        assert_eq!(trace.duration, code.arrivals[1].at);
        assert_eq!((code.app.as_str(), code.memory_mb), ("code", 10_240));

        let opts = LlmOptions {
            ms_per_context_token: 0.0,
            ms_per_generated_token: 1.0,
            memory_mb: 2048,
        };
        let one = read_azure_llm_2023(&dir.join("AzureLLMInferenceTrace_code.csv"), &opts).unwrap();
        assert_eq!(one.functions.len(), 1);
        assert_eq!(one.functions[0].arrivals[0].at, Duration::ZERO);
        assert_eq!(
            one.functions[0].arrivals[1].duration,
            Some(Duration::from_millis(8))
        );
        assert_eq!(one.functions[0].memory_mb, 2048);

        write(
            &dir,
            "AzureLLMInferenceTrace_conv.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-13-01 00:00:00,1,1\n",
        );
        let message = load(&dir, &LoadOptions::default()).unwrap_err().to_string();
        assert!(
            message.contains("AzureLLMInferenceTrace_conv.csv line 3, column \"TIMESTAMP\""),
            "{message}"
        );
    }

    #[test]
    fn timestamps_parse() {
        let s = |t: &str| parse_timestamp(t).map(|ns| ns / 1_000_000_000);
        assert_eq!(s("1970-01-01 00:00:00"), Some(0));
        assert_eq!(s("2000-03-01 00:00:00"), Some(951_868_800));
        assert_eq!(s("2000-03-01T01:00:00+01:00"), Some(951_868_800));
        assert_eq!(s("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(s("2000-02-29T19:30:00-04:30"), Some(951_868_800));
        let day = 86_400;
        assert_eq!(
            s("2024-03-01 00:00:00").unwrap() - s("2024-02-28 00:00:00").unwrap(),
            2 * day,
            "2024 is a leap year"
        );
        assert_eq!(
            s("2024-01-01 00:00:00").unwrap() - s("2023-12-31 23:59:59").unwrap(),
            1
        );
        assert_eq!(
            parse_timestamp("2023-11-16 18:17:03.9799600").unwrap() % 1_000_000_000,
            979_960_000
        );
        assert_eq!(
            parse_timestamp("2023-11-16 18:17:03.1234567891").unwrap() % 1_000_000_000,
            123_456_789
        );
        for bad in [
            "2023-02-29 00:00:00",
            "2023-11-16",
            "2023-11-16 24:00:00",
            "2023-11-16 18:17:03.",
            "2023-11-16 18:17:03 UTC",
            "2023/11/16 18:17:03",
            "+2023-11-16 18:17:03",
            "2023-11-16 18:17:03+05",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn real_llm_2023_trace() {
        let dir = shared("azure_llm_inference_2023");
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        assert_eq!(trace.format, TraceFormat::AzureLlm2023);
        let counts: Vec<(&str, usize)> = trace
            .functions
            .iter()
            .map(|f| (f.id.as_str(), f.arrivals.len()))
            .collect();
        assert_eq!(counts, [("code", 8_819), ("conv", 19_366)]);
        assert!(
            trace.duration > 55 * MIN && trace.duration < 60 * MIN,
            "{:?}",
            trace.duration
        );
        for f in &trace.functions {
            assert!(f.arrivals.windows(2).all(|w| w[0].at <= w[1].at));
            assert!(f
                .arrivals
                .iter()
                .all(|a| a.tokens.is_some() && a.duration.is_some()));
        }
    }
}
