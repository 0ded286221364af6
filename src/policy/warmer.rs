//! The forecasting warmer: which keep-alive pings to send, per function, and when.
//!
//! Pure planner (ARCHITECTURE.md invariant 1): observations and `now` in, [`Action::Ping`]s out. The
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
//! - Lifetime: the replica also knows when each environment was created. Lambda ends an
//!   environment after a few hours whatever its use; for a function kept with one
//!   environment and likely called within the next refresh interval, `rotate_after` its
//!   creation a round of two starts a successor, which Lambda reuses first, so that the end
//!   falls on an environment nobody uses rather than on the next call.
//!
//! Sparse functions thus get Shahrad et al.'s windows, sized by their burst (a function that
//! is called 6 at a time is pre-warmed with 6); busy ones keep their recent peak concurrency
//! (with the trend) warm beyond what their own traffic keeps. Until a function's histogram
//! has samples it is kept warm for `fallback_keep_alive` after each call, and a function never
//! seen is kept warm with one environment (`warm_unseen`), so that its first call is warm.
//! A per-function cap on pings per hour bounds the cost.
//!
//! Every target of a function runs the same code (ARCHITECTURE.md invariant 3); the planner pings the
//! function's first target and learns from observations of all of them.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::clock::Time;
use crate::policy::forecast::{ForecastConfig, FunctionForecast};
use crate::policy::pool::Lifetime;
use crate::policy::{Action, FunctionId, FunctionInfo, Observation, Policy, Start, ROUND_HOLD};

const HOUR: Duration = Duration::from_secs(3600);
/// A function's kept environment is rotated (see [`WarmerConfig::rotate_after`]) only when a
/// call within the next refresh interval is at least this likely.
const ROTATE_LIKELIHOOD: f64 = 0.5;
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
    /// when an arrival becomes likely within this long. A lone ping to a warm environment
    /// bills about 1 ms and a request, a twentieth of a new one's init at 128 MB (init is
    /// billed), and a pre-warm pays that init and misses when the forecast does. Default:
    /// every gap the idle-time histogram covers (4 hours). On the Azure sample that gave
    /// fewer cold starts than 15 minutes (738 against 858) for a lower bill, at more pings.
    pub bridge: Duration,
    /// After a round of pings, the least wait before another to make up a shortfall of
    /// environments.
    pub shortage_gap: Duration,
    /// The most environments kept warm per function (`None`: as many as the forecast says).
    /// The frugal end of the trade-off: with 1, busy functions (kept warm by their own
    /// traffic) get no pings, and a lone ping costs about 1 ms against an init of a second or
    /// more, so sparse functions' kept environments pay for themselves.
    pub max_environments: Option<u32>,
    /// The environment of a function kept with one is replaced by a new one this long after
    /// its creation (`None`: never), when a call within the next refresh interval is more
    /// likely than not. Lambda ends environments after a few hours whatever their use (2 to
    /// 4 in the platform model, [`Lifetime::FEW_HOURS`]), and the end of a kept one meets
    /// the next call when calls come more often than pings. Default: the shortest lifetime
    /// less one refresh interval, so that the successor comes before the earliest end.
    /// Functions kept with several environments are not rotated: on the Azure sample it cost
    /// the 43 busiest functions 830 pings and saved none of their cold starts (Lambda reuses
    /// environments in an order the planner cannot steer, so the one let go is not the
    /// oldest).
    pub rotate_after: Option<Duration>,
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
            // Every gap the idle-time histogram covers.
            bridge: ForecastConfig::default().range,
            max_environments: None,
            rotate_after: Some(Lifetime::FEW_HOURS.min - Duration::from_secs(300)),
            forecast: ForecastConfig::default(),
        }
    }
}

