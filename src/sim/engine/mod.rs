//! The replay engine: a trace's arrivals, the platform model and one policy, in virtual time.
//!
//! The engine drives the very `Platform` the emulator serves (ARCHITECTURE.md, invariant 2),
//! the very [`Policy`](crate::policy::Policy) code the gateway runs, and, per function, the
//! very [`FunctionDriver`](crate::policy::driver::FunctionDriver) whose decisions the gateway
//! carries out (invariant 1). Nothing here sleeps or reads a clock to decide anything: time is
//! the trace's, and it jumps from one event to the next.
//!
//! Events, in time order (ties in this order, so a policy knows everything that finished by
//! `t` before it acts at `t`, and acts before the arrivals of `t` meet the platform):
//! 1. completions: an attempt that finished is taught to its driver, and the policy hears of
//!    it as an [`Observation`](crate::policy::Observation), at its `completes_at`; the driver
//!    may release a held request onto the environment it freed;
//! 2. with replicas sharing their attempts, another replica's start or end heard (after the
//!    next batch, as the gateway's hear them: `replay::shared`);
//! 3. the minute tick: provisioned capacity is read into the pools, and after the warm-up the
//!    pools' estimates are compared with the platform's ground truth;
//! 4. the policy's wake-up: `Policy::act`, then its actions (rounds as the driver grants them);
//! 5. the probe check, every `PROBE_CHECK` of routed replays: the probes the pools ask for;
//! 6. the end of a held request's wait ([`Traffic::Waiting`]): it is sent, unless a completion
//!    released it first;
//! 7. arrivals: the next invocation of any function, taken from a heap that merges the
//!    functions' sorted arrival lists (one cursor per function, no global sorted copy).
//!
//! Each trace function becomes one platform function with the trace's memory and
//! [`SimSettings::targets`] (K) equivalent targets: K published versions of the same code, with
//! the aliases [`target_name`] (`live`, `live-2`, ..., `live-K`) on them. How real invocations
//! reach the targets is the candidate's [`Traffic`]: all to `live` (a client calling one alias),
//! spread over the K (client populations each pinned to its alias), or admitted by the driver
//! as the gateway admits them. The pools are kept when routing or when measuring the estimator
//! ([`EstimatorError`]). Handler durations come from the trace (its per-invocation duration,
//! or a draw from the function's model) and are handed to the platform as they are; each
//! function draws from its own seeded stream, so every policy replays the same durations for
//! the same arrivals.
//!
//! Figures count what arrives at or after the warm-up (default: the first hour). The policies
//! see the warm-up; the figures do not, because at a trace's first minute every function looks
//! cold, which no real day is.

mod replay;
mod settings;
mod tally;

pub use replay::*;
pub use settings::*;
pub use tally::*;

#[cfg(test)]
mod tests {
    use super::replay::*;
    use super::settings::*;
    use super::tally::*;
    use super::*;
    use crate::sim::trace::*;
    use std::time::Duration;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [0.0, 0.1, 0.2, 0.3, 1.0];
        assert_eq!(quantile(&v, 0.5), 0.2);
        assert!((quantile(&v, 0.75) - 0.3).abs() < 1e-12);
        assert!((quantile(&v, 0.9) - 0.72).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    fn function(arrivals: &[(u64, u64)]) -> TraceFunction {
        TraceFunction {
            lambda: Default::default(),
            id: "f".into(),
            app: "a".into(),
            trigger: None,
            memory_mb: 128,
            durations: DurationModel::Fixed(Duration::from_millis(1)),
            arrivals: arrivals
                .iter()
                .map(|&(at_ms, d_ms)| Arrival {
                    at: Duration::from_millis(at_ms),
                    duration: Some(Duration::from_millis(d_ms)),
                    tokens: None,
                })
                .collect(),
        }
    }

    #[test]
    fn peak_concurrency_counts_overlaps_and_not_touching_ends() {
        let trace = Trace {
            name: "t".into(),
            format: super::super::trace::TraceFormat::Azure2021,
            functions: vec![
                function(&[(0, 100), (50, 100), (60, 10), (200, 10)]),
                function(&[(0, 100), (100, 100), (200, 100)]),
                function(&[]),
            ],
            duration: Duration::from_secs(1),
        };
        assert_eq!(peak_concurrency(&trace, &SimSettings::default()), [3, 1, 0]);
    }

    #[test]
    fn estimator_figures_count_errors_and_their_99th_percentile() {
        let mut tally = EstimatorTally::default();
        assert_eq!(tally.figures(), EstimatorError::default());
        // 97 exact, 2 one too many, 1 three too few.
        for _ in 0..97 {
            tally.record(2, 2);
        }
        tally.record(3, 2);
        tally.record(1, 0);
        tally.record(0, 3);
        let e = tally.figures();
        assert_eq!(e.samples, 100);
        assert!((e.mean_abs_error - 0.05).abs() < 1e-12);
        assert!((e.exact_share - 0.97).abs() < 1e-12);
        assert!((e.within_1_share - 0.99).abs() < 1e-12);
        assert_eq!(e.p99_abs_error, 1);
        assert!((e.mean_error - (-0.01)).abs() < 1e-12);
        assert!((e.mean_truth - 1.99).abs() < 1e-12);
    }

    #[test]
    fn targets_are_live_then_numbered() {
        assert_eq!(target_name(0), LIVE_ALIAS);
        assert_eq!(target_name(2), "live-3");
        assert_eq!(Traffic::Routed.label("none"), "none+route");
    }

    #[test]
    fn arrivals_merge_in_time_order() {
        let functions = vec![function(&[(5, 1), (30, 1)]), function(&[(5, 1), (10, 1)])];
        let mut arrivals = Arrivals::new(&functions);
        let mut order = Vec::new();
        while let Some((f, a)) = arrivals.pop() {
            order.push((f, a.at.as_millis()));
        }
        assert_eq!(order, [(0, 5), (1, 5), (1, 10), (0, 30)]);
    }
}
