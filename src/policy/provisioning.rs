//! The provisioned-concurrency planner: per function, the level of provisioned concurrency
//! (PC) that costs least for the load it has been seeing, raised at once and lowered late.
//!
//! Each minute's load is learnt from the executions the driver reports (an execution occupies
//! an environment from its arrival for its init, on a cold start, and its duration): the
//! minute's busy time (its mean concurrency) and its peak concurrency. A minute is counted
//! once it is [`MINUTE_FINAL`] old, when its executions have mostly been reported.
//!
//! The level is chosen environment by environment ([`choose_level`]): the `k`-th provisioned
//! environment is kept while what it would save is at least what it costs. It costs its
//! allocation every second; it saves, on the share of the time a `k`-th execution runs, the
//! difference between the on-demand and the provisioned duration price (break-even near 60%
//! utilisation on Lambda's prices), and the cold starts a `k`-th environment would have met
//! on demand (a minute that needs it after ten that did not: the on-demand one was
//! reclaimed meanwhile), each worth `cold_start_worth` times the init it bills. A level
//! above the current one is asked for at once (an allocation takes a minute or two); a level
//! below it only after it has been below for `lower_after` minutes (PC is billed by the five
//! minutes, and load comes back), and then to the highest level of that stretch. The
//! level is also at least what the coming hour called for yesterday, looked at
//! `lead_minutes` ahead: a rise that comes back daily finds its environments READY.
//!
//! Pure (ARCHITECTURE.md invariant 1): observations and `now` in, `SetProvisioned` out, on
//! each function's first target.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::Time;
use crate::policy::cost::Prices;
use crate::policy::{Action, FunctionId, FunctionInfo, Observation, Policy};

/// A minute's executions are counted once the minute is this old: most have ended and been
/// reported by then.
pub const MINUTE_FINAL: Duration = Duration::from_secs(60);
const MINUTE: Duration = Duration::from_secs(60);
const MINUTES_A_DAY: usize = 24 * 60;
/// Quiet minutes after which an environment a minute needs is taken to start cold on
/// demand: Lambda reclaims idle environments after 5 to 10 minutes.
const RECLAIMED_AFTER_MINUTES: usize = 10;
/// Allocation times kept per function: the lead is the longest of these.
const ALLOCATIONS_KEPT: usize = 5;

/// What the planner is set with.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningConfig {
    /// Minutes of load the level is chosen from.
    pub window_minutes: usize,
    /// Minutes a lower level must hold before provisioned concurrency is lowered.
    pub lower_after_minutes: usize,
    /// How far ahead the hour that yesterday followed is looked at, before any allocation is
    /// seen: an allocation takes a minute or two, so a level that yesterday's load called for
    /// this many minutes from now is asked for now, and is READY when the load comes back.
    /// Once allocations are seen, the longest of the last few, in whole minutes, plus one.
    pub lead_minutes: usize,
    /// A cold start spared is worth this many times the init it bills.
    pub cold_start_worth: f64,
    /// The init a cold start bills, before any is seen.
    pub default_init: Duration,
    /// An environment busy at least this share of the time is provisioned even where it
    /// costs more than on demand: each on-demand environment in use meets a cold start when
    /// Lambda ends it (every few hours), and bursts over a low level meet more. The knob
    /// that trades dollars for cold starts.
    pub min_utilisation: f64,
    pub prices: Prices,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        Self {
            window_minutes: 60,
            lower_after_minutes: 15,
            lead_minutes: 5,
            cold_start_worth: 3.0,
            default_init: Duration::from_secs(1),
            min_utilisation: 1.0,
            prices: Prices::us_east_1(crate::platform::spec::Architecture::X86_64),
        }
    }
}

/// One minute of a function's load.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinuteLoad {
    /// Busy environment-seconds: the mean concurrency times 60.
    pub busy_s: f64,
    /// The most executions running at once.
    pub peak: u32,
}

