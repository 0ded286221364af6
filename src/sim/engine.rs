//! The replay engine: a trace's arrivals, the platform model and one policy, in virtual time.
//!
//! The engine drives the very `Platform` the emulator serves (DESIGN invariant 2) and the very
//! [`Policy`] code the gateway runs (invariant 1). Nothing here sleeps or reads a clock to
//! decide anything: time is the trace's, and it jumps from one event to the next.
//!
//! Events, in time order (ties in this order, so a policy knows everything that finished by
//! `t` before it acts at `t`, and acts before the arrivals of `t` meet the platform):
//! 1. completions: an invocation that finished is reported to the policy as an
//!    [`Observation`], at its `completes_at`;
//! 2. the policy's wake-up ([`Policy::next_wake`]): [`Policy::act`], then its actions;
//! 3. arrivals: the next invocation of any function, taken from a heap that merges the
//!    functions' sorted arrival lists (one cursor per function, no global sorted copy).
//!
//! 4. the minute tick (at every whole minute of virtual time, between completions and the
//!    policy's wake-up): provisioned capacity is read into the pools, and after the warm-up the
//!    pools' estimates are compared with the platform's ground truth;
//! 5. the end of a held request's wait ([`Traffic::Waiting`], between the policy's wake-up
//!    and arrivals): it is sent, unless a completion released it first. A completion of a
//!    function releases its first held request at once, after the policy has heard of it.
//!
//! Each trace function becomes one platform function with the trace's memory and
//! [`SimSettings::targets`] (K) equivalent targets: K published versions of the same code, with
//! the aliases [`target_name`] (`live`, `live-2`, ..., `live-K`) on them. How real invocations
//! reach the targets is the candidate's [`Traffic`]: all to `live` (a client calling one alias),
//! spread over the K (client populations each pinned to its alias), or routed by the very
//! [`router::choose`] the gateway runs, over the very [`Pool`] estimates it keeps. The pools are
//! kept whatever the traffic, driven as the gateway drives them (`start` when a request is
//! sent, `complete` with what the platform revealed when it ends, `abandon` when it was
//! throttled before running), so the estimator's error against the platform's ground truth
//! is measured in every replay ([`EstimatorError`]). Pings go to the targets the policy names. Handler durations come from the trace (its per-invocation
//! duration, or a draw from the function's [`DurationModel`]) and are handed to the platform
//! with [`Platform::invoke_replayed`]; each function draws from its own seeded stream, so every
//! policy replays the same durations for the same arrivals.
//!
//! Figures count what arrives at or after the warm-up (default: the first hour). The policies
//! see the warm-up; the figures do not, because at a trace's first minute every function looks
//! cold, which no real day is.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use hdrhistogram::Histogram;
use rand::Rng;

use super::trace::{Arrival, DurationModel, Trace, TraceFunction};
use crate::clock::Time;
use crate::platform::dist::Dist;
use crate::platform::spec::{AliasSpec, Architecture, PlatformSpec, Settings, VersionSpec};
use crate::platform::{
    ControlError, FunctionSpec, Invocation, InvokeRequest, Platform, Rejection, Snapshot, Start,
};
use crate::policy::budget::PingBudget;
use crate::policy::cost::{self, Prices, Usage};
use crate::policy::driver::{
    Admission, Attempt, Failure, FunctionDriver, FunctionSettings, Outcome, Send, PROBE_CHECK,
};
use crate::policy::pool::ProbePolicy;
use crate::policy::router::WaitPolicy;
use crate::policy::{Action, FunctionId, FunctionInfo, Policy, StartSeen};

/// The qualifier of every simulated function's first target, the one a client calling one
/// alias invokes.
pub const LIVE_ALIAS: &str = "live";

/// The alias of target `k` (from 0): `live`, then `live-2`, `live-3`, ... Target `k` is the
/// alias on published version `k + 1`; every version runs the same code (equal CodeSha256,
/// DESIGN invariant 3).
pub fn target_name(k: usize) -> String {
    if k == 0 {
        LIVE_ALIAS.to_string()
    } else {
        format!("{LIVE_ALIAS}-{}", k + 1)
    }
}

/// How clients' requests reach a function's equivalent targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Traffic {
    /// Every request to the first target: a client calling one alias (the gateway's pinned
    /// path). With one target, the only choice.
    #[default]
    First,
    /// Each request to a target drawn uniformly among the function's K (seeded, one stream per
    /// function): client populations each pinned to its alias, no routing. Deterministic mode
    /// takes them in turn instead (round robin), so that counts are checkable by hand.
    Spread,
    /// The gateway routes: each request's target is [`router::choose`] over the function's
    /// pool estimates at its arrival, the chosen pool's `start` taken in the same step; a
    /// throttle (refused before running) fails over to the next target, as the gateway does.
    /// Every request is sent at once: see [`Traffic::Waiting`] for the gateway's wait.
    Routed,
    /// Routed, and as the gateway does when the router expects a cold start: the request is
    /// held for the first environment of the function to free up when
    /// [`router::wait_or_cold`] expects that sooner than the init (default [`WaitPolicy`]),
    /// while one ping at a time starts a new environment for the rest of the burst. A held
    /// request is sent at the first completion of the function (first come, first served) or
    /// at the end of its wait, whichever comes first, without a second wait.
    Waiting,
}

impl Traffic {
    pub fn as_str(self) -> &'static str {
        match self {
            Traffic::First => "first",
            Traffic::Spread => "spread",
            Traffic::Routed => "routed",
            Traffic::Waiting => "waiting",
        }
    }

    /// The label of `policy` replayed under this traffic: `none`, `none+spread`, `none+route`.
    pub fn label(self, policy: &str) -> String {
        match self {
            Traffic::First => policy.to_string(),
            Traffic::Spread => format!("{policy}+spread"),
            Traffic::Routed => format!("{policy}+route"),
            Traffic::Waiting => format!("{policy}+wait"),
        }
    }
}
/// Real invocations carry this payload; anything but the ping payload would do.
const REAL_PAYLOAD: &[u8] = b"{}";
/// "Forever" for reclaim and lifetime: 10^12 s, about 31,700 years.
const FOREVER_S: f64 = 1e12;
/// Lambda's largest timeout: a trace's long handlers run to their end rather than time out at
/// Lambda's default of 3 s, which a real deployment of them would have raised.
const TIMEOUT_S: f64 = 900.0;
/// How many arrivals between two progress reports.
const PROGRESS_EVERY: u64 = 1 << 16;

/// How the platform's random quantities are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Draw init, handler durations, idle reclaim, lifetime and allocation delay from their
    /// distributions (seeded, so a run is still reproducible).
    #[default]
    Default,
    /// Checkable by hand and against other simulators: handler durations at the function's
    /// average, zero init, a fixed idle reclaim, no lifetime cap, a fixed allocation delay.
    /// Pair it with the trace reader's `SpreadRule::Even` (each minute's invocations evenly
    /// spaced), as `warmgate simulate --deterministic` does.
    Deterministic,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Deterministic => "deterministic",
        }
    }
}

