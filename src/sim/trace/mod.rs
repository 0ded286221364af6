//! Trace readers: public serverless traces read into one in-memory form, [`Trace`], that the
//! simulator replays in virtual time.
//!
//! Formats (see `../shared/traces/README.md` for provenance):
//!
//! - **Azure Functions 2019** ([`read_azure_2019`]): per-minute invocation counts per function,
//!   plus duration percentiles per function and memory per app (or per function). Three file
//!   sets are understood: the Azure public dataset's day files
//!   (`invocations_per_function_md.anon.dNN.csv`, `function_durations_percentiles.anon.dNN.csv`,
//!   `app_memory_percentiles.anon.dNN.csv`, one or more days), invitro's `invocations.csv`,
//!   `durations.csv`, `memory.csv`, and invitro's `NNN_inv.csv`, `NNN_run.csv`, `NNN_mem.csv`.
//! - **Azure Functions 2021** ([`read_azure_2021`]): one record per invocation,
//!   `app,func,end_timestamp,duration` in seconds.
//! - **Azure LLM inference 2023** ([`read_azure_llm_2023`]): one record per request,
//!   `TIMESTAMP,ContextTokens,GeneratedTokens`; each file is one function.
//! - **warmgate history** ([`read_warmgate_history`]): one record per invocation the gateway
//!   made, with its REPORT line's figures (`warmgate-history*.csv`, written by the gateway's
//!   `[history]`); what `warmgate advise` replays.
//!
//! [`load`] tells the format of a directory from its file names and calls the right reader.
//!
//! Rules every reader keeps:
//! - Time zero is the start of the trace: the first minute column of the first day (2019), the
//!   clock origin of the file (2021), the earliest timestamp (2023). Arrivals are sorted by time,
//!   and every arrival lies within [`Trace::duration`].
//! - Memory is clamped to Lambda's range, [`MIN_MEMORY_MB`]`..=`[`MAX_MEMORY_MB`]: a trace's
//!   smaller figure means 128 MB (Lambda's least memory), and an unknown one is 128 MB too.
//! - Files are streamed record by record into a reused `csv::ByteRecord`; what stays in memory
//!   is the trace.
//! - Errors name the file, the 1-based line (the header is line 1) and the column, by its header
//!   name, or by 1-based index where the header has none.
//!
//! The CSV dialect is RFC 4180, read by the `csv` crate, with the leniencies these traces need:
//! `\n` or `\r\n` line endings, blank lines skipped, spaces around fields trimmed, and one
//! trailing comma tolerated.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::platform::dist::Dist;
use crate::platform::spec::Architecture;

mod azure2019;
mod azure2021;
mod csv_file;
mod durations;
mod history;
mod llm2023;
#[cfg(test)]
mod testing;

pub use azure2019::{read_azure_2019, AzureOptions, SpreadRule, DEFAULT_DURATION};
pub use azure2021::{read_azure_2021, Azure2021Options};
pub use durations::{DurationModel, PERCENTILE_LEVELS};
pub use history::{
    init_dist, read_history, read_warmgate_history, HistoryTrace, Observed, HISTORY_COLUMNS,
};
pub use llm2023::{read_azure_llm_2023, LlmOptions};

/// Lambda's smallest memory size, in MB.
pub const MIN_MEMORY_MB: u32 = 128;
/// Lambda's largest memory size, in MB.
pub const MAX_MEMORY_MB: u32 = 10_240;

const EXPECT_ANY: &str = "Azure Functions 2019 (invocations_per_function_md.anon.dNN.csv, \
    invocations.csv or NNN_inv.csv with their duration and memory files), Azure Functions 2021 \
    (Azure2021*.csv or AzureFunctionsInvocationTrace*), or Azure LLM inference 2023 \
    (AzureLLMInferenceTrace_*.csv), or warmgate's history (warmgate-history*.csv)";

// ---------------------------------------------------------------------------------------------
// The common form
// ---------------------------------------------------------------------------------------------

