//! Policy: the decisions, in pure code.
//!
//! Everything under this folder takes observations and `now` and returns decisions. It never
//! reads the wall clock and does no I/O (ARCHITECTURE.md invariant 1), so the live gateway and the
//! simulator drive exactly the same code, and a figure from the simulator is a figure about
//! the product.
//!
//! A keep-alive or provisioning policy implements [`Policy`]: the driver (the simulator's
//! engine, or the gateway's warmer and provisioner) tells it about every invocation it sees,
//! calls [`Policy::act`] whenever the policy asked to be woken, and carries out the
//! [`Action`]s it returns (pings, provisioned-concurrency changes).

pub mod baselines;
pub mod breaker;
pub mod budget;
pub mod cost;
pub mod driver;
pub mod forecast;
pub mod keepers;
pub mod pool;
pub mod provisioning;
pub mod registry;
pub mod round;
pub mod router;
pub mod warmer;

use std::time::Duration;

use crate::clock::Time;

/// Index of a function in the slice given to [`Policy::start`].
pub type FunctionId = usize;
/// Index of a target (alias or version) in its function's [`FunctionInfo::targets`].
pub type TargetId = usize;

/// What a policy knows of a function before any traffic.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    /// Application the function belongs to; Shahrad et al.'s policy works per application.
    pub app: String,
    pub memory_mb: u32,
    /// Qualifiers of the targets (aliases or versions) that run the same code.
    pub targets: Vec<String>,
    /// The ping budget the driver enforces for the function (`None`: none): pings a planner
    /// asks for beyond it are refused without the planner knowing which, so it should plan
    /// within it.
    pub ping_budget: Option<budget::PingBudget>,
}

pub use crate::platform::Start;

/// One invocation the driver saw, real or ping, reported when it completes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub function: FunctionId,
    pub target: TargetId,
    /// When the request arrived.
    pub arrived: Time,
    /// Handler duration (without init).
    pub duration: Duration,
    /// Init duration, on a cold start.
    pub init: Option<Duration>,
    /// How it met its environment; `None` without a log tail: the driver cannot tell (never
    /// assume warm).
    pub start: Option<Start>,
    pub ping: bool,
    /// Refused with 429: it did not run.
    pub throttled: bool,
}

/// The least each ping of a round of several asks its handler to hold its environment, so
/// that the round's pings overlap and reach distinct environments despite jitter on the
/// way; [`round_hold`] adds what the round's size spreads its arrivals by. A lone ping asks
/// for no hold and returns at once: it costs a fraction of a held one and frees the
/// environment for real traffic sooner. Both drivers, the gateway's warmer and the
/// simulator, send rounds so.
///
/// Short, because a held environment is billed for the hold and is busy for real traffic
/// too (a call that meets a round's hold starts cold). The gateway checks every round and
/// lengthens a function's hold when its pings arrived further apart than this
/// (`policy::round`), so the least is set by what a round spreads on loopback rather than
/// by a guess at the network (docs/warmer/history.md, "Round hold").
pub const ROUND_HOLD: std::time::Duration = std::time::Duration::from_millis(5);

/// What each ping of a round adds to its hold: the gateway sends a round's pings one after
/// another, so a larger round's arrivals spread wider (about 0.1 ms a ping on loopback).
pub const ROUND_HOLD_PER_PING: std::time::Duration = std::time::Duration::from_micros(250);

/// The hold each ping of a round of `count` asks for, from the function's base hold
/// (`least`, [`ROUND_HOLD`] unless the gateway's check lengthened it): whole milliseconds,
/// as a handler reads it and Lambda bills it.
pub fn round_hold(least: std::time::Duration, count: u32) -> std::time::Duration {
    let hold = least + ROUND_HOLD_PER_PING * count;
    std::time::Duration::from_millis(hold.as_micros().div_ceil(1000) as u64)
}

/// What kept a function's pool when a policy asked for a round of pings: the rule behind
/// the round. Both drivers count pings by it (the gateway's
/// `warmgate_keep_alive_pings_total`, the simulator's `--pings` file), so that where the
/// pings go can be read rather than guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeptBy {
    /// A fixed schedule (the baselines).
    Schedule,
    /// A function never called yet, kept warm for its first call.
    Unseen,
    /// Too few idle times to forecast yet: kept warm a while after each call.
    Fallback,
    /// The forecast: an arrival likely soon, the pool sized for it.
    Forecast,
    /// A quiet gap kept through: an arrival becomes likely within the bridge.
    Bridge,
    /// The floor: a call not long ago, none likely soon.
    Floor,
    /// A depth the forecast fell below, held a few refreshes.
    Held,
    /// One environment above the calls in flight that fill the pool.
    Headroom,
    /// A round that also starts a kept environment's successor before its lifetime ends.
    Rotation,
    /// A rise seen at this minute two days running or more, expected again.
    Daily,
}

impl KeptBy {
    pub const ALL: [KeptBy; 10] = [
        KeptBy::Schedule,
        KeptBy::Unseen,
        KeptBy::Fallback,
        KeptBy::Forecast,
        KeptBy::Bridge,
        KeptBy::Floor,
        KeptBy::Held,
        KeptBy::Headroom,
        KeptBy::Rotation,
        KeptBy::Daily,
    ];

    /// The label the metrics and the simulator's files use.
    pub fn as_str(self) -> &'static str {
        match self {
            KeptBy::Schedule => "schedule",
            KeptBy::Unseen => "unseen",
            KeptBy::Fallback => "fallback",
            KeptBy::Forecast => "forecast",
            KeptBy::Bridge => "bridge",
            KeptBy::Floor => "floor",
            KeptBy::Held => "held",
            KeptBy::Headroom => "headroom",
            KeptBy::Rotation => "rotation",
            KeptBy::Daily => "daily",
        }
    }
}

