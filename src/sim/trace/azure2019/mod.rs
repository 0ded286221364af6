//! Azure Functions 2019: per-minute invocation counts per function, duration percentiles per
//! function, and memory per app (or per function), joined into one [`Trace`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::csv_file::CsvFile;
use super::{
    lambda_memory_mb, trace_name, Arrival, DurationModel, Trace, TraceError, TraceFormat,
    TraceFunction, MIN_MEMORY_MB,
};
use files::{files_2019, official_day, OFFICIAL_INVOCATIONS};

mod files;
#[cfg(test)]
mod tests;

/// Handler duration of an Azure 2019 function that has no duration row, unless
/// [`AzureOptions::default_duration`] says otherwise. One second, a round figure of the order
/// of the median `Average` of the two invitro samples in `../shared/traces` (0.57 s and 0.69 s).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(1);

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

/// Whether `name` is the invocation file of an Azure 2019 trace, in any of its file sets.
pub(super) fn is_invocations_name(name: &str) -> bool {
    name == "invocations.csv"
        || name.ends_with("_inv.csv")
        || official_day(name, OFFICIAL_INVOCATIONS.0).is_some()
}

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

    fn invocation_columns(csv: &CsvFile) -> Result<InvocationColumns, TraceError> {
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
        let mut csv = CsvFile::open(path, EXPECT_INVOCATIONS)?;
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
        let mut csv = CsvFile::open(path, EXPECT_DURATIONS)?;
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
        let mut csv = CsvFile::open(path, EXPECT_MEMORY)?;
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
                    lambda: Default::default(),
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