/// Which public trace a [`Trace`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// Azure Functions 2019: per-minute counts, duration percentiles, app memory.
    Azure2019,
    /// Azure Functions 2021: one record per invocation with its duration.
    Azure2021,
    /// Azure LLM inference 2023: one record per request with its token counts.
    AzureLlm2023,
    /// warmgate's own history: one record per invocation with its REPORT line's figures.
    WarmgateHistory,
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceFormat::Azure2019 => "Azure Functions 2019",
            TraceFormat::Azure2021 => "Azure Functions 2021",
            TraceFormat::AzureLlm2023 => "Azure LLM inference 2023",
            TraceFormat::WarmgateHistory => "warmgate history",
        })
    }
}

/// A trace in the common form: functions, each with its arrivals in virtual time.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The name of the directory or file it was read from.
    pub name: String,
    /// The format it was read from.
    pub format: TraceFormat,
    /// Functions in the order the trace first lists them. Ids are unique within a trace.
    pub functions: Vec<TraceFunction>,
    /// Span of the trace from time zero; every arrival's `at` is at most this. For per-minute
    /// traces it is the number of minutes read times one minute.
    pub duration: Duration,
}

impl Trace {
    /// Invocations in the whole trace.
    pub fn invocations(&self) -> usize {
        self.functions.iter().map(|f| f.arrivals.len()).sum()
    }

    /// The function with this id.
    pub fn function(&self, id: &str) -> Option<&TraceFunction> {
        self.functions.iter().find(|f| f.id == id)
    }
}

/// One function of a trace.
#[derive(Debug, Clone)]
pub struct TraceFunction {
    /// The trace's hash or name for the function (`HashFunction`, `func`, or the LLM file's
    /// name). Where an Azure 2019 `HashFunction` is shared by functions of different apps or
    /// owners, each of them gets `HashOwner/HashApp/HashFunction` instead, so ids stay unique.
    pub id: String,
    /// The application it belongs to (`HashApp`, `app`); Shahrad et al.'s policy is per app.
    pub app: String,
    /// How it is triggered (`http`, `timer`, `queue`, ...), where the trace says.
    pub trigger: Option<String>,
    /// Configured memory in MB, within [`MIN_MEMORY_MB`]`..=`[`MAX_MEMORY_MB`].
    pub memory_mb: u32,
    /// How to draw a handler duration for an arrival that does not carry one.
    pub durations: DurationModel,
    /// Invocations, sorted by `at`.
    pub arrivals: Vec<Arrival>,
    /// What is known of it on Lambda beyond its load (only warmgate's history knows).
    pub lambda: LambdaFacts,
}

/// What a trace may know of a function on Lambda beyond its load: warmgate's own history
/// records them; the public traces know neither, and a replay takes its `--init` and x86.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LambdaFacts {
    /// Its architecture, which sets its prices.
    pub architecture: Architecture,
    /// The init its cold starts took, in ms, where some were seen.
    pub init_ms: Option<Dist>,
}

/// One invocation of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When it arrives, since time zero of the trace.
    pub at: Duration,
    /// Its handler duration, where the trace gives one per invocation (2021) or it is derived
    /// per request (2023); otherwise draw one from [`TraceFunction::durations`].
    pub duration: Option<Duration>,
    /// `(context, generated)` tokens of an LLM request.
    pub tokens: Option<(u32, u32)>,
}

/// Lambda memory for a trace's figure in MB: rounded up to a whole MB, then clamped to
/// [`MIN_MEMORY_MB`]`..=`[`MAX_MEMORY_MB`]. Smaller figures, and figures that are not numbers,
/// mean 128 MB.
pub fn lambda_memory_mb(mb: f64) -> u32 {
    if !mb.is_finite() || mb <= MIN_MEMORY_MB as f64 {
        MIN_MEMORY_MB
    } else if mb >= MAX_MEMORY_MB as f64 {
        MAX_MEMORY_MB
    } else {
        mb.ceil() as u32
    }
}

