//! One function's load as the planner learns it: executions folded into minutes (busy
//! time, peak), the last day by minute of the day, the inits and allocation times seen; and
//! the level that costs least for a stretch of minutes ([`choose_level`]).

use std::collections::VecDeque;
use std::time::Duration;

use super::{ProvisioningConfig, MINUTES_A_DAY, RECLAIMED_AFTER_MINUTES};
use crate::clock::Time;

/// One minute of a function's load.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MinuteLoad {
    /// Busy environment-seconds: the mean concurrency times 60.
    pub busy_s: f64,
    /// The most executions running at once.
    pub peak: u32,
}

/// The cheapest level for `minutes` (oldest first) at `memory_mb`, a cold start billing
/// `init` (see the module's documentation). `before` holds the minutes just before them, as
/// far as they are known: they are not priced, only looked back at to tell a rise from
/// quiet.
pub fn choose_level(
    before: &[MinuteLoad],
    minutes: &[MinuteLoad],
    memory_mb: u32,
    init: Duration,
    config: &ProvisioningConfig,
) -> u32 {
    if minutes.is_empty() {
        return 0;
    }
    let gb = f64::from(memory_mb) / 1024.0;
    let count = minutes.len() as f64;
    let prices = &config.prices;
    let cost_per_minute = 60.0 * gb * prices.provisioned_gb_s;
    let duration_saving = gb * (prices.on_demand_gb_s - prices.provisioned_duration_gb_s);
    let cold_start = init.as_secs_f64() * gb * prices.on_demand_gb_s * config.cold_start_worth;
    let top = minutes.iter().map(|m| m.peak).max().unwrap_or(0);
    if top == 0 {
        return 0;
    }
    let seen: Vec<MinuteLoad> = before.iter().chain(minutes).copied().collect();
    let offset = before.len();
    let mut level = 0;
    for k in 1..=top {
        let below = f64::from(k - 1);
        let busy_s: f64 = minutes
            .iter()
            .map(|m| (m.busy_s - 60.0 * below).clamp(0.0, 60.0))
            .sum();
        // A minute is a rise from quiet only with the whole quiet stretch before it in view:
        // where it is not known, a k-th environment's use cannot be told from a rise, and
        // counted, a planner's first minute would price its peak as a cold start spared
        // every minute.
        let cold_starts = (offset..seen.len())
            .filter(|&j| {
                seen[j].peak >= k
                    && j >= RECLAIMED_AFTER_MINUTES
                    && seen[j - RECLAIMED_AFTER_MINUTES..j]
                        .iter()
                        .all(|earlier| earlier.peak < k)
            })
            .count() as f64;
        let saving = (busy_s * duration_saving + cold_starts * cold_start) / count;
        let utilisation = busy_s / (60.0 * count);
        if saving >= cost_per_minute || utilisation >= config.min_utilisation {
            level = k;
        }
    }
    level
}

/// An execution's stay on an environment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stay {
    pub(super) from: Time,
    pub(super) to: Time,
}

#[derive(Debug, Default)]
pub(super) struct FunctionLoad {
    pub(super) memory_mb: u32,
    /// Stays not yet folded into a final minute.
    pub(super) open: Vec<Stay>,
    /// The first minute not final yet.
    pub(super) next_minute: u64,
    /// The last minutes: the window, and before it the minutes a rise from quiet is told by.
    pub(super) history: VecDeque<MinuteLoad>,
    /// The last day's minutes, by minute of the day (empty until a minute is counted).
    pub(super) day: Vec<MinuteLoad>,
    /// Inits seen: their sum and count.
    pub(super) init_sum: Duration,
    pub(super) inits: u32,
    /// The level asked for, and the levels chosen while below it (for the lowering).
    pub(super) level: u32,
    pub(super) below: Vec<u32>,
    /// The allocation times seen (IN_PROGRESS to READY), the latest last.
    pub(super) allocations: VecDeque<Duration>,
}

/// Where minute `m` starts on the policy clock: minutes start at `phase`.
pub(super) fn minute_start(phase: Duration, m: u64) -> Time {
    phase + Duration::from_secs(60 * m)
}

/// The minute `t` falls in (minute 0 before the phase).
pub(super) fn minute_of(phase: Duration, t: Time) -> u64 {
    t.saturating_sub(phase).as_secs() / 60
}

impl FunctionLoad {
    /// Folds minute `m` into the history; returns its load.
    pub(super) fn finish_minute(&mut self, m: u64, phase: Duration, window: usize) -> MinuteLoad {
        let (start, end) = (minute_start(phase, m), minute_start(phase, m + 1));
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
        while self.history.len() > window + RECLAIMED_AFTER_MINUTES {
            self.history.pop_front();
        }
        minute
    }

    /// Replaces finished minute `m` with the fleet's `total` where this planner still holds
    /// it (the window, the last day). Never below what it held: the total includes this
    /// replica's own load (published before the totals are read), and totals only grow as
    /// the other replicas' arrive, so a smaller one is incomplete.
    pub(super) fn fleet_minute(&mut self, m: u64, total: MinuteLoad) {
        if m >= self.next_minute {
            // Not finished here yet: its totals are asked for again once it is.
            return;
        }
        let merge = |held: &mut MinuteLoad| {
            held.busy_s = held.busy_s.max(total.busy_s);
            held.peak = held.peak.max(total.peak);
        };
        let age = (self.next_minute - m) as usize;
        if let Some(i) = self.history.len().checked_sub(age) {
            merge(&mut self.history[i]);
        }
        if !self.day.is_empty() && age <= MINUTES_A_DAY {
            merge(&mut self.day[m as usize % MINUTES_A_DAY]);
        }
    }

    /// Minutes ahead a daily rise is looked for: the longest of the recent allocations, in
    /// whole minutes, and one more for the minute a level waits to be asked for; the
    /// configured lead before any allocation is seen.
    pub(super) fn lead_minutes(&self, configured: usize) -> usize {
        match self.allocations.iter().max() {
            Some(longest) => longest.as_secs().div_ceil(60) as usize + 1,
            None => configured,
        }
    }

    pub(super) fn init(&self, default: Duration) -> Duration {
        if self.inits == 0 {
            default
        } else {
            self.init_sum / self.inits
        }
    }
}
