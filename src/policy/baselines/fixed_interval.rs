//! A fixed-interval warmer: every function's targets get `concurrency` pings every
//! `interval`, whatever the traffic.
//!
//! This is what serverless-plugin-warmup does by default: a scheduled rule, `rate(5 minutes)`,
//! invokes each warmed function with concurrency 1. A schedule rule of rate N fires on
//! multiples of N, so the pings fall on multiples of the interval from the clock's origin,
//! the first at the first multiple at or after the start.

use std::time::Duration;

use crate::clock::Time;
use crate::policy::{Action, FunctionInfo, KeptBy, Observation, Policy};

/// serverless-plugin-warmup's default schedule, `rate(5 minutes)`.
pub const PLUGIN_DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Pings every target of every function, `concurrency` at a time, on multiples of `interval`.
#[derive(Debug, Clone)]
pub struct FixedInterval {
    interval: Duration,
    concurrency: u32,
    /// Targets per function, learnt at start.
    targets: Vec<usize>,
    next: Option<Time>,
}

impl FixedInterval {
    /// A warmer of period `interval` (more than zero) sending `concurrency` pings per target.
    pub fn new(interval: Duration, concurrency: u32) -> Self {
        assert!(!interval.is_zero(), "a warmer's interval must be positive");
        FixedInterval {
            interval,
            concurrency,
            targets: Vec::new(),
            next: None,
        }
    }

    /// Reads a name as [`Policy::name`] writes it: `fixed-<N>min` or `fixed-<N>min-x<C>`
    /// (period in minutes, C pings per target), into the period and the concurrency.
    pub fn parse_name(name: &str) -> Option<(Duration, u32)> {
        let rest = name.strip_prefix("fixed-")?;
        let (period, concurrency) = match rest.split_once("-x") {
            Some((period, c)) => (period, c.parse().ok()?),
            None => (rest, 1),
        };
        let minutes: f64 = period.strip_suffix("min")?.parse().ok()?;
        (minutes.is_finite() && minutes > 0.0 && concurrency > 0)
            .then(|| (Duration::from_secs_f64(minutes * 60.0), concurrency))
    }

    /// serverless-plugin-warmup's default: every 5 minutes, concurrency 1.
    pub fn plugin_default() -> Self {
        Self::new(PLUGIN_DEFAULT_INTERVAL, 1)
    }

    /// The first multiple of the interval at or after `t`.
    fn tick_at_or_after(&self, t: Time) -> Time {
        let period = self.interval.as_nanos();
        let ticks = t.as_nanos().div_ceil(period);
        Duration::from_nanos((ticks * period) as u64)
    }
}

impl Policy for FixedInterval {
    /// `fixed-5min`, `fixed-90s`; `-xN` when it pings N environments per target.
    fn name(&self) -> String {
        let secs = self.interval.as_secs_f64();
        let period = if secs % 60.0 == 0.0 {
            format!("{}min", secs / 60.0)
        } else {
            format!("{secs}s")
        };
        match self.concurrency {
            1 => format!("fixed-{period}"),
            n => format!("fixed-{period}-x{n}"),
        }
    }

    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        self.targets = functions.iter().map(|f| f.targets.len()).collect();
        self.next = (self.concurrency > 0).then(|| self.tick_at_or_after(now));
        Vec::new()
    }

    fn observe(&mut self, _observation: &Observation) {}

    fn act(&mut self, now: Time) -> Vec<Action> {
        match self.next {
            Some(next) if now >= next => {}
            _ => return Vec::new(),
        }
        // The next tick strictly after now: a late call skips the ticks it missed, as a
        // schedule that fires late does not fire twice.
        self.next = Some(self.tick_at_or_after(now + Duration::from_nanos(1)));
        let count = self.concurrency;
        self.targets
            .iter()
            .enumerate()
            .flat_map(|(function, &targets)| {
                (0..targets).map(move |target| Action::Ping {
                    function,
                    target,
                    count,
                    kept_by: KeptBy::Schedule,
                })
            })
            .collect()
    }

    fn next_wake(&self) -> Option<Time> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(targets: &[&str]) -> FunctionInfo {
        FunctionInfo {
            name: "f".into(),
            app: "a".into(),
            memory_mb: 128,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            ping_budget: None,
        }
    }

    #[test]
    fn pings_every_target_on_multiples_of_the_interval() {
        let min = Duration::from_secs(60);
        let mut warmer = FixedInterval::new(5 * min, 2);
        assert_eq!(warmer.name(), "fixed-5min-x2");
        warmer.start(&[info(&["live"]), info(&["live", "3"])], 7 * min);
        assert_eq!(warmer.next_wake(), Some(10 * min));
        assert!(warmer.act(9 * min).is_empty(), "not before the tick");
        let pings = warmer.act(10 * min);
        assert_eq!(pings.len(), 3);
        assert!(pings.contains(&Action::Ping {
            function: 1,
            target: 1,
            count: 2,
            kept_by: KeptBy::Schedule,
        }));
        assert_eq!(warmer.next_wake(), Some(15 * min));
        warmer.act(26 * min);
        assert_eq!(
            warmer.next_wake(),
            Some(30 * min),
            "missed ticks are skipped"
        );
    }

    #[test]
    fn names_say_the_period() {
        assert_eq!(FixedInterval::plugin_default().name(), "fixed-5min");
        assert_eq!(
            FixedInterval::new(Duration::from_secs(90), 1).name(),
            "fixed-90s"
        );
        let mut warmer = FixedInterval::new(Duration::from_secs(60), 1);
        warmer.start(&[info(&["live"])], Duration::ZERO);
        assert_eq!(
            warmer.next_wake(),
            Some(Duration::ZERO),
            "a tick at the start"
        );
    }
}
