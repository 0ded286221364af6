//! The Lambda platform model: the ground truth for cold starts.
//!
//! A pure, discrete-event model of what Lambda does with invocations: functions with versions
//! and aliases; execution environments that initialise, serve, sit idle and are reclaimed;
//! concurrency limits and the scaling rate; provisioned concurrency with its allocation delay
//! and spillover; GB-s accounting. Every call takes `now`; nothing here reads a clock or does
//! I/O (ARCHITECTURE.md invariant 1), so the emulator (real time) and the simulator (virtual time)
//! drive the very same model (invariant 2).
//!
//! Time only moves forward. Each call first processes the scheduled events (an invocation
//! finishing, an idle environment being reclaimed, an allocation becoming READY) up to `now`,
//! each at its own time, so the accounting is exact however rarely the model is called.

mod control;
pub mod dist;
pub mod handler;
mod invoke;
mod provisioned;
mod snapshot;
pub mod spec;
pub mod stats;

pub use provisioned::{ProvisionedStatus, ProvisionedView};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::clock::Time;
pub use spec::{FunctionSpec, PlatformSpec, Settings, PING_HOLD_KEY};
pub use stats::{EnvironmentCounts, Snapshot, VersionStats};

/// An on-demand environment that ended ([`Platform::record_ends`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedEnvironment {
    pub function: String,
    /// When it was created (its init began).
    pub created: Time,
    pub at: Time,
}

/// Identifies an execution environment for the platform's lifetime.
pub type EnvId = u64;

/// The documented scaling-rate window: N new environments per 10 s per function.
const SCALING_WINDOW: Duration = Duration::from_secs(10);

/// Why an invocation was throttled (the `Reason` of TooManyRequestsException).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ThrottleReason {
    /// The account's unreserved concurrency is in use.
    ConcurrentInvocationLimitExceeded,
    /// The function's scaling rate is spent. AWS documents no Reason for the scaling-rate
    /// throttle; it is a per-function rate, so the per-function rate Reason is the nearest.
    FunctionInvocationRateLimitExceeded,
    /// The function's reserved concurrency is in use.
    ReservedFunctionConcurrentInvocationLimitExceeded,
}

impl ThrottleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConcurrentInvocationLimitExceeded => "ConcurrentInvocationLimitExceeded",
            Self::FunctionInvocationRateLimitExceeded => "FunctionInvocationRateLimitExceeded",
            Self::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
        }
    }
}

/// How an invocation met its environment: the platform's ground truth, what a REPORT line
/// tells the gateway, and what the policies learn (as `Option<Start>`, `None` where the gateway
/// could not tell) are this one enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// An idle on-demand environment.
    Warm,
    /// A new on-demand environment: the request waited for its init (or its SnapStart restore).
    Cold,
    /// An environment of a provisioned-concurrency pool.
    Provisioned,
}

impl Start {
    /// The label in metrics and logs; `unknown` where the gateway could not tell.
    pub fn label(start: Option<Start>) -> &'static str {
        match start {
            Some(Start::Warm) => "warm",
            Some(Start::Cold) => "cold",
            Some(Start::Provisioned) => "provisioned",
            None => "unknown",
        }
    }
}

/// An invocation as the platform sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub function: &'a str,
    pub qualifier: Option<&'a str>,
    pub payload: &'a [u8],
    /// The decoded `X-Amz-Client-Context`, if any.
    pub client_context: Option<&'a serde_json::Value>,
}

/// An admitted invocation: what happened and what the handler answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub executed_version: String,
    pub environment: EnvId,
    pub start: Start,
    /// Init the caller waited for (cold starts only).
    pub init: Option<Duration>,
    /// SnapStart restore the caller waited for, in place of init (cold starts of a published
    /// version with SnapStart on).
    pub restore: Option<Duration>,
    /// Handler duration.
    pub duration: Duration,
    pub billed: Duration,
    pub memory_mb: u32,
    pub max_memory_used_mb: u32,
    pub payload: Vec<u8>,
    /// `Unhandled` when the handler failed or timed out.
    pub function_error: Option<&'static str>,
    pub ping: bool,
    /// Sent to a qualifier with provisioned concurrency, served on demand.
    pub spillover: bool,
    pub started_at: Time,
    /// When the caller gets the answer: start + init (or restore) + duration.
    pub completes_at: Time,
}

