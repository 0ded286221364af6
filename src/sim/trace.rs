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
//!
//! [`load`] tells the format of a directory from its file names and calls the right reader.
//!
//! Rules every reader keeps:
//! - Time zero is the start of the trace: the first minute column of the first day (2019), the
//!   clock origin of the file (2021), the earliest timestamp (2023). Arrivals are sorted by time,
//!   and every arrival lies within [`Trace::duration`].
//! - Memory is clamped to Lambda's range, [`MIN_MEMORY_MB`]`..=`[`MAX_MEMORY_MB`]: a trace's
//!   smaller figure means 128 MB (DESIGN.md), and an unknown one is 128 MB too.
//! - Files are streamed line by line into a reused buffer; what stays in memory is the trace.
//! - Errors name the file, the 1-based line (the header is line 1) and the column, by its header
//!   name, or by 1-based index where the header has none.
//!
//! The CSV dialect is the one these traces use: comma-separated, one record per line, `\n` or
//! `\r\n` line endings, no commas inside fields; a field wrapped in double quotes is unwrapped.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Lambda's smallest memory size, in MB.
pub const MIN_MEMORY_MB: u32 = 128;
/// Lambda's largest memory size, in MB.
pub const MAX_MEMORY_MB: u32 = 10_240;
/// Handler duration of an Azure 2019 function that has no duration row, unless
/// [`AzureOptions::default_duration`] says otherwise. One second, a round figure of the order
/// of the median `Average` of the two invitro samples in `../shared/traces` (0.57 s and 0.69 s).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(1);
/// The cumulative probabilities of the points of [`DurationModel::Percentiles`], in field order.
pub const PERCENTILE_LEVELS: [f64; 7] = [0.0, 0.01, 0.25, 0.50, 0.75, 0.99, 1.0];

const NANOS_PER_MINUTE: u64 = 60_000_000_000;
const MINUTES_PER_DAY: i64 = 1440;

const EXPECT_2019_DIR: &str = "an Azure Functions 2019 trace: \
    invocations_per_function_md.anon.dNN.csv, function_durations_percentiles.anon.dNN.csv and \
    app_memory_percentiles.anon.dNN.csv (Azure public dataset), or invitro's invocations.csv, \
    durations.csv and memory.csv, or invitro's NNN_inv.csv, NNN_run.csv and NNN_mem.csv";
const EXPECT_INVOCATIONS: &str = "Azure Functions 2019 invocation counts: \
    HashOwner,HashApp,HashFunction,Trigger, then one column per minute (named 1..1440, \
    minute_1..minute_1440 or by minute index)";
const EXPECT_DURATIONS: &str = "Azure Functions 2019 duration percentiles: \
    HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,\
    percentile_Average_{0,1,25,50,75,99,100} (ms)";
const EXPECT_MEMORY: &str = "Azure Functions 2019 memory percentiles: \
    [HashFunction,]HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct{1,..,100}";
const EXPECT_2021: &str =
    "Azure Functions 2021 invocations: app,func,end_timestamp,duration (seconds)";
const EXPECT_LLM: &str = "Azure LLM inference 2023: TIMESTAMP,ContextTokens,GeneratedTokens \
    in files named AzureLLMInferenceTrace_<name>.csv";
const EXPECT_ANY: &str = "Azure Functions 2019 (invocations_per_function_md.anon.dNN.csv, \
    invocations.csv or NNN_inv.csv with their duration and memory files), Azure Functions 2021 \
    (Azure2021*.csv or AzureFunctionsInvocationTrace*), or Azure LLM inference 2023 \
    (AzureLLMInferenceTrace_*.csv)";

const LLM_PREFIX: &str = "AzureLLMInferenceTrace_";
const OFFICIAL_INVOCATIONS: (&str, &str) = ("invocations_per_function_md.anon.d", ".csv");
const OFFICIAL_DURATIONS: &str = "function_durations_percentiles.anon.d";
const OFFICIAL_MEMORY: &str = "app_memory_percentiles.anon.d";

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
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceFormat::Azure2019 => "Azure Functions 2019",
            TraceFormat::Azure2021 => "Azure Functions 2021",
            TraceFormat::AzureLlm2023 => "Azure LLM inference 2023",
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

/// How a function's handler durations are distributed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DurationModel {
    /// Percentiles in milliseconds at the cumulative probabilities [`PERCENTILE_LEVELS`]
    /// (0, 1, 25, 50, 75, 99, 100 %), as the Azure 2019 durations file gives them, plus the
    /// trace's average. Points are non-decreasing when built by [`DurationModel::percentiles`].
    Percentiles {
        average_ms: f64,
        p0: f64,
        p1: f64,
        p25: f64,
        p50: f64,
        p75: f64,
        p99: f64,
        p100: f64,
    },
    /// Always this duration.
    Fixed(Duration),
}

impl DurationModel {
    /// A percentile model from the trace's average and its seven points (ms, in the order of
    /// [`PERCENTILE_LEVELS`]). Negative or non-finite figures become 0, and each point is raised
    /// to at least the one before, so that the inverse CDF is non-decreasing.
    pub fn percentiles(average_ms: f64, points_ms: [f64; 7]) -> DurationModel {
        let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let mut p = points_ms.map(clean);
        for i in 1..p.len() {
            p[i] = p[i].max(p[i - 1]);
        }
        DurationModel::Percentiles {
            average_ms: clean(average_ms),
            p0: p[0],
            p1: p[1],
            p25: p[2],
            p50: p[3],
            p75: p[4],
            p99: p[5],
            p100: p[6],
        }
    }

    /// The percentile model of observed durations: each point is the sample quantile at its
    /// level, interpolated linearly between order statistics (position `level * (n - 1)` in the
    /// sorted samples); the average is the mean. Sorts `samples`. `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<DurationModel> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let last = samples.len() - 1;
        let point = |level: f64| {
            let pos = level * last as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            let frac = pos - lo as f64;
            ms(samples[lo]) + (ms(samples[hi]) - ms(samples[lo])) * frac
        };
        let mean = samples.iter().map(|&d| ms(d)).sum::<f64>() / samples.len() as f64;
        Some(DurationModel::percentiles(
            mean,
            PERCENTILE_LEVELS.map(point),
        ))
    }

    /// The inverse CDF at `u` in [0, 1]: for a percentile model, the straight line between the
    /// two points whose levels bracket `u` (piecewise-linear interpolation), so the result lies
    /// in `[p0, p100]`; for a fixed model, the fixed duration.
    pub fn quantile(&self, u: f64) -> Duration {
        match *self {
            DurationModel::Fixed(d) => d,
            DurationModel::Percentiles {
                p0,
                p1,
                p25,
                p50,
                p75,
                p99,
                p100,
                ..
            } => {
                let points = [p0, p1, p25, p50, p75, p99, p100];
                let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
                // The first segment whose upper level reaches u.
                let i = (1..PERCENTILE_LEVELS.len())
                    .find(|&i| u <= PERCENTILE_LEVELS[i])
                    .unwrap_or(PERCENTILE_LEVELS.len() - 1);
                let (l0, l1) = (PERCENTILE_LEVELS[i - 1], PERCENTILE_LEVELS[i]);
                let (v0, v1) = (points[i - 1], points[i]);
                let v = v0 + (v1 - v0) * (u - l0) / (l1 - l0);
                from_ms(v)
            }
        }
    }

    /// Draws one duration: `u` uniform in [0, 1) from `rng`, then [`DurationModel::quantile`].
    /// For a percentile model the draw lies in `[p0, p100]` and its median is `p50`.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            DurationModel::Fixed(d) => d,
            DurationModel::Percentiles { .. } => self.quantile(rng.random::<f64>()),
        }
    }

    /// The average duration as the trace states it (for a percentile model, the trace's
    /// `Average`, which need not equal the mean of [`DurationModel::sample`]).
    pub fn average(&self) -> Duration {
        match *self {
            DurationModel::Fixed(d) => d,
            DurationModel::Percentiles { average_ms, .. } => from_ms(average_ms),
        }
    }
}

