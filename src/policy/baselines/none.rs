//! No policy: Lambda alone, the first baseline. It never pings and never provisions.

use crate::clock::Time;
use crate::policy::{Action, FunctionInfo, Observation, Policy};

/// Lambda alone: what a client meets without warmgate.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPolicy;

impl Policy for NoPolicy {
    fn name(&self) -> String {
        "none".into()
    }

    fn start(&mut self, _functions: &[FunctionInfo], _now: Time) -> Vec<Action> {
        Vec::new()
    }

    fn observe(&mut self, _observation: &Observation) {}

    fn act(&mut self, _now: Time) -> Vec<Action> {
        Vec::new()
    }

    fn next_wake(&self) -> Option<Time> {
        None
    }
}
