//! The planner's load shared among replicas (apply mode with `[cache.redis]`): behind a load
//! balancer each replica serves a share of each function's calls, so each planner, alone,
//! would plan for its share.
//!
//! Each replica's planner hands out the minutes it finished (`Policy::finished_minutes`);
//! this module adds them to `<prefix>:provisioning:load:<minute>` in Redis (busy seconds
//! and peak per function, kept two days: the planner looks at yesterday), then reads the
//! totals of the last few finished minutes and gives them to the planner
//! (`Policy::fleet_minute`), which plans from them instead of its own. Every replica reads
//! them, not only the lease's holder: a replica that takes the lease then applies a level
//! planned from the whole load at once.
//!
//! Minutes are shared by wall clock: each gateway's clock has its own origin, so the planner
//! counts its minutes from a phase that puts their boundaries on wall-clock minutes
//! ([`MinuteAlign`]), and minute `m` of the planner is wall-clock minute `base + m`.
//!
//! Without Redis each replica plans from its own load, as it would alone (logged once).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Gateway;
use crate::clock::Time;
use crate::policy::provisioning::MinuteLoad;
use crate::policy::FunctionId;

/// How long a minute's totals are kept, on the gateway's clock: the planner looks at the
/// hour ahead as it went yesterday.
const KEEP: Duration = Duration::from_secs(2 * 24 * 3600);
/// The last finished minutes whose totals are read each time: the newest may still miss a
/// replica that published a moment later; the next reads complete it.
const READ_MINUTES: u64 = 3;
/// The wait, on the gateway's clock, between publishing a minute and reading the totals:
/// the other replicas finish the same minute at the same wall-clock time, give or take
/// their clocks and their work.
const SETTLE: Duration = Duration::from_secs(5);

/// Where the planner's minutes fall on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MinuteAlign {
    /// The planner's minutes start at this phase of the gateway's clock.
    pub phase: Duration,
    /// The wall-clock minute (Unix minutes, counted at the gateway's time scale) of the
    /// planner's minute 0.
    pub base: u64,
}

impl MinuteAlign {
    /// For a gateway clock reading `now` while the Unix time is `unix`, running `scale`
    /// times faster than real time. At a scale other than 1 (tests, demos), the wall clock
    /// runs at the same scale, so replicas at one scale still agree on their minutes.
    pub(super) fn new(unix: Duration, now: Time, scale: f64) -> Self {
        const MINUTE_MS: u64 = 60_000;
        // The Unix time of the clock's origin, at the clock's scale, in ms.
        let origin_ms = (unix.as_secs_f64() * 1e3 * scale - now.as_secs_f64() * 1e3)
            .round()
            .max(0.0) as u64;
        let phase_ms = (MINUTE_MS - origin_ms % MINUTE_MS) % MINUTE_MS;
        Self {
            phase: Duration::from_millis(phase_ms),
            base: (origin_ms + phase_ms) / MINUTE_MS,
        }
    }

    /// The wall-clock minute in which minute `m` of a clock counted from its origin (its
    /// seconds `60m..60m+60`, whatever the phase; below zero, before the origin) begins.
    pub(super) fn wall_minute(&self, m: i64) -> u64 {
        (self.base as i64 + m - i64::from(self.phase > Duration::ZERO)).max(0) as u64
    }

    /// The minute from the clock's origin (below zero, before it) that begins in wall-clock
    /// minute `wall`: the inverse of [`MinuteAlign::wall_minute`].
    pub(super) fn clock_minute(&self, wall: u64) -> i64 {
        wall as i64 + i64::from(self.phase > Duration::ZERO) - self.base as i64
    }

    /// For a gateway clock reading `now`, now.
    pub(super) fn now(now: Time, scale: f64) -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::new(unix, now, scale)
    }
}

/// The gateway's side of the sharing.
pub(super) struct Fleet {
    /// [`KEEP`] in real time, as Redis counts it.
    keep: Duration,
    /// Whether the last exchange failed (logged once each way).
    down: AtomicBool,
}

impl Fleet {
    pub(super) fn new(scale: f64) -> Self {
        Self {
            keep: KEEP.div_f64(scale).max(Duration::from_secs(1)),
            down: AtomicBool::new(false),
        }
    }

    fn exchanged(&self, ok: bool) {
        let was_down = self.down.swap(!ok, Ordering::Relaxed);
        if !ok && !was_down {
            tracing::warn!("provisioning loads not shared through Redis: this replica plans from its own share of the load until Redis answers");
        } else if ok && was_down {
            tracing::info!("provisioning loads shared through Redis again");
        }
    }
}

/// `minutes` (function, planner minute, load) by planner minute, oldest first, the minutes
/// with no load left out of each (there is nothing to add).
fn by_minute(
    minutes: &[(FunctionId, u64, MinuteLoad)],
) -> BTreeMap<u64, Vec<(FunctionId, MinuteLoad)>> {
    let mut grouped: BTreeMap<u64, Vec<(FunctionId, MinuteLoad)>> = BTreeMap::new();
    for &(function, minute, load) in minutes {
        let loads = grouped.entry(minute).or_default();
        if load.busy_s > 0.0 || load.peak > 0 {
            loads.push((function, load));
        }
    }
    grouped
}