fn from_ms(ms: f64) -> Duration {
    from_secs(ms / 1e3)
}

/// Seconds as a duration: 0 for negative or NaN figures, saturating at `Duration::MAX`.
fn from_secs(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    }
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

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// How the invocations a per-minute trace counts in one minute are placed within that minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpreadRule {
    /// Each of the `k` invocations at an independent uniform offset within the minute (whole
    /// nanoseconds in `[0, 60 s)`), sorted. The draws come from a ChaCha8 generator per function,
    /// seeded from [`AzureOptions::seed`] and the function's owner, app and function hashes, so
    /// a function's arrivals do not depend on which other functions are read.
    #[default]
    Uniform,
    /// Deterministic: invocation `i` of `k` at `(i + 0.5) / k` of the minute (rounded down to a
    /// whole nanosecond); one call lands at 30 s, two at 15 s and 45 s.
    Even,
}

/// Options of the Azure Functions 2019 reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureOptions {
    /// How counts are spread within their minute.
    pub spread: SpreadRule,
    /// Seed of [`SpreadRule::Uniform`]. The same files, options and seed give the same trace.
    pub seed: u64,
    /// Keep only the first `n` functions, in the order the invocation files list them (day by
    /// day); rows of other functions are skipped.
    pub max_functions: Option<usize>,
    /// Keep only these trace minutes, counted from 0 at the first minute column of the first day
    /// (day `N` starts at `(N - first) * 1440`). Time zero moves to `minutes.start`. Day files
    /// wholly outside the range are not read, so their functions are not in the trace.
    pub minutes: Option<Range<u32>>,
    /// Handler duration of a function that has no duration row.
    pub default_duration: Duration,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            spread: SpreadRule::Uniform,
            seed: 0,
            max_functions: None,
            minutes: None,
            default_duration: DEFAULT_DURATION,
        }
    }
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
// CSV plumbing
// ---------------------------------------------------------------------------------------------

/// A CSV file read one record at a time into a reused buffer, with the header kept for errors.
struct Csv {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    fields: Vec<Range<usize>>,
    line: u64,
    header: Vec<String>,
}

impl Csv {
    /// Opens `path` and reads its header; `expected` describes the format for errors.
    fn open(path: &Path, expected: &str) -> Result<Csv, TraceError> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                TraceError::MissingFile {
                    file: path.to_path_buf(),
                    expected: expected.to_string(),
                }
            } else {
                io_error(path, e)
            }
        })?;
        let mut csv = Csv {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 16, file),
            buf: Vec::new(),
            fields: Vec::new(),
            line: 0,
            header: Vec::new(),
        };
        if !csv.next_record()? {
            return Err(TraceError::Line {
                file: csv.path,
                line: 1,
                message: format!("the file is empty; expected a header of {expected}"),
            });
        }
        let text = std::str::from_utf8(&csv.buf)
            .map_err(|_| csv.line_error("the header is not UTF-8 text".to_string()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        csv.header = text
            .split(',')
            .map(|name| unquote_str(name.trim()).to_string())
            .collect();
        Ok(csv)
    }

    /// Reads the next non-blank line into the buffer, without its line ending. False at the end.
    fn next_record(&mut self) -> Result<bool, TraceError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| io_error(&self.path, e))?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    /// Splits the current record into fields and checks that there are as many as header
    /// columns (one extra empty field, from a trailing comma, is tolerated).
    fn split(&mut self) -> Result<(), TraceError> {
        self.fields.clear();
        let mut start = 0;
        for (i, &b) in self.buf.iter().enumerate() {
            if b == b',' {
                self.fields.push(start..i);
                start = i + 1;
            }
        }
        self.fields.push(start..self.buf.len());
        if self.fields.len() == self.header.len() + 1
            && self.fields.last().is_some_and(|r| r.is_empty())
        {
            self.fields.pop();
        }
        if self.fields.len() != self.header.len() {
            return Err(self.line_error(format!(
                "expected {} fields as in the header, found {}",
                self.header.len(),
                self.fields.len()
            )));
        }
        Ok(())
    }

    /// Field `i` of the current record, trimmed and unquoted.
    fn field(&self, i: usize) -> &[u8] {
        unquote(self.buf[self.fields[i].clone()].trim_ascii())
    }

    fn text(&self, i: usize) -> Result<&str, TraceError> {
        std::str::from_utf8(self.field(i))
            .map_err(|_| self.cell_error(i, "expected UTF-8 text".to_string()))
    }

    /// A non-empty text field (an id).
    fn id(&self, i: usize) -> Result<&str, TraceError> {
        let text = self.text(i)?;
        if text.is_empty() {
            return Err(self.cell_error(i, "expected an id, found an empty field".to_string()));
        }
        Ok(text)
    }

    fn whole(&self, i: usize) -> Result<u64, TraceError> {
        let field = self.field(i);
        parse_whole(field).ok_or_else(|| {
            self.cell_error(
                i,
                format!("expected a whole number, found {}", shown(field)),
            )
        })
    }

    fn number(&self, i: usize) -> Result<f64, TraceError> {
        let field = self.field(i);
        std::str::from_utf8(field)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                self.cell_error(
                    i,
                    format!("expected a non-negative number, found {}", shown(field)),
                )
            })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    fn require(&self, name: &str, expected: &str) -> Result<usize, TraceError> {
        self.column(name).ok_or_else(|| TraceError::MissingColumn {
            file: self.path.clone(),
            column: name.to_string(),
            expected: expected.to_string(),
        })
    }

    fn cell_error(&self, i: usize, message: String) -> TraceError {
        let column = match self.header.get(i) {
            Some(name) if !name.is_empty() => Column::Name(name.clone()),
            _ => Column::Index(i + 1),
        };
        TraceError::Cell {
            file: self.path.clone(),
            line: self.line,
            column,
            message,
        }
    }

    fn line_error(&self, message: String) -> TraceError {
        TraceError::Line {
            file: self.path.clone(),
            line: self.line,
            message,
        }
    }
}

fn unquote(field: &[u8]) -> &[u8] {
    match field {
        [b'"', inner @ .., b'"'] => inner,
        _ => field,
    }
}

fn unquote_str(field: &str) -> &str {
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

/// A field as an error message shows it: quoted, escaped, and cut after 40 characters.
fn shown(field: &[u8]) -> String {
    let text = String::from_utf8_lossy(field);
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(40).collect();
        format!("{cut:?}...")
    } else {
        format!("{text:?}")
    }
}