/// The cheapest level for `history` (oldest first) at `memory_mb`, a cold start billing
/// `init` (see the module's documentation).
pub fn choose_level(
    history: &[MinuteLoad],
    memory_mb: u32,
    init: Duration,
    config: &ProvisioningConfig,
) -> u32 {
    if history.is_empty() {
        return 0;
    }
    let gb = f64::from(memory_mb) / 1024.0;
    let minutes = history.len() as f64;
    let prices = &config.prices;
    let cost_per_minute = 60.0 * gb * prices.provisioned_gb_s;
    let duration_saving = gb * (prices.on_demand_gb_s - prices.provisioned_duration_gb_s);
    let cold_start = init.as_secs_f64() * gb * prices.on_demand_gb_s * config.cold_start_worth;
    let top = history.iter().map(|m| m.peak).max().unwrap_or(0);
    if top == 0 {
        return 0;
    }
    let mut level = 0;
    for k in 1..=top {
        let below = f64::from(k - 1);
        let busy_s: f64 = history
            .iter()
            .map(|m| (m.busy_s - 60.0 * below).clamp(0.0, 60.0))
            .sum();
        let cold_starts = history
            .iter()
            .enumerate()
            .filter(|&(i, m)| {
                m.peak >= k
                    && history[i.saturating_sub(RECLAIMED_AFTER_MINUTES)..i]
                        .iter()
                        .all(|earlier| earlier.peak < k)
            })
            .count() as f64;
        let saving = (busy_s * duration_saving + cold_starts * cold_start) / minutes;
        let utilisation = busy_s / (60.0 * minutes);
        if saving >= cost_per_minute || utilisation >= config.min_utilisation {
            level = k;
        }
    }
    level
}

/// An execution's stay on an environment.
#[derive(Debug, Clone, Copy)]
struct Stay {
    from: Time,
    to: Time,
}

#[derive(Debug, Default)]
struct FunctionLoad {
    memory_mb: u32,
    /// Stays not yet folded into a final minute.
    open: Vec<Stay>,
    /// The first minute not final yet.
    next_minute: u64,
    history: VecDeque<MinuteLoad>,
    /// The last day's minutes, by minute of the day (empty until a minute is counted).
    day: Vec<MinuteLoad>,
    /// Inits seen: their sum and count.
    init_sum: Duration,
    inits: u32,
    /// The level asked for, and the levels chosen while below it (for the lowering).
    level: u32,
    below: Vec<u32>,
    /// The allocation times seen (IN_PROGRESS to READY), the latest last.
    allocations: VecDeque<Duration>,
}

impl FunctionLoad {
    /// Folds minute `m` into the history.
    fn finish_minute(&mut self, m: u64, window: usize) {
        let (start, end) = (MINUTE * m as u32, MINUTE * (m as u32 + 1));
        let mut edges: Vec<(Time, i32)> = Vec::new();
        let mut busy = Duration::ZERO;
        for stay in &self.open {
            let (from, to) = (stay.from.max(start), stay.to.min(end));
            if from < to {
                busy += to - from;
                edges.push((from, 1));
                edges.push((to, -1));
            }
        }
        // Ends before starts at the same instant: back-to-back stays share an environment.
        edges.sort_unstable();
        let (mut running, mut peak) = (0i32, 0i32);
        for (_, step) in edges {
            running += step;
            peak = peak.max(running);
        }
        self.open.retain(|stay| stay.to > end);
        let minute = MinuteLoad {
            busy_s: busy.as_secs_f64(),
            peak: peak as u32,
        };
        if self.day.is_empty() {
            self.day = vec![MinuteLoad::default(); MINUTES_A_DAY];
        }
        self.day[m as usize % MINUTES_A_DAY] = minute;
        self.history.push_back(minute);
        while self.history.len() > window {
            self.history.pop_front();
        }
    }

    /// Minutes ahead a daily rise is looked for: the longest of the recent allocations, in
    /// whole minutes, and one more for the minute a level waits to be asked for; the
    /// configured lead before any allocation is seen.
    fn lead_minutes(&self, configured: usize) -> usize {
        match self.allocations.iter().max() {
            Some(longest) => longest.as_secs().div_ceil(60) as usize + 1,
            None => configured,
        }
    }

    fn init(&self, default: Duration) -> Duration {
        if self.inits == 0 {
            default
        } else {
            self.init_sum / self.inits
        }
    }
}

/// The planner, over every function.
#[derive(Debug, Default)]
pub struct Provisioning {
    config: ProvisioningConfig,
    functions: Vec<FunctionLoad>,
    /// Functions without a target are left alone.
    managed: Vec<bool>,
    /// The next minute boundary at which minutes become final.
    next_wake: Option<Time>,
}

impl Provisioning {
    pub fn new(config: ProvisioningConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }
}

impl Policy for Provisioning {
    fn name(&self) -> String {
        "pc-planner".into()
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        let first = now.as_secs() / 60;
        self.functions = functions
            .iter()
            .map(|info| FunctionLoad {
                memory_mb: info.memory_mb,
                next_minute: first,
                ..FunctionLoad::default()
            })
            .collect();
        self.managed = functions.iter().map(|f| !f.targets.is_empty()).collect();
        self.next_wake = Some(MINUTE * (first as u32 + 1) + MINUTE_FINAL);
        Vec::new()
    }

