//! The forecasting warmer: which keep-alive pings to send, per function, and when.
//!
//! Pure planner (DESIGN invariant 1): observations and `now` in, [`Action::Ping`]s out. The
//! gateway's executor and the simulator's engine drive the very same code.
//!
//! # The rule
//!
//! Per function the planner keeps a **replica of the pool**: the environments it saw used, as
//! the time each went idle, in Lambda's reuse order (the most recently idle is taken first).
//! Every observation updates it, pings included: the planner applies its own pings when it
//! sends them (`count` concurrent pings take the `count` most recently idle environments and
//! start new ones beyond those). A real cold start proves that no environment was idle then.
//!
//! At each planning time it asks the [forecast](crate::policy::forecast) for the demand over
//! the next `min_lifetime` (the shortest idle time Lambda is assumed to keep an environment):
//! the target `K` is the environments needed if an arrival is likely within that window (or
//! within it from `lead` later), else 0. Then:
//!
//! - `K > 0`: the `K` most recently used environments must stay younger than the refresh age
//!   (`min_lifetime - refresh_margin`). Real traffic comes first: environments it used
//!   recently need nothing. When the `K`-th one reaches the refresh age, or fewer than `K`
//!   exist, one `Ping { count }` reaches them all at once (`count` = the idle ones to refresh
//!   or create, less the executions expected in flight, which occupy the busiest ones).
//! - `K = 0`: let the environments go; wake again `lead` before the idle-time histogram says
//!   an arrival becomes likely (a pre-warm), or never until the next call. But when an
//!   arrival becomes likely within `bridge` and an environment is still surely warm, keep it
//!   through the gap instead: a few refreshes of a warm environment cost less than the init
//!   a pre-warm pays.
//! - Short of `K`: one round creates the missing environments; the next round to make up a
//!   shortfall waits `shortage_gap` (traffic in flight may have absorbed the last one).
//!
//! Sparse functions thus get Shahrad et al.'s windows, sized by their burst (a function that
//! is called 6 at a time is pre-warmed with 6); busy ones keep their recent peak concurrency
//! (with the trend) warm beyond what their own traffic keeps. Until a function's histogram
//! has samples it is kept warm for `fallback_keep_alive` after each call, and a function never
//! seen is kept warm with one environment (`warm_unseen`), so that its first call is warm.
//! A per-function cap on pings per hour bounds the cost.
//!
//! Every target of a function runs the same code (DESIGN invariant 3); the planner pings the
//! function's first target and learns from observations of all of them.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::clock::Time;
use crate::policy::forecast::{ForecastConfig, FunctionForecast};
use crate::policy::{Action, FunctionId, FunctionInfo, Observation, Policy, StartSeen, ROUND_HOLD};

const HOUR: Duration = Duration::from_secs(3600);
/// The least step between two planning times of a function, so that a plan due now cannot
/// loop.
const MIN_STEP: Duration = Duration::from_secs(1);