/// Digits only, no sign, no fraction; `None` on anything else or on overflow.
fn parse_whole(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in field {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}

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

// ---------------------------------------------------------------------------------------------
// Format detection and `load`
// ---------------------------------------------------------------------------------------------

fn is_2021_name(name: &str) -> bool {
    (name.starts_with("Azure2021") || name.starts_with("AzureFunctionsInvocationTrace"))
        && (name.ends_with(".csv") || name.ends_with(".txt"))
}

fn is_llm_name(name: &str) -> bool {
    name.starts_with(LLM_PREFIX) && name.ends_with(".csv")
}

fn is_2019_invocations_name(name: &str) -> bool {
    name == "invocations.csv"
        || name.ends_with("_inv.csv")
        || official_day(name, OFFICIAL_INVOCATIONS.0).is_some()
}

/// The day digits of an official Azure 2019 file name `<prefix><digits>.csv`.
fn official_day<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let digits = name
        .strip_prefix(prefix)?
        .strip_suffix(OFFICIAL_INVOCATIONS.1)?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Which format `path` holds: a directory, by the names of its files, or a single file, by its
/// name. Errors when it holds none or several.
pub fn detect(path: &Path) -> Result<TraceFormat, TraceError> {
    if path.is_file() {
        let name = trace_name(path);
        return if is_2021_name(&name) {
            Ok(TraceFormat::Azure2021)
        } else if is_llm_name(&name) {
            Ok(TraceFormat::AzureLlm2023)
        } else {
            Err(TraceError::UnknownFormat {
                dir: path.to_path_buf(),
                expected: EXPECT_ANY.to_string(),
            })
        };
    }
    let names = file_names(path)?;
    let mut found = Vec::new();
    if names.iter().any(|n| is_2019_invocations_name(n)) {
        found.push(TraceFormat::Azure2019);
    }
    if names.iter().any(|n| is_2021_name(n)) {
        found.push(TraceFormat::Azure2021);
    }
    if names.iter().any(|n| is_llm_name(n)) {
        found.push(TraceFormat::AzureLlm2023);
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
    }
}

// ---------------------------------------------------------------------------------------------
// Azure Functions 2019
// ---------------------------------------------------------------------------------------------

/// The files of an Azure 2019 trace.
struct Files2019 {
    /// Invocation files with their day number (0 for invitro's single files), by day.
    invocations: Vec<(i64, PathBuf)>,
    durations: Vec<PathBuf>,
    memory: Vec<PathBuf>,
}

fn files_2019(dir: &Path) -> Result<Files2019, TraceError> {
    let names = file_names(dir)?;
    let mut days: Vec<(i64, &str)> = names
        .iter()
        .filter_map(|n| {
            let digits = official_day(n, OFFICIAL_INVOCATIONS.0)?;
            Some((digits.parse::<i64>().ok()?, digits))
        })
        .collect();
    days.sort();
    let invitro = names.iter().any(|n| n == "invocations.csv");
    let sized: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix("_inv.csv"))
        .collect();
    let kinds = usize::from(!days.is_empty()) + usize::from(invitro) + sized.len();
    if kinds > 1 {
        let mut held = Vec::new();
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            held.push(format!(
                "{}{}{} to d{}",
                OFFICIAL_INVOCATIONS.0, first.1, OFFICIAL_INVOCATIONS.1, last.1
            ));
        }
        if invitro {
            held.push("invocations.csv".to_string());
        }
        held.extend(sized.iter().map(|p| format!("{p}_inv.csv")));
        return Err(TraceError::Ambiguous {
            dir: dir.to_path_buf(),
            found: format!("several Azure 2019 traces ({})", held.join(", ")),
        });
    }
    if !days.is_empty() {
        let present = |name: String| names.contains(&name).then(|| dir.join(name));
        let durations: Vec<PathBuf> = days
            .iter()
            .filter_map(|(_, d)| present(format!("{OFFICIAL_DURATIONS}{d}.csv")))
            .collect();
        let memory: Vec<PathBuf> = days
            .iter()
            .filter_map(|(_, d)| present(format!("{OFFICIAL_MEMORY}{d}.csv")))
            .collect();
        let first = days[0].1;
        if durations.is_empty() {
            return Err(TraceError::MissingFile {
                file: dir.join(format!("{OFFICIAL_DURATIONS}{first}.csv")),
                expected: EXPECT_DURATIONS.to_string(),
            });
        }
        if memory.is_empty() {
            return Err(TraceError::MissingFile {
                file: dir.join(format!("{OFFICIAL_MEMORY}{first}.csv")),
                expected: EXPECT_MEMORY.to_string(),
            });
        }
        let invocations = days
            .iter()
            .map(|&(day, d)| {
                (
                    day,
                    dir.join(format!(
                        "{}{d}{}",
                        OFFICIAL_INVOCATIONS.0, OFFICIAL_INVOCATIONS.1
                    )),
                )
            })
            .collect();
        return Ok(Files2019 {
            invocations,
            durations,
            memory,
        });
    }
    let (inv, dur, mem) = if invitro {
        (
            "invocations.csv".to_string(),
            "durations.csv".to_string(),
            "memory.csv".to_string(),
        )
    } else if let [prefix] = sized.as_slice() {
        (
            format!("{prefix}_inv.csv"),
            format!("{prefix}_run.csv"),
            format!("{prefix}_mem.csv"),
        )
    } else {
        return Err(TraceError::MissingFile {
            file: dir.join("invocations.csv"),
            expected: EXPECT_2019_DIR.to_string(),
        });
    };
    for (name, expected) in [(&dur, EXPECT_DURATIONS), (&mem, EXPECT_MEMORY)] {
        if !names.contains(name) {
            return Err(TraceError::MissingFile {
                file: dir.join(name),
                expected: expected.to_string(),
            });
        }
    }
    Ok(Files2019 {
        invocations: vec![(0, dir.join(inv))],
        durations: vec![dir.join(dur)],
        memory: vec![dir.join(mem)],
    })
}

/// Reads an Azure Functions 2019 trace from `dir` (any of the three file sets in the module
/// documentation).
///
/// - Invocation files give the functions and their per-minute counts. Minute columns are named
///   by minute (`480`, `1`, `minute_1`) and must increase; time zero is the first minute column
///   of the first day present, and day `N` starts `(N - first) * 24 h` later. Counts are spread
///   within their minute by [`AzureOptions::spread`]. A function listed on several days is one
///   function whose arrivals concatenate.
/// - Durations join by `HashFunction` (and by `HashOwner`, `HashApp` where both files have
///   them); a function with no row gets [`AzureOptions::default_duration`] as a fixed duration.
///   Over several days, the row with the largest `Count` wins.
/// - Memory is `AverageAllocatedMb`, joined by `HashFunction` where the memory file has that
///   column (invitro) and otherwise by `HashApp` (and `HashOwner`): every function of an app
///   gets the app's figure, since an Azure app's functions share one process. No row: 128 MB.
///   Over several days, the row with the largest `SampleCount` wins.
pub fn read_azure_2019(dir: &Path, opts: &AzureOptions) -> Result<Trace, TraceError> {
    let files = files_2019(dir)?;
    let mut reader = Reader2019::new(opts);
    let first_day = files.invocations[0].0;
    for (day, path) in &files.invocations {
        reader.read_invocations(path, (day - first_day) * MINUTES_PER_DAY)?;
    }
    for path in &files.durations {
        reader.read_durations(path)?;
    }
    for path in &files.memory {
        reader.read_memory(path)?;
    }
    Ok(reader.finish(trace_name(dir)))
}

