//! The forecasting warmer: which keep-alive pings to send, per function, and when.
//!
//! Pure planner (ARCHITECTURE.md invariant 1): observations and `now` in, [`Action::Ping`]s
//! out. The gateway's executor and the simulator's engine drive the very same code.
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
//!   or create, less the executions in flight, which occupy the busiest ones).
//! - Calls in flight: the planner learns of a call when it ends, but a driver that sees calls
//!   leave (the gateway) also tells it how many run ([`Policy::in_flight`]). Each start then
//!   takes an environment in the replica, busy until the call's end is reported, so that
//!   rounds go past the calls in flight (an estimate from the busy time of the last minute
//!   stands in where no driver counts); the count raises the concurrency the forecast saw
//!   (calls longer than its lookback were undercounted), and a lone kept environment is
//!   neither refreshed nor rotated while a call holds it. Where the calls in flight fill a
//!   pool of several (`headroom_from`), one more environment is kept for the next call. A
//!   start at a kept function is planned at once (not at the next recheck, by when the rest
//!   of a burst has met the full pool), and a round due within the share of the refresh
//!   age the calls then running spare goes early: the calls hold the most recently used
//!   environments, which a round sent with none running must occupy first.
//! - The floor: while a function's last call is at most `floor_memory` old (or 1.5 times
//!   the longest idle time it has shown, if longer, up to two weeks), `K` is at least 1, as
//!   a 5-minute ping would keep it; a lone ping costs about a request charge, far less than
//!   the second or more a rare function's caller waits on a cold start.
//! - Depth: the pool is sized by a quantile of recent window peaks chosen per function by
//!   [`worth`]: the `j`-th environment is kept while it is needed in a large enough share of
//!   windows for the cold starts it spares (its init, as billed, times `cold_start_worth`) to
//!   pay its pings; a model-loading function keeps deeper pools than a small one. When the
//!   target falls, the depth is [held](depth) a few refreshes on the environments that
//!   exist, so that a wavering target does not start them again at each rise.
//! - `K = 0` (past the floor's memory): let the environments go; wake again `lead` before the
//!   idle-time histogram says an arrival becomes likely (a pre-warm), or never until the next
//!   call. But when an
//!   arrival becomes likely within `bridge` and an environment is still surely warm, keep it
//!   through the gap instead: a few refreshes of a warm environment cost less than the init
//!   a pre-warm pays.
//! - A refresh before the next call ([`next_call`]): where calls are heard only as they end,
//!   a lone environment's refresh that most likely meets the next call running (it would
//!   start a second environment) goes before that call becomes likely, as a timer called
//!   every 5 minutes needs.
//! - Short of `K`: one round creates the missing environments; where no driver counts the
//!   calls in flight, the next round to make up a shortfall waits `shortage_gap` (traffic in
//!   flight may have absorbed the last one).
//! - Lifetime: the replica also knows when each environment was created. Lambda ends an
//!   environment after a few hours whatever its use; for a function kept with one
//!   environment and likely called within the next refresh interval, `rotate_after` its
//!   creation a round of two starts a successor, which Lambda reuses first, so that the end
//!   falls on an environment nobody uses rather than on the next call. Where the ends are
//!   reported ([`Policy::environment_ended`], warmgate's extension), there is no rotation:
//!   the replica forgets the environment that ended and the pool is made up at once.
//! - Daily rises ([`daily`]): a minute in which calls met a cold start with several running
//!   is remembered for a day. Seen two days running within a minute of the same time, it is
//!   expected each day after: from `lead` and a minute before its minute to the minute's
//!   end, the function keeps as many environments as ran then (within its pings an hour). A
//!   timer that fans out at the same minute each day finds them warm; a rise that stops
//!   coming costs one round and is forgotten.
//!
//! Sparse functions thus get Shahrad et al.'s windows, sized by their burst (a function that
//! is called 6 at a time is pre-warmed with 6); busy ones keep their recent peak concurrency
//! (with the trend) warm beyond what their own traffic keeps. Until a function's histogram
//! has samples it is kept warm for `fallback_keep_alive` after each call, and a function never
//! seen is kept warm with one environment (`warm_unseen`), so that its first call is warm.
//! A per-function cap on pings per hour bounds the cost.
//!
//! Every target of a function runs the same code (ARCHITECTURE.md invariant 3); the planner
//! pings the function's first target and learns from observations of all of them.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::clock::Time;
use crate::policy::forecast::{ForecastConfig, FunctionForecast};
use crate::policy::{Action, FunctionId, FunctionInfo, KeptBy, Observation, Policy, Start};

