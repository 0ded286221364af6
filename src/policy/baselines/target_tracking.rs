//! Target tracking on provisioned-concurrency utilization: what Application Auto Scaling (AAS)
//! does for a Lambda alias with a `TargetTrackingScaling` policy on the predefined metric
//! `LambdaProvisionedConcurrencyUtilization` (the judged baseline: target 0.7).
//!
//! # The metric
//!
//! Per function, one datapoint a minute: `ProvisionedConcurrencyUtilization`, the average
//! number of executions running on provisioned environments during the minute over the
//! allocated provisioned concurrency. The policy computes it from observations: a real
//! invocation occupies an environment from its arrival for `init + duration`; only
//! [`Some(Start::Provisioned)`] invocations run on provisioned environments. Spillover (a warm or
//! cold start on a target with provisioned concurrency) runs on demand and is not counted, so,
//! as Lambda reports it, the metric never exceeds 1.0 however far demand exceeds capacity: with
//! 1 provisioned environment and 5 concurrent requests the datapoint is 1.0 and AAS asks for
//! `ceil(1 × 1.0 / 0.7) = 2`, not 8. Target tracking ramps up in steps; that is the documented
//! behaviour this baseline is meant to show.
//!
//! Before the first provisioned start is seen (the first allocation is not READY yet, or it
//! failed), no provisioned execution can be measured: the datapoint is then the demand (all
//! real executions, averaged over the minute) relative to the requested capacity (the minimum
//! capacity until the first scaling), uncapped.
//!
//! The allocated capacity the metric divides by is modelled: a scale-out counts
//! [`ALLOCATION_DELAY`] after it was requested, a scale-in at once. The policy never sees the
//! platform's allocation (invariant 1: observations and `now` only).
//!
//! A minute's datapoint is final [`METRIC_LAG`] after the minute ends (CloudWatch publishes
//! Lambda metrics about a minute late): minute `m` (`[m, m+1)` minutes from the clock's
//! origin) is final at `m + 2` minutes. Observations of a minute that arrive later are lost
//! to it, as late data is to an alarm. A minute without executions is a datapoint of 0
//! (Lambda may publish no datapoint then, and a real alarm would see missing data: this
//! baseline scales in on idle minutes, as the simulator's comparison needs).
//!
//! # The alarms (documented AAS behaviour for Lambda)
//!
//! - High alarm: the last [`SCALE_OUT_DATAPOINTS`] (3) datapoints all above the target.
//! - Low alarm: the last [`SCALE_IN_DATAPOINTS`] (15) datapoints all below
//!   [`SCALE_IN_THRESHOLD`] (90%) of the target.
//! - Both alarms use the Average statistic of 1-minute datapoints.
//! - While an alarm stays in ALARM, AAS acts on every evaluation (CloudWatch repeats Auto
//!   Scaling actions every period in ALARM), each time from the latest datapoint:
//!   `new = ceil(current × latest / target)`, within `[min_capacity, max_capacity]`. A
//!   scale-out only raises, a scale-in only lowers.
//! - Scale-in is gradual (Lambda's documentation: "decreases provisioned concurrency in smaller
//!   periodic steps"): one step removes at most [`SCALE_IN_MAX_STEP`] of the capacity.
//! - Cooldowns: AAS's defaults for Lambda provisioned concurrency are 0 s for scale-out and for
//!   scale-in, so none is modelled; the alarm periods do the damping.
//!
//! Our assumptions where AWS documents nothing: a scaling activity lasts until its capacity
//! is allocated ([`ALLOCATION_DELAY`] for a scale-out, at once for a scale-in) and no other
//! starts meanwhile; and AAS acts only on a latest datapoint measured entirely at the
//! capacity now in effect (a datapoint of the old capacity would scale the new capacity by
//! a stale ratio and overshoot).
//!
//! Each function's first target (target 0) is managed; other targets are left alone.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::clock::Time;
use crate::policy::{Action, FunctionId, FunctionInfo, Observation, Policy, Start};