struct Function2019 {
    owner: String,
    app: String,
    func: String,
    trigger: Option<String>,
    arrivals: Vec<Arrival>,
    unsorted: bool,
    rng: Option<ChaCha8Rng>,
    /// `(Count, model)` of the best duration row so far.
    duration: Option<(f64, DurationModel)>,
    /// `(SampleCount, AverageAllocatedMb)` of the best memory row so far.
    memory: Option<(f64, f64)>,
}

struct Reader2019<'o> {
    opts: &'o AzureOptions,
    functions: Vec<Function2019>,
    by_func: HashMap<String, Vec<usize>>,
    /// The label of the first minute column of the first file: trace minute 0.
    minute_zero: Option<i64>,
    /// Trace minutes covered by the files, from minute 0.
    span_minutes: i64,
    scratch: Vec<u64>,
}

/// Where a header column of an invocation file goes.
struct InvocationColumns {
    owner: Option<usize>,
    app: usize,
    func: usize,
    trigger: Option<usize>,
    /// `(column, label)` of the minute columns, in order.
    minutes: Vec<(usize, i64)>,
}

fn minute_label(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("minute_").unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl<'o> Reader2019<'o> {
    fn new(opts: &'o AzureOptions) -> Self {
        Reader2019 {
            opts,
            functions: Vec::new(),
            by_func: HashMap::new(),
            minute_zero: None,
            span_minutes: 0,
            scratch: Vec::new(),
        }
    }

    /// The function with this `HashFunction` whose app and owner match where given.
    fn find(&self, func: &str, app: Option<&str>, owner: Option<&str>) -> Option<usize> {
        self.by_func.get(func)?.iter().copied().find(|&i| {
            let f = &self.functions[i];
            // An invocation file without HashOwner leaves the owner empty: any owner matches.
            app.is_none_or(|a| a == f.app)
                && owner.is_none_or(|o| f.owner.is_empty() || o == f.owner)
        })
    }

    fn add(&mut self, owner: &str, app: &str, func: &str, trigger: Option<&str>) -> usize {
        let index = self.functions.len();
        let rng = (self.opts.spread == SpreadRule::Uniform).then(|| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&self.opts.seed.to_le_bytes());
            let key = fnv1a(&[owner.as_bytes(), app.as_bytes(), func.as_bytes()]);
            seed[8..16].copy_from_slice(&key.to_le_bytes());
            ChaCha8Rng::from_seed(seed)
        });
        self.functions.push(Function2019 {
            owner: owner.to_string(),
            app: app.to_string(),
            func: func.to_string(),
            trigger: trigger.filter(|t| !t.is_empty()).map(str::to_string),
            arrivals: Vec::new(),
            unsorted: false,
            rng,
            duration: None,
            memory: None,
        });
        self.by_func
            .entry(func.to_string())
            .or_default()
            .push(index);
        index
    }

    fn invocation_columns(csv: &Csv) -> Result<InvocationColumns, TraceError> {
        let columns = InvocationColumns {
            owner: csv.column("HashOwner"),
            app: csv.require("HashApp", EXPECT_INVOCATIONS)?,
            func: csv.require("HashFunction", EXPECT_INVOCATIONS)?,
            trigger: csv.column("Trigger"),
            minutes: csv
                .header
                .iter()
                .enumerate()
                .filter_map(|(i, name)| Some((i, minute_label(name)?)))
                .collect(),
        };
        if columns.minutes.is_empty() {
            return Err(TraceError::MissingColumn {
                file: csv.path.clone(),
                column: "1".to_string(),
                expected: EXPECT_INVOCATIONS.to_string(),
            });
        }
        for pair in columns.minutes.windows(2) {
            if pair[1].1 <= pair[0].1 {
                return Err(csv.cell_error(
                    pair[1].0,
                    format!(
                        "minute columns must increase, but this one follows \"{}\"",
                        csv.header[pair[0].0]
                    ),
                ));
            }
        }
        Ok(columns)
    }

    /// Reads one invocation file whose first minute label is `day_offset` trace minutes after
    /// the label of the first file's first minute column.
    fn read_invocations(&mut self, path: &Path, day_offset: i64) -> Result<(), TraceError> {
        let mut csv = Csv::open(path, EXPECT_INVOCATIONS)?;
        let columns = Self::invocation_columns(&csv)?;
        let zero = *self.minute_zero.get_or_insert(columns.minutes[0].1);
        // (column, start of its minute in ns since time zero) of the minutes to keep.
        let mut plan: Vec<(usize, u64)> = Vec::with_capacity(columns.minutes.len());
        for &(column, label) in &columns.minutes {
            let minute = day_offset + label - zero;
            if minute < 0 {
                return Err(csv.cell_error(
                    column,
                    format!("minute {label} comes before the first minute of the trace, {zero}"),
                ));
            }
            self.span_minutes = self.span_minutes.max(minute + 1);
            let minute = minute as u64;
            let start = match &self.opts.minutes {
                Some(r) if minute < u64::from(r.start) || minute >= u64::from(r.end) => continue,
                Some(r) => minute - u64::from(r.start),
                None => minute,
            };
            plan.push((column, start * NANOS_PER_MINUTE));
        }
        if plan.is_empty() {
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        while csv.next_record()? {
            csv.split()?;
            let func = csv.id(columns.func)?;
            let app = csv.id(columns.app)?;
            let owner = match columns.owner {
                Some(i) => csv.text(i)?,
                None => "",
            };
            let index = match self.find(func, Some(app), Some(owner)) {
                Some(index) => index,
                None if self
                    .opts
                    .max_functions
                    .is_some_and(|max| self.functions.len() >= max) =>
                {
                    continue
                }
                None => {
                    let trigger = columns.trigger.map(|i| csv.text(i)).transpose()?;
                    self.add(owner, app, func, trigger)
                }
            };
            let spread = self.opts.spread;
            let function = &mut self.functions[index];
            for &(column, minute_start) in &plan {
                let count = csv.whole(column)?;
                if count > 0 {
                    function.spread(spread, minute_start, count, &mut scratch);
                }
            }
        }
        self.scratch = scratch;
        Ok(())
    }

    fn read_durations(&mut self, path: &Path) -> Result<(), TraceError> {
        let mut csv = Csv::open(path, EXPECT_DURATIONS)?;
        let func = csv.require("HashFunction", EXPECT_DURATIONS)?;
        let app = csv.column("HashApp");
        let owner = csv.column("HashOwner");
        let count = csv.column("Count");
        let average = csv.require("Average", EXPECT_DURATIONS)?;
        let mut points = [0usize; 7];
        for (slot, level) in points.iter_mut().zip([0, 1, 25, 50, 75, 99, 100]) {
            *slot = csv.require(&format!("percentile_Average_{level}"), EXPECT_DURATIONS)?;
        }
        while csv.next_record()? {
            csv.split()?;
            let app = app.map(|i| csv.text(i)).transpose()?;
            let owner = owner.map(|i| csv.text(i)).transpose()?;
            let Some(index) = self.find(csv.text(func)?, app, owner) else {
                continue;
            };
            let mut values = [0.0; 7];
            for (value, &column) in values.iter_mut().zip(&points) {
                *value = csv.number(column)?;
            }
            let model = DurationModel::percentiles(csv.number(average)?, values);
            let weight = count.map(|i| csv.number(i)).transpose()?.unwrap_or(0.0);
            let best = &mut self.functions[index].duration;
            if best.is_none_or(|(w, _)| weight > w) {
                *best = Some((weight, model));
            }
        }
        Ok(())
    }

    fn read_memory(&mut self, path: &Path) -> Result<(), TraceError> {
        let mut csv = Csv::open(path, EXPECT_MEMORY)?;
        let func = csv.column("HashFunction");
        let app = csv.column("HashApp");
        let owner = csv.column("HashOwner");
        let samples = csv.column("SampleCount");
        let average = csv.require("AverageAllocatedMb", EXPECT_MEMORY)?;
        let per_app = match (func, app) {
            (Some(_), _) => None,
            (None, Some(app)) => {
                let mut by_app: HashMap<String, Vec<usize>> = HashMap::new();
                for (i, f) in self.functions.iter().enumerate() {
                    by_app.entry(f.app.clone()).or_default().push(i);
                }
                Some((app, by_app))
            }
            (None, None) => {
                return Err(TraceError::MissingColumn {
                    file: csv.path.clone(),
                    column: "HashApp".to_string(),
                    expected: EXPECT_MEMORY.to_string(),
                })
            }
        };
        let mut targets = Vec::new();
        while csv.next_record()? {
            csv.split()?;
            let owner = owner.map(|i| csv.text(i)).transpose()?;
            targets.clear();
            match (&per_app, func) {
                (Some((app, by_app)), _) => {
                    if let Some(indices) = by_app.get(csv.text(*app)?) {
                        targets.extend(indices.iter().copied().filter(|&i| {
                            let f = &self.functions[i];
                            owner.is_none_or(|o| f.owner.is_empty() || o == f.owner)
                        }));
                    }
                }
                (None, Some(func)) => {
                    let app = app.map(|i| csv.text(i)).transpose()?;
                    targets.extend(self.find(csv.text(func)?, app, owner));
                }
                (None, None) => unreachable!("a memory file without HashFunction is per app"),
            }
            if targets.is_empty() {
                continue;
            }
            let mb = csv.number(average)?;
            let weight = samples.map(|i| csv.number(i)).transpose()?.unwrap_or(0.0);
            for &i in &targets {
                let best = &mut self.functions[i].memory;
                if best.is_none_or(|(w, _)| weight > w) {
                    *best = Some((weight, mb));
                }
            }
        }
        Ok(())
    }

    fn finish(self, name: String) -> Trace {
        let span = match &self.opts.minutes {
            Some(r) => {
                let end = (r.end as i64).min(self.span_minutes);
                (end - r.start as i64).max(0)
            }
            None => self.span_minutes,
        };
        let by_func = &self.by_func;
        let default_duration = self.opts.default_duration;
        let functions = self
            .functions
            .into_iter()
            .map(|mut f| {
                if f.unsorted {
                    f.arrivals.sort_by_key(|a| a.at);
                }
                // Growth by doubling may have left up to half of the capacity unused.
                f.arrivals.shrink_to_fit();
                let shared = by_func.get(&f.func).is_some_and(|v| v.len() > 1);
                TraceFunction {
                    id: if shared {
                        format!("{}/{}/{}", f.owner, f.app, f.func)
                    } else {
                        f.func
                    },
                    app: f.app,
                    trigger: f.trigger,
                    memory_mb: f
                        .memory
                        .map_or(MIN_MEMORY_MB, |(_, mb)| lambda_memory_mb(mb)),
                    durations: f
                        .duration
                        .map_or(DurationModel::Fixed(default_duration), |(_, m)| m),
                    arrivals: f.arrivals,
                }
            })
            .collect();
        Trace {
            name,
            format: TraceFormat::Azure2019,
            functions,
            duration: Duration::from_nanos(span as u64 * NANOS_PER_MINUTE),
        }
    }
}