mod config;
mod daily;
mod depth;
mod ledger;
mod next_call;
mod replica;
mod worth;

pub use config::WarmerConfig;
use daily::DailyRises;
use depth::DepthHold;
use ledger::PoolLedger;
use next_call::NextCallAtRefresh;
use replica::Envs;
pub use worth::FunctionWorth;

const HOUR: Duration = Duration::from_secs(3600);
/// A function's kept environment is rotated (see [`WarmerConfig::rotate_after`]) only when a
/// call within the next refresh interval is at least this likely.
const ROTATE_LIKELIHOOD: f64 = 0.5;
/// The share of a function's pings an hour that its pool's refreshes may use: the rest is left
/// for the rounds a pool sends besides (successors, rounds that make up a shortfall or go past
/// calls in flight). A pool sized to the whole cap had its next refresh cut short by any of
/// them; the pings that were left reached only the most recently used environments (Lambda's
/// order), so the oldest lapsed and the next round started them again (docs/warmer/history.md, "A
/// pool within its pings an hour").
const REFRESH_SHARE_OF_PINGS: f64 = 0.9;
/// The least step between two planning times of a function, so that a plan due now cannot
/// loop.
const MIN_STEP: Duration = Duration::from_secs(1);
/// The floor lasts past a function's last call at least this many times the longest idle
/// time it has shown (see [`WarmerConfig::floor_memory`]): a job called about once a day,
/// some hours later or earlier each day, finds its environment warm from its second gap.
const FLOOR_GAP_MARGIN: f64 = 1.5;
/// The longest the floor lasts past a function's last call, whatever gaps it has shown: a
/// function silent for two weeks (retired, or called less often than that) is let go, where
/// one long gap would otherwise keep it pinged for half as long again after each call.
const FLOOR_MOST: Duration = Duration::from_secs(14 * 24 * 3600);

#[derive(Debug, Clone)]
struct Function {
    /// No target: never pinged.
    pingable: bool,
    forecast: FunctionForecast,
    worth: FunctionWorth,
    envs: Envs,
    wake: Option<Time>,
    /// Pings sent in the last hour: (time, count).
    pings: VecDeque<(Time, u32)>,
    /// The most pings an hour: the configuration's cap or the driver's budget, the lower.
    ping_cap: Option<u32>,
    /// The GB-s a day the driver's budget lets this function's pings bill, inits included.
    ping_gb_s_per_day: Option<f64>,
    depth: DepthHold,
    /// What the pool's rounds cost and spared, and the cap it is kept within.
    ledger: PoolLedger,
    /// Rises of the last day, expected again at the same minute.
    daily: DailyRises,
    /// Real calls the driver has in flight (see [`Policy::in_flight`]; 0 where it cannot
    /// see them).
    running: u32,
    /// The driver counts this function's calls in flight (it has told a count).
    counted: bool,
    /// The latest round reached fewer environments than it had pings
    /// ([`Policy::round_missed`]), or a kept environment's end was reported
    /// ([`Policy::environment_ended`]): the shortfall is known, not inferred.
    missed: bool,
    /// How often the next call was running when a lone environment's refresh fell due.
    next_call: NextCallAtRefresh,
    /// Ends of this function's environments are reported ([`Policy::environment_ended`]):
    /// a kept one is replaced when it ends, not rotated before.
    ends_reported: bool,
}