/// The judged baseline's target (AWS's example for provisioned concurrency).
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;
/// The metric's period: 1 minute (Lambda publishes 1-minute metrics; AAS's alarms use them).
pub const PERIOD: Duration = Duration::from_secs(60);
/// Datapoints above the target that make the high alarm (AAS for Lambda: 3 of 3 minutes).
pub const SCALE_OUT_DATAPOINTS: usize = 3;
/// Datapoints below the low threshold that make the low alarm (AAS for Lambda: 15 of 15).
pub const SCALE_IN_DATAPOINTS: usize = 15;
/// The low alarm's threshold, as a share of the target (AAS: 90% of the target).
pub const SCALE_IN_THRESHOLD: f64 = 0.9;
/// How late a minute's datapoint is final: 1 minute (assumption; CloudWatch's Lambda metrics
/// arrive about a minute late).
pub const METRIC_LAG: Duration = Duration::from_secs(60);
/// Time from a scale-out request to its allocation (assumption: 2 minutes; AWS says "a few
/// minutes", the platform model's default is 1 to 2 minutes).
pub const ALLOCATION_DELAY: Duration = Duration::from_secs(120);
/// A scale-in step removes at most this share of the capacity (assumption: half; AWS says
/// only "smaller periodic steps").
pub const SCALE_IN_MAX_STEP: f64 = 0.5;
/// Default minimum capacity: 1 (a scalable target's minimum; 0 would leave no metric).
pub const DEFAULT_MIN_CAPACITY: u32 = 1;
/// Default maximum capacity: 1,000, Lambda's default account concurrency (assumption; AAS
/// asks for a maximum when the scalable target is registered).
pub const DEFAULT_MAX_CAPACITY: u32 = 1_000;

/// Parameters; [`TargetTrackingConfig::new`] gives the documented ones for a target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTrackingConfig {
    /// In (0, 1].
    pub target_utilization: f64,
    /// At least 1.
    pub min_capacity: u32,
    pub max_capacity: u32,
    pub metric_lag: Duration,
    pub allocation_delay: Duration,
    /// In (0, 1].
    pub scale_in_max_step: f64,
}

impl TargetTrackingConfig {
    /// AAS's documented behaviour and our assumptions, at `target_utilization`.
    pub fn new(target_utilization: f64) -> Self {
        TargetTrackingConfig {
            target_utilization,
            min_capacity: DEFAULT_MIN_CAPACITY,
            max_capacity: DEFAULT_MAX_CAPACITY,
            metric_lag: METRIC_LAG,
            allocation_delay: ALLOCATION_DELAY,
            scale_in_max_step: SCALE_IN_MAX_STEP,
        }
    }
}

impl Default for TargetTrackingConfig {
    fn default() -> Self {
        Self::new(DEFAULT_TARGET_UTILIZATION)
    }
}

/// Target tracking on `ProvisionedConcurrencyUtilization`. See the module documentation.
#[derive(Debug, Clone)]
pub struct TargetTracking {
    config: TargetTrackingConfig,
    functions: Vec<Tracked>,
    /// The next minute to finalise; `None` before start.
    next_minute: Option<u64>,
}

impl TargetTracking {
    /// Target tracking at `target_utilization`, with AAS's defaults otherwise.
    ///
    /// # Panics
    /// If `target_utilization` is not in (0, 1].
    pub fn new(target_utilization: f64) -> Self {
        Self::with_config(TargetTrackingConfig::new(target_utilization))
    }

    /// Target tracking with other parameters.
    ///
    /// # Panics
    /// If the target is not in (0, 1], the minimum capacity is 0 or above the maximum, or the
    /// scale-in step is not in (0, 1].
    pub fn with_config(config: TargetTrackingConfig) -> Self {
        let u = config.target_utilization;
        assert!(u > 0.0 && u <= 1.0, "target utilization must be in (0, 1]");
        assert!(
            config.min_capacity >= 1 && config.min_capacity <= config.max_capacity,
            "capacity bounds must satisfy 1 <= min <= max"
        );
        let step = config.scale_in_max_step;
        assert!(step > 0.0 && step <= 1.0, "scale-in step must be in (0, 1]");
        TargetTracking {
            config,
            functions: Vec::new(),
            next_minute: None,
        }
    }