impl Gateway {
    /// Shares the minutes the planner just finished: adds them to the fleet's totals, then
    /// reads the totals of the last few finished minutes back into the planner.
    pub(super) async fn share_minutes(
        self: Arc<Self>,
        minutes: Vec<(FunctionId, u64, MinuteLoad)>,
    ) {
        let (Some(fleet), Some(redis), Some(warmer)) = (&self.fleet, &self.redis, &self.warmer)
        else {
            return;
        };
        let grouped = by_minute(&minutes);
        let Some(&newest) = grouped.keys().next_back() else {
            return;
        };
        for (&minute, loads) in &grouped {
            if loads.is_empty() {
                continue;
            }
            let named: Vec<(&str, f64, u32)> = loads
                .iter()
                .filter_map(|&(function, load)| {
                    let state = self.function_by_id(function)?;
                    Some((state.config.name.as_str(), load.busy_s, load.peak))
                })
                .collect();
            if !redis
                .load_add(self.wall.base + minute, &named, fleet.keep)
                .await
            {
                // Totals read now would lack this replica's share: plan from its own.
                fleet.exchanged(false);
                return;
            }
        }
        self.clock.sleep(SETTLE).await;
        let planner_minutes: Vec<u64> =
            (newest.saturating_sub(READ_MINUTES - 1)..=newest).collect();
        let shared: Vec<u64> = planner_minutes.iter().map(|m| self.wall.base + m).collect();
        let Some(totals) = redis.load_totals(&shared).await else {
            fleet.exchanged(false);
            return;
        };
        fleet.exchanged(true);
        for (minute, totals) in planner_minutes.into_iter().zip(totals) {
            for (name, (busy_s, peak)) in totals {
                // Functions another replica's configuration has and this one's not: ignored.
                if let Some(&function) = self.by_name.get(&name) {
                    warmer.fleet_minute(function, minute, MinuteLoad { busy_s, peak });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn minutes_fall_on_wall_clock_minutes_whenever_a_clock_started() {
        // Unix time 1,000,000 min + 20 s, the clock 50 s old: its origin is minute
        // 999,999 + 30 s, so its minutes start at 30 s, and its minute 0 is 1,000,000.
        let unix = ms(60_000 * 1_000_000 + 20_000);
        let a = MinuteAlign::new(unix, ms(50_000), 1.0);
        assert_eq!(
            a,
            MinuteAlign {
                phase: ms(30_000),
                base: 1_000_000
            }
        );
        // Another replica, its clock started 7.5 s later: another phase, the same minutes.
        let b = MinuteAlign::new(unix, ms(42_500), 1.0);
        assert_eq!(b.phase, ms(22_500));
        // Each one's minute 0 starts on the wall clock's minute `base`.
        assert_eq!(unix - ms(50_000) + a.phase, ms(60_000 * a.base));
        assert_eq!(unix - ms(42_500) + b.phase, ms(60_000 * b.base));
        assert_eq!(b.base, a.base);
        // An origin on a minute: no phase.
        assert_eq!(
            MinuteAlign::new(ms(60_000 * 5 + 10_000), ms(10_000), 1.0).phase,
            ms(0)
        );
    }

    #[test]
    fn a_clock_minute_and_its_wall_minute_map_both_ways() {
        // The clock started at Unix minute 1,000,000 + 20 s: its minute 0 begins in wall
        // minute 1,000,000, its minute 2 (140 s of Unix time later) in 1,000,002.
        let started = MinuteAlign::new(ms(60_000 * 1_000_000 + 20_000), ms(0), 1.0);
        assert_eq!(started.wall_minute(0), 1_000_000);
        assert_eq!(started.wall_minute(2), 1_000_002);
        // On a minute: the same.
        let on = MinuteAlign::new(ms(60_000 * 1_000_000), ms(0), 1.0);
        assert_eq!(on.wall_minute(2), 1_000_002);
        for align in [started, on] {
            for m in [7, 0, -1, -2 * 1440] {
                assert_eq!(align.clock_minute(align.wall_minute(m)), m);
            }
        }
        // Before its origin: yesterday's minute 2 began a day before.
        assert_eq!(started.wall_minute(2 - 1440), 1_000_002 - 1440);
    }

    #[test]
    fn at_a_time_scale_the_wall_clock_runs_at_the_same_scale() {
        // 60 times faster: a wall-clock minute is a real second. Two clocks started 0.25 s
        // apart (15 s of theirs) agree on their minutes.
        let unix = ms(1_000_000_250);
        let a = MinuteAlign::new(unix, ms(30_000), 60.0);
        let b = MinuteAlign::new(unix, ms(15_000), 60.0);
        // Origins at 60,000,015,000 - 30,000 and - 15,000 ms of scaled Unix time.
        assert_eq!(a.phase, ms(15_000));
        assert_eq!(b.phase, ms(0));
        assert_eq!(a.base, b.base);
        assert_eq!(a.base, 1_000_000_000 / 1000);
    }

    #[test]
    fn minutes_are_grouped_and_empty_loads_left_out() {
        let busy = MinuteLoad {
            busy_s: 30.0,
            peak: 1,
        };
        let grouped = by_minute(&[
            (0, 4, busy),
            (1, 4, MinuteLoad::default()),
            (1, 3, busy),
            (0, 5, MinuteLoad::default()),
        ]);
        assert_eq!(
            grouped.into_iter().collect::<Vec<_>>(),
            vec![(3, vec![(1, busy)]), (4, vec![(0, busy)]), (5, vec![])]
        );
    }
}