/// The forecasting warmer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Warmer {
    config: WarmerConfig,
    functions: Vec<Function>,
    schedule: BTreeSet<(Time, FunctionId)>,
    /// Functions with rises not yet handed out ([`Policy::rises_to_keep`]), each once.
    rises_unshared: Vec<FunctionId>,
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
            rises_unshared: Vec::new(),
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
        self.target_kept_by(function, now).0
    }

    /// [`Self::target`], and the rule that sets it.
    fn target_kept_by(&self, function: FunctionId, now: Time) -> (u32, KeptBy) {
        let Some(f) = self.functions.get(function) else {
            return (0, KeptBy::Forecast);
        };
        let cfg = &self.config;
        let Some(last_end) = f.forecast.last_end() else {
            return (u32::from(cfg.warm_unseen), KeptBy::Unseen);
        };
        let floor = u32::from(
            cfg.floor_memory
                .map(|m| {
                    let shown = f.forecast.longest_idle().mul_f64(FLOOR_GAP_MARGIN);
                    m.max(shown.min(FLOOR_MOST))
                })
                .is_some_and(|m| now < last_end + m),
        );
        let horizon = cfg.min_lifetime;
        // Yesterday's peak of the coming hour only where calls are heard as they end: where
        // the driver sees them start, the planner plans at each start (and the gateway holds
        // requests for environments about to free), and a pool kept an hour for that peak
        // spared no cold start for its pings (docs/warmer/history.md, "Days after the first").
        let hour_profile = cfg.forecast.hour_profile && !f.counted;
        let sizing = ForecastConfig {
            peak_quantile: match cfg.cold_start_worth {
                Some(worth) => Some(f.worth.sizing_quantile(worth, self.refresh_age())),
                None => cfg.forecast.peak_quantile,
            },
            hour_profile,
            ..cfg.forecast.clone()
        };
        let now_demand = f.forecast.demand(now, horizon, &sizing);
        let most = self.most(f);
        let sized = now_demand.environments.clamp(1, most);
        match now_demand.probability {
            None if now < last_end + cfg.fallback_keep_alive => (sized, KeptBy::Fallback),
            None => (floor, KeptBy::Floor),
            Some(p) => {
                let later = f.forecast.demand(now + cfg.lead, horizon, &cfg.forecast);
                if p.max(later.probability.unwrap_or(0.0)) >= cfg.keep_threshold {
                    (sized, KeptBy::Forecast)
                } else if self.bridges(f, now) {
                    (sized, KeptBy::Bridge)
                } else {
                    (floor, KeptBy::Floor)
                }
            }
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

    /// The most environments `f` keeps: the configuration's cap and its ping budget's.
    fn most(&self, f: &Function) -> u32 {
        self.config
            .max_environments
            .unwrap_or(u32::MAX)
            .min(self.sustainable(f))
            .min(f.ledger.cap().unwrap_or(u32::MAX))
            .max(1)
    }

    fn refresh_age(&self) -> Duration {
        self.config.refresh_age()
    }

    /// The most environments a daily rise starts: one round, so within the pings an hour
    /// rather than the pool the budget sustains all day, and the configuration's cap.
    fn daily_most(&self, f: &Function) -> u32 {
        [self.config.max_environments, f.ping_cap]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u32::MAX)
    }

    /// The most environments `f`'s ping budget keeps warm: one ping each per refresh age
    /// within [a share](REFRESH_SHARE_OF_PINGS) of its pings an hour, and their holds and
    /// lifetime inits within its GB-s a day. A deeper pool would have part of each round
    /// refused: the environments it missed would be reclaimed, unknown to the replica, and the
    /// next round would start them again, each paying its init (one burst's pool of 190 on the
    /// full-day sample started 1,000 that way).
    fn sustainable(&self, f: &Function) -> u32 {
        let refresh = self.refresh_age();
        let by_pings = f.ping_cap.map_or(u32::MAX, |cap| {
            let refreshes = HOUR.as_secs_f64() / refresh.as_secs_f64();
            (f64::from(cap) * REFRESH_SHARE_OF_PINGS / refreshes) as u32
        });
        let by_gb_s = f.ping_gb_s_per_day.map_or(u32::MAX, |budget| {
            (budget / f.worth.daily_gb_s(refresh)).min(f64::from(u32::MAX)) as u32
        });
        by_pings.min(by_gb_s)
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

    /// The environments `function` keeps at `now`: its target, or a depth the target fell
    /// below while that is [held](depth) on the environments the replica knows; one more
    /// where calls in flight fill it (`headroom_from`). Brings the replica up to `now`
    /// (released executions, forgotten environments) first. With it, the rule that sets it.
    fn depth(&mut self, function: FunctionId, now: Time) -> (u32, KeptBy) {
        // Where the driver sees calls start, the planner can tell which found an environment
        // only pings kept; replayed from reports at calls' ends it cannot, and the pool is
        // sized by the forecast alone.
        if let (Some(worth), true) = (self.config.cold_start_worth, self.config.pool_caps) {
            let f = &mut self.functions[function];
            if f.counted {
                let spared = f.worth.init_dollars() * worth;
                f.ledger.choose(now, spared);
            }
        }
        let (target, kept_by) = self.target_kept_by(function, now);
        let refresh_age = self.refresh_age();
        let cfg = &self.config;
        let f = &mut self.functions[function];
        f.envs.release(now);
        if f.counted {
            f.envs.close_unreported(f.running, now);
        }
        f.envs.forget(now, cfg.max_idle);
        let kept = match cfg.depth_hold_rounds.filter(|_| target > 0) {
            Some(most) => {
                let rounds = f.worth.hold_rounds().min(f64::from(most));
                let existing = (f.envs.idle.len() + f.envs.busy.len()) as u32;
                f.depth
                    .depth(target, existing, now, refresh_age.mul_f64(rounds))
            }
            None => target,
        };
        let kept_by = if kept > target { KeptBy::Held } else { kept_by };
        let f = &self.functions[function];
        // A daily rise due now: kept apart from the hold, which would otherwise keep a
        // once-a-day burst's pool for half an hour after it.
        let daily = f.daily.expected(now, cfg.lead).min(self.daily_most(f));
        let (kept, kept_by) = if daily > kept {
            (daily, KeptBy::Daily)
        } else {
            (kept, kept_by)
        };
        match self.config.headroom_from {
            Some(least) if kept >= least && f.running >= kept => {
                let raised = (f.running + 1).min(self.most(f)).max(kept);
                (
                    raised,
                    if raised > kept {
                        KeptBy::Headroom
                    } else {
                        kept_by
                    },
                )
            }
            _ => (kept, kept_by),
        }
    }

    /// Plans `function` at `now`: the round to send now, if any (its pings and the rule
    /// behind it), and the next planning time, no later than a daily rise is due.
    fn plan(&mut self, function: FunctionId, now: Time) -> (Option<(u32, KeptBy)>, Option<Time>) {
        let (round, wake) = self.plan_round(function, now);
        let f = &self.functions[function];
        let daily = f
            .pingable
            .then(|| f.daily.next_due(now, self.config.lead))
            .flatten();
        (round, wake.into_iter().chain(daily).min())
    }

    fn plan_round(
        &mut self,
        function: FunctionId,
        now: Time,
    ) -> (Option<(u32, KeptBy)>, Option<Time>) {
        let (k, kept_by) = self.depth(function, now);
        let refresh_age = self.refresh_age();
        let cfg = &self.config;
        // Where ends are reported, the successor starts at the end rather than before it: a
        // rotation wastes what was left of the lifetime, an init every few hours.
        let rotates =
            k == 1 && !self.functions[function].ends_reported && self.likely_soon(function, now);
        let f = &mut self.functions[function];
        if !f.pingable {
            return (None, None);
        }
        let soon = now + MIN_STEP;
        if k == 0 {
            // Let go: wake `lead` before an arrival within `lead` becomes likely, if it will
            // (a pre-warm just before the demand, rather than a keep-alive through the gap).
            let wake = f
                .forecast
                .likely_from(now, cfg.lead, cfg.keep_threshold)
                .map(|t| t.saturating_sub(cfg.lead).max(soon));
            return (None, wake);
        }
        // Busy includes the calls the driver saw start: a lone kept environment a call holds
        // is neither refreshed nor rotated until the call's end, which refreshes it (a ping
        // would find it busy and start a second; a successor would not be reused first).
        let busy = f.envs.busy.len() as u32;
        let needed = k.saturating_sub(busy) as usize;
        let recheck = now + cfg.recheck;
        if needed == 0 {
            return (None, Some(recheck));
        }
        let idle = &f.envs.idle;
        let refresh_due = if idle.len() >= needed {
            let since = idle[idle.len() - needed].since;
            let due = since + refresh_age;
            if needed == 1 && !f.counted {
                let early = f.next_call.refresh_before(
                    since,
                    &f.forecast,
                    f.worth.hold_rounds(),
                    cfg.forecast.bin,
                );
                due.min(early.unwrap_or(due))
            } else {
                due
            }
        } else {
            // Short of environments: create them, but not at every recheck (traffic in flight
            // may have absorbed the last round); the ones there are still refreshed in time.
            let refresh = idle.first().map(|e| e.since + refresh_age);
            // Where the driver counts calls, the replica holds them: what is short is short.
            // A daily rise is short by what it asks for, a round that missed by what it missed.
            let gap = if f.counted || kept_by == KeptBy::Daily || f.missed {
                Duration::ZERO
            } else {
                cfg.shortage_gap
            };
            let retry = f.pings.back().map_or(now, |&(t, _)| t + gap);
            refresh.map_or(retry, |r| r.min(retry))
        };
        // Executions in flight occupy the most recently idle environments: the pings go past
        // them, so they need not be counted. The driver's count where it sees them leave,
        // else the forecast's estimate: a round sized by a low estimate met calls in flight
        // and started environments nobody asked for. Calls seen starting are already busy in
        // the replica.
        let estimated = f.forecast.concurrency.in_flight(now).floor() as u32;
        let in_flight = estimated.max(f.running).saturating_sub(f.envs.open_calls());
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
        // A round due soon goes now while calls the driver saw start hold the most recently
        // used environments: Lambda gives a ping the most recently used idle one, so a round
        // sent with no call running must occupy the ones traffic keeps fresh before it
        // reaches the oldest. It goes early only by the share of the round the calls spare
        // (sent `d` early, the next is due `d` sooner), and at most a recheck early.
        let open = f.envs.open_calls();
        let early = open > 0
            && due > now
            && due - now
                <= refresh_age
                    .mul_f64(f64::from(open) / f64::from(k))
                    .min(cfg.recheck);
        if due > now && !early {
            return (None, Some(due.min(recheck).max(soon)));
        }
        while f.pings.front().is_some_and(|&(t, _)| t + HOUR <= now) {
            f.pings.pop_front();
        }
        if rotate {
            count += 1;
        }
        let wanted = count;
        if let Some(cap) = f.ping_cap {
            let used: u32 = f.pings.iter().map(|&(_, c)| c).sum();
            count = count.min(cap.saturating_sub(used));
            if count == 0 {
                let freed = f.pings.front().map_or(recheck, |&(t, _)| t + HOUR);
                return (None, Some(freed.max(soon)));
            }
        }
        // A cap may have taken the successor's ping. Otherwise the oldest is retired even
        // when the round reached only environments the replica knew (an earlier successor
        // among them): kept, it made every later round a rotation (a timer met one a minute).
        let rotate = rotate && count == wanted;
        f.pings.push_back((now, count));
        f.missed = false;
        f.envs.ping(now, count, in_flight);
        f.ledger.round(now, k, count, f.worth.round_ping_dollars());
        if rotate {
            f.envs.retire_oldest(k as usize + 1);
        }
        let kept_by = if rotate { KeptBy::Rotation } else { kept_by };
        (
            Some((count, kept_by)),
            Some(recheck.min(now + refresh_age).max(soon)),
        )
    }
}

impl Policy for Warmer {
    fn name(&self) -> String {
        self.config.name()
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        self.schedule.clear();
        self.rises_unshared.clear();
        self.functions = functions
            .iter()
            .map(|info| Function {
                pingable: !info.targets.is_empty(),
                forecast: FunctionForecast::new(&self.config.forecast),
                worth: FunctionWorth::new(info.memory_mb),
                envs: Envs::default(),
                wake: None,
                pings: VecDeque::new(),
                ping_cap: [
                    self.config.max_pings_per_hour,
                    info.ping_budget.map(|b| b.pings_per_hour),
                ]
                .into_iter()
                .flatten()
                .min(),
                ping_gb_s_per_day: info.ping_budget.map(|b| b.gb_s_per_day),
                depth: DepthHold::default(),
                ledger: PoolLedger::default(),
                daily: DailyRises::default(),
                running: 0,
                counted: false,
                missed: false,
                next_call: NextCallAtRefresh::default(),
                ends_reported: self.config.ends_reported,
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
        if let (Some(f), Some(init)) = (self.functions.get_mut(o.function), o.init) {
            f.worth.record_init(init);
        }
        if o.ping && o.start == Some(Start::Cold) {
            if let Some(f) = self.functions.get_mut(o.function) {
                f.envs.cold_ping(o.arrived);
                f.ledger.started(o.arrived, f.worth.init_dollars());
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
        if let Some(last_end) = f.forecast.last_end().filter(|&l| o.arrived > l) {
            f.next_call.record(last_end, o.arrived, end, refresh_age);
        }
        let concurrency = f.envs.call_ended(o.arrived, end, cold);
        for depth in f.envs.saves.drain(..) {
            f.ledger.spared(o.arrived, depth);
        }
        if cold {
            f.ledger.cold(o.arrived, concurrency);
        }
        f.forecast.record(o.arrived, end, concurrency);
        // The minute's peak: where the driver counts calls as they start it is exact, where
        // the reports of a burst's long calls are still to come it is more than this one saw.
        let peak = concurrency.max(f.forecast.concurrency.peak_in(o.arrived));
        let mut unshared = false;
        if self.config.daily_rises {
            let before = f.daily.has_unshared();
            f.daily.record(o.arrived, peak, cold, self.config.lead);
            unshared = !before && f.daily.has_unshared();
        }
        // Real traffic refreshed its environments: plan again no later than when they age.
        let due = end + refresh_age;
        if f.pingable && f.wake.is_none_or(|w| w > due) {
            self.reschedule(o.function, Some(due));
        }
        if unshared {
            self.rises_unshared.push(o.function);
        }
    }

    fn in_flight(&mut self, function: FunctionId, requests: u32, now: Time) {
        if let Some(f) = self.functions.get_mut(function) {
            // A start: the count is the concurrency it met, which the reports that come as
            // calls end undercount for calls longer than their lookback.
            let started = requests > f.running;
            if started {
                f.forecast.record_running(now, requests);
                for _ in f.running..requests {
                    f.envs.call_started(now);
                }
                for depth in f.envs.saves.drain(..) {
                    f.ledger.spared(now, depth);
                }
            }
            f.running = requests;
            f.counted = true;
            // A start at a function kept warm (planned every recheck) is planned at once: it
            // may fill the pool (one more is then kept for the next call) or let a round due
            // soon pass the calls now running. Waiting for the recheck met the rest of a
            // burst cold.
            let kept = f
                .wake
                .is_some_and(|w| w > now && w <= now + self.config.recheck);
            if started && f.pingable && kept {
                self.reschedule(function, Some(now));
            }
        }
    }

    fn round_missed(&mut self, function: FunctionId, missed: u32, now: Time) {
        let Some(f) = self.functions.get_mut(function) else {
            return;
        };
        f.envs.missed(missed);
        f.missed = true;
        // The pool is short by what the round missed: planned at once, the next round (held
        // longer) starts them, rather than the next refresh finding them gone.
        if f.pingable {
            self.reschedule(function, Some(now));
        }
    }

    fn environment_ended(&mut self, function: FunctionId, born: Time, now: Time) {
        let Some(f) = self.functions.get_mut(function) else {
            return;
        };
        f.ends_reported = true;
        // One the planner keeps: the pool is short by it, known rather than inferred.
        if f.envs.ended(born, now) && f.pingable {
            f.missed = true;
            self.reschedule(function, Some(now));
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
            let (round, wake) = self.plan(function, now);
            self.reschedule(function, wake);
            if let Some((count, kept_by)) = round {
                actions.push(Action::Ping {
                    function,
                    target: 0,
                    count,
                    kept_by,
                });
            }
        }
        actions
    }

    fn next_wake(&self) -> Option<Time> {
        self.schedule.first().map(|&(at, _)| at)
    }

    fn rises_to_keep(&mut self) -> Vec<(FunctionId, i64, u32)> {
        let mut rises = Vec::new();
        for function in std::mem::take(&mut self.rises_unshared) {
            rises.extend(
                self.functions[function]
                    .daily
                    .take_unshared()
                    .into_iter()
                    .map(|(minute, peak)| (function, minute, peak)),
            );
        }
        rises
    }

    fn daily_rises(&self, function: FunctionId) -> Vec<crate::policy::RiseSeen> {
        self.functions
            .get(function)
            .map_or_else(Vec::new, |f| f.daily.seen())
    }

    fn kept_rise(&mut self, function: FunctionId, minute: i64, peak: u32) {
        let Some(f) = self
            .functions
            .get_mut(function)
            .filter(|_| self.config.daily_rises)
        else {
            return;
        };
        f.daily.merge(minute, peak);
        // Planned at the next act, which wakes it again by the time the rise is due.
        if f.pingable {
            self.reschedule(function, Some(Time::ZERO));
        }
    }
}

#[cfg(test)]
mod tests;