impl Function2019 {
    /// Places `count` invocations within the minute that starts `minute_start` ns after time
    /// zero, by `rule` (see [`SpreadRule`]).
    fn spread(&mut self, rule: SpreadRule, minute_start: u64, count: u64, scratch: &mut Vec<u64>) {
        if self
            .arrivals
            .last()
            .is_some_and(|a| a.at >= Duration::from_nanos(minute_start))
        {
            // A second row of the same function in one file: sort at the end.
            self.unsorted = true;
        }
        self.arrivals.reserve(count as usize);
        let arrival = |offset: u64| Arrival {
            at: Duration::from_nanos(minute_start + offset),
            duration: None,
            tokens: None,
        };
        match (rule, self.rng.as_mut()) {
            (SpreadRule::Uniform, Some(rng)) => {
                scratch.clear();
                scratch.extend((0..count).map(|_| rng.random_range(0..NANOS_PER_MINUTE)));
                scratch.sort_unstable();
                self.arrivals.extend(scratch.iter().map(|&o| arrival(o)));
            }
            _ => {
                // (2i + 1) / 2k of the minute; exact in integers for k up to ~10^8.
                let half = u128::from(NANOS_PER_MINUTE / 2);
                self.arrivals.extend(
                    (0..count).map(|i| {
                        arrival((u128::from(2 * i + 1) * half / u128::from(count)) as u64)
                    }),
                );
            }
        }
    }
}

/// FNV-1a over the parts, with a 0xff byte between them: a stable hash for seeding.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash = (hash ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *part {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

// ---------------------------------------------------------------------------------------------
// Azure Functions 2021
// ---------------------------------------------------------------------------------------------

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
    let file = if path.is_dir() {
        let names: Vec<String> = file_names(path)?
            .into_iter()
            .filter(|n| is_2021_name(n))
            .collect();
        match names.as_slice() {
            [one] => path.join(one),
            [] => {
                return Err(TraceError::MissingFile {
                    file: path.join("Azure2021*.csv"),
                    expected: EXPECT_2021.to_string(),
                })
            }
            several => {
                return Err(TraceError::Ambiguous {
                    dir: path.to_path_buf(),
                    found: format!("several Azure 2021 files ({})", several.join(", ")),
                })
            }
        }
    } else {
        path.to_path_buf()
    };
    let mut csv = Csv::open(&file, EXPECT_2021)?;
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
        csv.split()?;
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