/// The warmer's parameters; [`Default`] gives ours.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmerConfig {
    /// The shortest idle time Lambda is assumed to keep an environment: 5 minutes (published
    /// measurements say 5 to 7 minutes, about 10 in 2019; the platform model's default is 5 to
    /// 10 minutes, uniform). Also the window one round of pings buys.
    pub min_lifetime: Duration,
    /// Environments are refreshed this long before they reach `min_lifetime` of idle.
    pub refresh_margin: Duration,
    /// Pre-warming pings go this long before demand becomes likely (a cold start's init is
    /// over by then: on-demand init is capped at 10 s).
    pub lead: Duration,
    /// Environments are kept (or pre-warmed) when an arrival within the next `min_lifetime`
    /// is at least this likely.
    pub keep_threshold: f64,
    /// Keep one environment warm for a function never called yet.
    pub warm_unseen: bool,
    /// While a function's idle-time histogram has too few samples, keep its environments
    /// warm this long after each call.
    pub fallback_keep_alive: Duration,
    /// The replica forgets environments idle longer than this (surely reclaimed).
    pub max_idle: Duration,
    /// A function with a target is planned again at least this often (its forecast moves).
    pub recheck: Duration,
    /// At most this many pings per function in any hour (`None`: no cap). The executor
    /// enforces its own budgets too.
    pub max_pings_per_hour: Option<u32>,
    /// Keep environments alive through a quiet gap rather than let them go and pre-warm,
    /// when an arrival becomes likely within this long. A ping to a warm environment costs
    /// about a fifth of a new one's init at 128 MB (init is billed), and a pre-warm pays
    /// that init: the 3 refreshes of a 15-minute gap cost less than one pre-warm.
    pub bridge: Duration,
    /// After a round of pings, the least wait before another to make up a shortfall of
    /// environments.
    pub shortage_gap: Duration,
    /// The most environments kept warm per function (`None`: as many as the forecast says).
    /// The frugal end of the trade-off: with 1, busy functions (kept warm by their own
    /// traffic) get no pings, and a lone ping costs about 1 ms against an init of a second or
    /// more, so sparse functions' kept environments pay for themselves.
    pub max_environments: Option<u32>,
    pub forecast: ForecastConfig,
}

impl Default for WarmerConfig {
    fn default() -> Self {
        WarmerConfig {
            min_lifetime: Duration::from_secs(300),
            refresh_margin: Duration::from_secs(10),
            lead: Duration::from_secs(60),
            keep_threshold: 0.05,
            warm_unseen: true,
            fallback_keep_alive: Duration::from_secs(3600),
            max_idle: Duration::from_secs(600),
            recheck: Duration::from_secs(60),
            max_pings_per_hour: None,
            shortage_gap: Duration::from_secs(240),
            bridge: Duration::from_secs(15 * 60),
            max_environments: None,
            forecast: ForecastConfig::default(),
        }
    }
}

impl WarmerConfig {
    /// The configuration a policy name stands for: `warmer` (ours), or `warmer-max<N>`, ours
    /// keeping at most N environments per function (N >= 1).
    pub fn from_name(name: &str) -> Option<WarmerConfig> {
        let max_environments = match name.strip_prefix("warmer") {
            Some("") => None,
            Some(rest) => Some(
                rest.strip_prefix("-max")?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)?,
            ),
            None => return None,
        };
        Some(WarmerConfig {
            max_environments,
            ..WarmerConfig::default()
        })
    }

    /// The policy name of this configuration, when it has one (see [`Self::from_name`]).
    fn name(&self) -> String {
        match self.max_environments {
            None => "warmer".into(),
            Some(n) => format!("warmer-max{n}"),
        }
    }
}

/// The planner's replica of one function's environments.
#[derive(Debug, Clone, Default)]
struct Envs {
    /// Idle-since times of environments thought idle, ascending (the last is reused first).
    idle: Vec<Time>,
    /// Environments thought busy: (busy until, with a real execution rather than a ping).
    busy: Vec<(Time, bool)>,
}

impl Envs {
    /// Environments whose work ended by `t` are idle from then.
    fn release(&mut self, t: Time) {
        let mut freed = false;
        self.busy.retain(|&(until, _)| {
            let done = until <= t;
            if done {
                self.idle.push(until);
                freed = true;
            }
            !done
        });
        if freed {
            self.idle.sort_unstable();
        }
    }

    fn forget(&mut self, now: Time, max_idle: Duration) {
        self.idle.retain(|&since| since + max_idle > now);
    }

    /// A real execution from `at` to `until`; returns the real executions running at `at`,
    /// itself included (pings are not demand).
    fn start(&mut self, at: Time, until: Time, cold: bool) -> u32 {
        self.release(at);
        if cold {
            // Lambda reuses any idle environment: none was left.
            self.idle.retain(|&since| since > at);
        } else {
            self.idle.pop();
        }
        self.busy.push((until, true));
        self.busy
            .iter()
            .filter(|&&(u, real)| real && u > at)
            .count() as u32
    }