/// What a policy asks the driver to do, now.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send `count` concurrent keep-alive pings to a target, so that `count` distinct
    /// environments are warm afterwards.
    Ping {
        function: FunctionId,
        target: TargetId,
        count: u32,
        kept_by: KeptBy,
    },
    /// Set provisioned concurrency on a target; 0 removes it.
    SetProvisioned {
        function: FunctionId,
        target: TargetId,
        concurrency: u32,
    },
}

/// A rise a warmer remembers: the minute it came in on the policy clock, the most calls that
/// ran in it, on how many days running a rise came within a minute of it, and whether it is
/// therefore expected a day later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseSeen {
    pub minute: i64,
    pub peak: u32,
    pub days: u32,
    pub expected: bool,
}

/// A keep-alive or provisioning policy. Pure: time arrives as arguments.
pub trait Policy: Send {
    /// Short name, as the simulator's table prints it.
    fn name(&self) -> String;

    /// Learns the functions at `now`, before any traffic; may act at once.
    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action>;

    /// Learns of one invocation (in completion order; `arrived` may be earlier than times
    /// already seen by `act`).
    fn observe(&mut self, observation: &Observation);

    /// At `now` the driver has `requests` real requests of `function` in flight: sent to
    /// Lambda and not yet answered, each holding an environment. A driver that sees requests
    /// leave (the gateway, and the simulator replaying it) says so at each start and end;
    /// clients that call Lambda directly are counted only where their functions report
    /// their calls (ARCHITECTURE.md, "Calls reported"). Unlike observations, which come
    /// when a call ends, this is exact while calls run.
    fn in_flight(&mut self, function: FunctionId, requests: u32, now: Time) {
        let _ = (function, requests, now);
    }

    /// A round of `function`'s pings answered at `now` reached `missed` fewer environments
    /// than it had pings (two named the same environment: `round`), and the driver will hold
    /// the next round's pings longer. A policy that counts the environments its rounds reach
    /// may plan again at once, to start the ones missed before they are wanted.
    fn round_missed(&mut self, function: FunctionId, missed: u32, now: Time) {
        let _ = (function, missed, now);
    }

    /// An environment of `function` that started at `born` has ended, as reported at `now`:
    /// Lambda sends each extension of an environment a SHUTDOWN event when it ends it, and
    /// warmgate's extension reports it (ARCHITECTURE.md, "Environment ends"). A policy that
    /// keeps environments may replace it at once rather than guess when Lambda ends it.
    fn environment_ended(&mut self, function: FunctionId, born: Time, now: Time) {
        let _ = (function, born, now);
    }

    /// Called at `now`, no earlier than [`Policy::next_wake`] asked (and possibly at other
    /// times); returns what to do now.
    fn act(&mut self, now: Time) -> Vec<Action>;

    /// When the policy next wants [`Policy::act`] to be called, if ever.
    fn next_wake(&self) -> Option<Time>;

    /// Provisioned concurrency this policy asked for on `function` became READY `after` it
    /// was asked for (Lambda's allocation time, which the policy may plan ahead by).
    fn provisioned_ready(&mut self, function: FunctionId, after: Duration) {
        let _ = (function, after);
    }

    /// Sharing load among replicas (the provisioning planner; none for other policies): each
    /// minute of a function's load this policy finished since last asked, by its minute
    /// index on the policy clock, for the shell to add up across replicas.
    fn finished_minutes(&mut self) -> Vec<(FunctionId, u64, provisioning::MinuteLoad)> {
        Vec::new()
    }

    /// The fleet's total load for `function` in `minute` (an index as
    /// [`Policy::finished_minutes`] gives), to plan from instead of this replica's own.
    fn fleet_minute(&mut self, function: FunctionId, minute: u64, total: provisioning::MinuteLoad) {
        let _ = (function, minute, total);
    }

    /// Rises that come back each day (the warmer; none for other policies) recorded or
    /// raised since last asked, as (function, minute on the policy clock, peak), for the
    /// shell to keep beyond this process: a gateway restarted each day would never see a
    /// rise twice.
    fn rises_to_keep(&mut self) -> Vec<(FunctionId, i64, u32)> {
        Vec::new()
    }

    /// A rise kept beyond this process (by it before a restart, or by another replica), at
    /// `minute` on the policy clock; given in the order they came.
    fn kept_rise(&mut self, function: FunctionId, minute: i64, peak: u32) {
        let _ = (function, minute, peak);
    }

    /// The rises `function`'s daily memory holds, oldest first (`GET /v1/pools`).
    fn daily_rises(&self, function: FunctionId) -> Vec<RiseSeen> {
        let _ = function;
        Vec::new()
    }
}

/// Fixtures the policies' unit tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// Function `f` of app `a`, with one target, `live`.
    pub fn info(memory_mb: u32) -> FunctionInfo {
        FunctionInfo {
            name: "f".into(),
            app: "a".into(),
            memory_mb,
            targets: vec!["live".into()],
            ping_budget: None,
        }
    }

    /// A real call of function 0 on its first target.
    pub fn call(arrived: Time, duration: Duration, start: Option<Start>) -> Observation {
        Observation {
            function: 0,
            target: 0,
            arrived,
            duration,
            init: None,
            start,
            ping: false,
            throttled: false,
        }
    }
}