/// What the platform does with idle environments in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reclaim {
    /// As Lambda does: idle reclaim and a lifetime cap, per the mode.
    #[default]
    AsLambda,
    /// Never: an environment, once created, stays warm for the whole replay. The reference
    /// bound "never reclaimed once created": only the first request per concurrent
    /// environment is cold.
    Never,
}

/// Settings of a replay, shared by every policy of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSettings {
    /// Seed of every draw: handler durations, and the platform's own draws.
    pub seed: u64,
    pub mode: Mode,
    /// Figures count arrivals at or after this time; the policies see the warm-up too.
    pub warmup: Duration,
    /// Init duration of an on-demand cold start, in ms (default mode; deterministic mode has
    /// none). Default: log-normal, median 1 s, spread 1.5 (about 0.45 s to 2.25 s within two
    /// standard deviations): a small Python or Node function as its caller waits for it,
    /// environment setup included. A function that loads an ML model takes seconds to tens
    /// of seconds (see [`SimSettings::model_loading_init`]).
    pub init_ms: Dist,
    /// Idle time before an on-demand environment is reclaimed, in s. `None`: the platform's
    /// default in default mode (5 to 10 minutes, uniform; see `platform::spec::Settings`),
    /// and [`DETERMINISTIC_RECLAIM`] in deterministic mode.
    pub idle_reclaim_s: Option<Dist>,
    /// The account's concurrency quota. See [`DEFAULT_ACCOUNT_CONCURRENCY`].
    pub account_concurrency: u32,
    /// Equivalent targets per function (K, at least 1): see [`target_name`].
    pub targets: usize,
    /// Keep the warm-pool estimates and measure their error against the ground truth in
    /// every replay, not only in routed ones (which need them). Off by default: the pools'
    /// reclaim model refits on every observation, which multiplies a replay's time by about
    /// six on the 500-function sample.
    pub measure_estimator: bool,
    /// Each function's budget for keep-alive pings, enforced as the gateway's warmer does
    /// (`None`: no budget). Default: the gateway's default budget.
    pub ping_budget: Option<PingBudget>,
    /// Routed replays send the probes the pools ask for, as the gateway does by default.
    pub probes: bool,
    /// The gateway's admission limit on real requests in flight: while clients hold every
    /// permit, keep-alive rounds and probes are skipped. `None` (the default): the gateway is
    /// sized for the trace's traffic, as a deployment would be, and never sheds.
    pub max_in_flight: Option<usize>,
}

/// The fixed idle reclaim of deterministic mode: 10 minutes, the 2019 measurement DESIGN cites.
pub const DETERMINISTIC_RECLAIM: Duration = Duration::from_secs(600);

/// A trace's functions belong to many owners (the 500-function Azure sample, to 428), so one
/// Lambda account's default quota of 1,000 would couple functions that never share an account
/// and throttle them for it. The simulator gives them one large account instead; set
/// `account_concurrency` to 1,000 to study one account at the default quota.
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 100_000;

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 0,
            mode: Mode::Default,
            warmup: Duration::from_secs(3600),
            init_ms: SimSettings::small_function_init(),
            idle_reclaim_s: None,
            account_concurrency: DEFAULT_ACCOUNT_CONCURRENCY,
            targets: 1,
            measure_estimator: false,
            ping_budget: Some(PingBudget::default()),
            probes: true,
            max_in_flight: None,
        }
    }
}

impl SimSettings {
    /// The default init: median 1 s, spread 1.5.
    pub fn small_function_init() -> Dist {
        Dist::LogNormal {
            median: 1000.0,
            spread: 1.5,
        }
    }

    /// Init of a function that loads an ML model at start: median 6 s, spread 1.6 (about
    /// 2.3 s to 15 s within two standard deviations; draws past Lambda's 10 s on-demand cap
    /// pay the cap again, as the platform models).
    pub fn model_loading_init() -> Dist {
        Dist::LogNormal {
            median: 6000.0,
            spread: 1.6,
        }
    }

    /// The platform settings of one replay.
    fn platform_settings(&self, reclaim: Reclaim) -> Settings {
        let defaults = Settings::default();
        let deterministic = self.mode == Mode::Deterministic;
        let idle_reclaim_s = match (reclaim, self.idle_reclaim_s) {
            (Reclaim::Never, _) => Dist::Fixed(FOREVER_S),
            (Reclaim::AsLambda, Some(dist)) => dist,
            (Reclaim::AsLambda, None) if deterministic => {
                Dist::Fixed(DETERMINISTIC_RECLAIM.as_secs_f64())
            }
            (Reclaim::AsLambda, None) => defaults.idle_reclaim_s,
        };
        // Deterministic mode has no lifetime cap: other simulators model none, and a drawn cap
        // is not checkable by hand.
        let max_lifetime_s = if reclaim == Reclaim::Never || deterministic {
            Dist::Fixed(FOREVER_S)
        } else {
            defaults.max_lifetime_s
        };
        let provisioned_allocation_s = if deterministic {
            Dist::Fixed(defaults.provisioned_allocation_s.median())
        } else {
            defaults.provisioned_allocation_s
        };
        Settings {
            seed: self.seed,
            account_concurrency: self.account_concurrency,
            idle_reclaim_s,
            max_lifetime_s,
            provisioned_allocation_s,
            ..defaults
        }
    }

    fn init_ms(&self) -> Dist {
        match self.mode {
            Mode::Default => self.init_ms,
            Mode::Deterministic => Dist::Fixed(0.0),
        }
    }
}

/// The platform name of trace function `f`. Trace ids are hashes or `owner/app/function`
/// paths, not valid Lambda names; the policy sees the trace id in [`FunctionInfo::name`].
fn platform_name(f: FunctionId) -> String {
    format!("f{f}")
}

/// The platform a replay runs on: one function per trace function, with K published versions
/// of the same code and the aliases [`target_name`] on them.
pub fn platform_spec(trace: &Trace, settings: &SimSettings, reclaim: Reclaim) -> PlatformSpec {
    let init_ms = settings.init_ms();
    let k = settings.targets.max(1);
    let functions = trace
        .functions
        .iter()
        .enumerate()
        .map(|(f, tf)| FunctionSpec {
            memory_mb: tf.memory_mb,
            timeout_s: TIMEOUT_S,
            init_ms,
            // Unused: the engine hands every invocation its duration.
            duration_ms: Dist::Fixed(tf.durations.average().as_secs_f64() * 1e3),
            versions: vec![VersionSpec::default(); k],
            aliases: (0..k)
                .map(|t| AliasSpec {
                    name: target_name(t),
                    version: (t + 1).to_string(),
                    routing: Default::default(),
                    description: String::new(),
                })
                .collect(),
            ..FunctionSpec::named(platform_name(f))
        })
        .collect();
    PlatformSpec {
        settings: settings.platform_settings(reclaim),
        functions,
    }
}