impl WarmerConfig {
    /// The reach end of the trade-off, `warmer-peak`: pools sized for the largest peak of the
    /// last 8 hours (of at most 120 active minutes) rather than the 95th percentile of 4.
    pub fn peak() -> WarmerConfig {
        WarmerConfig {
            forecast: ForecastConfig {
                peak_quantile: Some(1.0),
                quantile_window_minutes: 480,
                ..ForecastConfig::default()
            },
            ..WarmerConfig::default()
        }
    }

    /// The configuration a policy name stands for: `warmer` (ours), `warmer-peak` (see
    /// [`Self::peak`]), or `warmer-max<N>`, ours keeping at most N environments per function
    /// (N >= 1).
    pub fn from_name(name: &str) -> Option<WarmerConfig> {
        let max_environments = match name.strip_prefix("warmer") {
            Some("") => None,
            Some("-peak") => return Some(Self::peak()),
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

    /// The policy name of this configuration (see [`Self::from_name`]); a configuration
    /// that no name stands for is still called `warmer`.
    fn name(&self) -> String {
        match self.max_environments {
            None if *self == Self::peak() => "warmer-peak".into(),
            None => "warmer".into(),
            Some(n) => format!("warmer-max{n}"),
        }
    }
}

/// An environment the replica thinks idle.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Idle {
    since: Time,
    /// When it was created (its init began), as far as the planner saw.
    born: Time,
}

/// An environment the replica thinks busy.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Busy {
    until: Time,
    /// With a real execution rather than a ping.
    real: bool,
    born: Time,
}

/// The planner's replica of one function's environments.
#[derive(Debug, Clone, Default)]
struct Envs {
    /// Environments thought idle, by idle-since time ascending (the last is reused first).
    idle: Vec<Idle>,
    busy: Vec<Busy>,
    /// Pings of the latest round sent to start new environments, whose cold starts are not
    /// yet seen.
    expected_cold_pings: u32,
}

impl Envs {
    /// Environments whose work ended by `t` are idle from then.
    fn release(&mut self, t: Time) {
        let mut freed = false;
        self.busy.retain(|b| {
            let done = b.until <= t;
            if done {
                self.idle.push(Idle {
                    since: b.until,
                    born: b.born,
                });
                freed = true;
            }
            !done
        });
        if freed {
            self.idle.sort_unstable_by_key(|e| e.since);
        }
    }

    fn forget(&mut self, now: Time, max_idle: Duration) {
        self.idle.retain(|e| e.since + max_idle > now);
    }

    /// A real execution from `at` to `until`; returns the real executions running at `at`,
    /// itself included (pings are not demand).
    fn start(&mut self, at: Time, until: Time, cold: bool) -> u32 {
        self.release(at);
        let born = if cold {
            // Lambda reuses any idle environment: none was left.
            self.idle.retain(|e| e.since > at);
            at
        } else {
            // One the replica never saw made (it predates the planner) counts as new.
            self.idle.pop().map_or(at, |e| e.born)
        };
        self.busy.push(Busy {
            until,
            real: true,
            born,
        });
        self.busy.iter().filter(|b| b.real && b.until > at).count() as u32
    }

    /// The idle environments a round of `count` pings reaches while about `in_flight` real
    /// executions run. The replica learns of executions only as they complete, so those in
    /// flight hold the most recently used environments, which it lists as idle: the pings
    /// pass them by and reach the ones below.
    fn reached(&self, count: u32, in_flight: u32) -> std::ops::Range<usize> {
        let below = self.idle.len().saturating_sub(in_flight as usize);
        below - (count as usize).min(below)..below
    }

    /// `count` concurrent pings at `now`, while about `in_flight` real executions run (see
    /// [`Envs::reached`]); pings beyond the environments reached start new ones.
    fn ping(&mut self, now: Time, count: u32, in_flight: u32) {
        self.release(now);
        let reached = self.reached(count, in_flight);
        let fresh = count as usize - reached.len();
        // Rounds are minutes apart and a ping's cold start is seen within seconds: the count
        // is the latest round's, so that a miscount cannot outlive it.
        self.expected_cold_pings = fresh as u32;
        // Each is counted busy for a round's hold (a lone ping returns sooner; the replica
        // sees its environment idle 0.1 s late).
        let until = now + ROUND_HOLD;
        self.busy.extend(self.idle.drain(reached).map(|e| Busy {
            until,
            real: false,
            born: e.born,
        }));
        self.busy.extend(std::iter::repeat_n(
            Busy {
                until,
                real: false,
                born: now,
            },
            fresh,
        ));
    }