    /// The capacity last requested for `function`, if it is managed.
    pub fn capacity(&self, function: FunctionId) -> Option<u32> {
        let f = self.functions.get(function)?;
        f.managed.then_some(f.requested)
    }

    /// The latest datapoints of `function` (up to 15), oldest first.
    pub fn datapoints(&self, function: FunctionId) -> Vec<f64> {
        self.functions
            .get(function)
            .map(|f| f.datapoints.iter().map(|d| d.value).collect())
            .unwrap_or_default()
    }

    fn final_at(&self, minute: u64) -> Time {
        minute_start(minute + 1) + self.config.metric_lag
    }
}

fn minute_of(t: Time) -> u64 {
    (t.as_nanos() / PERIOD.as_nanos()) as u64
}

fn minute_start(minute: u64) -> Time {
    Duration::from_nanos((u128::from(minute) * PERIOD.as_nanos()) as u64)
}

/// `ceil(x)` as a capacity, forgiving floating-point noise just above an integer.
fn ceil_capacity(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        (x - 1e-9).ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

impl Policy for TargetTracking {
    /// `target-tracking` at the baseline's 0.7, `target-tracking-<U>` otherwise (the simulator's
    /// policy names).
    fn name(&self) -> String {
        let u = self.config.target_utilization;
        if u == DEFAULT_TARGET_UTILIZATION {
            "target-tracking".into()
        } else {
            format!("target-tracking-{u}")
        }
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        let min = self.config.min_capacity;
        self.next_minute = Some(minute_of(now));
        self.functions = functions
            .iter()
            .map(|info| Tracked::new(!info.targets.is_empty(), min, now))
            .collect();
        self.functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.managed)
            .map(|(function, _)| Action::SetProvisioned {
                function,
                target: 0,
                concurrency: min,
            })
            .collect()
    }

    fn observe(&mut self, o: &Observation) {
        if o.ping || o.throttled || o.target != 0 {
            return;
        }
        let Some(next_minute) = self.next_minute else {
            return;
        };
        let Some(f) = self.functions.get_mut(o.function).filter(|f| f.managed) else {
            return;
        };
        let provisioned = o.start == Some(Start::Provisioned);
        if provisioned {
            f.first_provisioned = Some(f.first_provisioned.map_or(o.arrived, |p| p.min(o.arrived)));
        }
        let start = o.arrived;
        let end = start + o.init.unwrap_or_default() + o.duration;
        if end <= start {
            return;
        }
        let last = minute_of(end - Duration::from_nanos(1));
        for minute in minute_of(start).max(next_minute)..=last {
            let from = minute_start(minute).max(start);
            let to = (minute_start(minute) + PERIOD).min(end);
            let nanos = (to - from).as_nanos() as u64;
            let busy = f.minutes.entry(minute).or_default();
            busy.all_ns = busy.all_ns.saturating_add(nanos);
            if provisioned {
                busy.provisioned_ns = busy.provisioned_ns.saturating_add(nanos);
            }
        }
    }

    fn act(&mut self, now: Time) -> Vec<Action> {
        let Some(mut minute) = self.next_minute else {
            return Vec::new();
        };
        let mut actions: Vec<Action> = Vec::new();
        while self.final_at(minute) <= now {
            for (function, f) in self.functions.iter_mut().enumerate() {
                if !f.managed {
                    continue;
                }
                if let Some(concurrency) = f.finalize(minute, now, &self.config) {
                    actions.retain(|a| {
                        !matches!(a, Action::SetProvisioned { function: g, .. } if *g == function)
                    });
                    actions.push(Action::SetProvisioned {
                        function,
                        target: 0,
                        concurrency,
                    });
                }
            }
            minute += 1;
        }
        self.next_minute = Some(minute);
        actions
    }

    fn next_wake(&self) -> Option<Time> {
        self.next_minute.map(|m| self.final_at(m))
    }
}

/// Busy time of a minute, in nanoseconds of executions.
#[derive(Debug, Clone, Copy, Default)]
struct Busy {
    provisioned_ns: u64,
    all_ns: u64,
}

#[derive(Debug, Clone, Copy)]
struct Datapoint {
    /// Start of the datapoint's minute.
    start: Time,
    value: f64,
}

