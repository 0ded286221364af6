//! Provisioned concurrency fixed at the peak: every function gets, from the start, as many
//! provisioned environments as its highest concurrency over the whole trace, and never a change.
//!
//! The peaks are an oracle: the simulator computes them from the whole trace, which no live
//! deployment knows in advance. The baseline bounds what provisioning alone buys (no cold
//! starts once the allocation is READY) and what it costs (every environment billed all day).

use crate::clock::Time;
use crate::policy::{Action, FunctionInfo, Observation, Policy};

/// Provisioned concurrency at each function's peak, set once at start on its first target.
#[derive(Debug, Clone)]
pub struct FixedPeak {
    /// Peak concurrency per function, indexed by [`crate::policy::FunctionId`].
    peaks: Vec<u32>,
}

impl FixedPeak {
    /// `peak_concurrency[f]` environments for function `f`; a function beyond the vector, or
    /// with a peak of zero, gets none.
    pub fn new(peak_concurrency: Vec<u32>) -> Self {
        FixedPeak {
            peaks: peak_concurrency,
        }
    }
}

impl Policy for FixedPeak {
    fn name(&self) -> String {
        "fixed-peak".into()
    }

    fn start(&mut self, functions: &[FunctionInfo], _now: Time) -> Vec<Action> {
        functions
            .iter()
            .enumerate()
            .filter(|(_, info)| !info.targets.is_empty())
            .filter_map(|(function, _)| {
                let concurrency = self.peaks.get(function).copied().unwrap_or(0);
                (concurrency > 0).then_some(Action::SetProvisioned {
                    function,
                    target: 0,
                    concurrency,
                })
            })
            .collect()
    }

    fn observe(&mut self, _observation: &Observation) {}

    fn act(&mut self, _now: Time) -> Vec<Action> {
        Vec::new()
    }

    fn next_wake(&self) -> Option<Time> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::Start;

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
    fn sets_exactly_the_peaks_at_start_and_nothing_after() {
        let mut p = FixedPeak::new(vec![3, 0, 1, 7]);
        assert_eq!(p.name(), "fixed-peak");
        let functions = [
            info(&["live"]),
            info(&["live"]),
            info(&["live", "2"]),
            info(&[]),
            info(&["live"]),
        ];
        let actions = p.start(&functions, Duration::from_secs(5));
        assert_eq!(
            actions,
            vec![
                Action::SetProvisioned {
                    function: 0,
                    target: 0,
                    concurrency: 3
                },
                Action::SetProvisioned {
                    function: 2,
                    target: 0,
                    concurrency: 1
                },
            ],
            "no peak, no target, or beyond the vector: nothing"
        );
        assert_eq!(p.next_wake(), None);
        p.observe(&Observation {
            function: 0,
            target: 0,
            arrived: Duration::from_secs(6),
            duration: Duration::from_secs(1),
            init: None,
            start: Some(Start::Provisioned),
            ping: false,
            throttled: false,
        });
        assert!(p.act(Duration::from_secs(3600)).is_empty());
        assert_eq!(p.next_wake(), None);
    }
}