    /// The creation time of the oldest of the `keep` most recently used environments (busy
    /// ones first).
    fn oldest_kept(&self, keep: usize) -> Option<Time> {
        let idle = keep.saturating_sub(self.busy.len()).min(self.idle.len());
        self.busy
            .iter()
            .map(|b| b.born)
            .chain(self.idle[self.idle.len() - idle..].iter().map(|e| e.born))
            .min()
    }

    /// Forgets the oldest of the `keep` most recently used environments, once a round has
    /// started its successor. Busy, it ends at its lifetime cap when it next goes idle; idle,
    /// the successor (whose ping ends last, after its init) is reused before it, so it falls
    /// out of the environments the next rounds reach and idles out.
    fn retire_oldest(&mut self, keep: usize) {
        let idle = keep.saturating_sub(self.busy.len()).min(self.idle.len());
        let from = self.idle.len() - idle;
        let oldest_busy = (0..self.busy.len()).min_by_key(|&i| self.busy[i].born);
        let oldest_idle = (from..self.idle.len()).min_by_key(|&i| self.idle[i].born);
        match (oldest_busy, oldest_idle) {
            (Some(b), Some(i)) if self.idle[i].born < self.busy[b].born => {
                self.idle.remove(i);
            }
            (Some(b), _) => {
                self.busy.swap_remove(b);
            }
            (None, Some(i)) => {
                self.idle.remove(i);
            }
            (None, None) => {}
        }
    }