    /// `count` concurrent pings at `now`, while about `in_flight` real executions run. The
    /// replica learns of executions only as they complete, so those in flight hold the most
    /// recently used environments, which it lists as idle: the pings pass them by and reach
    /// the ones below.
    fn ping(&mut self, now: Time, count: u32, in_flight: u32) {
        self.release(now);
        let below = self.idle.len().saturating_sub(in_flight as usize);
        let reached = (count as usize).min(below);
        self.idle.drain(below - reached..below);
        // Pings beyond those start new environments. Each is counted busy for a round's hold
        // (a lone ping returns sooner; the replica sees its environment idle 0.1 s late).
        self.busy.extend(std::iter::repeat_n(
            (now + ROUND_HOLD, false),
            count as usize,
        ));
    }
}

#[derive(Debug, Clone)]
struct Function {
    /// No target: never pinged.
    pingable: bool,
    forecast: FunctionForecast,
    envs: Envs,
    wake: Option<Time>,
    /// Pings sent in the last hour: (time, count).
    pings: VecDeque<(Time, u32)>,
}

/// The forecasting warmer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Warmer {
    config: WarmerConfig,
    functions: Vec<Function>,
    schedule: BTreeSet<(Time, FunctionId)>,
}

impl Default for Warmer {
    fn default() -> Self {
        Self::new(WarmerConfig::default())
    }
}

