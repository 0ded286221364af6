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
//! reclaimed meanwhile; the planner keeps ten minutes before its window to tell, and a
//! minute whose ten before it are not known is not counted), each worth `cold_start_worth`
//! times the init it bills. A level above the current one is asked for at once (an
//! allocation takes a minute or two); a level below it only after it has been below for
//! `lower_after` minutes (PC is billed by the five minutes, and load comes back), and then
//! to the highest level of that stretch. The
//! level is also at least what the coming hour called for yesterday, looked at
//! `lead_minutes` ahead: a rise that comes back daily finds its environments READY.
//!
//! Several replicas behind a load balancer each see a share of the load: each hands out the
//! minutes it finished ([`Provisioning::finished_minutes`], once sharing is on), the shell
//! adds them up across replicas (Redis), and gives each planner the fleet's totals
//! ([`Provisioning::fleet_minute`]), which replace its own for that minute. Minutes start at
//! a phase the shell sets ([`Provisioning::with_minute_phase`]) so that every replica's
//! minutes are the same wall-clock minutes; the simulator's phase is zero.
//!
//! Pure (ARCHITECTURE.md invariant 1): observations and `now` in, `SetProvisioned` out, on
//! each function's first target.

use std::time::Duration;

use crate::clock::Time;
use crate::policy::cost::Prices;
use crate::policy::{Action, FunctionId, FunctionInfo, Observation, Policy};

mod load;

pub use load::{choose_level, MinuteLoad};
use load::{minute_of, minute_start, FunctionLoad, Stay};

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

/// The planner, over every function.
#[derive(Debug, Default)]
pub struct Provisioning {
    config: ProvisioningConfig,
    functions: Vec<FunctionLoad>,
    /// Functions without a target are left alone.
    managed: Vec<bool>,
    /// The next minute boundary at which minutes become final.
    next_wake: Option<Time>,
    /// Where minutes start on the policy clock (under a minute).
    phase: Duration,
    /// Whether finished minutes are kept for [`Provisioning::finished_minutes`]: off unless
    /// asked for, so that a replay, which never collects them, does not pile them up.
    sharing: bool,
    /// Minutes finished since last collected: function, minute, load.
    finished: Vec<(FunctionId, u64, MinuteLoad)>,
}