    /// A ping met a cold start. Unless the planner sent it to start a new environment, the
    /// environment it expected had gone (most likely the oldest, at the end of its
    /// lifetime), and a new one stands in its place.
    fn cold_ping(&mut self, at: Time) {
        if self.expected_cold_pings > 0 {
            self.expected_cold_pings -= 1;
            return;
        }
        let oldest = self
            .idle
            .iter_mut()
            .map(|e| &mut e.born)
            .chain(self.busy.iter_mut().map(|b| &mut b.born))
            .min_by_key(|born| **born);
        if let Some(born) = oldest {
            *born = (*born).max(at);
        }
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

    /// Whether a call to `function` within the next `min_lifetime` is more likely than not:
    /// then the end of its kept environment's lifetime would most likely meet a call rather
    /// than a ping.
    fn likely_soon(&self, function: FunctionId, now: Time) -> bool {
        let cfg = &self.config;
        self.functions[function]
            .forecast
            .probability(now, cfg.min_lifetime, &cfg.forecast)
            .is_some_and(|p| p >= ROTATE_LIKELIHOOD)
    }

    /// Whether `f` has a surely warm environment and an arrival becomes likely soon enough
    /// that keeping it through the gap costs less than a pre-warm.
    fn bridges(&self, f: &Function, now: Time) -> bool {
        let cfg = &self.config;
        let warm = f
            .envs
            .idle
            .last()
            .is_some_and(|e| e.since + cfg.min_lifetime > now)
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
        let rotates = k == 1 && self.likely_soon(function, now);
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
        let refresh_due = if idle.len() >= needed {
            idle[idle.len() - needed].since + refresh_age
        } else {
            // Short of environments: create them, but not at every recheck (traffic in flight
            // may have absorbed the last round); the ones there are still refreshed in time.
            let refresh = idle.first().map(|e| e.since + refresh_age);
            let retry = f.pings.back().map_or(now, |&(t, _)| t + cfg.shortage_gap);
            refresh.map_or(retry, |r| r.min(retry))
        };
        // Executions in flight occupy the most recently idle environments: the pings go past
        // them, so they need not be counted.
        let in_flight = f.forecast.concurrency.in_flight(now).floor() as u32;
        let mut count = (needed as u32).saturating_sub(in_flight).max(1);
        // An environment near the end of its lifetime is replaced by a round with one more
        // ping, which starts its successor, so that the lifetime cap ends an environment
        // nobody uses rather than meeting the next call. Due even when real traffic keeps the
        // environment fresh: that is where the end would meet a call.
        let rotate_due = cfg
            .rotate_after
            .filter(|_| rotates)
            .and_then(|age| f.envs.oldest_kept(k as usize).map(|born| born + age));
        let rotate = rotate_due.is_some_and(|at| at <= now);
        let due = rotate_due.map_or(refresh_due, |r| r.min(refresh_due));
        if due > now {
            return (0, Some(due.min(recheck).max(soon)));
        }
        while f.pings.front().is_some_and(|&(t, _)| t + HOUR <= now) {
            f.pings.pop_front();
        }
        if rotate {
            count += 1;
        }
        if let Some(cap) = cfg.max_pings_per_hour {
            let used: u32 = f.pings.iter().map(|&(_, c)| c).sum();
            count = count.min(cap.saturating_sub(used));
            if count == 0 {
                let freed = f.pings.front().map_or(recheck, |&(t, _)| t + HOUR);
                return (0, Some(freed.max(soon)));
            }
        }
        // A cap may have taken the successor's ping.
        let rotate = rotate && count as usize > f.envs.reached(count, in_flight).len();
        f.pings.push_back((now, count));
        f.envs.ping(now, count, in_flight);
        if rotate {
            f.envs.retire_oldest(k as usize + 1);
        }
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
        if o.ping && o.start == Some(Start::Cold) {
            if let Some(f) = self.functions.get_mut(o.function) {
                f.envs.cold_ping(o.arrived);
            }
        }
        if o.ping || o.throttled {
            return;
        }
        let refresh_age = self.refresh_age();
        let Some(f) = self.functions.get_mut(o.function) else {
            return;
        };
        let end = o.arrived + o.init.unwrap_or_default() + o.duration;
        let cold = o.start == Some(Start::Cold);
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

    fn call(arrived: Time, duration: Duration, start: Option<Start>) -> Observation {
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

    /// A warmer with `config` that has seen six concurrent cold calls at 10 s; and that time.
    fn after_six_cold_calls(config: WarmerConfig) -> (Warmer, Time) {
        let mut w = Warmer::new(config);
        w.start(&[info()], Duration::ZERO);
        let t0 = 10 * S;
        for _ in 0..6 {
            w.observe(&call(t0, S, Some(Start::Cold)));
        }
        (w, t0)
    }

    #[test]
    fn k_concurrent_calls_are_kept_warm_with_one_ping_of_k() {
        let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
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
        let (mut w, t0) = after_six_cold_calls(config);
        assert_eq!(w.name(), "warmer-max2");
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
        // Without rotation: a round of two 115 minutes in is not what this is about.
        let unrotated = WarmerConfig {
            rotate_after: None,
            ..WarmerConfig::default()
        };
        let mut w = Warmer::new(unrotated.clone());
        w.start(&[info()], Duration::ZERO);
        let period = 15 * MIN;
        for k in 0..10u32 {
            let t = period * k;
            w.observe(&call(t, S, Some(Start::Warm)));
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
            ..unrotated
        });
        w.start(&[info()], Duration::ZERO);
        let mut longest = Duration::ZERO;
        for k in 0..10u32 {
            let t = period * k;
            w.observe(&call(t, S, Some(Start::Warm)));
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
        let idle = |since| Idle {
            since,
            born: Duration::ZERO,
        };
        let mut envs = Envs {
            idle: vec![idle(now - 290 * S); 3]
                .into_iter()
                .chain([idle(now - 60 * S); 2])
                .chain([idle(now - S); 4])
                .collect(),
            ..Envs::default()
        };
        // Four executions in flight hold the four most recent; five pings reach the five
        // below them, the oldest three included.
        envs.ping(now, 5, 4);
        assert_eq!(envs.idle, vec![idle(now - S); 4]);
        assert_eq!(envs.busy.len(), 5);
        // More pings than idle environments below the busy ones start new environments.
        let mut fresh = Envs {
            idle: vec![idle(now - 60 * S); 2],
            ..Envs::default()
        };
        fresh.ping(now, 3, 1);
        assert_eq!(fresh.idle, vec![idle(now - 60 * S)]);
        assert_eq!(fresh.busy.len(), 3);
    }

    #[test]
    fn a_function_that_stops_being_called_stops_being_pinged() {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        let mut t = Duration::ZERO;
        for _ in 0..8 {
            w.observe(&call(t, S, Some(Start::Warm)));
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
            w.observe(&call(S, S, Some(Start::Cold)));
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
    fn a_kept_environment_is_replaced_before_its_lifetime_can_end() {
        // Called every 3 minutes: real traffic keeps the environment fresh, so no refresh is
        // ever due; only its lifetime can end it, and that end would meet a call.
        let calls = |config: WarmerConfig| {
            let mut w = Warmer::new(config);
            w.start(&[info()], Duration::ZERO);
            let mut pings = run_until(&mut w, 10 * S);
            for i in 0..100u32 {
                let t = 10 * S + 3 * MIN * i;
                let start = if i == 0 {
                    Some(Start::Cold)
                } else {
                    Some(Start::Warm)
                };
                w.observe(&call(t, S, start));
                pings.extend(run_until(&mut w, t + 3 * MIN - S));
            }
            pings
        };
        let pings = calls(WarmerConfig::default());
        // A round of two at 115 minutes of the environment's life, and again at 230 minutes
        // of its successor's (created by that round): the first ping refreshes the old
        // environment, the second starts the successor, which Lambda reuses first.
        let rounds: Vec<_> = pings.iter().filter(|&&(t, _)| t > 10 * S).collect();
        assert_eq!(rounds.len(), 2, "{pings:?}");
        let born = 10 * S;
        assert_eq!(rounds[0].1, 2);
        assert!(rounds[0].0 >= born + 115 * MIN && rounds[0].0 < born + 116 * MIN);
        assert!(rounds[1].0 >= rounds[0].0 + 115 * MIN && rounds[1].0 < rounds[0].0 + 116 * MIN);
        // Without rotation the warmer never pings such a function.
        let unrotated = calls(WarmerConfig {
            rotate_after: None,
            ..WarmerConfig::default()
        });
        assert!(unrotated.iter().all(|&(t, _)| t <= 10 * S), "{unrotated:?}");
    }

    #[test]
    fn a_ping_that_met_a_cold_start_renews_the_oldest_environment_unless_it_was_meant_to() {
        let now = 200 * MIN;
        let mut envs = Envs {
            idle: vec![
                Idle {
                    since: now - 60 * S,
                    born: Duration::ZERO,
                },
                Idle {
                    since: now - S,
                    born: 100 * MIN,
                },
            ],
            ..Envs::default()
        };
        // A round of three: two reach the idle environments, one is meant to start a new one.
        envs.ping(now, 3, 0);
        envs.cold_ping(now);
        let mut born: Vec<_> = envs.busy.iter().map(|b| b.born).collect();
        born.sort();
        assert_eq!(born, vec![Duration::ZERO, 100 * MIN, now]);
        // A second cold start was not meant: the oldest environment had ended.
        envs.cold_ping(now);
        let oldest = envs.busy.iter().map(|b| b.born).min();
        assert_eq!(oldest, Some(100 * MIN));
    }

    #[test]
    fn the_name_is_the_simulators() {
        assert_eq!(Warmer::default().name(), "warmer");
    }
}
