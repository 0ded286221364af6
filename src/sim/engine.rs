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
//! Each trace function becomes one platform function with the trace's memory, one published
//! version and an alias `live` on it; the policy's single target is `live`, and real
//! invocations and pings go there. Handler durations come from the trace (its per-invocation
//! duration, or a draw from the function's [`DurationModel`]) and are handed to the platform
//! with [`Platform::invoke_replayed`]; each function draws from its own seeded stream, so every
//! policy replays the same durations for the same arrivals.
//!
//! Figures count what arrives at or after the warm-up (default: the first hour). The policies
//! see the warm-up; the figures do not, because at a trace's first minute every function looks
//! cold, which no real day is.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::trace::{Arrival, DurationModel, Trace, TraceFunction};
use crate::clock::Time;
use crate::platform::dist::Dist;
use crate::platform::spec::{AliasSpec, Architecture, PlatformSpec, Settings, VersionSpec};
use crate::platform::{
    ControlError, FunctionSpec, Invocation, InvokeRequest, Platform, Rejection, Snapshot, Start,
};
use crate::policy::cost::{self, Prices, Usage};
use crate::policy::{Action, FunctionId, FunctionInfo, Observation, Policy, StartSeen};

/// The qualifier every simulated function is invoked through.
pub const LIVE_ALIAS: &str = "live";
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

/// The platform a replay runs on: one function per trace function, with one published
/// version and the alias [`LIVE_ALIAS`] on it.
pub fn platform_spec(trace: &Trace, settings: &SimSettings, reclaim: Reclaim) -> PlatformSpec {
    let init_ms = settings.init_ms();
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
            versions: vec![VersionSpec::default()],
            aliases: vec![AliasSpec {
                name: LIVE_ALIAS.into(),
                version: "1".into(),
                routing: Default::default(),
                description: String::new(),
            }],
            ..FunctionSpec::named(platform_name(f))
        })
        .collect();
    PlatformSpec {
        settings: settings.platform_settings(reclaim),
        functions,
    }
}