impl Invocation {
    /// Time the caller waits for the platform.
    pub fn latency(&self) -> Duration {
        self.completes_at - self.started_at
    }

    /// The REPORT line's `Billed Restore Duration`: the restore in whole ms. Lambda bills it
    /// apart from `Billed Duration` ("Monitoring for Lambda SnapStart").
    pub fn billed_restore(&self) -> Option<Duration> {
        self.restore.map(|r| Duration::from_millis(ceil_ms(r)))
    }

    /// Everything billed for it: its billed duration and, after a SnapStart restore, the
    /// restore's.
    pub fn billed_total(&self) -> Duration {
        self.billed + self.billed_restore().unwrap_or_default()
    }

    /// What its cold start took before the handler ran: the init, or a SnapStart restore.
    pub fn start_delay(&self) -> Option<Duration> {
        self.init.or(self.restore)
    }
}

/// An invocation the platform refused before running it.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Unknown function or qualifier; `message` is Lambda's.
    NotFound {
        message: String,
    },
    Throttled {
        reason: ThrottleReason,
    },
}

/// A refused control-plane request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    ProvisionedConfigNotFound(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// Over the account's control-plane request rate.
    #[error("Rate exceeded")]
    Throttled,
}

/// A function as the control plane reports it.
#[derive(Debug)]
pub struct Function {
    pub spec: FunctionSpec,
    pub arn: String,
    /// `$LATEST` first, then published versions 1, 2, ...
    pub versions: Vec<Version>,
    pub aliases: Vec<Alias>,
    provisioned: Vec<ProvisionedConfig>,
    ping_payload: Vec<u8>,
    in_flight_on_demand: u32,
    provisioned_allocated: u32,
    recent_env_starts: VecDeque<Time>,
}

impl Function {
    /// Concurrency the function holds: on-demand executions plus allocated provisioned
    /// environments (provisioned concurrency counts whether in use or not).
    fn usage(&self) -> u32 {
        self.in_flight_on_demand + self.provisioned_allocated
    }

    fn version_index(&self, version: &str) -> Option<usize> {
        if version == "$LATEST" {
            return Some(0);
        }
        let n: usize = version.parse().ok()?;
        (n >= 1 && n < self.versions.len()).then_some(n)
    }

    fn provisioned_index(&self, qualifier: &str) -> Option<usize> {
        self.provisioned
            .iter()
            .position(|c| c.active && c.qualifier == qualifier)
    }

    fn qualified_arn(&self, qualifier: Option<&str>) -> String {
        match qualifier {
            Some(q) => format!("{}:{q}", self.arn),
            None => self.arn.clone(),
        }
    }
}

/// A version of a function.
#[derive(Debug)]
pub struct Version {
    /// `$LATEST` or the version number.
    pub name: String,
    pub code_sha256: String,
    pub code_size: u64,
    pub description: String,
    idle: Vec<EnvId>,
    stats: VersionStats,
}

/// An alias of a function.
#[derive(Debug, Clone)]
pub struct Alias {
    pub name: String,
    pub version: String,
    pub routing: Vec<(String, f64)>,
    pub description: String,
}

#[derive(Debug)]
struct ProvisionedConfig {
    qualifier: String,
    version: usize,
    active: bool,
    requested: u32,
    status: ProvisionedStatus,
    status_reason: Option<String>,
    last_modified: Time,
    generation: u64,
    idle: Vec<EnvId>,
    members: u32,
    busy: u32,
}