/// What the policies learn of the trace's functions before any traffic: each has the
/// `targets` aliases of [`target_name`].
pub fn function_infos(trace: &Trace, targets: usize) -> Vec<FunctionInfo> {
    let names: Vec<String> = (0..targets.max(1)).map(target_name).collect();
    trace
        .functions
        .iter()
        .map(|tf| FunctionInfo {
            name: tf.id.clone(),
            app: tf.app.clone(),
            memory_mb: tf.memory_mb,
            targets: names.clone(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Handler durations
// ---------------------------------------------------------------------------------------------

/// The handler durations of one function's arrivals, in arrival order: the trace's own where it
/// has one, otherwise a draw from the function's model (its average in deterministic mode).
/// Each function has its own stream of the seed, so the draws do not depend on the order in
/// which functions' arrivals interleave, nor on the policy.
struct HandlerDurations {
    model: DurationModel,
    rng: ChaCha8Rng,
    at_average: bool,
}

impl HandlerDurations {
    fn new(function: &TraceFunction, f: FunctionId, settings: &SimSettings) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        rng.set_stream(f as u64);
        HandlerDurations {
            model: function.durations,
            rng,
            at_average: settings.mode == Mode::Deterministic,
        }
    }

    fn next(&mut self, arrival: &Arrival) -> Duration {
        match arrival.duration {
            Some(d) => d,
            None if self.at_average => self.model.average(),
            None => self.model.sample(&mut self.rng),
        }
    }
}

/// Each function's peak handler concurrency over the whole trace, with the durations a replay
/// under `settings` gives them: the oracle that provisioned-concurrency-at-peak is sized by.
/// Init time is left out: at peak provisioning no request should wait for one.
pub fn peak_concurrency(trace: &Trace, settings: &SimSettings) -> Vec<u32> {
    trace
        .functions
        .iter()
        .enumerate()
        .map(|(f, tf)| {
            let mut durations = HandlerDurations::new(tf, f, settings);
            let mut running: BinaryHeap<Reverse<Time>> = BinaryHeap::new();
            let mut peak = 0;
            for arrival in &tf.arrivals {
                while running
                    .peek()
                    .is_some_and(|Reverse(end)| *end <= arrival.at)
                {
                    running.pop();
                }
                running.push(Reverse(arrival.at + durations.next(arrival)));
                peak = peak.max(running.len());
            }
            peak as u32
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Event queues
// ---------------------------------------------------------------------------------------------

/// The functions' arrival lists merged in time order: one cursor per function and a heap of
/// each function's next arrival. Ties go to the lower function index.
struct Arrivals<'t> {
    functions: &'t [TraceFunction],
    cursor: Vec<usize>,
    heap: BinaryHeap<Reverse<(Time, FunctionId)>>,
}

impl<'t> Arrivals<'t> {
    fn new(functions: &'t [TraceFunction]) -> Self {
        let heap = functions
            .iter()
            .enumerate()
            .filter_map(|(f, tf)| tf.arrivals.first().map(|a| Reverse((a.at, f))))
            .collect();
        Arrivals {
            functions,
            cursor: vec![0; functions.len()],
            heap,
        }
    }

    fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    fn pop(&mut self) -> Option<(FunctionId, &'t Arrival)> {
        let Reverse((_, f)) = self.heap.pop()?;
        let arrivals = &self.functions[f].arrivals;
        let arrival = &arrivals[self.cursor[f]];
        self.cursor[f] += 1;
        if let Some(next) = arrivals.get(self.cursor[f]) {
            self.heap.push(Reverse((next.at, f)));
        }
        Some((f, arrival))
    }
}

/// What the engine sends: a real request with its handler duration, or a keep-alive ping,
/// held (one of a round) or not.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Real(Duration),
    Ping { held: bool },
}

/// An attempt waiting for its completion time, with how it ended.
struct Pending {
    at: Time,
    seq: u64,
    function: FunctionId,
    attempt: Attempt,
    outcome: Outcome,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Attempts in completion order (ties in the order they were made).
#[derive(Default)]
struct Completions {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl Completions {
    fn push(&mut self, at: Time, function: FunctionId, attempt: Attempt, outcome: Outcome) {
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            at,
            seq: self.seq,
            function,
            attempt,
            outcome,
        }));
    }

    fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(p)| p.at)
    }

    fn pop(&mut self) -> Option<Pending> {
        self.heap.pop().map(|Reverse(p)| p)
    }
}

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

/// Real invocations of one function after the warm-up.
#[derive(Debug, Clone, Copy, Default)]
struct FunctionTally {
    invocations: u64,
    cold_starts: u64,
    throttles: u64,
    pings: u64,
    /// Pings that met no idle environment and paid for a new one's init.
    cold_pings: u64,
    /// This function's part of the bill, provisioned allocation left out (it is settled
    /// from snapshots, over all functions).
    usage: Usage,
}

/// What a replay counts after the warm-up, as it goes.
#[derive(Debug)]
struct Tally {
    functions: Vec<FunctionTally>,
    pings: u64,
    ping_throttles: u64,
    /// Keep-alive pings the budget refused.
    pings_refused: u64,
    provisioning_refused: u64,
    estimator: EstimatorTally,
    /// Real requests held for a busy environment, and those of them that met a cold one all
    /// the same.
    waits: u64,
    waits_then_cold: u64,
    /// What real requests that ran waited for before their handler started: a cold start's
    /// init plus any time held for a busy environment, in ms, and its sum.
    start_delay_ms: Histogram<u64>,
    start_delay: Duration,
}

impl Tally {
    fn new(functions: usize) -> Self {
        Tally {
            functions: vec![FunctionTally::default(); functions],
            pings: 0,
            ping_throttles: 0,
            pings_refused: 0,
            provisioning_refused: 0,
            estimator: EstimatorTally::default(),
            waits: 0,
            waits_then_cold: 0,
            start_delay_ms: Histogram::new(3).expect("3 significant figures are valid"),
            start_delay: Duration::ZERO,
        }
    }

    /// Counts one request, real or ping, with what the platform made of it; `waited` is how
    /// long a real request was held before it was sent.
    fn record(
        &mut self,
        f: FunctionId,
        ping: bool,
        waited: Option<Duration>,
        outcome: &Result<Invocation, Rejection>,
    ) {
        let throttled = outcome.is_err();
        let cold = matches!(outcome, Ok(i) if i.start == Start::Cold);
        let tally = &mut self.functions[f];
        if ping {
            self.pings += 1;
            self.ping_throttles += u64::from(throttled);
            tally.pings += 1;
            tally.cold_pings += u64::from(cold);
        } else {
            tally.invocations += 1;
            tally.throttles += u64::from(throttled);
            tally.cold_starts += u64::from(cold);
            if waited.is_some() {
                self.waits += 1;
                self.waits_then_cold += u64::from(cold);
            }
            if let Ok(invocation) = outcome {
                let delay = waited.unwrap_or_default() + invocation.init.unwrap_or_default();
                self.start_delay += delay;
                // Auto-resizing: recording cannot fail.
                let _ = self.start_delay_ms.record(delay.as_millis() as u64);
            }
        }
        if let Ok(invocation) = outcome {
            // A throttled request is not billed; an admitted one is, init included on demand.
            let gb_s = cost::gb_s(invocation.billed.as_millis() as f64, invocation.memory_mb);
            tally.usage.requests += 1;
            match invocation.start {
                Start::Provisioned => tally.usage.provisioned_duration_gb_s += gb_s,
                Start::Warm | Start::Cold => tally.usage.on_demand_gb_s += gb_s,
            }
        }
    }
}

/// The estimator's error against the ground truth, as it is counted: a histogram of absolute
/// errors and the sums for the means.
#[derive(Debug, Default)]
struct EstimatorTally {
    /// Samples by absolute error (the last bin holds every larger error).
    by_error: Vec<u64>,
    signed: i64,
    truth: u64,
}

/// Absolute errors beyond this share one histogram bin.
const ERROR_BINS: usize = 1024;

impl EstimatorTally {
    fn record(&mut self, estimate: u32, truth: u32) {
        if self.by_error.is_empty() {
            self.by_error = vec![0; ERROR_BINS];
        }
        let error = estimate.abs_diff(truth) as usize;
        self.by_error[error.min(ERROR_BINS - 1)] += 1;
        self.signed += i64::from(estimate) - i64::from(truth);
        self.truth += u64::from(truth);
    }

    fn figures(&self) -> EstimatorError {
        let samples: u64 = self.by_error.iter().sum();
        if samples == 0 {
            return EstimatorError::default();
        }
        let n = samples as f64;
        let abs: u64 = self
            .by_error
            .iter()
            .enumerate()
            .map(|(e, &c)| e as u64 * c)
            .sum();
        let within = |e: usize| self.by_error.iter().take(e + 1).sum::<u64>() as f64 / n;
        let mut seen = 0;
        let p99 = self
            .by_error
            .iter()
            .position(|&c| {
                seen += c;
                seen as f64 >= 0.99 * n
            })
            .unwrap_or(ERROR_BINS - 1);
        EstimatorError {
            samples,
            mean_abs_error: abs as f64 / n,
            exact_share: within(0),
            within_1_share: within(1),
            p99_abs_error: p99 as u32,
            mean_error: self.signed as f64 / n,
            mean_truth: self.truth as f64 / n,
        }
    }
}

/// How far the pools' estimates of warm idle environments were from the platform's ground
/// truth. A sample is one target of one function at one whole minute after the warm-up: the
/// pool's `view(now).warm_idle`, rounded, against the platform's count of idle on-demand
/// environments of the target's version. A sample is taken only where either is non-zero, so
/// that functions idle for good do not inflate the exact share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EstimatorError {
    pub samples: u64,
    /// Mean of |estimate - truth|.
    pub mean_abs_error: f64,
    /// Share of samples where the rounded estimate is the truth.
    pub exact_share: f64,
    /// Share of samples within one environment of the truth.
    pub within_1_share: f64,
    /// 99th percentile of |estimate - truth| (the smallest error at or above 99 % of samples).
    pub p99_abs_error: u32,
    /// Mean of estimate - truth: above zero, the estimate counts environments already gone.
    pub mean_error: f64,
    /// Mean true idle count over the samples, for scale.
    pub mean_truth: f64,
}