/// Options of [`load`], one set per format.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadOptions {
    pub azure_2019: AzureOptions,
    pub azure_2021: Azure2021Options,
    pub llm_2023: LlmOptions,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A column of a CSV file: by its header name, or by 1-based index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Name(String),
    Index(usize),
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Name(name) => write!(f, "\"{name}\""),
            Column::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Why a trace could not be read. Every variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not found; expected {expected}", file.display())]
    MissingFile { file: PathBuf, expected: String },
    #[error("{}: no trace recognised; expected {expected}", dir.display())]
    UnknownFormat { dir: PathBuf, expected: String },
    #[error("{}: holds {found}; point at one trace", dir.display())]
    Ambiguous { dir: PathBuf, found: String },
    #[error("{}: the header has no column \"{column}\"; expected {expected}", file.display())]
    MissingColumn {
        file: PathBuf,
        column: String,
        expected: String,
    },
    #[error("{} line {line}: {message}", file.display())]
    Line {
        file: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{} line {line}, column {column}: {message}", file.display())]
    Cell {
        file: PathBuf,
        line: u64,
        column: Column,
        message: String,
    },
    #[error("invalid options: {0}")]
    Options(String),
}

fn io_error(file: &Path, source: io::Error) -> TraceError {
    TraceError::Io {
        file: file.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Format detection and `load`
// ---------------------------------------------------------------------------------------------

/// The file names in `dir`, sorted; names that are not UTF-8 are left out.
fn file_names(dir: &Path) -> Result<Vec<String>, TraceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            TraceError::MissingFile {
                file: dir.to_path_buf(),
                expected: format!("a directory holding {EXPECT_ANY}"),
            }
        } else {
            io_error(dir, e)
        }
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn trace_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The one file of a single-file format at `path`: the path itself, or the only file in the
/// directory whose name `is_name` accepts (`pattern` and `what` name it in errors).
fn single_file(
    path: &Path,
    is_name: fn(&str) -> bool,
    pattern: &str,
    what: &str,
    expected: &str,
) -> Result<PathBuf, TraceError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let names: Vec<String> = file_names(path)?
        .into_iter()
        .filter(|n| is_name(n))
        .collect();
    match names.as_slice() {
        [one] => Ok(path.join(one)),
        [] => Err(TraceError::MissingFile {
            file: path.join(pattern),
            expected: expected.to_string(),
        }),
        several => Err(TraceError::Ambiguous {
            dir: path.to_path_buf(),
            found: format!("several {what} files ({})", several.join(", ")),
        }),
    }
}

/// Which format `path` holds: a directory, by the names of its files, or a single file, by its
/// name. Errors when it holds none or several.
pub fn detect(path: &Path) -> Result<TraceFormat, TraceError> {
    if path.is_file() {
        let name = trace_name(path);
        return if azure2021::is_file_name(&name) {
            Ok(TraceFormat::Azure2021)
        } else if llm2023::is_file_name(&name) {
            Ok(TraceFormat::AzureLlm2023)
        } else if history::is_file_name(&name) {
            Ok(TraceFormat::WarmgateHistory)
        } else {
            Err(TraceError::UnknownFormat {
                dir: path.to_path_buf(),
                expected: EXPECT_ANY.to_string(),
            })
        };
    }
    let names = file_names(path)?;
    let mut found = Vec::new();
    if names.iter().any(|n| azure2019::is_invocations_name(n)) {
        found.push(TraceFormat::Azure2019);
    }
    if names.iter().any(|n| azure2021::is_file_name(n)) {
        found.push(TraceFormat::Azure2021);
    }
    if names.iter().any(|n| llm2023::is_file_name(n)) {
        found.push(TraceFormat::AzureLlm2023);
    }
    if names.iter().any(|n| history::is_file_name(n)) {
        found.push(TraceFormat::WarmgateHistory);
    }
    match found.as_slice() {
        [] => Err(TraceError::UnknownFormat {
            dir: path.to_path_buf(),
            expected: EXPECT_ANY.to_string(),
        }),
        [one] => Ok(*one),
        several => Err(TraceError::Ambiguous {
            dir: path.to_path_buf(),
            found: format!(
                "files of several trace formats ({})",
                several
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Reads the trace at `path` (see [`detect`]) with the options of its format.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Trace, TraceError> {
    match detect(path)? {
        TraceFormat::Azure2019 => read_azure_2019(path, &opts.azure_2019),
        TraceFormat::Azure2021 => read_azure_2021(path, &opts.azure_2021),
        TraceFormat::AzureLlm2023 => read_azure_llm_2023(path, &opts.llm_2023),
        TraceFormat::WarmgateHistory => read_warmgate_history(path),
    }
}