#[derive(Debug)]
struct Env {
    function: usize,
    version: usize,
    /// Index of the provisioned configuration whose pool it belongs to.
    pool: Option<usize>,
    created: Time,
    /// When it joined its provisioned pool.
    pooled_since: Time,
    /// End of init.
    ready_at: Time,
    busy: bool,
    busy_until: Time,
    /// Idle time before reclaim, drawn when it last became busy.
    idle_ttl: Duration,
    /// End of its lifetime, whatever its use.
    expires: Time,
    /// Bumped each time it is taken, so that a stale reclaim does nothing.
    generation: u64,
    /// Remove when the current invocation ends (timed out, or leaving a shrunk pool).
    discard: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Complete(EnvId),
    Reclaim(EnvId, u64),
    ProvisionReady {
        function: usize,
        config: usize,
        generation: u64,
    },
}

/// The platform: every function, environment and pending event.
#[derive(Debug)]
pub struct Platform {
    settings: Settings,
    rng: ChaCha8Rng,
    functions: Vec<Function>,
    by_name: HashMap<String, usize>,
    /// On-demand environments that ended since last taken, where recorded
    /// ([`Platform::record_ends`]).
    ended: Option<Vec<EndedEnvironment>>,
    envs: HashMap<EnvId, Env>,
    next_env: EnvId,
    events: BinaryHeap<Reverse<(Time, u64, Event)>>,
    next_seq: u64,
    now: Time,
    unreserved_usage: u32,
    unreserved_limit: u32,
    not_found: u64,
    /// The control-plane rate's bucket: tokens, and when it was last refilled.
    control_tokens: f64,
    control_refilled: Time,
}

fn ms(d: f64) -> Duration {
    Duration::from_secs_f64(d.max(0.0) / 1000.0)
}

fn ceil_ms(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000) as u64
}

/// Lambda bills provisioned concurrency from enabling to disabling, rounded up to 5 minutes:
/// the seconds billed for an environment provisioned for `held`. Settled when it is released;
/// a snapshot counts one still provisioned to the second.
pub fn provisioned_billed_s(held: Duration) -> f64 {
    const STEP_S: f64 = 300.0;
    (held.as_secs_f64() / STEP_S).ceil() * STEP_S
}

impl Platform {
    /// A platform running `spec`, at time zero. The spec is assumed valid
    /// ([`PlatformSpec::validate`]).
    pub fn new(spec: PlatformSpec) -> Self {
        let settings = spec.settings;
        let reserved: u32 = spec
            .functions
            .iter()
            .filter_map(|f| f.reserved_concurrency)
            .sum();
        let mut platform = Platform {
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
            unreserved_limit: settings.account_concurrency.saturating_sub(reserved),
            control_tokens: settings.control_plane_rate_per_s.max(1.0),
            settings,
            functions: Vec::new(),
            by_name: HashMap::new(),
            ended: None,
            envs: HashMap::new(),
            next_env: 1,
            events: BinaryHeap::new(),
            next_seq: 0,
            now: Duration::ZERO,
            unreserved_usage: 0,
            not_found: 0,
            control_refilled: Duration::ZERO,
        };
        for f in spec.functions {
            platform.add_function(f);
        }
        platform
    }