/// What the policy knows of one function.
#[derive(Debug, Clone)]
struct Tracked {
    /// Has a target 0 to provision.
    managed: bool,
    /// The capacity last asked for.
    requested: u32,
    /// Capacity in effect (modelled allocation) from a time on, oldest first; never empty.
    in_effect: Vec<(Time, u32)>,
    /// No scaling activity starts before then.
    in_progress_until: Time,
    /// Arrival of the earliest provisioned start seen: the first allocation was READY.
    first_provisioned: Option<Time>,
    /// Busy time of the minutes not yet final.
    minutes: BTreeMap<u64, Busy>,
    /// The latest datapoints, oldest first.
    datapoints: VecDeque<Datapoint>,
}

impl Tracked {
    fn new(managed: bool, capacity: u32, now: Time) -> Self {
        Tracked {
            managed,
            requested: capacity,
            in_effect: vec![(now, capacity)],
            in_progress_until: now,
            first_provisioned: None,
            minutes: BTreeMap::new(),
            datapoints: VecDeque::new(),
        }
    }

    fn capacity_at(&self, t: Time) -> u32 {
        self.in_effect
            .iter()
            .rev()
            .find(|&&(from, _)| from <= t)
            .unwrap_or(&self.in_effect[0])
            .1
    }

    /// Closes `minute`'s datapoint and evaluates the alarms; a new capacity if AAS scales.
    fn finalize(&mut self, minute: u64, now: Time, cfg: &TargetTrackingConfig) -> Option<u32> {
        let busy = self.minutes.remove(&minute).unwrap_or_default();
        let start = minute_start(minute);
        let capacity = f64::from(self.capacity_at(start).max(1));
        let period = PERIOD.as_nanos() as f64;
        let ready = self.first_provisioned.is_some_and(|p| p <= start);
        let value = if ready {
            (busy.provisioned_ns as f64 / period / capacity).min(1.0)
        } else {
            busy.all_ns as f64 / period / capacity
        };
        self.datapoints.push_back(Datapoint { start, value });
        while self.datapoints.len() > SCALE_IN_DATAPOINTS.max(SCALE_OUT_DATAPOINTS) {
            self.datapoints.pop_front();
        }
        // Capacities in effect before the next minute's start are no longer needed.
        let next_start = start + PERIOD;
        while self.in_effect.len() > 1 && self.in_effect[1].0 <= next_start {
            self.in_effect.remove(0);
        }
        let new = self.evaluate(now, cfg)?;
        if new > self.requested {
            let ready_at = now + cfg.allocation_delay;
            self.in_effect.push((ready_at, new));
            self.in_progress_until = ready_at;
        } else {
            self.in_effect.push((now, new));
            self.in_progress_until = now;
        }
        self.requested = new;
        Some(new)
    }

