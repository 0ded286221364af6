//! A circuit breaker per target, and a retry budget per function: how the gateway stops
//! hammering a target that keeps failing, and bounds the extra load its failovers add.
//!
//! - The breaker opens after `failures` consecutive failed attempts on a target (throttles,
//!   5xx, lost answers; not a request at fault, not a function error: those say nothing of
//!   the target). While open, the router skips the target; after `open_ms` one request is let
//!   through (half-open): its success closes the breaker, its failure opens it again.
//! - The retry budget, as Envoy and linkerd bound retries: failovers may add at most `ratio`
//!   of the requests of the last `window_s` seconds, plus `min_per_s` a second, so a failing
//!   backend sees at most that much more load than its clients send.
//!
//! Pure: time is an argument (ARCHITECTURE.md, invariant 1).

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

use crate::clock::Time;

/// When a target's breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    pub enabled: bool,
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before a trial request.
    pub open_ms: u64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            failures: 5,
            open_ms: 10_000,
        }
    }
}

/// Where a target's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Time,
    },
    /// One trial request is on its way.
    HalfOpen,
}

/// One target's breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a request may go to this target at `now` (without taking the trial).
    pub fn admits(&self, now: Time) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } => now >= until,
            BreakerState::HalfOpen => false,
        }
    }

    /// A request goes to this target at `now`: past the open time, it is the trial.
    pub fn sent(&mut self, now: Time) {
        if let BreakerState::Open { until } = self.state {
            if now >= until {
                self.state = BreakerState::HalfOpen;
            }
        }
    }

    /// An attempt on this target was answered (the function ran, whatever it said).
    pub fn succeeded(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// An attempt on this target failed at `now`; returns whether the breaker opened.
    pub fn failed(&mut self, now: Time) -> bool {
        if !self.policy.enabled {
            return false;
        }
        let open = BreakerState::Open {
            until: now + Duration::from_millis(self.policy.open_ms),
        };
        match self.state {
            BreakerState::Closed { failures } if failures + 1 >= self.policy.failures => {
                self.state = open;
                true
            }
            BreakerState::Closed { failures } => {
                self.state = BreakerState::Closed {
                    failures: failures + 1,
                };
                false
            }
            BreakerState::HalfOpen | BreakerState::Open { .. } => {
                self.state = open;
                true
            }
        }
    }
}

/// How much failover may add to a function's load.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetPolicy {
    /// Failovers allowed per request, over the window.
    pub ratio: f64,
    /// Failovers allowed a second regardless, so that a quiet function can still fail over.
    pub min_per_s: f64,
    pub window_s: u64,
}

impl Default for RetryBudgetPolicy {
    fn default() -> Self {
        // linkerd's defaults: 20% more, at least 10 a second, over 10 s.
        Self {
            ratio: 0.2,
            min_per_s: 10.0,
            window_s: 10,
        }
    }
}

/// A function's retry budget over a sliding window.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    policy: RetryBudgetPolicy,
    requests: VecDeque<Time>,
    retries: VecDeque<Time>,
}

impl RetryBudget {
    pub fn new(policy: RetryBudgetPolicy) -> Self {
        Self {
            policy,
            requests: VecDeque::new(),
            retries: VecDeque::new(),
        }
    }

    fn forget(&mut self, now: Time) {
        let window = Duration::from_secs(self.policy.window_s);
        for times in [&mut self.requests, &mut self.retries] {
            while times.front().is_some_and(|&t| t + window <= now) {
                times.pop_front();
            }
        }
    }

    /// A client request arrived at `now`.
    pub fn request(&mut self, now: Time) {
        self.forget(now);
        self.requests.push_back(now);
    }

    /// Whether a failover may be sent at `now`; if so, it is counted.
    pub fn try_retry(&mut self, now: Time) -> bool {
        self.forget(now);
        let allowed = self.policy.ratio * self.requests.len() as f64
            + self.policy.min_per_s * self.policy.window_s as f64;
        if (self.retries.len() as f64) < allowed {
            self.retries.push_back(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_consecutive_failures_and_lets_one_trial_through() {
        let mut b = Breaker::new(BreakerPolicy {
            enabled: true,
            failures: 3,
            open_ms: 10_000,
        });
        assert!(!b.failed(S));
        b.succeeded(); // a success in between resets the count
        assert!(!b.failed(S));
        assert!(!b.failed(S));
        assert!(b.failed(2 * S));
        assert!(!b.admits(5 * S), "open");
        assert!(b.admits(12 * S), "the trial");
        b.sent(12 * S);
        assert!(!b.admits(12 * S), "one trial at a time");
        assert!(b.failed(13 * S), "a failed trial opens it again");
        assert!(!b.admits(20 * S));
        b.sent(23 * S);
        b.succeeded();
        assert!(b.admits(23 * S));
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let mut b = Breaker::new(BreakerPolicy {
            enabled: false,
            ..BreakerPolicy::default()
        });
        for _ in 0..100 {
            assert!(!b.failed(S));
        }
        assert!(b.admits(S));
    }

    #[test]
    fn retries_are_bounded_by_a_share_of_requests_plus_a_floor() {
        let mut budget = RetryBudget::new(RetryBudgetPolicy {
            ratio: 0.2,
            min_per_s: 0.1,
            window_s: 10,
        });
        for _ in 0..100 {
            budget.request(S);
        }
        // 20% of 100 plus 0.1 × 10 s = 21 retries in the window.
        let granted = (0..50).filter(|_| budget.try_retry(S)).count();
        assert_eq!(granted, 21);
        // The window slides: they are forgotten 10 s later.
        assert!(budget.try_retry(12 * S));
    }
}