    fn observe(&mut self, observation: &Observation) {
        if observation.ping || observation.throttled {
            return;
        }
        let Some(load) = self.functions.get_mut(observation.function) else {
            return;
        };
        if let Some(init) = observation.init {
            load.init_sum += init;
            load.inits += 1;
        }
        let stay = observation.init.unwrap_or_default() + observation.duration;
        // A minute already counted cannot take it any more; it is lost to that minute, as
        // late data is to a metric.
        let from = observation.arrived.max(MINUTE * load.next_minute as u32);
        let to = observation.arrived + stay;
        if from < to {
            load.open.push(Stay { from, to });
        }
    }

    fn act(&mut self, now: Time) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(wake) = self.next_wake else {
            return actions;
        };
        if now < wake {
            return actions;
        }
        // Minutes ending at or before now - MINUTE_FINAL are final.
        let final_before = now.saturating_sub(MINUTE_FINAL).as_secs() / 60;
        let config = &self.config;
        for (function, load) in self.functions.iter_mut().enumerate() {
            if !self.managed[function] {
                continue;
            }
            while load.next_minute < final_before {
                let m = load.next_minute;
                load.finish_minute(m, config.window_minutes);
                load.next_minute += 1;
            }
            let history: Vec<MinuteLoad> = load.history.iter().copied().collect();
            let init = load.init(config.default_init);
            let recent = choose_level(&history, load.memory_mb, init, config);
            // The hour ahead as it went yesterday (from `lead_minutes` on), so that a daily
            // rise finds its environments READY.
            let ahead = if load.day.is_empty() {
                0
            } else {
                let from = (now.as_secs() / 60) as usize + load.lead_minutes(config.lead_minutes);
                let yesterday: Vec<MinuteLoad> = (from..from + config.window_minutes)
                    .map(|m| load.day[m % MINUTES_A_DAY])
                    .collect();
                choose_level(&yesterday, load.memory_mb, init, config)
            };
            let chosen = recent.max(ahead);
            if let Some(level) = next_level(load, chosen, config.lower_after_minutes) {
                actions.push(Action::SetProvisioned {
                    function: function as FunctionId,
                    target: 0,
                    concurrency: level,
                });
            }
        }
        self.next_wake = Some(MINUTE * (final_before as u32 + 1) + MINUTE_FINAL);
        actions
    }

    fn next_wake(&self) -> Option<Time> {
        self.next_wake
    }

    fn provisioned_ready(&mut self, function: FunctionId, after: Duration) {
        if let Some(load) = self.functions.get_mut(function) {
            load.allocations.push_back(after);
            while load.allocations.len() > ALLOCATIONS_KEPT {
                load.allocations.pop_front();
            }
        }
    }
}

/// Provisioned concurrency for steady load and keep-alive pings for the rest: the planner
/// and a keep-alive policy side by side, each seeing every observation.
pub struct WithKeepAlive {
    pub planner: Provisioning,
    pub keep_alive: Box<dyn Policy>,
}

impl Policy for WithKeepAlive {
    fn name(&self) -> String {
        format!("pc-planner-{}", self.keep_alive.name())
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        let mut actions = self.planner.start(functions, now);
        actions.extend(self.keep_alive.start(functions, now));
        actions
    }

    fn observe(&mut self, observation: &Observation) {
        self.planner.observe(observation);
        self.keep_alive.observe(observation);
    }

    fn act(&mut self, now: Time) -> Vec<Action> {
        let mut actions = self.planner.act(now);
        actions.extend(self.keep_alive.act(now));
        actions
    }