/// GB-s the platform settles over time, summed over functions: (provisioned allocated, idle
/// on-demand).
fn settled_gb_s(snapshot: &Snapshot) -> (f64, f64) {
    snapshot.functions.iter().flat_map(|f| &f.versions).fold(
        (0.0, 0.0),
        |(provisioned, idle), v| {
            (
                provisioned + v.stats.provisioned_gb_s,
                idle + v.stats.idle_gb_s,
            )
        },
    )
}

/// The figures of one policy on one trace, counted after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub policy: String,
    /// Equivalent targets per function.
    pub targets: usize,
    /// How requests reached the targets.
    pub traffic: Traffic,
    /// Real requests that arrived after the warm-up (throttled ones included).
    pub invocations: u64,
    /// Of them, those that met a new on-demand environment.
    pub cold_starts: u64,
    /// `cold_starts / invocations`.
    pub cold_start_share: f64,
    /// Per-function cold-start share at the median, 75th and 90th percentile of functions
    /// (over functions with at least one invocation after the warm-up).
    pub function_cold_share_p50: f64,
    pub function_cold_share_p75: f64,
    pub function_cold_share_p90: f64,
    /// Functions counted in the per-function figures.
    pub functions_counted: usize,
    pub throttles: u64,
    /// Keep-alive pings sent after the warm-up (throttled ones included).
    pub pings: u64,
    pub ping_throttles: u64,
    /// Keep-alive pings the policy asked for that the ping budget refused.
    pub pings_refused: u64,
    /// GB-s of provisioned concurrency allocated after the warm-up.
    pub provisioned_gb_s: f64,
    /// Provisioned-concurrency changes the platform refused (over the whole replay).
    pub provisioning_refused: u64,
    /// Billed GB-s on on-demand environments (init included), real and pings.
    pub on_demand_gb_s: f64,
    /// The user's bill after the warm-up, in dollars (us-east-1, x86_64).
    pub bill_usd: f64,
    /// Provider-side idle memory time: GB-s of warm, idle on-demand environments.
    pub idle_gb_s: f64,
    /// The pools' estimates against the ground truth, after the warm-up.
    pub estimator: EstimatorError,
    /// Real requests the gateway held for a busy environment ([`Traffic::Waiting`]), and
    /// those of them that met a cold start all the same.
    pub waits: u64,
    pub waits_then_cold: u64,
    /// Time real requests waited before their handler started (a cold start's init, plus any
    /// time held for a busy environment), summed over requests, in seconds, and its 99th
    /// and 99.9th percentile per request, in ms.
    pub start_delay_s: f64,
    pub start_delay_p99_ms: u64,
    pub start_delay_p999_ms: u64,
    /// Wall-clock time of the replay, in seconds (information only).
    pub replay_s: f64,
    /// Each counted function's cold-start share, sorted ascending: the CDF plot's data.
    pub function_cold_shares: Vec<f64>,
    /// Every function's own figures, in the trace's order (the `--per-function` file).
    #[serde(skip)]
    pub functions: Vec<FunctionFigures>,
}