impl Warmer {
    /// A warmer with `config`.
    ///
    /// # Panics
    /// If `refresh_margin` is not below `min_lifetime`, `recheck` is zero, or
    /// `keep_threshold` is not in (0, 1].
    pub fn new(config: WarmerConfig) -> Self {
        assert!(
            config.refresh_margin < config.min_lifetime,
            "the refresh margin must be below the minimum lifetime"
        );
        assert!(!config.recheck.is_zero(), "recheck must be positive");
        assert!(
            config.keep_threshold > 0.0 && config.keep_threshold <= 1.0,
            "keep_threshold must be in (0, 1]"
        );
        Warmer {
            config,
            functions: Vec::new(),
            schedule: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &WarmerConfig {
        &self.config
    }

    /// What the warmer forecasts for `function`, if it knows it.
    pub fn forecast(&self, function: FunctionId) -> Option<&FunctionForecast> {
        self.functions.get(function).map(|f| &f.forecast)
    }

    /// The environments `function` should have warm at `now` (0: let them go).
    pub fn target(&self, function: FunctionId, now: Time) -> u32 {
        let Some(f) = self.functions.get(function) else {
            return 0;
        };
        let cfg = &self.config;
        let Some(last_end) = f.forecast.last_end() else {
            return u32::from(cfg.warm_unseen);
        };
        let horizon = cfg.min_lifetime;
        let now_demand = f.forecast.demand(now, horizon, &cfg.forecast);
        let likely = match now_demand.probability {
            None => now < last_end + cfg.fallback_keep_alive,
            Some(p) => {
                let later = f.forecast.demand(now + cfg.lead, horizon, &cfg.forecast);
                p.max(later.probability.unwrap_or(0.0)) >= cfg.keep_threshold
                    || self.bridges(f, now)
            }
        };
        if likely {
            let most = cfg.max_environments.unwrap_or(u32::MAX);
            now_demand.environments.clamp(1, most.max(1))
        } else {
            0
        }
    }

    /// Whether `f` has a surely warm environment and an arrival becomes likely soon enough
    /// that keeping it through the gap costs less than a pre-warm.
    fn bridges(&self, f: &Function, now: Time) -> bool {
        let cfg = &self.config;
        let warm = f
            .envs
            .idle
            .last()
            .is_some_and(|&since| since + cfg.min_lifetime > now)
            || !f.envs.busy.is_empty();
        warm && f
            .forecast
            .likely_from(now, cfg.min_lifetime, cfg.keep_threshold)
            .is_some_and(|t| t <= now + cfg.bridge)
    }

    fn refresh_age(&self) -> Duration {
        self.config.min_lifetime - self.config.refresh_margin
    }

    fn reschedule(&mut self, function: FunctionId, wake: Option<Time>) {
        let f = &mut self.functions[function];
        if let Some(old) = f.wake.take() {
            self.schedule.remove(&(old, function));
        }
        f.wake = wake;
        if let Some(at) = wake {
            self.schedule.insert((at, function));
        }
    }

    /// Plans `function` at `now`: the pings to send now (0 for none) and the next planning
    /// time.
    fn plan(&mut self, function: FunctionId, now: Time) -> (u32, Option<Time>) {
        let k = self.target(function, now);
        let refresh_age = self.refresh_age();
        let cfg = &self.config;
        let f = &mut self.functions[function];
        f.envs.release(now);
        f.envs.forget(now, cfg.max_idle);
        if !f.pingable {
            return (0, None);
        }
        let soon = now + MIN_STEP;
        if k == 0 {
            // Let go: wake `lead` before an arrival within `lead` becomes likely, if it will
            // (a pre-warm just before the demand, rather than a keep-alive through the gap).
            let wake = f
                .forecast
                .likely_from(now, cfg.lead, cfg.keep_threshold)
                .map(|t| t.saturating_sub(cfg.lead).max(soon));
            return (0, wake);
        }
        let busy = f.envs.busy.len() as u32;
        let needed = k.saturating_sub(busy) as usize;
        let recheck = now + cfg.recheck;
        if needed == 0 {
            return (0, Some(recheck));
        }
        let idle = &f.envs.idle;
        let due = if idle.len() >= needed {
            idle[idle.len() - needed] + refresh_age
        } else {
            // Short of environments: create them, but not at every recheck (traffic in flight
            // may have absorbed the last round); the ones there are still refreshed in time.
            let refresh = idle.first().map(|&t| t + refresh_age);
            let retry = f.pings.back().map_or(now, |&(t, _)| t + cfg.shortage_gap);
            refresh.map_or(retry, |r| r.min(retry))
        };
        if due > now {
            return (0, Some(due.min(recheck).max(soon)));
        }
        // Executions in flight occupy the most recently idle environments: the pings go past
        // them, so they need not be counted.
        let in_flight = f.forecast.concurrency.in_flight(now).floor() as u32;
        let mut count = (needed as u32).saturating_sub(in_flight).max(1);
        while f.pings.front().is_some_and(|&(t, _)| t + HOUR <= now) {
            f.pings.pop_front();
        }
        if let Some(cap) = cfg.max_pings_per_hour {
            let used: u32 = f.pings.iter().map(|&(_, c)| c).sum();
            count = count.min(cap.saturating_sub(used));
            if count == 0 {
                let freed = f.pings.front().map_or(recheck, |&(t, _)| t + HOUR);
                return (0, Some(freed.max(soon)));
            }
        }
        f.pings.push_back((now, count));
        f.envs.ping(now, count, in_flight);
        (count, Some(recheck.min(now + refresh_age).max(soon)))
    }
}

impl Policy for Warmer {
    fn name(&self) -> String {
        self.config.name()
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        self.schedule.clear();
        self.functions = functions
            .iter()
            .map(|info| Function {
                pingable: !info.targets.is_empty(),
                forecast: FunctionForecast::new(&self.config.forecast),
                envs: Envs::default(),
                wake: None,
                pings: VecDeque::new(),
            })
            .collect();
        for f in 0..self.functions.len() {
            if self.functions[f].pingable {
                self.reschedule(f, Some(now));
            }
        }
        self.act(now)
    }

    fn observe(&mut self, o: &Observation) {
        if o.ping || o.throttled {
            return;
        }
        let refresh_age = self.refresh_age();
        let Some(f) = self.functions.get_mut(o.function) else {
            return;
        };
        let end = o.arrived + o.init.unwrap_or_default() + o.duration;
        let cold = o.start == StartSeen::Cold;
        let concurrency = f.envs.start(o.arrived, end, cold);
        f.forecast.record(o.arrived, end, concurrency);
        // Real traffic refreshed its environments: plan again no later than when they age.
        let due = end + refresh_age;
        if f.pingable && f.wake.is_none_or(|w| w > due) {
            self.reschedule(o.function, Some(due));
        }
    }

    fn act(&mut self, now: Time) -> Vec<Action> {
        let due: Vec<FunctionId> = self
            .schedule
            .range(..=(now, usize::MAX))
            .map(|&(_, f)| f)
            .collect();
        let mut actions = Vec::new();
        for function in due {
            let (count, wake) = self.plan(function, now);
            self.reschedule(function, wake);
            if count > 0 {
                actions.push(Action::Ping {
                    function,
                    target: 0,
                    count,
                });
            }
        }
        actions
    }

    fn next_wake(&self) -> Option<Time> {
        self.schedule.first().map(|&(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);

    fn info() -> FunctionInfo {
        FunctionInfo {
            name: "f".into(),
            app: "a".into(),
            memory_mb: 128,
            targets: vec!["live".into()],
        }
    }

    fn call(arrived: Time, duration: Duration, start: StartSeen) -> Observation {
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

    /// Acts whenever the warmer asks, up to `until`; returns the pings with their times.
    fn run_until(w: &mut Warmer, until: Time) -> Vec<(Time, u32)> {
        let mut pings = Vec::new();
        while let Some(t) = w.next_wake().filter(|&t| t <= until) {
            for a in w.act(t) {
                match a {
                    Action::Ping { count, .. } => pings.push((t, count)),
                    other => panic!("{other:?}"),
                }
            }
        }
        pings
    }

    #[test]
    fn an_unseen_function_gets_one_environment_from_the_start() {
        let mut w = Warmer::default();
        let first = w.start(&[info()], Duration::ZERO);
        assert_eq!(
            first,
            vec![Action::Ping {
                function: 0,
                target: 0,
                count: 1
            }]
        );
        let pings = run_until(&mut w, 20 * MIN);
        assert!(pings.iter().all(|&(_, c)| c == 1));
        // Refreshed before 5 minutes of idle, and not much more often.
        assert!(pings.len() >= 4 && pings.len() <= 5, "{pings:?}");
    }

    #[test]
    fn k_concurrent_calls_are_kept_warm_with_one_ping_of_k() {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        let t0 = 10 * S;
        for _ in 0..6 {
            w.observe(&call(t0, S, StartSeen::Cold));
        }
        assert_eq!(w.target(0, t0 + S), 6);
        let pings = run_until(&mut w, t0 + 5 * MIN);
        let last = pings.last().copied().expect("a refresh");
        assert_eq!(last.1, 6, "{pings:?}");
        assert!(last.0 > t0 + 4 * MIN && last.0 < t0 + 5 * MIN, "{pings:?}");
    }

    #[test]
    fn the_frugal_warmer_keeps_at_most_its_cap() {
        let config = WarmerConfig::from_name("warmer-max2").unwrap();
        assert_eq!(config.max_environments, Some(2));
        let mut w = Warmer::new(config);
        assert_eq!(w.name(), "warmer-max2");
        w.start(&[info()], Duration::ZERO);
        let t0 = 10 * S;
        for _ in 0..6 {
            w.observe(&call(t0, S, StartSeen::Cold));
        }
        assert_eq!(w.target(0, t0 + S), 2);
        let pings = run_until(&mut w, t0 + 5 * MIN);
        assert!(pings.iter().all(|&(_, count)| count <= 2), "{pings:?}");
        // Names that are not ours are refused.
        for bad in ["warmer-max0", "warmer-max", "warmer-x2", "warmers"] {
            assert_eq!(WarmerConfig::from_name(bad), None, "{bad}");
        }
        assert_eq!(
            WarmerConfig::from_name("warmer"),
            Some(WarmerConfig::default())
        );
    }

    #[test]
    fn a_short_quiet_gap_is_bridged_with_refreshes_not_a_pre_warm() {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        let period = 15 * MIN;
        for k in 0..10u32 {
            let t = period * k;
            w.observe(&call(t, S, StartSeen::Warm));
            let pings = run_until(&mut w, t + period - S);
            if k < 4 {
                continue; // learning the gaps
            }
            // The environment is never left idle for 5 minutes, the shortest reclaim: every
            // ping refreshes a warm environment; none pays for a new one.
            let mut last = t + S;
            for &(at, count) in pings.iter().chain([(t + period, 1)].iter()) {
                assert!(at - last < 5 * MIN, "gap {k}: {pings:?}");
                assert_eq!(count, 1);
                last = at;
            }
        }
        // Without the bridge it lets go and pre-warms a new environment before each call.
        let mut w = Warmer::new(WarmerConfig {
            bridge: Duration::ZERO,
            ..WarmerConfig::default()
        });
        w.start(&[info()], Duration::ZERO);
        let mut longest = Duration::ZERO;
        for k in 0..10u32 {
            let t = period * k;
            w.observe(&call(t, S, StartSeen::Warm));
            let pings = run_until(&mut w, t + period - S);
            if k >= 4 {
                let first = pings.first().map_or(t + period, |p| p.0);
                longest = longest.max(first - t);
            }
        }
        assert!(longest > 5 * MIN, "{longest:?}");
    }

    #[test]
    fn pings_pass_the_environments_in_flight_and_refresh_the_ones_below() {
        let now = 10 * MIN;
        let mut envs = Envs {
            idle: vec![now - 290 * S; 3]
                .into_iter()
                .chain([now - 60 * S; 2])
                .chain([now - S; 4])
                .collect(),
            busy: Vec::new(),
        };
        // Four executions in flight hold the four most recent; five pings reach the five
        // below them, the oldest three included.
        envs.ping(now, 5, 4);
        assert_eq!(envs.idle, vec![now - S; 4]);
        assert_eq!(envs.busy.len(), 5);
        // More pings than idle environments below the busy ones start new environments.
        let mut fresh = Envs {
            idle: vec![now - 60 * S; 2],
            busy: Vec::new(),
        };
        fresh.ping(now, 3, 1);
        assert_eq!(fresh.idle, vec![now - 60 * S]);
        assert_eq!(fresh.busy.len(), 3);
    }

    #[test]
    fn a_function_that_stops_being_called_stops_being_pinged() {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        let mut t = Duration::ZERO;
        for _ in 0..8 {
            w.observe(&call(t, S, StartSeen::Warm));
            run_until(&mut w, t + 12 * MIN);
            t += 12 * MIN;
        }
        let quiet = t + 30 * MIN;
        run_until(&mut w, quiet);
        assert!(run_until(&mut w, quiet + 10 * 60 * MIN).is_empty());
        assert_eq!(w.next_wake(), None);
        assert_eq!(w.target(0, quiet), 0);
    }

    #[test]
    fn pings_respect_the_hourly_cap() {
        let mut w = Warmer::new(WarmerConfig {
            max_pings_per_hour: Some(5),
            ..WarmerConfig::default()
        });
        w.start(&[info()], Duration::ZERO);
        for _ in 0..4 {
            w.observe(&call(S, S, StartSeen::Cold));
        }
        let pings = run_until(&mut w, 3 * 60 * MIN);
        for (t, _) in &pings {
            let in_hour: u32 = pings
                .iter()
                .filter(|(u, _)| *u <= *t && *u + HOUR > *t)
                .map(|&(_, c)| c)
                .sum();
            assert!(in_hour <= 5, "{pings:?}");
        }
    }

    #[test]
    fn the_name_is_the_simulators() {
        assert_eq!(Warmer::default().name(), "warmer");
    }
}