/// What the policies learn of the trace's functions before any traffic.
pub fn function_infos(trace: &Trace) -> Vec<FunctionInfo> {
    trace
        .functions
        .iter()
        .map(|tf| FunctionInfo {
            name: tf.id.clone(),
            app: tf.app.clone(),
            memory_mb: tf.memory_mb,
            targets: vec![LIVE_ALIAS.into()],
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

/// An observation waiting for its completion time.
struct Pending {
    at: Time,
    seq: u64,
    observation: Observation,
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

/// Observations in completion order (ties in the order the invocations were made).
#[derive(Default)]
struct Completions {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl Completions {
    fn push(&mut self, at: Time, observation: Observation) {
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            at,
            seq: self.seq,
            observation,
        }));
    }

    fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(p)| p.at)
    }

    fn pop(&mut self) -> Option<Observation> {
        self.heap.pop().map(|Reverse(p)| p.observation)
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
}

/// What a replay counts after the warm-up, as it goes.
#[derive(Debug, Default)]
struct Tally {
    functions: Vec<FunctionTally>,
    pings: u64,
    ping_throttles: u64,
    /// Requests, on-demand and provisioned-duration GB-s; provisioned allocation comes from
    /// the platform's snapshots.
    usage: Usage,
    provisioning_refused: u64,
}

impl Tally {
    fn new(functions: usize) -> Self {
        Tally {
            functions: vec![FunctionTally::default(); functions],
            ..Tally::default()
        }
    }

    /// Counts one request, real or ping, with what the platform made of it.
    fn record(&mut self, f: FunctionId, ping: bool, outcome: &Result<Invocation, Rejection>) {
        let throttled = outcome.is_err();
        if ping {
            self.pings += 1;
            self.ping_throttles += u64::from(throttled);
        } else {
            let tally = &mut self.functions[f];
            tally.invocations += 1;
            tally.throttles += u64::from(throttled);
            tally.cold_starts += u64::from(matches!(outcome, Ok(i) if i.start == Start::Cold));
        }
        if let Ok(invocation) = outcome {
            // A throttled request is not billed; an admitted one is, init included on demand.
            self.usage.requests += 1;
            let gb_s = cost::gb_s(invocation.billed.as_millis() as f64, invocation.memory_mb);
            match invocation.start {
                Start::Provisioned => self.usage.provisioned_duration_gb_s += gb_s,
                Start::Warm | Start::Cold => self.usage.on_demand_gb_s += gb_s,
            }
        }
    }
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
    /// Wall-clock time of the replay, in seconds (information only).
    pub replay_s: f64,
    /// Each counted function's cold-start share, sorted ascending: the CDF plot's data.
    pub function_cold_shares: Vec<f64>,
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

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Figures {
    fn new(policy: String, tally: &Tally, boundary: &Snapshot, end: &Snapshot) -> Self {
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
        let usage = Usage {
            provisioned_gb_s: provisioned_end - provisioned_start,
            ..tally.usage
        };
        Figures {
            policy,
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
            provisioned_gb_s: usage.provisioned_gb_s,
            provisioning_refused: tally.provisioning_refused,
            on_demand_gb_s: usage.on_demand_gb_s,
            bill_usd: cost::bill(&usage, &Prices::us_east_1(Architecture::X86_64)),
            idle_gb_s: idle_end - idle_start,
            replay_s: 0.0,
            function_cold_shares: shares,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The replay
// ---------------------------------------------------------------------------------------------

/// A policy to replay, and what the platform does with idle environments under it.
pub struct Candidate {
    /// The name its figures carry.
    pub label: String,
    pub policy: Box<dyn Policy>,
    pub reclaim: Reclaim,
}

impl Candidate {
    /// A policy on the platform as Lambda behaves.
    pub fn new(policy: Box<dyn Policy>) -> Self {
        Candidate {
            label: policy.name(),
            policy,
            reclaim: Reclaim::AsLambda,
        }
    }

    /// The reference bound: no policy, and environments never reclaimed once created.
    pub fn never_reclaim() -> Self {
        Candidate {
            label: "never-reclaim".into(),
            policy: Box::new(crate::policy::baselines::none::NoPolicy),
            reclaim: Reclaim::Never,
        }
    }
}

/// One replay in progress.
struct Replay<'t> {
    trace: &'t Trace,
    warmup: Duration,
    platform: Platform,
    policy: Box<dyn Policy>,
    names: Vec<String>,
    ping_payload: Vec<u8>,
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
        Replay {
            trace,
            warmup: settings.warmup,
            platform,
            policy: candidate.policy,
            names: (0..trace.functions.len()).map(platform_name).collect(),
            ping_payload,
            durations: trace
                .functions
                .iter()
                .enumerate()
                .map(|(f, tf)| HandlerDurations::new(tf, f, settings))
                .collect(),
            completions: Completions::default(),
            tally: Tally::new(trace.functions.len()),
            now: Duration::ZERO,
            wake: None,
            wake_stale: false,
            boundary: None,
        }
    }

    fn counted(&self, at: Time) -> bool {
        at >= self.warmup
    }

    /// Runs the replay to the end of the trace; `progress` hears of arrivals replayed.
    fn run(mut self, label: String, progress: &dyn Fn(u64)) -> Figures {
        let end = self.trace.duration;
        let infos = function_infos(self.trace);
        let actions = self.policy.start(&infos, Duration::ZERO);
        self.carry_out(actions);
        self.refresh_wake();
        let mut arrivals = Arrivals::new(&self.trace.functions);
        let mut replayed = 0u64;
        loop {
            let next_done = self.completions.peek();
            // The trace spans [0, end): a wake-up at the end is past it.
            let next_wake = self.due_wake().filter(|&w| w < end);
            let next_arrival = arrivals.peek();
            let Some(t) = [next_done, next_wake, next_arrival]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            self.now = self.now.max(t);
            self.mark_warmup_boundary(t);
            if next_done == Some(t) {
                let observation = self.completions.pop().expect("peeked");
                self.policy.observe(&observation);
                self.wake_stale = false;
                self.refresh_wake();
            } else if next_wake == Some(t) {
                let actions = self.policy.act(self.now);
                self.carry_out(actions);
                self.refresh_wake();
                self.wake_stale = self.wake.is_some_and(|w| w <= self.now);
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
        Figures::new(label, &self.tally, &boundary, &last)
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

    /// A real invocation arrives.
    fn invoke(&mut self, f: FunctionId, arrival: &Arrival) {
        let duration = self.durations[f].next(arrival);
        let request = InvokeRequest {
            function: &self.names[f],
            qualifier: Some(LIVE_ALIAS),
            payload: REAL_PAYLOAD,
            client_context: None,
        };
        let outcome = self
            .platform
            .invoke_replayed(arrival.at, &request, duration);
        self.settle(f, arrival.at, false, outcome);
    }

    /// Counts a request's outcome and schedules what the policy will observe of it.
    fn settle(
        &mut self,
        f: FunctionId,
        at: Time,
        ping: bool,
        outcome: Result<Invocation, Rejection>,
    ) {
        if self.counted(at) {
            self.tally.record(f, ping, &outcome);
        }
        let (done, observation) = match &outcome {
            Ok(invocation) => (invocation.completes_at, observed(f, invocation)),
            Err(rejection) => {
                if let Rejection::NotFound { message } = rejection {
                    panic!("the replay's own function is not found: {message}");
                }
                (at, throttled(f, at, ping))
            }
        };
        self.completions.push(done, observation);
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
        let known = function < self.names.len() && target == 0;
        assert!(
            known,
            "policy {} acted on function {function} target {target}; the trace has {} functions \
             with the one target {LIVE_ALIAS:?}",
            self.policy.name(),
            self.names.len()
        );
    }

    /// `count` concurrent pings, so that `count` distinct environments are busy at once.
    fn ping(&mut self, f: FunctionId, target: usize, count: u32) {
        self.check_target(f, target);
        for _ in 0..count {
            let request = InvokeRequest {
                function: &self.names[f],
                qualifier: Some(LIVE_ALIAS),
                payload: &self.ping_payload,
                client_context: None,
            };
            let outcome = self.platform.invoke(self.now, &request);
            self.settle(f, self.now, true, outcome);
        }
    }

    fn set_provisioned(&mut self, f: FunctionId, target: usize, concurrency: u32) {
        self.check_target(f, target);
        let name = &self.names[f];
        let result = if concurrency == 0 {
            match self.platform.delete_provisioned(self.now, name, LIVE_ALIAS) {
                Err(ControlError::ProvisionedConfigNotFound(_)) => Ok(()),
                other => other,
            }
        } else {
            self.platform
                .put_provisioned(self.now, name, LIVE_ALIAS, concurrency)
                .map(|_| ())
        };
        self.tally.provisioning_refused += u64::from(result.is_err());
    }
}

fn observed(f: FunctionId, invocation: &Invocation) -> Observation {
    Observation {
        function: f,
        target: 0,
        arrived: invocation.started_at,
        duration: invocation.duration,
        init: invocation.init,
        start: match invocation.start {
            Start::Warm => StartSeen::Warm,
            Start::Cold => StartSeen::Cold,
            Start::Provisioned => StartSeen::Provisioned,
        },
        ping: invocation.ping,
        throttled: false,
    }
}

fn throttled(f: FunctionId, at: Time, ping: bool) -> Observation {
    Observation {
        function: f,
        target: 0,
        arrived: at,
        duration: Duration::ZERO,
        init: None,
        start: StartSeen::Unknown,
        ping,
        throttled: true,
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