/// One function's figures after the warm-up: where the cold starts and the pings are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionFigures {
    /// The function's name in the trace.
    pub function: String,
    pub memory_mb: u32,
    pub invocations: u64,
    pub cold_starts: u64,
    pub throttles: u64,
    pub pings: u64,
    /// Pings that started a new environment (and paid its init).
    pub cold_pings: u64,
    /// Its requests, pings included, and their billed duration, in dollars; provisioned
    /// allocation is left out (it is in the policy's bill).
    pub bill_usd: f64,
}

/// The `q` quantile of sorted values, interpolated linearly between order statistics
/// (position `q * (n - 1)`); 0 for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub(crate) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Figures {
    fn new(
        policy: String,
        trace: &Trace,
        (targets, traffic): (usize, Traffic),
        tally: &Tally,
        boundary: &Snapshot,
        end: &Snapshot,
    ) -> Self {
        let invocations = tally.functions.iter().map(|t| t.invocations).sum();
        let cold_starts = tally.functions.iter().map(|t| t.cold_starts).sum();
        let mut shares: Vec<f64> = tally
            .functions
            .iter()
            .filter(|t| t.invocations > 0)
            .map(|t| share(t.cold_starts, t.invocations))
            .collect();
        shares.sort_by(f64::total_cmp);
        let (provisioned_end, idle_end) = settled_gb_s(end);
        let (provisioned_start, idle_start) = settled_gb_s(boundary);
        // Requests and billed duration are counted per function; provisioned allocation is
        // settled from the platform's snapshots.
        let usage = tally.functions.iter().fold(
            Usage {
                provisioned_gb_s: provisioned_end - provisioned_start,
                ..Usage::default()
            },
            |mut total, t| {
                total.requests += t.usage.requests;
                total.on_demand_gb_s += t.usage.on_demand_gb_s;
                total.provisioned_duration_gb_s += t.usage.provisioned_duration_gb_s;
                total
            },
        );
        let prices = Prices::us_east_1(Architecture::X86_64);
        let functions = trace
            .functions
            .iter()
            .zip(&tally.functions)
            .map(|(f, t)| FunctionFigures {
                function: f.id.clone(),
                memory_mb: f.memory_mb,
                invocations: t.invocations,
                cold_starts: t.cold_starts,
                throttles: t.throttles,
                pings: t.pings,
                cold_pings: t.cold_pings,
                bill_usd: cost::bill(&t.usage, &prices),
            })
            .collect();
        Figures {
            policy,
            targets,
            traffic,
            invocations,
            cold_starts,
            cold_start_share: share(cold_starts, invocations),
            function_cold_share_p50: quantile(&shares, 0.50),
            function_cold_share_p75: quantile(&shares, 0.75),
            function_cold_share_p90: quantile(&shares, 0.90),
            functions_counted: shares.len(),
            throttles: tally.functions.iter().map(|t| t.throttles).sum(),
            pings: tally.pings,
            ping_throttles: tally.ping_throttles,
            pings_refused: tally.pings_refused,
            provisioned_gb_s: usage.provisioned_gb_s,
            provisioning_refused: tally.provisioning_refused,
            on_demand_gb_s: usage.on_demand_gb_s,
            bill_usd: cost::bill(&usage, &prices),
            idle_gb_s: idle_end - idle_start,
            estimator: tally.estimator.figures(),
            waits: tally.waits,
            waits_then_cold: tally.waits_then_cold,
            start_delay_s: tally.start_delay.as_secs_f64(),
            start_delay_p99_ms: tally.start_delay_ms.value_at_quantile(0.99),
            start_delay_p999_ms: tally.start_delay_ms.value_at_quantile(0.999),
            replay_s: 0.0,
            function_cold_shares: shares,
            functions,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The replay
// ---------------------------------------------------------------------------------------------

/// A policy to replay, what the platform does with idle environments under it, and how
/// requests reach the targets.
pub struct Candidate {
    /// The name its figures carry.
    pub label: String,
    pub policy: Box<dyn Policy>,
    pub reclaim: Reclaim,
    pub traffic: Traffic,
}

impl Candidate {
    /// A policy on the platform as Lambda behaves, its traffic to the first target.
    pub fn new(policy: Box<dyn Policy>) -> Self {
        Candidate {
            label: policy.name(),
            policy,
            reclaim: Reclaim::AsLambda,
            traffic: Traffic::First,
        }
    }

    /// The reference bound: no policy, and environments never reclaimed once created.
    pub fn never_reclaim() -> Self {
        Candidate {
            label: "never-reclaim".into(),
            policy: Box::new(crate::policy::baselines::none::NoPolicy),
            reclaim: Reclaim::Never,
            traffic: Traffic::First,
        }
    }

    /// The same candidate under `traffic`, labelled for it ([`Traffic::label`] of the label
    /// it had).
    pub fn with_traffic(mut self, traffic: Traffic) -> Self {
        self.label = traffic.label(&self.label);
        self.traffic = traffic;
        self
    }
}

/// One minute: the period of the tick that refreshes provisioned capacity into the pools and
/// measures the estimator.
const TICK: Duration = Duration::from_secs(60);

/// One replay in progress.
struct Replay<'t> {
    trace: &'t Trace,
    warmup: Duration,
    platform: Platform,
    policy: Box<dyn Policy>,
    names: Vec<String>,
    /// The K targets' aliases, and the version each names.
    targets: Vec<String>,
    versions: Vec<String>,
    traffic: Traffic,
    /// Spread traffic: one stream per function (empty otherwise); in deterministic mode,
    /// each function's next target in turn.
    spread: Vec<ChaCha8Rng>,
    turn: Vec<usize>,
    /// Per function, the gateway's orchestration: the very [`FunctionDriver`] the gateway
    /// runs, its pools fed what the gateway would see (kept only when routing or measuring
    /// the estimator).
    drivers: Vec<FunctionDriver>,
    /// Targets the policy ever gave provisioned concurrency: read into their pools each tick.
    provisioned: Vec<(FunctionId, usize)>,
    /// The handler duration of each held request, by function and waiter.
    held: HashMap<(FunctionId, u64), Duration>,
    /// When each held request's wait ends: (time, its function, its waiter). A request sent
    /// sooner leaves its entry behind, skipped when it comes up.
    wait_ends: BinaryHeap<Reverse<(Time, u64, FunctionId, u64)>>,
    /// Orders wait ends of the same time by when the requests were held.
    next_held: u64,
    /// The next minute tick, and the next look for probes; none without pools.
    next_tick: Option<Time>,
    next_probe_check: Option<Time>,
    /// Real requests in flight, against the gateway's admission limit: while clients hold
    /// every permit, keep-alive rounds and probes are skipped (`None`: no limit).
    in_flight: usize,
    max_in_flight: Option<usize>,
    ping_payload: Vec<u8>,
    /// The client context of a ping of a round: it asks the handler to hold.
    round_context: serde_json::Value,
    durations: Vec<HandlerDurations>,
    completions: Completions,
    tally: Tally,
    /// The engine's time: the time of the event being handled. Never goes back.
    now: Time,
    /// The policy's wake-up, cached: it can only change when the policy is called.
    wake: Option<Time>,
    /// The policy asked, after acting, to be woken no later than it just was: it is not woken
    /// again until something else happens, so that such a policy cannot stall the replay.
    wake_stale: bool,
    boundary: Option<Snapshot>,
}

impl<'t> Replay<'t> {
    fn new(trace: &'t Trace, settings: &SimSettings, candidate: Candidate) -> Self {
        let platform = Platform::new(platform_spec(trace, settings, candidate.reclaim));
        let ping_payload = platform.settings().ping.payload.trim().as_bytes().to_vec();
        let k = settings.targets.max(1);
        let n = trace.functions.len();
        let deterministic = settings.mode == Mode::Deterministic;
        let gateway = matches!(candidate.traffic, Traffic::Routed | Traffic::Waiting);
        let keep_pools = gateway || settings.measure_estimator;
        let spread = if candidate.traffic == Traffic::Spread && !deterministic {
            (0..n)
                .map(|f| {
                    // Its own seed, apart from the handler durations' streams.
                    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0x5350_5245_4144);
                    rng.set_stream(f as u64);
                    rng
                })
                .collect()
        } else {
            Vec::new()
        };
        let function_settings = FunctionSettings {
            wait: WaitPolicy {
                enabled: candidate.traffic == Traffic::Waiting,
                ..WaitPolicy::default()
            },
            probe: ProbePolicy {
                enabled: gateway && settings.probes,
                ..ProbePolicy::default()
            },
            ping_budget: settings.ping_budget,
            idempotent: false,
        };
        let drivers = (0..n)
            .map(|f| {
                if keep_pools {
                    FunctionDriver::new(f, k, function_settings)
                } else {
                    FunctionDriver::without_estimate(f, k, function_settings)
                }
            })
            .collect();
        Replay {
            trace,
            warmup: settings.warmup,
            platform,
            policy: candidate.policy,
            names: (0..n).map(platform_name).collect(),
            targets: (0..k).map(target_name).collect(),
            versions: (0..k).map(|t| (t + 1).to_string()).collect(),
            traffic: candidate.traffic,
            spread,
            turn: vec![0; n],
            drivers,
            provisioned: Vec::new(),
            held: HashMap::new(),
            wait_ends: BinaryHeap::new(),
            next_held: 0,
            next_tick: keep_pools.then_some(TICK),
            next_probe_check: (gateway && settings.probes).then_some(PROBE_CHECK),
            in_flight: 0,
            max_in_flight: settings.max_in_flight,
            ping_payload,
            round_context: serde_json::json!({"custom": {
                crate::platform::PING_HOLD_KEY: crate::policy::ROUND_HOLD.as_millis().to_string(),
            }}),
            durations: trace
                .functions
                .iter()
                .enumerate()
                .map(|(f, tf)| HandlerDurations::new(tf, f, settings))
                .collect(),
            completions: Completions::default(),
            tally: Tally::new(n),
            now: Duration::ZERO,
            wake: None,
            wake_stale: false,
            boundary: None,
        }
    }

    fn counted(&self, at: Time) -> bool {
        at >= self.warmup
    }

    /// Whether clients hold every admission permit of the gateway: pings wait for them.
    fn clients_first(&self) -> bool {
        self.max_in_flight.is_some_and(|max| self.in_flight >= max)
    }

    /// Runs the replay to the end of the trace; `progress` hears of arrivals replayed.
    fn run(mut self, label: String, progress: &dyn Fn(u64)) -> Figures {
        let end = self.trace.duration;
        let infos = function_infos(self.trace, self.targets.len());
        let actions = self.policy.start(&infos, Duration::ZERO);
        self.carry_out(actions);
        self.refresh_wake();
        let mut arrivals = Arrivals::new(&self.trace.functions);
        let mut replayed = 0u64;
        loop {
            let next_done = self.completions.peek();
            let next_tick = self.next_tick.filter(|&t| t < end);
            // The trace spans [0, end): a wake-up at the end is past it.
            let next_wake = self.due_wake().filter(|&w| w < end);
            let next_probe_check = self.next_probe_check.filter(|&t| t < end);
            let next_wait_end = self.wait_ends.peek().map(|Reverse((at, ..))| *at);
            let next_arrival = arrivals.peek();
            let Some(t) = [
                next_done,
                next_tick,
                next_wake,
                next_probe_check,
                next_wait_end,
                next_arrival,
            ]
            .into_iter()
            .flatten()
            .min() else {
                break;
            };
            self.now = self.now.max(t);
            self.mark_warmup_boundary(t);
            if next_done == Some(t) {
                let done = self.completions.pop().expect("peeked");
                self.finish(done);
            } else if next_tick == Some(t) {
                self.tick(t);
                self.next_tick = Some(t + TICK);
            } else if next_wake == Some(t) {
                let actions = self.policy.act(self.now);
                self.carry_out(actions);
                self.refresh_wake();
                self.wake_stale = self.wake.is_some_and(|w| w <= self.now);
            } else if next_probe_check == Some(t) {
                self.send_probes(t);
                self.next_probe_check = Some(t + PROBE_CHECK);
            } else if next_wait_end == Some(t) {
                let Reverse((_, _, f, waiter)) = self.wait_ends.pop().expect("peeked");
                if let Some(send) = self.drivers[f].expire(t, waiter) {
                    let duration = self.held.remove(&(f, waiter)).expect("held");
                    self.dispatch(f, send, duration);
                }
                self.wake_stale = false;
            } else {
                let (f, arrival) = arrivals.pop().expect("peeked");
                self.invoke(f, arrival);
                self.wake_stale = false;
                replayed += 1;
                if replayed % PROGRESS_EVERY == 0 {
                    progress(PROGRESS_EVERY);
                }
            }
        }
        progress(replayed % PROGRESS_EVERY);
        self.mark_warmup_boundary(end.max(self.warmup));
        let boundary = self.boundary.take().expect("marked");
        let last = self.platform.snapshot(end.max(self.platform.now()));
        Figures::new(
            label,
            self.trace,
            (self.targets.len(), self.traffic),
            &self.tally,
            &boundary,
            &last,
        )
    }

    /// An attempt ends: its driver learns how (and releases a held request onto the freed
    /// environment), then the policy hears of it.
    fn finish(&mut self, done: Pending) {
        let Pending {
            at,
            function: f,
            attempt,
            outcome,
            ..
        } = done;
        if !attempt.started.ping && matches!(outcome, Outcome::Ran { .. }) {
            self.in_flight -= 1;
        }
        let finished = self.drivers[f].finish(at, &attempt, outcome);
        self.policy.observe(&finished.observation);
        self.wake_stale = false;
        self.refresh_wake();
        if let Some((waiter, send)) = finished.released {
            let duration = self.held.remove(&(f, waiter)).expect("held");
            self.dispatch(f, send, duration);
        }
    }

    /// The minute tick at `t`: provisioned capacity read into the pools (as the gateway's
    /// refresh does, here every minute), then, after the warm-up, each pool's estimate of
    /// warm idle environments against the platform's ground truth. Completions at `t` are
    /// already in both.
    fn tick(&mut self, t: Time) {
        self.platform.advance(t);
        for &(f, target) in &self.provisioned {
            let allocated = self
                .platform
                .get_provisioned(t, &self.names[f], &self.targets[target])
                .map_or(0, |view| view.allocated);
            self.drivers[f].set_provisioned(target, allocated);
        }
        if !self.counted(t) {
            return;
        }
        for (f, driver) in self.drivers.iter().enumerate() {
            for (target, version) in self.versions.iter().enumerate() {
                let truth = self.platform.idle_environments(&self.names[f], version);
                let estimate = driver.pool(target).view(t).warm_idle.round() as u32;
                if truth > 0 || estimate > 0 {
                    self.tally.estimator.record(estimate, truth);
                }
            }
        }
    }

    /// Sends the probes the pools ask for at `t`, as the gateway's prober does.
    fn send_probes(&mut self, t: Time) {
        let clients_first = self.clients_first();
        for f in 0..self.drivers.len() {
            for order in self.drivers[f].probes_due(t, clients_first) {
                self.send(f, order.attempt, Sent::Ping { held: false }, true, None);
            }
        }
    }

    /// The wake-up to honour now: never before the engine's time, none while stale.
    fn due_wake(&self) -> Option<Time> {
        if self.wake_stale {
            return None;
        }
        self.wake.map(|w| w.max(self.now))
    }

    fn refresh_wake(&mut self) {
        self.wake = self.policy.next_wake();
    }

    /// Settles the platform's GB-s at the end of the warm-up, once, before the first event at
    /// or after it (or at the end, for a trace no longer than its warm-up).
    fn mark_warmup_boundary(&mut self, t: Time) {
        if self.boundary.is_none() && t >= self.warmup {
            let at = self
                .warmup
                .min(self.trace.duration)
                .max(self.platform.now());
            self.boundary = Some(self.platform.snapshot(at));
        }
    }

    /// A real invocation arrives: it goes to a target by the traffic rule. Routed, it is
    /// admitted by its driver as the gateway admits it: sent where the router chooses, or
    /// held for a busy environment while a burst ping starts one.
    fn invoke(&mut self, f: FunctionId, arrival: &Arrival) {
        let duration = self.durations[f].next(arrival);
        let at = arrival.at;
        let k = self.targets.len();
        // Clients that call Lambda directly choose the target and never fail over.
        let direct = |replay: &mut Self, target| {
            let send = replay.drivers[f].pinned(at, target);
            replay.send(f, send.attempt, Sent::Real(duration), true, None);
        };
        let send = match self.traffic {
            Traffic::First => return direct(self, 0),
            Traffic::Spread => {
                let target = match self.spread.get_mut(f) {
                    Some(rng) => rng.random_range(0..k),
                    None => {
                        let turn = self.turn[f];
                        self.turn[f] = (turn + 1) % k;
                        turn
                    }
                };
                return direct(self, target);
            }
            Traffic::Routed | Traffic::Waiting => match self.drivers[f].arrive(at) {
                Admission::Send(send) => send,
                Admission::Hold {
                    waiter,
                    until,
                    burst,
                } => {
                    if let Some(burst) = burst {
                        self.send(f, burst, Sent::Ping { held: false }, true, None);
                    }
                    self.held.insert((f, waiter), duration);
                    self.next_held += 1;
                    self.wait_ends
                        .push(Reverse((until, self.next_held, f, waiter)));
                    return;
                }
            },
        };
        self.dispatch(f, send, duration);
    }

    /// Sends a real request as the gateway's dispatch does: to its first target, then, on a
    /// throttle (refused before running), to the next the driver fails over to. It counts
    /// once, by its last attempt.
    fn dispatch(&mut self, f: FunctionId, send: Send, duration: Duration) {
        let waited = send.waited;
        let mut tried = vec![];
        let mut attempt = send.attempt;
        loop {
            tried.push(attempt.target);
            let last = tried.len() >= self.drivers[f].routable().len();
            if self
                .send(f, attempt, Sent::Real(duration), last, waited)
                .is_some()
            {
                return;
            }
            let throttled = Failure::NotRun { elsewhere: true };
            match self.drivers[f].failover(attempt.started.at, throttled, &tried) {
                Some(next) => attempt = next.attempt,
                None => return,
            }
        }
    }

    /// Sends one attempt of function `f` to the platform, a real request (with its handler
    /// duration) or a ping; its driver took the pool's environment when it decided. It is
    /// counted (when `count`, or whenever it ran; by its arrival, `waited` before it) and its
    /// end is queued for [`Replay::finish`]. Returns when it completes, if it ran.
    fn send(
        &mut self,
        f: FunctionId,
        attempt: Attempt,
        sent: Sent,
        count: bool,
        waited: Option<Duration>,
    ) -> Option<Time> {
        let at = attempt.started.at;
        let request = InvokeRequest {
            function: &self.names[f],
            qualifier: Some(&self.targets[attempt.target]),
            payload: match sent {
                Sent::Real(_) => REAL_PAYLOAD,
                Sent::Ping { .. } => &self.ping_payload,
            },
            client_context: match sent {
                Sent::Ping { held: true } => Some(&self.round_context),
                _ => None,
            },
        };
        let result = match sent {
            Sent::Real(d) => self.platform.invoke_replayed(at, &request, d),
            Sent::Ping { .. } => self.platform.invoke(at, &request),
        };
        let ping = matches!(sent, Sent::Ping { .. });
        let ran = result.is_ok();
        if self.counted(at - waited.unwrap_or_default()) && (count || ran) {
            self.tally.record(f, ping, waited, &result);
        }
        let (done, outcome) = match &result {
            Ok(invocation) => {
                if !ping {
                    self.in_flight += 1;
                }
                (invocation.completes_at, outcome(invocation))
            }
            Err(Rejection::NotFound { message }) => {
                panic!("the replay's own function is not found: {message}")
            }
            Err(_) => (at, Outcome::NotRun),
        };
        self.completions.push(done, f, attempt, outcome);
        ran.then_some(done)
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Ping {
                    function,
                    target,
                    count,
                } => self.ping(function, target, count),
                Action::SetProvisioned {
                    function,
                    target,
                    concurrency,
                } => self.set_provisioned(function, target, concurrency),
            }
        }
    }

    /// Checks an action's function and target: a policy that names neither is a bug in it.
    fn check_target(&self, function: FunctionId, target: usize) {
        let known = function < self.names.len() && target < self.targets.len();
        assert!(
            known,
            "policy {} acted on function {function} target {target}; the trace has {} functions \
             with {} targets each",
            self.policy.name(),
            self.names.len(),
            self.targets.len()
        );
    }

    /// A round of `count` concurrent pings, as many as the driver grants, so that as many
    /// distinct environments are busy at once; a round of several asks each handler to hold
    /// its environment, as the gateway's do.
    fn ping(&mut self, f: FunctionId, target: usize, count: u32) {
        self.check_target(f, target);
        let memory_mb = self.trace.functions[f].memory_mb;
        let clients_first = self.clients_first();
        let granted = self.drivers[f].grant_round(self.now, count, memory_mb, clients_first);
        if self.counted(self.now) {
            self.tally.pings_refused += u64::from(count - granted);
        }
        let held = granted > 1;
        for _ in 0..granted {
            let attempt = self.drivers[f].start_ping(self.now, target);
            self.send(f, attempt, Sent::Ping { held }, true, None);
        }
    }

    fn set_provisioned(&mut self, f: FunctionId, target: usize, concurrency: u32) {
        self.check_target(f, target);
        let name = &self.names[f];
        let qualifier = &self.targets[target];
        let result = if concurrency == 0 {
            match self.platform.delete_provisioned(self.now, name, qualifier) {
                Err(ControlError::ProvisionedConfigNotFound(_)) => Ok(()),
                other => other,
            }
        } else {
            self.platform
                .put_provisioned(self.now, name, qualifier, concurrency)
                .map(|_| ())
        };
        self.tally.provisioning_refused += u64::from(result.is_err());
        if !self.provisioned.contains(&(f, target)) {
            self.provisioned.push((f, target));
        }
    }
}

