//! What keeping a function warm may cost, and what it has spent: the per-function ping
//! budget that the gateway's warmer executor enforces and the simulator replays the same way.
//! Pure: `now` is an argument (ARCHITECTURE.md invariant 1).

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

use crate::clock::Time;

/// What a ping is expected to bill before its report says: the hold of a large round (64
/// pings ask for 21 ms), rounded up, so that the estimate errs high.
pub const PING_ESTIMATE: Duration = Duration::from_millis(25);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What keeping a function warm may cost, per function.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PingBudget {
    /// A rate guard. Default 1,200: a round of 100 every 5 minutes, room for the warmer's
    /// own plan (docs/warmer.md, "Tuning notes"). The GB-s budget below is the money guard.
    pub pings_per_hour: u32,
    /// Billed GB-s of pings per day (memory × billed duration, init included). Default
    /// 20,000 (about $0.33 a day at most): at 2,000 a 10 GB inference function whose init
    /// loads its model for 6 to 7 s could keep only about three environments warm, and on
    /// the Azure LLM inference trace the warmer then kept none (docs/warmer/history.md, "A ping
    /// budget for large functions"). A small function reaches the rate guard first.
    pub gb_s_per_day: f64,
}

impl Default for PingBudget {
    fn default() -> Self {
        Self {
            pings_per_hour: 1200,
            gb_s_per_day: 20_000.0,
        }
    }
}

/// A function's spending on pings over sliding windows. Pure: `now` is an argument.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: PingBudget,
    sent: VecDeque<Time>,
    spent: VecDeque<(Time, f64)>,
}

impl Budget {
    pub fn new(limits: PingBudget) -> Self {
        Self {
            limits,
            sent: VecDeque::new(),
            spent: VecDeque::new(),
        }
    }

    fn forget(&mut self, now: Time) {
        while self.sent.front().is_some_and(|&t| t + HOUR <= now) {
            self.sent.pop_front();
        }
        while self.spent.front().is_some_and(|&(t, _)| t + DAY <= now) {
            self.spent.pop_front();
        }
    }

    /// Pings left this hour and GB-s left today.
    pub fn remaining(&mut self, now: Time) -> (u32, f64) {
        self.forget(now);
        let pings = self
            .limits
            .pings_per_hour
            .saturating_sub(self.sent.len() as u32);
        let spent: f64 = self.spent.iter().map(|(_, g)| g).sum();
        (pings, (self.limits.gb_s_per_day - spent).max(0.0))
    }

    /// How many of `wanted` pings, each expected to cost `gb_s_each`, may go now; those are
    /// counted as sent.
    pub fn grant(&mut self, now: Time, wanted: u32, gb_s_each: f64) -> u32 {
        let (pings, gb_s) = self.remaining(now);
        let by_cost = if gb_s_each > 0.0 {
            (gb_s / gb_s_each).floor().min(f64::from(u32::MAX)) as u32
        } else {
            u32::MAX
        };
        let granted = wanted.min(pings).min(by_cost);
        self.sent.extend(std::iter::repeat_n(now, granted as usize));
        granted
    }

    /// Records what a ping was billed, in GB-s.
    pub fn spend(&mut self, now: Time, gb_s: f64) {
        self.spent.push_back((now, gb_s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_caps_pings_per_hour_and_gb_s_per_day() {
        let mut budget = Budget::new(PingBudget {
            pings_per_hour: 10,
            gb_s_per_day: 5.0,
        });
        assert_eq!(budget.grant(Duration::ZERO, 4, 0.1), 4);
        assert_eq!(budget.grant(Duration::from_secs(60), 8, 0.1), 6);
        assert_eq!(budget.grant(Duration::from_secs(120), 1, 0.1), 0);
        // An hour after the first round, its pings are no longer counted.
        assert_eq!(budget.grant(HOUR, 5, 0.1), 4);
        // Spending counts for a day.
        budget.spend(HOUR, 4.95);
        assert_eq!(
            budget.grant(2 * HOUR, 5, 0.1),
            0,
            "0.05 GB-s left, a ping costs 0.1"
        );
        assert_eq!(budget.remaining(DAY + 2 * HOUR).1, 5.0);
    }
}
