//! What a replay is set up with: the settings, the traffic rule, the platform a trace becomes,
//! and the handler durations each function draws.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::clock::Time;
use crate::platform::dist::Dist;
use crate::platform::spec::{AliasSpec, PlatformSpec, Settings, VersionSpec};
use crate::platform::FunctionSpec;
use crate::policy::budget::PingBudget;
use crate::policy::router::WaitPolicy;
use crate::policy::{FunctionId, FunctionInfo};
use crate::sim::trace::{Arrival, DurationModel, Trace, TraceFunction};

/// The qualifier of every simulated function's first target, the one a client calling one
/// alias invokes.
pub const LIVE_ALIAS: &str = "live";

/// The alias of target `k` (from 0): `live`, then `live-2`, `live-3`, ... Target `k` is the
/// alias on published version `k + 1`; every version runs the same code (equal CodeSha256,
/// ARCHITECTURE.md invariant 3).
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
    /// The gateway routes: each request's target is [`router::choose`](crate::policy::router::choose) over the function's
    /// pool estimates at its arrival, the chosen pool's `start` taken in the same step; a
    /// throttle (refused before running) fails over to the next target, as the gateway does.
    /// Every request is sent at once: see [`Traffic::Waiting`] for the gateway's wait.
    Routed,
    /// Routed, and as the gateway does when the router expects a cold start: the request is
    /// held for the first environment of the function to free up when
    /// [`router::wait_or_cold`](crate::policy::router::wait_or_cold) expects that sooner than the init (default [`WaitPolicy`](crate::policy::router::WaitPolicy)),
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

    /// Whether requests pass through the gateway, which sees them start and end; clients
    /// that call Lambda directly are seen only as their ends are observed.
    pub fn through_gateway(self) -> bool {
        matches!(self, Traffic::Routed | Traffic::Waiting)
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
pub(super) const REAL_PAYLOAD: &[u8] = b"{}";
/// "Forever" for reclaim and lifetime: 10^12 s, about 31,700 years.
pub(super) const FOREVER_S: f64 = 1e12;
/// Lambda's largest timeout: a trace's long handlers run to their end rather than time out at
/// Lambda's default of 3 s, which a real deployment of them would have raised.
pub(super) const TIMEOUT_S: f64 = 900.0;
/// How many arrivals between two progress reports.
pub(super) const PROGRESS_EVERY: u64 = 1 << 16;

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
    /// How long the warmer policies assume Lambda keeps an idle environment (`None`: their
    /// default, 5 minutes), as the gateway's `[warmer] idle_lifetime_s` sets it.
    pub warmer_idle_lifetime: Option<Duration>,
    /// Whether the warmer policies pre-warm rises that come back each day, as the gateway's
    /// `[warmer] daily_rises` sets it.
    pub warmer_daily_rises: bool,
    /// Waiting replays (`+wait`): one burst ping for every this many requests held, as the
    /// gateway's `[[function]] wait.waiters_per_burst_ping` sets it.
    pub waiters_per_burst_ping: u32,
    /// Every function carries warmgate's extension: the policies hear of each on-demand
    /// environment's end as it ends ([`Policy::environment_ended`](crate::policy::Policy)),
    /// as the gateway does from the extension's reports.
    pub extension: bool,
    /// The extension also reports each call as it starts and ends (its proxy of the Runtime
    /// API): replayed directly, the policies hear how many calls run, as through the gateway
    /// ([`Policy::in_flight`](crate::policy::Policy)). Implies `extension`.
    pub call_reports: bool,
}

/// The fixed idle reclaim of deterministic mode: 10 minutes, the 2019 published measurement.
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
            warmer_idle_lifetime: None,
            warmer_daily_rises: true,
            waiters_per_burst_ping: WaitPolicy::default().waiters_per_burst_ping,
            extension: false,
            call_reports: false,
        }
    }
}

impl SimSettings {
    /// Whether environment ends are reported: with the extension, which reporting calls
    /// implies (the proxy is the extension's).
    pub fn ends_reported(&self) -> bool {
        self.extension || self.call_reports
    }

    /// What the warmer policies are told beyond their names.
    pub fn warmer_tuning(&self) -> crate::policy::registry::WarmerTuning {
        crate::policy::registry::WarmerTuning {
            idle_lifetime: self.warmer_idle_lifetime,
            refresh_margin: None,
            daily_rises: self.warmer_daily_rises,
            ends_reported: self.ends_reported(),
        }
    }

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
            // The trace's functions belong to many accounts, and a replayed policy sets them
            // all at once (fixed-peak at start): the control-plane rate is the gateway
            // controller's to meet (the emulator keeps it), not the replay's.
            control_plane_rate_per_s: f64::MAX,
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
pub(super) fn platform_name(f: FunctionId) -> String {
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
            architecture: tf.lambda.architecture,
            // The init the function was seen to take, where the trace knows it (deterministic
            // mode keeps its zero init).
            init_ms: match (settings.mode, tf.lambda.init_ms) {
                (Mode::Default, Some(seen)) => seen,
                _ => init_ms,
            },
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
/// `targets` aliases of [`target_name`] and the replay's ping budget.
pub fn function_infos(
    trace: &Trace,
    targets: usize,
    ping_budget: Option<PingBudget>,
) -> Vec<FunctionInfo> {
    let names: Vec<String> = (0..targets.max(1)).map(target_name).collect();
    trace
        .functions
        .iter()
        .map(|tf| FunctionInfo {
            name: tf.id.clone(),
            app: tf.app.clone(),
            memory_mb: tf.memory_mb,
            targets: names.clone(),
            ping_budget,
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
pub(super) struct HandlerDurations {
    model: DurationModel,
    rng: ChaCha8Rng,
    at_average: bool,
}

impl HandlerDurations {
    pub(super) fn new(function: &TraceFunction, f: FunctionId, settings: &SimSettings) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        rng.set_stream(f as u64);
        HandlerDurations {
            model: function.durations,
            rng,
            at_average: settings.mode == Mode::Deterministic,
        }
    }

    pub(super) fn next(&mut self, arrival: &Arrival) -> Duration {
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