    fn evaluate(&self, now: Time, cfg: &TargetTrackingConfig) -> Option<u32> {
        if now < self.in_progress_until {
            return None;
        }
        let latest = *self.datapoints.back()?;
        let effective_since = self.in_effect.last().map_or(Duration::ZERO, |e| e.0);
        if latest.start < effective_since {
            return None;
        }
        let target = cfg.target_utilization;
        let current = self.requested;
        let last = |n: usize| {
            let len = self.datapoints.len();
            (len >= n).then(|| self.datapoints.iter().skip(len - n))
        };
        let proportional = ceil_capacity(f64::from(current) * latest.value / target);
        let high = last(SCALE_OUT_DATAPOINTS).is_some_and(|mut d| d.all(|d| d.value > target));
        if high {
            let new = proportional.clamp(cfg.min_capacity, cfg.max_capacity);
            return (new > current).then_some(new);
        }
        let low_threshold = SCALE_IN_THRESHOLD * target;
        let low = last(SCALE_IN_DATAPOINTS).is_some_and(|mut d| d.all(|d| d.value < low_threshold));
        if low {
            let floor = ceil_capacity(f64::from(current) * (1.0 - cfg.scale_in_max_step));
            let new = proportional
                .max(floor)
                .clamp(cfg.min_capacity, cfg.max_capacity);
            return (new < current).then_some(new);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::fixtures::call;

    const MIN: Duration = Duration::from_secs(60);

    fn info() -> FunctionInfo {
        crate::policy::fixtures::info(1024)
    }

    /// Replays `minutes` minutes of one function. In minute `m`, `load(m)` gives how many calls
    /// arrive at the minute's start and how long each lasts; they complete within the minute
    /// and are observed then. With `provisioned`, as many of them as the modelled allocation
    /// (scale-outs allocated 2 minutes after the request) start on provisioned environments,
    /// the rest spill over; without, the allocation is never READY and all start on demand.
    /// Returns every `SetProvisioned` with its time.
    fn replay(
        policy: &mut TargetTracking,
        minutes: u64,
        load: impl Fn(u64) -> (u32, Duration),
        provisioned: bool,
    ) -> Vec<(Time, u32)> {
        let mut sets = Vec::new();
        let mut allocated: Vec<(Time, u32)> = Vec::new();
        let mut record = |at: Time, actions: Vec<Action>, allocated: &mut Vec<(Time, u32)>| {
            for a in actions {
                let Action::SetProvisioned { concurrency, .. } = a else {
                    panic!("{a:?}");
                };
                let current = allocated.last().map_or(0, |a| a.1);
                let ready = if concurrency > current {
                    at + ALLOCATION_DELAY
                } else {
                    at
                };
                allocated.push((ready, concurrency));
                sets.push((at, concurrency));
            }
        };
        record(
            Duration::ZERO,
            policy.start(&[info()], Duration::ZERO),
            &mut allocated,
        );
        for m in 0..minutes {
            let at = MIN * m as u32;
            let (count, lasting) = load(m);
            let ready = allocated
                .iter()
                .rev()
                .find(|a| a.0 <= at)
                .map_or(0, |a| a.1);
            for i in 0..count {
                let start = if provisioned && i < ready {
                    Some(Start::Provisioned)
                } else {
                    Some(Start::Warm)
                };
                let o = call(at, lasting, start);
                // Everything that completes before the minute ends is reported before the
                // policy's wake at the next boundary.
                assert!(lasting <= MIN);
                policy.observe(&o);
            }
            // Wakes up to the end of the minute (the boundary itself included: the calls of
            // the minute completed by then).
            while let Some(wake) = policy.next_wake().filter(|&w| w <= at + MIN) {
                let actions = policy.act(wake);
                record(wake, actions, &mut allocated);
            }
        }
        sets
    }

    #[test]
    fn a_steady_half_load_at_capacity_one_never_scales() {
        let mut p = TargetTracking::new(0.7);
        assert_eq!(p.name(), "target-tracking");
        let sets = replay(&mut p, 120, |_| (1, Duration::from_secs(30)), true);
        assert_eq!(sets, vec![(Duration::ZERO, 1)]);
        let points = p.datapoints(0);
        assert_eq!(points.len(), 15);
        assert!(
            points.iter().all(|&u| (u - 0.5).abs() < 1e-12),
            "{points:?}"
        );
        assert_eq!(p.capacity(0), Some(1));
    }

    #[test]
    fn a_step_before_the_allocation_is_ready_scales_out_on_the_third_datapoint() {
        // Five calls a minute, each the whole minute, from minute 10; no provisioned start is
        // ever seen, so demand counts against the minimum capacity: 5.0 per datapoint.
        let mut p = TargetTracking::new(0.7);
        let sets = replay(
            &mut p,
            60,
            |m| if m >= 10 { (5, MIN) } else { (0, MIN) },
            false,
        );
        // Minutes 10, 11, 12 are final at 12, 13 and 14 minutes: the third one scales out to
        // ceil(1 × 5 / 0.7) = 8, and 5 / 8 = 0.625 is in the band afterwards.
        assert_eq!(sets, vec![(Duration::ZERO, 1), (14 * MIN, 8)]);
        assert!((p.datapoints(0).last().unwrap() - 0.625).abs() < 1e-12);
    }

    #[test]
    fn with_provisioned_starts_the_metric_caps_at_one_and_scale_out_ramps() {
        // The same step once the allocation is READY: one call runs on the provisioned
        // environment, four spill over, utilization is 1.0, so AAS adds capacity in steps,
        // each after the previous one is allocated and measured, and settles at 8.
        let mut p = TargetTracking::new(0.7);
        let sets = replay(
            &mut p,
            60,
            |m| if m >= 10 { (5, MIN) } else { (0, MIN) },
            true,
        );
        assert_eq!(
            sets,
            vec![
                (Duration::ZERO, 1),
                (14 * MIN, 2),
                (18 * MIN, 3),
                (22 * MIN, 5),
                (26 * MIN, 8),
            ]
        );
    }

    #[test]
    fn dropping_to_zero_scales_in_after_fifteen_low_datapoints_then_in_steps() {
        let mut p = TargetTracking::new(0.7);
        let sets = replay(
            &mut p,
            60,
            |m| {
                if (10..13).contains(&m) {
                    (5, MIN)
                } else {
                    (0, MIN)
                }
            },
            false,
        );
        // Minutes 13 to 27 are the first fifteen low ones; minute 27 is final at 29 minutes.
        // Then a step at every fresh datapoint: half each time, down to the minimum.
        assert_eq!(
            sets,
            vec![
                (Duration::ZERO, 1),
                (14 * MIN, 8),
                (29 * MIN, 4),
                (31 * MIN, 2),
                (33 * MIN, 1),
            ]
        );
    }

    #[test]
    fn the_actions_and_their_times_are_deterministic() {
        let load = |m: u64| ((m * 7 % 11) as u32, Duration::from_secs(10 + m % 50));
        let mut a = TargetTracking::new(0.5);
        let mut b = TargetTracking::new(0.5);
        assert_eq!(a.name(), "target-tracking-0.5");
        let first = replay(&mut a, 240, load, true);
        let second = replay(&mut b, 240, load, true);
        assert!(first.len() > 2, "{first:?}");
        assert_eq!(first, second);
        assert_eq!(a.next_wake(), b.next_wake());
    }

    #[test]
    fn wakes_each_minute_after_the_lag_and_ignores_pings_and_other_targets() {
        let mut p = TargetTracking::new(0.7);
        assert_eq!(p.next_wake(), None);
        let start = p.start(&[info()], Duration::from_secs(30));
        assert_eq!(
            start,
            vec![Action::SetProvisioned {
                function: 0,
                target: 0,
                concurrency: 1
            }]
        );
        assert_eq!(
            p.next_wake(),
            Some(2 * MIN),
            "minute 0 is final at 2 minutes"
        );
        let mut ping = call(
            Duration::from_secs(40),
            Duration::from_secs(10),
            Some(Start::Provisioned),
        );
        ping.ping = true;
        p.observe(&ping);
        let mut other = call(
            Duration::from_secs(40),
            Duration::from_secs(10),
            Some(Start::Provisioned),
        );
        other.target = 1;
        p.observe(&other);
        let mut refused = call(Duration::from_secs(40), Duration::from_secs(10), None);
        refused.throttled = true;
        p.observe(&refused);
        assert!(p.act(2 * MIN - Duration::from_nanos(1)).is_empty());
        assert!(p.datapoints(0).is_empty(), "not final before the lag");
        assert!(p.act(2 * MIN).is_empty());
        assert_eq!(p.datapoints(0), vec![0.0]);
        assert_eq!(p.next_wake(), Some(3 * MIN));
    }

    #[test]
    fn a_call_across_minutes_counts_in_each_and_cold_init_counts_as_busy() {
        let mut p = TargetTracking::new(0.7);
        p.start(&[info()], Duration::ZERO);
        // Arrives at 0:45 cold, 30 s init, 60 s handler: busy 0:45 to 2:15.
        let mut o = call(Duration::from_secs(45), MIN, Some(Start::Cold));
        o.init = Some(Duration::from_secs(30));
        p.observe(&o);
        p.act(4 * MIN);
        let points = p.datapoints(0);
        assert_eq!(points.len(), 3);
        for (got, want) in points.iter().zip([0.25, 1.0, 0.25]) {
            assert!((got - want).abs() < 1e-12, "{points:?}");
        }
    }
}