impl Provisioning {
    pub fn new(config: ProvisioningConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Minutes start at `phase` (modulo a minute) on the policy clock rather than at its
    /// origin: the shell aligns them with wall-clock minutes, so that replicas whose clocks
    /// started at different times count the same minutes.
    pub fn with_minute_phase(mut self, phase: Duration) -> Self {
        self.phase = Duration::from_nanos((phase.as_nanos() % MINUTE.as_nanos()) as u64);
        self
    }

    /// Keeps each minute finished for [`Provisioning::finished_minutes`].
    pub fn sharing(mut self) -> Self {
        self.sharing = true;
        self
    }

    /// Minute `m` (of this planner's minutes, see [`Provisioning::with_minute_phase`])
    /// starts here on the policy clock.
    pub fn minute_start(&self, m: u64) -> Time {
        minute_start(self.phase, m)
    }
}

impl Policy for Provisioning {
    fn name(&self) -> String {
        "pc-planner".into()
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        let first = minute_of(self.phase, now);
        self.functions = functions
            .iter()
            .map(|info| FunctionLoad {
                memory_mb: info.memory_mb,
                next_minute: first,
                ..FunctionLoad::default()
            })
            .collect();
        self.managed = functions.iter().map(|f| !f.targets.is_empty()).collect();
        self.finished.clear();
        self.next_wake = Some(minute_start(self.phase, first + 1) + MINUTE_FINAL);
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
        let from = observation
            .arrived
            .max(minute_start(self.phase, load.next_minute));
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
        let final_before = minute_of(self.phase, now.saturating_sub(MINUTE_FINAL));
        let config = &self.config;
        let phase = self.phase;
        for (function, load) in self.functions.iter_mut().enumerate() {
            if !self.managed[function] {
                continue;
            }
            while load.next_minute < final_before {
                let m = load.next_minute;
                let minute = load.finish_minute(m, phase, config.window_minutes);
                load.next_minute += 1;
                if self.sharing {
                    self.finished.push((function, m, minute));
                }
            }
            let history: Vec<MinuteLoad> = load.history.iter().copied().collect();
            let (before, window) =
                history.split_at(history.len().saturating_sub(config.window_minutes));
            let init = load.init(config.default_init);
            let recent = choose_level(before, window, load.memory_mb, init, config);
            // The hour ahead as it went yesterday (from `lead_minutes` on), so that a daily
            // rise finds its environments READY.
            let ahead = if load.day.is_empty() {
                0
            } else {
                let from = minute_of(phase, now) as usize + load.lead_minutes(config.lead_minutes);
                let day = |m: usize| load.day[m % MINUTES_A_DAY];
                // The minutes before the hour, for telling a rise at its start from quiet:
                // today's where they are past, yesterday's where they are to come.
                let before: Vec<MinuteLoad> = (from + MINUTES_A_DAY - RECLAIMED_AFTER_MINUTES
                    ..from + MINUTES_A_DAY)
                    .map(day)
                    .collect();
                let yesterday: Vec<MinuteLoad> =
                    (from..from + config.window_minutes).map(day).collect();
                choose_level(&before, &yesterday, load.memory_mb, init, config)
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
        self.next_wake = Some(minute_start(phase, final_before + 1) + MINUTE_FINAL);
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

    fn finished_minutes(&mut self) -> Vec<(FunctionId, u64, MinuteLoad)> {
        std::mem::take(&mut self.finished)
    }

    /// Busy seconds add up exactly across replicas; peaks are added too, an upper bound of
    /// the fleet's peak (the replicas' peaks need not fall at the same instant).
    fn fleet_minute(&mut self, function: FunctionId, minute: u64, total: MinuteLoad) {
        if let Some(load) = self.functions.get_mut(function) {
            load.fleet_minute(minute, total);
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

    fn in_flight(&mut self, function: FunctionId, requests: u32, now: Time) {
        self.keep_alive.in_flight(function, requests, now);
    }

    fn round_missed(&mut self, function: FunctionId, missed: u32, now: Time) {
        self.keep_alive.round_missed(function, missed, now);
    }

    fn environment_ended(&mut self, function: FunctionId, born: Time, now: Time) {
        self.keep_alive.environment_ended(function, born, now);
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

    fn finished_minutes(&mut self) -> Vec<(FunctionId, u64, MinuteLoad)> {
        self.planner.finished_minutes()
    }

    fn fleet_minute(&mut self, function: FunctionId, minute: u64, total: MinuteLoad) {
        self.planner.fleet_minute(function, minute, total);
    }

    fn rises_to_keep(&mut self) -> Vec<(FunctionId, i64, u32)> {
        self.keep_alive.rises_to_keep()
    }

    fn kept_rise(&mut self, function: FunctionId, minute: i64, peak: u32) {
        self.keep_alive.kept_rise(function, minute, peak);
    }

    fn daily_rises(&self, function: FunctionId) -> Vec<crate::policy::RiseSeen> {
        self.keep_alive.daily_rises(function)
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
            ping_budget: None,
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
            choose_level(&[], &steady(4.5, 60), 1024, Duration::from_secs(1), &config),
            4
        );
        // At 70% it is above.
        assert_eq!(
            choose_level(&[], &steady(4.7, 60), 1024, Duration::from_secs(1), &config),
            5
        );
        // Nothing to serve, nothing to provision.
        assert_eq!(
            choose_level(&[], &steady(0.0, 60), 1024, Duration::from_secs(1), &config),
            0
        );
        assert_eq!(
            choose_level(&[], &[], 1024, Duration::from_secs(1), &config),
            0
        );
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
        let cheap_init = choose_level(&[], &history, 1024, Duration::from_millis(100), &config);
        let model_load = choose_level(&[], &history, 1024, Duration::from_secs(60), &config);
        assert_eq!(cheap_init, 2);
        assert_eq!(
            model_load, 3,
            "a minute-long model load is worth keeping its environment for"
        );
    }

    #[test]
    fn a_minute_is_a_rise_from_quiet_only_with_the_quiet_in_view() {
        let config = ProvisioningConfig::default();
        let init = Duration::from_secs(6);
        // A 10 GB model's minute: 59 executions at once at its peak, 18.7 on average.
        let burst = MinuteLoad {
            busy_s: 60.0 * 18.7,
            peak: 59,
        };
        // A planner's first minute: nothing shows whether the 59th environment would have
        // met a cold start again, so only those that pay by their use are provisioned: 18
        // busy all the time, and a 19th busy 70% of it.
        assert_eq!(choose_level(&[], &[burst], 10_240, init, &config), 19);
        // After ten quiet minutes it is a rise from quiet, each environment a cold start
        // on demand, and in one minute that pays for all 59.
        assert_eq!(
            choose_level(&steady(0.0, 10), &[burst], 10_240, init, &config),
            59
        );
        // After nine it is not known to be.
        assert_eq!(
            choose_level(&steady(0.0, 9), &[burst], 10_240, init, &config),
            19
        );
        // The minutes before are only looked at: a busy stretch there is not priced, and
        // it shows the environments in use, so the minute is no rise.
        assert_eq!(
            choose_level(&steady(59.0, 10), &[burst], 10_240, init, &config),
            19
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
            ping_budget: None,
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

    fn one_function() -> FunctionInfo {
        FunctionInfo {
            name: "f".into(),
            app: "a".into(),
            memory_mb: 1024,
            targets: vec!["live".into()],
            ping_budget: None,
        }
    }

    /// Acts at each wake up to `until`; the levels set, by the minute they were set.
    fn run_until(planner: &mut Provisioning, until: Duration) -> Vec<(u64, u32)> {
        let mut levels = Vec::new();
        while let Some(now) = planner.next_wake().filter(|&w| w <= until) {
            for action in planner.act(now) {
                let Action::SetProvisioned { concurrency, .. } = action else {
                    panic!("{action:?}")
                };
                levels.push((now.as_secs() / 60, concurrency));
            }
        }
        levels
    }

    #[test]
    fn finished_minutes_are_handed_out_once_and_only_when_sharing() {
        let mut quiet = Provisioning::new(ProvisioningConfig::default());
        quiet.start(&[one_function()], Duration::ZERO);
        quiet.observe(&observation(0, 0, 30));
        run_until(&mut quiet, Duration::from_secs(10 * 60));
        assert!(
            quiet.finished_minutes().is_empty(),
            "a replay never collects them: none kept"
        );

        let mut planner = Provisioning::new(ProvisioningConfig::default()).sharing();
        planner.start(&[one_function()], Duration::ZERO);
        // Two executions at once for the first 30 s of minute 0, one the whole of minute 1.
        planner.observe(&observation(0, 0, 30));
        planner.observe(&observation(0, 0, 30));
        planner.observe(&observation(0, 60, 60));
        run_until(&mut planner, Duration::from_secs(3 * 60));
        assert_eq!(
            planner.finished_minutes(),
            vec![
                (
                    0,
                    0,
                    MinuteLoad {
                        busy_s: 60.0,
                        peak: 2
                    }
                ),
                (
                    0,
                    1,
                    MinuteLoad {
                        busy_s: 60.0,
                        peak: 1
                    }
                ),
            ]
        );
        assert!(planner.finished_minutes().is_empty(), "handed out once");
    }

    #[test]
    fn minutes_start_at_the_phase() {
        let phase = Duration::from_secs(25);
        let mut planner = Provisioning::new(ProvisioningConfig::default())
            .with_minute_phase(phase + Duration::from_secs(120))
            .sharing();
        planner.start(&[one_function()], Duration::from_secs(10));
        assert_eq!(
            planner.minute_start(1),
            Duration::from_secs(85),
            "modulo a minute"
        );
        // Minute 0 is [25 s, 85 s): it is final at 85 + 60 s.
        assert_eq!(planner.next_wake(), Some(Duration::from_secs(145)));
        // 20 s in minute 0 (from 65 s), 40 s in minute 1.
        planner.observe(&observation(0, 65, 60));
        run_until(&mut planner, Duration::from_secs(205));
        let busy: Vec<(u64, f64)> = planner
            .finished_minutes()
            .into_iter()
            .map(|(_, m, load)| (m, load.busy_s))
            .collect();
        assert_eq!(busy, vec![(0, 20.0), (1, 40.0)]);
    }

    #[test]
    fn fleet_totals_replace_a_minute_where_it_is_held_and_never_lower_it() {
        let mut planner = Provisioning::new(ProvisioningConfig::default()).sharing();
        planner.start(&[one_function()], Duration::ZERO);
        for minute in 0..3 {
            planner.observe(&observation(0, minute * 60, 60));
        }
        run_until(&mut planner, Duration::from_secs(4 * 60));
        let load = |busy_s: f64, peak: u32| MinuteLoad { busy_s, peak };
        let held = |p: &Provisioning| -> Vec<MinuteLoad> {
            p.functions[0].history.iter().copied().collect()
        };
        assert_eq!(held(&planner), vec![load(60.0, 1); 3]);

        planner.fleet_minute(0, 1, load(150.0, 3));
        // Read again once the other replicas' share arrived: totals only grow.
        planner.fleet_minute(0, 2, load(100.0, 2));
        planner.fleet_minute(0, 2, load(180.0, 3));
        // A total below this replica's own is incomplete: kept at its own.
        planner.fleet_minute(0, 0, load(30.0, 1));
        assert_eq!(
            held(&planner),
            vec![load(60.0, 1), load(150.0, 3), load(180.0, 3)]
        );
        assert_eq!(
            planner.functions[0].day[1],
            load(150.0, 3),
            "yesterday's look-ahead sees the fleet's minute too"
        );
        // A minute not finished here, a function unknown: nothing changes.
        planner.fleet_minute(0, 3, load(600.0, 10));
        planner.fleet_minute(7, 1, load(600.0, 10));
        assert_eq!(
            held(&planner),
            vec![load(60.0, 1), load(150.0, 3), load(180.0, 3)]
        );
        assert_eq!(planner.functions[0].day[3], MinuteLoad::default());
    }

    #[test]
    fn replicas_that_share_their_minutes_plan_for_the_whole_load() {
        // Four executions always busy, behind a balancer over two replicas: two each.
        let replicas: Vec<Provisioning> = (0..2)
            .map(|_| {
                let mut p = Provisioning::new(ProvisioningConfig::default()).sharing();
                p.start(&[one_function()], Duration::ZERO);
                for minute in 0..40 {
                    for _ in 0..2 {
                        p.observe(&observation(0, minute * 60, 60));
                    }
                }
                p
            })
            .collect();
        let [mut holder, mut other]: [Provisioning; 2] = replicas.try_into().ok().unwrap();
        let mut alone = Provisioning::new(ProvisioningConfig::default());
        alone.start(&[one_function()], Duration::ZERO);
        for minute in 0..40 {
            for _ in 0..2 {
                alone.observe(&observation(0, minute * 60, 60));
            }
        }
        let until = Duration::from_secs(40 * 60);
        let mut levels = Vec::new();
        while let Some(now) = holder.next_wake().filter(|&w| w <= until) {
            // Both decide at the same minute boundary; the totals of the minutes they
            // finished then arrive after the holder's decision, as through Redis.
            for action in holder.act(now) {
                if let Action::SetProvisioned { concurrency, .. } = action {
                    levels.push(concurrency);
                }
            }
            other.act(now);
            let mut totals: std::collections::BTreeMap<u64, MinuteLoad> = Default::default();
            for (_, m, load) in holder
                .finished_minutes()
                .into_iter()
                .chain(other.finished_minutes())
            {
                let total = totals.entry(m).or_default();
                total.busy_s += load.busy_s;
                total.peak += load.peak;
            }
            for (m, total) in totals {
                holder.fleet_minute(0, m, total);
            }
        }
        assert_eq!(
            run_until(&mut alone, until),
            vec![(2, 2)],
            "alone, a replica plans for its half"
        );
        assert_eq!(
            levels,
            vec![2, 4],
            "its own half first, the whole once the fleet's first minute arrives"
        );
    }
}