// ---------------------------------------------------------------------------------------------
// Azure LLM inference 2023
// ---------------------------------------------------------------------------------------------

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
            .filter(|n| is_llm_name(n))
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
        let mut csv = Csv::open(file, EXPECT_LLM)?;
        let timestamp = csv.require("TIMESTAMP", EXPECT_LLM)?;
        let context = csv.require("ContextTokens", EXPECT_LLM)?;
        let generated = csv.require("GeneratedTokens", EXPECT_LLM)?;
        let mut requests = Vec::new();
        let tokens = |csv: &Csv, i: usize| -> Result<u32, TraceError> {
            let n = csv.whole(i)?;
            u32::try_from(n).map_err(|_| csv.cell_error(i, format!("{n} tokens is too many")))
        };
        while csv.next_record()? {
            csv.split()?;
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

/// Nanoseconds since 1970-01-01 00:00 UTC of `YYYY-MM-DD[ T]HH:MM:SS[.fraction][Z|±HH:MM]`.
/// Fraction digits beyond the ninth are dropped. `None` if it is not such a time.
fn parse_timestamp(text: &str) -> Option<i128> {
    let b = text.trim().as_bytes();
    let num = |range: Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        parse_whole(digits).map(|v| v as i64)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos: i128 = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for i in 0..9 {
            let d = fraction
                .get(i)
                .filter(|_| i < digits)
                .map_or(0, |c| c - b'0');
            nanos = nanos * 10 + i128::from(d);
        }
        rest = &fraction[digits..];
    }
    let offset_s: i64 = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = parse_whole(&[*h1, *h2])? as i64;
            let m = parse_whole(&[*m1, *m2])? as i64;
            let s = (h * 60 + m) * 60;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offset_s;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date, in the proleptic Gregorian calendar. Counting years from
/// March puts the leap day last, so the days before a month follow one formula.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let days_since_0000_03_01 =
        365 * y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) + day_of_year;
    days_since_0000_03_01 - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    const MIN: Duration = Duration::from_secs(60);

    /// A fresh, empty directory under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "warmgate-trace-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    /// A directory of `../shared/traces`, or `None` (with a note) when it is absent.
    fn shared(sub: &str) -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/traces")
            .join(sub);
        if path.exists() {
            Some(path)
        } else {
            eprintln!("skipping: {} is absent", path.display());
            None
        }
    }

    const DURATIONS_HEADER: &str = "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,\
        percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,\
        percentile_Average_75,percentile_Average_99,percentile_Average_100";
    const MEMORY_PCT: &str = "AverageAllocatedMb_pct1,AverageAllocatedMb_pct5,\
        AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,AverageAllocatedMb_pct75,\
        AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,AverageAllocatedMb_pct100";

    /// Per-minute counts of the invitro fixture, minutes 480..=485.
    const COUNTS: [(&str, [u64; 6]); 4] = [
        ("f1", [0, 1, 0, 2, 0, 5]),
        ("f2", [3, 0, 0, 0, 1, 0]),
        ("f3", [0, 0, 0, 0, 0, 0]),
        ("f4", [1, 1, 1, 1, 1, 1]),
    ];

    /// invitro's 500-function layout, made up: four functions over six minutes 480..=485.
    fn invitro_fixture() -> Scratch {
        let dir = temp_dir("invitro");
        let mut inv =
            String::from("HashOwner,HashApp,HashFunction,Trigger,480,481,482,483,484,485\n");
        for (i, (f, counts)) in COUNTS.iter().enumerate() {
            let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
            inv += &format!("o{i},a{i},{f},http,{}\n", counts.join(","));
        }
        write(&dir, "invocations.csv", &inv);
        write(
            &dir,
            "durations.csv",
            &format!(
                "{DURATIONS_HEADER}\n\
                 o0,a0,f1,45,100,10.0,200.0,10,10,20,40,60,100,200\n\
                 o1,a1,f2,5,4,1.0,9.0,1,1,2,5,7,9,9\n\
                 o2,a2,f3,1,1,1.0,1.0,1,1,1,1,1,1,1\n"
            ),
        );
        write(
            &dir,
            "memory.csv",
            &format!(
                "HashFunction,HashOwner,HashApp,SampleCount,AverageAllocatedMb,{MEMORY_PCT}\n\
                 f1,o0,a0,10,57.5,1,1,1,1,1,1,1,1\n\
                 f2,o1,a1,10,300.2,1,1,1,1,1,1,1,1\n\
                 f3,o2,a2,10,20000,1,1,1,1,1,1,1,1\n"
            ),
        );
        dir
    }

    fn per_minute(f: &TraceFunction, minutes: usize) -> Vec<u64> {
        let mut counts = vec![0u64; minutes];
        for a in &f.arrivals {
            counts[(a.at.as_nanos() / MIN.as_nanos()) as usize] += 1;
        }
        counts
    }

    fn even() -> AzureOptions {
        AzureOptions {
            spread: SpreadRule::Even,
            ..AzureOptions::default()
        }
    }

    #[test]
    fn counts_per_minute_are_kept_under_both_rules() {
        let dir = invitro_fixture();
        for spread in [SpreadRule::Even, SpreadRule::Uniform] {
            let opts = AzureOptions {
                spread,
                seed: 11,
                ..AzureOptions::default()
            };
            let trace = read_azure_2019(&dir, &opts).unwrap();
            assert_eq!(trace.format, TraceFormat::Azure2019);
            assert_eq!(trace.duration, 6 * MIN, "time zero is minute 480");
            assert_eq!(trace.functions.len(), 4);
            for (f, (id, counts)) in trace.functions.iter().zip(COUNTS) {
                assert_eq!(f.id, id);
                assert_eq!(per_minute(f, 6), counts, "{id} under {spread:?}");
                assert!(f.arrivals.windows(2).all(|w| w[0].at <= w[1].at));
                assert!(f
                    .arrivals
                    .iter()
                    .all(|a| a.duration.is_none() && a.tokens.is_none()));
            }
            assert_eq!(trace.invocations(), 8 + 4 + 6);
        }
    }

    #[test]
    fn even_spread_puts_two_calls_at_a_quarter_and_three_quarters() {
        let trace = read_azure_2019(&invitro_fixture(), &even()).unwrap();
        let f1 = trace.function("f1").unwrap();
        let at: Vec<Duration> = f1.arrivals.iter().map(|a| a.at).collect();
        assert_eq!(at[0], MIN + Duration::from_secs(30));
        assert_eq!(at[1], 3 * MIN + Duration::from_secs(15));
        assert_eq!(at[2], 3 * MIN + Duration::from_secs(45));
        assert_eq!(
            at[3],
            5 * MIN + Duration::from_secs(6),
            "5 calls: 0.1 of the minute"
        );
        assert_eq!(at[7], 5 * MIN + Duration::from_secs(54));
    }

    #[test]
    fn uniform_spread_stays_in_its_minute_and_repeats_for_a_seed() {
        let dir = invitro_fixture();
        let read = |seed: u64, max_functions: Option<usize>| {
            let opts = AzureOptions {
                spread: SpreadRule::Uniform,
                seed,
                max_functions,
                ..AzureOptions::default()
            };
            read_azure_2019(&dir, &opts).unwrap()
        };
        let a = read(5, None);
        let b = read(5, None);
        let c = read(6, None);
        for (f, (_, counts)) in a.functions.iter().zip(COUNTS) {
            // per_minute buckets by minute, so equal counts mean every call is in its minute.
            assert_eq!(per_minute(f, 6), counts);
        }
        let times = |t: &Trace| -> Vec<Vec<Duration>> {
            t.functions
                .iter()
                .map(|f| f.arrivals.iter().map(|a| a.at).collect())
                .collect()
        };
        assert_eq!(times(&a), times(&b));
        assert_ne!(times(&a), times(&c));
        // A function's draws do not depend on which other functions are read.
        let two = read(5, Some(2));
        assert_eq!(times(&two)[..], times(&a)[..2]);
    }

    #[test]
    fn durations_and_memory_join_with_defaults_and_clamping() {
        let opts = AzureOptions {
            default_duration: Duration::from_millis(700),
            ..even()
        };
        let trace = read_azure_2019(&invitro_fixture(), &opts).unwrap();
        let f = |id: &str| trace.function(id).unwrap();
        assert_eq!(f("f1").memory_mb, 128, "57.5 MB means 128 MB");
        assert_eq!(f("f2").memory_mb, 301, "rounded up to a whole MB");
        assert_eq!(f("f3").memory_mb, 10_240, "clamped to Lambda's largest");
        assert_eq!(f("f4").memory_mb, 128, "no memory row");
        assert_eq!(
            f("f1").durations,
            DurationModel::Percentiles {
                average_ms: 45.0,
                p0: 10.0,
                p1: 10.0,
                p25: 20.0,
                p50: 40.0,
                p75: 60.0,
                p99: 100.0,
                p100: 200.0
            }
        );
        assert_eq!(f("f1").durations.average(), Duration::from_millis(45));
        assert_eq!(f("f1").app, "a0");
        assert_eq!(f("f1").trigger.as_deref(), Some("http"));
        assert_eq!(
            f("f4").durations,
            DurationModel::Fixed(Duration::from_millis(700)),
            "no duration row"
        );
        assert_eq!(lambda_memory_mb(0.0), 128);
        assert_eq!(lambda_memory_mb(128.4), 129);
        assert_eq!(lambda_memory_mb(f64::NAN), 128);
        assert_eq!(lambda_memory_mb(1e9), 10_240);
    }

    #[test]
    fn limits_to_the_first_functions_and_a_minute_range() {
        let opts = AzureOptions {
            max_functions: Some(2),
            minutes: Some(2..4),
            ..even()
        };
        let trace = read_azure_2019(&invitro_fixture(), &opts).unwrap();
        assert_eq!(trace.functions.len(), 2);
        assert_eq!(trace.duration, 2 * MIN);
        let f1: Vec<Duration> = trace.functions[0].arrivals.iter().map(|a| a.at).collect();
        assert_eq!(
            f1,
            [MIN + Duration::from_secs(15), MIN + Duration::from_secs(45)],
            "minute 3 of the trace is minute 1 of the range"
        );
        assert!(trace.functions[1].arrivals.is_empty());
        // A range past the end of the trace is empty, not an error.
        let opts = AzureOptions {
            minutes: Some(100..200),
            ..even()
        };
        let trace = read_azure_2019(&invitro_fixture(), &opts).unwrap();
        assert_eq!((trace.invocations(), trace.duration), (0, Duration::ZERO));
    }

    #[test]
    fn a_malformed_cell_names_file_line_and_column() {
        let dir = invitro_fixture();
        let text = fs::read_to_string(dir.join("invocations.csv")).unwrap();
        let text = text.replacen("o1,a1,f2,http,3,0,0,0", "o1,a1,f2,http,3,0,0,x", 1);
        write(&dir, "invocations.csv", &text);
        let err = read_azure_2019(&dir, &even()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.ends_with(
                "invocations.csv line 3, column \"483\": expected a whole number, found \"x\""
            ),
            "{message}"
        );
        assert!(matches!(err, TraceError::Cell { line: 3, .. }));

        // A short row, a negative duration, a missing column.
        write(
            &dir,
            "invocations.csv",
            "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1\n",
        );
        let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
        assert!(
            message.contains("invocations.csv line 2: expected 6 fields as in the header, found 5"),
            "{message}"
        );
        write(
            &dir,
            "invocations.csv",
            "HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f1,http,1,0\n",
        );
        let durations =
            format!("{DURATIONS_HEADER}\no,a,f1,45,100,10,200,10,10,20,-40,60,100,200\n");
        write(&dir, "durations.csv", &durations);
        let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
        assert!(
            message.contains(
                "durations.csv line 2, column \"percentile_Average_50\": \
                 expected a non-negative number, found \"-40\""
            ),
            "{message}"
        );
        write(&dir, "invocations.csv", "HashOwner,HashFunction,1\no,f,1\n");
        let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
        assert!(message.contains("no column \"HashApp\""), "{message}");
    }

    #[test]
    fn a_missing_file_names_the_file_and_the_format() {
        let dir = invitro_fixture();
        fs::remove_file(dir.join("durations.csv")).unwrap();
        let message = read_azure_2019(&dir, &even()).unwrap_err().to_string();
        assert!(message.contains("durations.csv: not found"), "{message}");
        assert!(message.contains("percentile_Average_"), "{message}");

        let empty = temp_dir("empty");
        let message = load(&empty, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("no trace recognised"), "{message}");
        let message = read_azure_2019(&empty, &even()).unwrap_err().to_string();
        assert!(message.contains("invocations.csv: not found"), "{message}");
        let message = read_azure_llm_2023(&empty, &LlmOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("TIMESTAMP,ContextTokens,GeneratedTokens"),
            "{message}"
        );
    }

    /// The Azure public dataset's layout, made up: days 02 and 03, columns 1..=1440.
    #[test]
    fn official_day_files_concatenate_and_join_memory_per_app() {
        let dir = temp_dir("official");
        let minutes: Vec<String> = (1..=1440).map(|m| m.to_string()).collect();
        let header = format!(
            "HashOwner,HashApp,HashFunction,Trigger,{}\n",
            minutes.join(",")
        );
        let row = |owner: &str, app: &str, func: &str, hits: &[(usize, u64)]| {
            let mut counts = vec![0u64; 1440];
            for &(minute, n) in hits {
                counts[minute - 1] = n;
            }
            let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
            format!("{owner},{app},{func},timer,{}\n", counts.join(","))
        };
        let day2 = header.clone() + &row("o", "a", "f1", &[(1, 1), (1440, 2)]);
        let day3 = header
            + &row("o", "a", "f1", &[(1, 1)])
            + &row("o", "a", "fx", &[(2, 1)])
            + &row("p", "b", "f1", &[(3, 1)]);
        write(&dir, "invocations_per_function_md.anon.d02.csv", &day2);
        write(&dir, "invocations_per_function_md.anon.d03.csv", &day3);
        write(
            &dir,
            "function_durations_percentiles.anon.d02.csv",
            &format!("{DURATIONS_HEADER}\no,a,f1,100,10,1,1,100,100,100,100,100,100,100\n"),
        );
        write(
            &dir,
            "function_durations_percentiles.anon.d03.csv",
            &format!(
                "{DURATIONS_HEADER}\no,a,f1,200,20,1,1,200,200,200,200,200,200,200\n\
                 p,b,f1,300,1,1,1,300,300,300,300,300,300,300\n"
            ),
        );
        write(
            &dir,
            "app_memory_percentiles.anon.d02.csv",
            &format!(
                "HashOwner,HashApp,SampleCount,AverageAllocatedMb,{MEMORY_PCT}\n\
                 o,a,5,300,1,1,1,1,1,1,1,1\n"
            ),
        );
        assert_eq!(detect(&dir).unwrap(), TraceFormat::Azure2019);
        let trace = load(
            &dir,
            &LoadOptions {
                azure_2019: even(),
                ..LoadOptions::default()
            },
        )
        .unwrap();
        assert_eq!(trace.duration, 2 * 24 * 60 * MIN);
        let ids: Vec<&str> = trace.functions.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            ["o/a/f1", "fx", "p/b/f1"],
            "a shared HashFunction gets a full id"
        );
        let f1: Vec<Duration> = trace.functions[0].arrivals.iter().map(|a| a.at).collect();
        let day = 24 * 60 * MIN;
        assert_eq!(
            f1,
            [
                Duration::from_secs(30),
                day - MIN + Duration::from_secs(15),
                day - MIN + Duration::from_secs(45),
                day + Duration::from_secs(30)
            ],
            "day 03 starts 24 h after day 02"
        );
        assert_eq!(
            trace.functions[1].arrivals[0].at,
            day + MIN + Duration::from_secs(30)
        );
        assert_eq!(
            trace.functions[0].durations.average(),
            Duration::from_millis(200),
            "largest Count wins"
        );
        assert_eq!(
            trace.functions[2].durations.average(),
            Duration::from_millis(300),
            "joined by owner and app too"
        );
        assert_eq!(
            [
                trace.functions[0].memory_mb,
                trace.functions[1].memory_mb,
                trace.functions[2].memory_mb
            ],
            [300, 300, 128],
            "the app's memory goes to each of its functions"
        );
        // Day files outside the minute range are not read.
        let opts = AzureOptions {
            minutes: Some(0..1440),
            ..even()
        };
        let trace = read_azure_2019(&dir, &opts).unwrap();
        assert_eq!((trace.functions.len(), trace.invocations()), (1, 3));
        assert_eq!(trace.duration, day);
    }

    /// invitro's `NNN_inv.csv` layout, made up: `minute_N` columns, no trigger, per-app memory.
    #[test]
    fn sized_invitro_files_read_with_minute_columns() {
        let dir = temp_dir("sized");
        write(
            &dir,
            "7_inv.csv",
            "HashFunction,HashOwner,HashApp,minute_1,minute_2,minute_3\r\n\
             h1,h1,h1,0,1,0\r\n\
             h2,h2,h2,2,0,1\r\n",
        );
        write(
            &dir,
            "7_run.csv",
            &format!("{DURATIONS_HEADER}\nh1,h1,h1,5,1,5,5,5,5,5,5,5,5,5\n"),
        );
        write(
            &dir,
            "7_mem.csv",
            &format!(
                "HashOwner,HashApp,SampleCount,AverageAllocatedMb,{MEMORY_PCT}\n\
                 h2,h2,1,2048.5,1,1,1,1,1,1,1,1\n"
            ),
        );
        let trace = load(&dir, &LoadOptions::default()).unwrap();
        assert_eq!(trace.duration, 3 * MIN);
        assert_eq!(trace.invocations(), 4);
        let (h1, h2) = (&trace.functions[0], &trace.functions[1]);
        assert_eq!(
            (h1.trigger.as_deref(), h1.memory_mb, h2.memory_mb),
            (None, 128, 2049)
        );
        assert_eq!(per_minute(h2, 3), [2, 0, 1]);
        assert_eq!(h2.durations, DurationModel::Fixed(DEFAULT_DURATION));
    }

    #[test]
    fn duration_sampling_follows_the_percentiles() {
        let model = DurationModel::percentiles(45.0, [10.0, 10.0, 20.0, 40.0, 60.0, 100.0, 200.0]);
        for (level, ms) in PERCENTILE_LEVELS.iter().zip([10, 10, 20, 40, 60, 100, 200]) {
            assert_eq!(model.quantile(*level), Duration::from_millis(ms));
        }
        assert_eq!(
            model.quantile(0.5 + 0.125),
            Duration::from_millis(50),
            "halfway p50..p75"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut draws: Vec<Duration> = (0..100_000).map(|_| model.sample(&mut rng)).collect();
        assert!(draws
            .iter()
            .all(|&d| d >= Duration::from_millis(10) && d <= Duration::from_millis(200)));
        draws.sort_unstable();
        let median = draws[draws.len() / 2].as_secs_f64() * 1e3;
        assert!((median - 40.0).abs() < 0.5, "median {median} ms");
        let p99 = draws[draws.len() * 99 / 100].as_secs_f64() * 1e3;
        assert!((p99 - 100.0).abs() < 3.0, "p99 {p99} ms");

        // Points are made non-decreasing and non-negative.
        let odd = DurationModel::percentiles(1.0, [-1.0, 5.0, 3.0, 4.0, f64::NAN, 9.0, 8.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut last = Duration::ZERO;
        for i in 0..=100 {
            let q = odd.quantile(i as f64 / 100.0);
            assert!(q >= last);
            last = q;
        }
        assert_eq!(odd.quantile(1.0), Duration::from_millis(9));
        let fixed = DurationModel::Fixed(Duration::from_millis(3));
        assert_eq!(fixed.sample(&mut rng), Duration::from_millis(3));

        let mut samples: Vec<Duration> = (1..=101).rev().map(Duration::from_millis).collect();
        let model = DurationModel::from_samples(&mut samples).unwrap();
        assert_eq!(
            model,
            DurationModel::Percentiles {
                average_ms: 51.0,
                p0: 1.0,
                p1: 2.0,
                p25: 26.0,
                p50: 51.0,
                p75: 76.0,
                p99: 100.0,
                p100: 101.0
            }
        );
        assert_eq!(DurationModel::from_samples(&mut []), None);
    }

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
    fn timestamps_parse_by_hand() {
        let s = |t: &str| parse_timestamp(t).map(|ns| ns / 1_000_000_000);
        assert_eq!(s("1970-01-01 00:00:00"), Some(0));
        assert_eq!(s("2000-03-01 00:00:00"), Some(951_868_800));
        assert_eq!(s("2000-03-01T01:00:00+01:00"), Some(951_868_800));
        assert_eq!(s("2000-03-01T00:00:00Z"), Some(951_868_800));
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
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn real_llm_2023_trace() {
        let Some(dir) = shared("azure_llm_inference_2023") else {
            return;
        };
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

    #[test]
    fn real_azure_2021_sample() {
        let Some(dir) = shared("azure_functions_2021_invitro_first200") else {
            return;
        };
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

    #[test]
    fn real_azure_2019_samples() {
        if let Some(dir) = shared("azure_functions_2019_invitro_sample500_8h") {
            let started = Instant::now();
            let trace = load(&dir, &LoadOptions::default()).unwrap();
            eprintln!(
                "sample500_8h: {} functions, {} invocations, loaded in {:?}",
                trace.functions.len(),
                trace.invocations(),
                started.elapsed()
            );
            assert_eq!(trace.functions.len(), 500);
            assert_eq!(trace.invocations(), 3_037_902);
            assert_eq!(trace.duration, 8 * 60 * MIN);
            assert!(trace.functions.iter().all(|f| {
                f.arrivals.last().is_none_or(|a| a.at < trace.duration)
                    && matches!(f.durations, DurationModel::Percentiles { .. })
                    && (MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&f.memory_mb)
            }));
            let max = trace.functions.iter().map(|f| f.arrivals.len()).max();
            assert!(max > Some(1_900_000), "{max:?}");
        }
        if let Some(dir) = shared("azure_functions_2019_invitro_sample1350_fullday") {
            let started = Instant::now();
            let trace = load(&dir, &LoadOptions::default()).unwrap();
            eprintln!("sample1350_fullday loaded in {:?}", started.elapsed());
            assert_eq!(trace.functions.len(), 1_350);
            assert_eq!(trace.invocations(), 927_272);
            assert_eq!(trace.duration, 24 * 60 * MIN);
        }
    }
}
