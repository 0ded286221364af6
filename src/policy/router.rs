//! Which equivalent target serves a request, and whether to wait for a busy environment
//! rather than start a cold one. Pure decisions over pool estimates.

use std::time::Duration;

use super::pool::PoolView;

/// Below this, a target is not counted on to hold a warm environment.
const WARM_ENOUGH: f64 = 0.5;
/// Warm probabilities closer than this are a tie.
const TIE: f64 = 0.05;

/// What the router expects the chosen target to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    Provisioned,
    Warm,
    Cold,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Provisioned => "provisioned",
            Expectation::Warm => "warm",
            Expectation::Cold => "cold",
        }
    }
}

/// The router's choice: a target index and what it expects there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub target: usize,
    pub expect: Expectation,
}

/// Chooses among a function's equivalent targets (in configured order of preference):
/// free provisioned capacity first; then the target most likely to hold a warm idle
/// environment; then the cheapest cold start. Ties go to the busier pool, then to the
/// earlier target, so that traffic keeps a few pools hot rather than many lukewarm.
///
/// # Panics
/// If `pools` is empty.
pub fn choose(pools: &[PoolView]) -> Route {
    assert!(!pools.is_empty(), "a function has at least one target");
    let heat = |p: &PoolView| f64::from(p.in_flight) + p.warm_idle;
    if let Some(target) = pools.iter().position(|p| p.provisioned_free > 0) {
        return Route {
            target,
            expect: Expectation::Provisioned,
        };
    }
    let best = pools.iter().map(|p| p.warm_probability).fold(0.0, f64::max);
    if best >= WARM_ENOUGH {
        let target = pools
            .iter()
            .enumerate()
            .filter(|(_, p)| p.warm_probability >= best - TIE)
            .max_by(|(i, a), (j, b)| heat(a).total_cmp(&heat(b)).then(j.cmp(i)))
            .map(|(i, _)| i)
            .expect("one is best");
        return Route {
            target,
            expect: Expectation::Warm,
        };
    }
    // The expected wait for init: a cold start's init, unless the target turns out warm.
    // Equivalent targets run the same code, so their init estimates differ mostly by noise:
    // compared in 25% steps, near-equal ones tie, and the tie keeps pools concentrated.
    let expected_init_step = |p: &PoolView| {
        let wait_ms = (1.0 - p.warm_probability) * p.expected_init.as_secs_f64() * 1000.0;
        (wait_ms.max(1.0).ln() / 1.25f64.ln()).round() as i64
    };
    let target = pools
        .iter()
        .enumerate()
        .min_by(|(i, a), (j, b)| {
            expected_init_step(a)
                .cmp(&expected_init_step(b))
                .then(heat(b).total_cmp(&heat(a)))
                .then(i.cmp(j))
        })
        .map(|(i, _)| i)
        .expect("non-empty");
    Route {
        target,
        expect: Expectation::Cold,
    }
}

/// How long a request may wait for a busy environment, per function.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaitPolicy {
    /// Off for functions that would rather start cold at once.
    pub enabled: bool,
    /// The longest a request waits before going cold anyway (and never longer than the
    /// cold start it would meet is expected to take: `wait_below_cold_share`). 5 s by
    /// default, for functions that load a model at init.
    pub max_wait_ms: u64,
    /// Requests waiting at once, per function; beyond it they go cold.
    pub max_queue: usize,
    /// Wait only when the expected wait is below this share of the expected cold start.
    /// 1 by default: a wait expected shorter than the init is the better bet for the caller,
    /// and pays no init (docs/routing.md, "Tuning notes").
    pub wait_below_cold_share: f64,
    /// While requests wait, one environment starts (a burst ping) for every this many of
    /// them, so that a burst deeper than the pool is absorbed in parallel rather than one
    /// init at a time. 2 by default: one at a time let the queue of a model-loading burst
    /// fill (`max_queue`) and the rest go cold (docs/routing.md, "Tuning notes").
    pub waiters_per_burst_ping: u32,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_wait_ms: 5000,
            max_queue: 32,
            wait_below_cold_share: 1.0,
            waiters_per_burst_ping: 2,
        }
    }
}

impl WaitPolicy {
    /// How many burst pings may be on their way while `waiting` requests wait: one for
    /// every `waiters_per_burst_ping` of them, and at least one.
    pub fn burst_pings(&self, waiting: usize) -> usize {
        waiting
            .div_ceil(self.waiters_per_burst_ping.max(1) as usize)
            .max(1)
    }
}

/// Wait or start cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitDecision {
    /// Hold the request up to this long for an environment to free up.
    Wait(Duration),
    GoCold,
}