/// What the gateway would learn of an invocation the platform made.
fn outcome(invocation: &Invocation) -> Outcome {
    Outcome::Ran {
        start: match invocation.start {
            Start::Warm => StartSeen::Warm,
            Start::Cold => StartSeen::Cold,
            Start::Provisioned => StartSeen::Provisioned,
        },
        duration: invocation.duration,
        init: invocation.init,
        billed_gb_s: Some(cost::gb_s(
            invocation.billed.as_millis() as f64,
            invocation.memory_mb,
        )),
    }
}

/// Replays `trace` under one candidate. `progress` hears, now and then, how many arrivals
/// were replayed since it last heard.
pub fn replay(
    trace: &Trace,
    settings: &SimSettings,
    candidate: Candidate,
    progress: &dyn Fn(u64),
) -> Figures {
    let started = Instant::now();
    let label = candidate.label.clone();
    let mut figures = Replay::new(trace, settings, candidate).run(label, progress);
    figures.replay_s = started.elapsed().as_secs_f64();
    figures
}

/// Replays `trace` under every candidate, on as many threads as the machine has cores (each
/// replay is independent), and returns the figures in the candidates' order. `progress` hears
/// the candidate's index and the arrivals it replayed since last time.
pub fn compare(
    trace: &Trace,
    settings: &SimSettings,
    candidates: Vec<Candidate>,
    progress: &(dyn Fn(usize, u64) + Sync),
) -> Vec<Figures> {
    let count = candidates.len();
    let queue: Vec<Mutex<Option<Candidate>>> = candidates
        .into_iter()
        .map(|c| Mutex::new(Some(c)))
        .collect();
    let results: Vec<Mutex<Option<Figures>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                if i >= count {
                    break;
                }
                let candidate = queue[i].lock().unwrap().take().expect("taken once");
                let figures = replay(trace, settings, candidate, &|n| progress(i, n));
                *results[i].lock().unwrap() = Some(figures);
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every candidate replayed"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [0.0, 0.1, 0.2, 0.3, 1.0];
        assert_eq!(quantile(&v, 0.5), 0.2);
        assert!((quantile(&v, 0.75) - 0.3).abs() < 1e-12);
        assert!((quantile(&v, 0.9) - 0.72).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    fn function(arrivals: &[(u64, u64)]) -> TraceFunction {
        TraceFunction {
            id: "f".into(),
            app: "a".into(),
            trigger: None,
            memory_mb: 128,
            durations: DurationModel::Fixed(Duration::from_millis(1)),
            arrivals: arrivals
                .iter()
                .map(|&(at_ms, d_ms)| Arrival {
                    at: Duration::from_millis(at_ms),
                    duration: Some(Duration::from_millis(d_ms)),
                    tokens: None,
                })
                .collect(),
        }
    }

    #[test]
    fn peak_concurrency_counts_overlaps_and_not_touching_ends() {
        let trace = Trace {
            name: "t".into(),
            format: super::super::trace::TraceFormat::Azure2021,
            functions: vec![
                function(&[(0, 100), (50, 100), (60, 10), (200, 10)]),
                function(&[(0, 100), (100, 100), (200, 100)]),
                function(&[]),
            ],
            duration: Duration::from_secs(1),
        };
        assert_eq!(peak_concurrency(&trace, &SimSettings::default()), [3, 1, 0]);
    }

    #[test]
    fn estimator_figures_count_errors_and_their_99th_percentile() {
        let mut tally = EstimatorTally::default();
        assert_eq!(tally.figures(), EstimatorError::default());
        // 97 exact, 2 one too many, 1 three too few.
        for _ in 0..97 {
            tally.record(2, 2);
        }
        tally.record(3, 2);
        tally.record(1, 0);
        tally.record(0, 3);
        let e = tally.figures();
        assert_eq!(e.samples, 100);
        assert!((e.mean_abs_error - 0.05).abs() < 1e-12);
        assert!((e.exact_share - 0.97).abs() < 1e-12);
        assert!((e.within_1_share - 0.99).abs() < 1e-12);
        assert_eq!(e.p99_abs_error, 1);
        assert!((e.mean_error - (-0.01)).abs() < 1e-12);
        assert!((e.mean_truth - 1.99).abs() < 1e-12);
    }

    #[test]
    fn targets_are_live_then_numbered() {
        assert_eq!(target_name(0), LIVE_ALIAS);
        assert_eq!(target_name(2), "live-3");
        assert_eq!(Traffic::Routed.label("none"), "none+route");
    }

    #[test]
    fn arrivals_merge_in_time_order() {
        let functions = vec![function(&[(5, 1), (30, 1)]), function(&[(5, 1), (10, 1)])];
        let mut arrivals = Arrivals::new(&functions);
        let mut order = Vec::new();
        while let Some((f, a)) = arrivals.pop() {
            order.push((f, a.at.as_millis()));
        }
        assert_eq!(order, [(0, 5), (1, 5), (1, 10), (0, 30)]);
    }
}