    fn add_function(&mut self, spec: FunctionSpec) {
        let s = &self.settings;
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            s.region, s.account_id, spec.name
        );
        let version = |name: String, code: &str, description: String| Version {
            name,
            code_sha256: handler::code_sha256(code),
            code_size: code.len() as u64 + 1024,
            description,
            idle: Vec::new(),
            stats: VersionStats::default(),
        };
        let mut versions = vec![version("$LATEST".into(), &spec.code, String::new())];
        for (i, v) in spec.versions.iter().enumerate() {
            let code = v.code.as_deref().unwrap_or(&spec.code);
            versions.push(version((i + 1).to_string(), code, v.description.clone()));
        }
        let aliases = spec
            .aliases
            .iter()
            .map(|a| Alias {
                name: a.name.clone(),
                version: a.version.clone(),
                routing: a.routing.iter().map(|(v, w)| (v.clone(), *w)).collect(),
                description: a.description.clone(),
            })
            .collect();
        let ping_payload = spec
            .ping_payload
            .as_deref()
            .unwrap_or(&s.ping.payload)
            .trim()
            .as_bytes()
            .to_vec();
        let initial = spec.provisioned.clone();
        let index = self.functions.len();
        self.by_name.insert(spec.name.clone(), index);
        self.functions.push(Function {
            spec,
            arn,
            versions,
            aliases,
            provisioned: Vec::new(),
            ping_payload,
            in_flight_on_demand: 0,
            provisioned_allocated: 0,
            recent_env_starts: VecDeque::new(),
        });
        for p in initial {
            // Configured at start: READY at once, as if allocated before the platform began.
            let name = self.functions[index].spec.name.clone();
            if self
                .put_provisioned(Duration::ZERO, &name, &p.qualifier, p.concurrency)
                .is_ok()
            {
                let config = self.functions[index]
                    .provisioned_index(&p.qualifier)
                    .expect("just put");
                let generation = self.functions[index].provisioned[config].generation;
                self.provision_ready(Duration::ZERO, index, config, generation, true);
            }
        }
    }

    /// The settings the platform runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The latest time the model has seen.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Every function, in declaration order.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.functions.iter()
    }

    /// A function by name.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.by_name.get(name).map(|&i| &self.functions[i])
    }

    /// Ground truth, cheaply: idle on-demand environments of `version` (`$LATEST` or a
    /// published version number) of function `function`, as of the last [`Platform::advance`]
    /// (call it first to count at a given time). Provisioned environments are not counted;
    /// 0 for an unknown function or version. Read-only; [`Platform::snapshot`] gives
    /// everything, at a cost per environment.
    pub fn idle_environments(&self, function: &str, version: &str) -> u32 {
        self.function(function)
            .and_then(|f| Some(f.versions[f.version_index(version)?].idle.len() as u32))
            .unwrap_or(0)
    }

    /// From now on, keeps the on-demand environments that end (reclaimed idle, or at the end
    /// of their lifetime) for [`Platform::take_ended`]: what Lambda tells an environment's
    /// extensions with its SHUTDOWN event.
    pub fn record_ends(&mut self) {
        self.ended.get_or_insert_with(Vec::new);
    }

    /// The on-demand environments that ended since last asked, in the order they ended.
    pub fn take_ended(&mut self) -> Vec<EndedEnvironment> {
        self.ended.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// When the next scheduled event falls, if any: the simulator jumps there.
    pub fn next_event_at(&self) -> Option<Time> {
        self.events.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Processes every event up to `now` and returns the time the model now stands at
    /// (`now`, or the latest time already seen if `now` is earlier).
    pub fn advance(&mut self, now: Time) -> Time {
        while let Some(Reverse((at, _, event))) = self.events.peek().copied() {
            if at > now {
                break;
            }
            self.events.pop();
            self.handle(at, event);
        }
        self.now = self.now.max(now);
        self.now
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.next_seq += 1;
        self.events.push(Reverse((at, self.next_seq, event)));
    }

    fn handle(&mut self, at: Time, event: Event) {
        match event {
            Event::Complete(id) => self.complete(at, id),
            Event::Reclaim(id, generation) => {
                let Some(env) = self.envs.get(&id) else {
                    return;
                };
                if env.busy || env.generation != generation {
                    return;
                }
                let (f, v) = (env.function, env.version);
                let version = &mut self.functions[f].versions[v];
                if let Some(pos) = version.idle.iter().position(|&e| e == id) {
                    version.idle.remove(pos);
                }
                self.remove_env(at, id);
            }
            Event::ProvisionReady {
                function,
                config,
                generation,
            } => self.provision_ready(at, function, config, generation, false),
        }
    }

    /// An invocation ends at `at`: the environment becomes idle, or goes.
    fn complete(&mut self, at: Time, id: EnvId) {
        let Some(env) = self.envs.get_mut(&id) else {
            return;
        };
        env.busy = false;
        let (f, v, pool) = (env.function, env.version, env.pool);
        let (discard, expires, idle_ttl, generation) =
            (env.discard, env.expires, env.idle_ttl, env.generation);
        match pool {
            Some(c) => {
                let config = &mut self.functions[f].provisioned[c];
                config.busy -= 1;
                let shrinking = !config.active || config.members > config.requested;
                if discard || (shrinking && config.status != ProvisionedStatus::InProgress) {
                    self.remove_env(at, id);
                } else {
                    config.idle.push(id);
                }
            }
            None => {
                self.change_on_demand(f, -1);
                if discard || at >= expires {
                    self.remove_env(at, id);
                } else {
                    self.functions[f].versions[v].idle.push(id);
                    self.schedule((at + idle_ttl).min(expires), Event::Reclaim(id, generation));
                }
            }
        }
    }

    /// Removes an idle (or just finished) environment at `at`, settling its GB-s (a
    /// provisioned one's billed time rounded up, [`provisioned_billed_s`]).
    fn remove_env(&mut self, at: Time, id: EnvId) {
        let env = self.envs.remove(&id).expect("removing a live environment");
        let function = &mut self.functions[env.function];
        let gb = stats::gigabytes(function.spec.memory_mb);
        match env.pool {
            Some(c) => {
                let config = &mut function.provisioned[c];
                config.members -= 1;
                function.provisioned_allocated -= 1;
                let unreserved = function.spec.reserved_concurrency.is_none();
                let stats = &mut function.versions[env.version].stats;
                stats.provisioned_gb_s += provisioned_billed_s(at - env.pooled_since) * gb;
                if unreserved {
                    self.unreserved_usage -= 1;
                }
            }
            None => {
                let stats = &mut function.versions[env.version].stats;
                stats.idle_gb_s += at.saturating_sub(env.busy_until).as_secs_f64() * gb;
                stats.environment_gb_s += (at - env.created).as_secs_f64() * gb;
                stats.environments_reclaimed += 1;
                if let Some(ended) = self.ended.as_mut() {
                    ended.push(EndedEnvironment {
                        function: function.spec.name.clone(),
                        created: env.created,
                        at,
                    });
                }
            }
        }
    }

    /// Moves the function's on-demand in-flight count, and the account's with it.
    fn change_on_demand(&mut self, f: usize, delta: i32) {
        let function = &mut self.functions[f];
        function.in_flight_on_demand = function.in_flight_on_demand.saturating_add_signed(delta);
        if function.spec.reserved_concurrency.is_none() {
            self.unreserved_usage = self.unreserved_usage.saturating_add_signed(delta);
        }
    }

    fn function_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The version a qualifier names; an alias draws between its versions by weight.
    fn resolve(&mut self, f: usize, qualifier: Option<&str>) -> Option<usize> {
        let function = &self.functions[f];
        let Some(q) = qualifier else { return Some(0) };
        if let Some(v) = function.version_index(q) {
            return Some(v);
        }
        let alias = function.aliases.iter().find(|a| a.name == q)?;
        let mut chosen = &alias.version;
        if !alias.routing.is_empty() {
            let draw: f64 = self.rng.random();
            let mut acc = 0.0;
            for (version, weight) in &alias.routing {
                acc += weight;
                if draw < acc {
                    chosen = version;
                    break;
                }
            }
        }
        function.version_index(chosen)
    }

    /// The version an alias or version qualifier names, without weighted routing: what
    /// GetFunctionConfiguration reports.
    pub fn resolve_version(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<&Version, ControlError> {
        let function = self
            .function(name)
            .ok_or_else(|| ControlError::NotFound(self.not_found_message(name, qualifier)))?;
        let q = qualifier.unwrap_or("$LATEST");
        let version = function
            .version_index(q)
            .or_else(|| {
                let alias = function.aliases.iter().find(|a| a.name == q)?;
                function.version_index(&alias.version)
            })
            .ok_or_else(|| ControlError::NotFound(self.not_found_message(name, qualifier)))?;
        Ok(&function.versions[version])
    }

    fn not_found_message(&self, name: &str, qualifier: Option<&str>) -> String {
        let s = &self.settings;
        let base = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            s.region, s.account_id
        );
        match qualifier {
            Some(q) => format!("Function not found: {base}:{q}"),
            None => format!("Function not found: {base}"),
        }
    }
}

#[cfg(test)]
mod tests;