    fn next_wake(&self) -> Option<Time> {
        match (self.planner.next_wake(), self.keep_alive.next_wake()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn provisioned_ready(&mut self, function: FunctionId, after: Duration) {
        self.planner.provisioned_ready(function, after);
    }
}

/// The level to ask for now, if it changes: up at once, down after `lower_after` minutes
/// below, to the highest level chosen meanwhile.
fn next_level(load: &mut FunctionLoad, chosen: u32, lower_after: usize) -> Option<u32> {
    if chosen >= load.level {
        load.below.clear();
        if chosen > load.level {
            load.level = chosen;
            return Some(chosen);
        }
        return None;
    }
    load.below.push(chosen);
    if load.below.len() < lower_after {
        return None;
    }
    let level = load.below.iter().copied().max().unwrap_or(0);
    load.below.clear();
    (level != load.level).then(|| {
        load.level = level;
        level
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_is_the_longest_allocation_seen_in_whole_minutes_and_one() {
        let mut planner = Provisioning::new(ProvisioningConfig::default());
        let info = FunctionInfo {
            name: "f".into(),
            app: "a".into(),
            memory_mb: 1024,
            targets: vec!["live".into()],
        };
        planner.start(&[info], Duration::ZERO);
        let lead = |p: &Provisioning| p.functions[0].lead_minutes(5);
        assert_eq!(
            lead(&planner),
            5,
            "the configured lead before any allocation"
        );
        planner.provisioned_ready(0, Duration::from_secs(90));
        assert_eq!(lead(&planner), 3, "90 s: two minutes, and one");
        planner.provisioned_ready(0, Duration::from_secs(8 * 60));
        assert_eq!(lead(&planner), 9);
        for _ in 0..ALLOCATIONS_KEPT {
            planner.provisioned_ready(0, Duration::from_secs(60));
        }
        assert_eq!(
            lead(&planner),
            2,
            "the long one is forgotten after five others"
        );
        planner.provisioned_ready(7, Duration::from_secs(60));
    }

    fn steady(concurrency: f64, minutes: usize) -> Vec<MinuteLoad> {
        vec![
            MinuteLoad {
                busy_s: 60.0 * concurrency,
                peak: concurrency.ceil() as u32,
            };
            minutes
        ]
    }

    #[test]
    fn steady_load_is_provisioned_where_it_pays() {
        let config = ProvisioningConfig::default();
        // 4.5 executions at once all the time: four environments always busy pay for
        // themselves; the fifth, busy half the time, is below the break-even (60%).
        assert_eq!(
            choose_level(&steady(4.5, 60), 1024, Duration::from_secs(1), &config),
            4
        );
        // At 70% it is above.
        assert_eq!(
            choose_level(&steady(4.7, 60), 1024, Duration::from_secs(1), &config),
            5
        );
        // Nothing to serve, nothing to provision.
        assert_eq!(
            choose_level(&steady(0.0, 60), 1024, Duration::from_secs(1), &config),
            0
        );
        assert_eq!(choose_level(&[], 1024, Duration::from_secs(1), &config), 0);
    }

    #[test]
    fn cold_starts_a_level_would_spare_count_towards_it() {
        let config = ProvisioningConfig::default();
        // A burst to 3 every 11 minutes, 2 otherwise: the third environment is seldom busy,
        // and each burst would meet a cold start on demand (its environment reclaimed).
        let history: Vec<MinuteLoad> = (0..60)
            .map(|m| MinuteLoad {
                busy_s: if m % 11 == 0 { 150.0 } else { 120.0 },
                peak: if m % 11 == 0 { 3 } else { 2 },
            })
            .collect();
        let cheap_init = choose_level(&history, 1024, Duration::from_millis(100), &config);
        let model_load = choose_level(&history, 1024, Duration::from_secs(60), &config);
        assert_eq!(cheap_init, 2);
        assert_eq!(
            model_load, 3,
            "a minute-long model load is worth keeping its environment for"
        );
    }

    fn observation(function: usize, at_s: u64, duration_s: u64) -> Observation {
        Observation {
            function,
            target: 0,
            arrived: Duration::from_secs(at_s),
            duration: Duration::from_secs(duration_s),
            init: None,
            start: Some(crate::policy::Start::Warm),
            ping: false,
            throttled: false,
        }
    }

    #[test]
    fn raises_at_once_and_lowers_after_the_hysteresis() {
        let info = FunctionInfo {
            name: "f".into(),
            app: "a".into(),
            memory_mb: 1024,
            targets: vec!["live".into()],
        };
        let mut planner = Provisioning::new(ProvisioningConfig::default());
        assert!(planner.start(&[info], Duration::ZERO).is_empty());
        // 30 minutes of 3 executions at once, all minute long.
        for minute in 0..30 {
            for _ in 0..3 {
                planner.observe(&observation(0, minute * 60, 60));
            }
        }
        let mut levels = Vec::new();
        let mut now = Duration::ZERO;
        while now <= Duration::from_secs(30 * 60) {
            now = planner.next_wake().unwrap();
            for action in planner.act(now) {
                let Action::SetProvisioned { concurrency, .. } = action else {
                    panic!("{action:?}")
                };
                levels.push((now.as_secs() / 60, concurrency));
            }
        }
        assert_eq!(
            levels,
            vec![(2, 3)],
            "raised to 3 once its first minute is final"
        );
        // Then quiet: lowered to 0 only after 15 minutes below.
        let mut lowered = None;
        while lowered.is_none() && now < Duration::from_secs(3 * 3600) {
            now = planner.next_wake().unwrap();
            if let Some(Action::SetProvisioned { concurrency, .. }) = planner.act(now).pop() {
                lowered = Some((now.as_secs() / 60, concurrency));
            }
        }
        let (minute, level) = lowered.expect("lowered");
        assert!(level < 3);
        assert!(
            minute >= 31 + 15,
            "not before 15 minutes below: minute {minute}"
        );
    }
}