/// When every warm environment is busy, Lambda would start a new one and the caller would
/// wait out the whole init. Waiting for the first busy environment to free up is better
/// when that is expected sooner (as Knative's activator holds requests for a pod).
pub fn wait_or_cold(
    policy: &WaitPolicy,
    expected_wait: Option<Duration>,
    expected_init: Duration,
    waiting: usize,
) -> WaitDecision {
    let max = Duration::from_millis(policy.max_wait_ms);
    match expected_wait {
        Some(wait)
            if policy.enabled
                && waiting < policy.max_queue
                && wait <= max
                && wait.as_secs_f64()
                    < expected_init.as_secs_f64() * policy.wait_below_cold_share =>
        {
            // Allow for the estimate being optimistic, within the bound.
            WaitDecision::Wait((wait * 2).clamp(Duration::from_millis(10), max))
        }
        _ => WaitDecision::GoCold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(
        in_flight: u32,
        warm_idle: f64,
        warm_probability: f64,
        provisioned_free: u32,
        init_ms: u64,
    ) -> PoolView {
        PoolView {
            in_flight,
            warm_idle,
            warm_probability,
            provisioned: provisioned_free + in_flight,
            provisioned_free,
            expected_duration: Duration::from_millis(50),
            expected_init: Duration::from_millis(init_ms),
        }
    }

    #[test]
    fn one_burst_ping_for_every_two_waiters() {
        let p = WaitPolicy::default();
        let allowed: Vec<usize> = (1..=5).map(|w| p.burst_pings(w)).collect();
        assert_eq!(allowed, [1, 1, 2, 2, 3]);
        let one_at_a_time = WaitPolicy {
            waiters_per_burst_ping: 32,
            ..p
        };
        assert_eq!(one_at_a_time.burst_pings(32), 1);
        assert_eq!(one_at_a_time.burst_pings(33), 2);
    }

    #[test]
    fn free_provisioned_capacity_comes_first() {
        let route = choose(&[pool(0, 3.0, 0.99, 0, 2000), pool(1, 0.0, 0.0, 1, 2000)]);
        assert_eq!(
            route,
            Route {
                target: 1,
                expect: Expectation::Provisioned
            }
        );
    }

    #[test]
    fn then_the_target_most_likely_warm() {
        let route = choose(&[pool(0, 0.0, 0.0, 0, 2000), pool(0, 1.0, 0.9, 0, 2000)]);
        assert_eq!(
            route,
            Route {
                target: 1,
                expect: Expectation::Warm
            }
        );
    }

    #[test]
    fn ties_keep_pools_concentrated() {
        let route = choose(&[pool(0, 1.0, 0.99, 0, 2000), pool(3, 4.0, 0.99, 0, 2000)]);
        assert_eq!(route.target, 1, "the hotter pool");
        let route = choose(&[pool(1, 1.0, 0.99, 0, 2000), pool(1, 1.0, 0.99, 0, 2000)]);
        assert_eq!(route.target, 0, "then the preferred");
    }

    #[test]
    fn all_cold_goes_to_the_cheapest_cold_start() {
        let route = choose(&[pool(0, 0.0, 0.1, 0, 3000), pool(0, 0.0, 0.2, 0, 1500)]);
        assert_eq!(
            route,
            Route {
                target: 1,
                expect: Expectation::Cold
            }
        );
    }

    #[test]
    fn wait_when_a_busy_environment_frees_sooner_than_a_cold_start() {
        let p = WaitPolicy::default();
        let init = Duration::from_secs(2);
        assert_eq!(
            wait_or_cold(&p, Some(Duration::from_millis(40)), init, 0),
            WaitDecision::Wait(Duration::from_millis(80))
        );
        // Up to twice the estimate, within the longest wait.
        assert_eq!(
            wait_or_cold(&p, Some(Duration::from_millis(1500)), init, 0),
            WaitDecision::Wait(Duration::from_millis(3000))
        );
        // Longer than the cold start: go cold.
        assert_eq!(
            wait_or_cold(&p, Some(Duration::from_millis(2500)), init, 0),
            WaitDecision::GoCold
        );
        assert_eq!(wait_or_cold(&p, None, init, 0), WaitDecision::GoCold);
        // Shorter than the init, within the longest wait: wait; a stricter share says no.
        let short_init = Duration::from_millis(900);
        assert_eq!(
            wait_or_cold(&p, Some(Duration::from_millis(600)), short_init, 0),
            WaitDecision::Wait(Duration::from_millis(1200))
        );
        let strict = WaitPolicy {
            wait_below_cold_share: 0.5,
            ..p
        };
        assert_eq!(
            wait_or_cold(&strict, Some(Duration::from_millis(600)), short_init, 0),
            WaitDecision::GoCold
        );
        assert_eq!(
            wait_or_cold(&p, Some(Duration::from_millis(40)), init, 32),
            WaitDecision::GoCold
        );
        let off = WaitPolicy {
            enabled: false,
            ..p
        };
        assert_eq!(
            wait_or_cold(&off, Some(Duration::from_millis(40)), init, 0),
            WaitDecision::GoCold
        );
        let short_cold = Duration::from_millis(30);
        assert_eq!(
            wait_or_cold(&p, Some(Duration::from_millis(40)), short_cold, 0),
            WaitDecision::GoCold
        );
    }
}
