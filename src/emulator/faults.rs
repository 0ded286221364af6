//! Faults the emulator injects, per function, so that what sits in front of Lambda can be
//! tested against the failures Lambda and the network really have: throttles, 5xx service
//! errors before and after the function ran, connections dropped before and after it ran,
//! function errors and timeouts, slow answers. Set from `emulator --faults FILE` or at run
//! time through `/_emulator/faults`.
//!
//! The ground truth that judges a chaos test: how many times each distinct payload was
//! executed, per function (`repeated`: payloads that ran more than once). A gateway that never
//! re-executes a non-idempotent call keeps it at zero whatever the faults, as long as each
//! client request carries a payload of its own.

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::platform::ThrottleReason;

/// A function's fault rates: each a share of its invocations, in `[0, 1]`, together at most 1
/// (`slow` is drawn apart, on top).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Refused 429 before running, by Lambda's throttle Reason.
    pub throttle: BTreeMap<String, f64>,
    /// Answered 500 `ServiceException` before the function runs.
    pub service_error: f64,
    /// Run to completion, then answered 500 `ServiceException`: the result is lost.
    pub service_error_after: f64,
    /// The connection drops before the function runs.
    pub drop_before: f64,
    /// Run to completion, then the connection drops without an answer.
    pub drop_after: f64,
    /// Run, and failed with an unhandled function error.
    pub function_error: f64,
    /// Run until the function's timeout, then failed as Lambda fails a timed-out handler.
    pub timeout: f64,
    /// Answered `slow_ms` late (on top of any of the above).
    pub slow: f64,
    pub slow_ms: u64,
}

/// What one invocation meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle(ThrottleReason),
    ServiceError,
    ServiceErrorAfter,
    DropBefore,
    DropAfter,
    FunctionError,
    Timeout,
}

impl Fault {
    /// Whether the function runs (the platform executes it) under this fault.
    pub fn runs(self) -> bool {
        matches!(
            self,
            Fault::ServiceErrorAfter | Fault::DropAfter | Fault::FunctionError | Fault::Timeout
        )
    }

    fn name(self) -> &'static str {
        match self {
            Fault::Throttle(_) => "throttle",
            Fault::ServiceError => "service_error",
            Fault::ServiceErrorAfter => "service_error_after",
            Fault::DropBefore => "drop_before",
            Fault::DropAfter => "drop_after",
            Fault::FunctionError => "function_error",
            Fault::Timeout => "timeout",
        }
    }
}

fn reason(name: &str) -> Option<ThrottleReason> {
    [
        ThrottleReason::ConcurrentInvocationLimitExceeded,
        ThrottleReason::FunctionInvocationRateLimitExceeded,
        ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
    ]
    .into_iter()
    .find(|r| r.as_str() == name)
}

impl Faults {
    /// Checks the rates; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let share = |field: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("{field}: {v} is not a share within [0, 1]"))
            }
        };
        let mut total = 0.0;
        for (name, &rate) in &self.throttle {
            if reason(name).is_none() {
                return Err(format!(
                    "throttle.{name}: not a throttle Reason (ConcurrentInvocationLimitExceeded, \
                     FunctionInvocationRateLimitExceeded, \
                     ReservedFunctionConcurrentInvocationLimitExceeded)"
                ));
            }
            total += share(&format!("throttle.{name}"), rate)?;
        }
        for (field, v) in [
            ("service_error", self.service_error),
            ("service_error_after", self.service_error_after),
            ("drop_before", self.drop_before),
            ("drop_after", self.drop_after),
            ("function_error", self.function_error),
            ("timeout", self.timeout),
        ] {
            total += share(field, v)?;
        }
        share("slow", self.slow)?;
        if total > 1.0 + 1e-9 {
            return Err(format!("the shares add up to {total}, more than 1"));
        }
        Ok(())
    }

    /// The fault of one invocation, from two uniform draws in `[0, 1)`: `u` picks the fault
    /// (each by its share, in a fixed order), `v` whether it is also slow.
    pub fn draw(&self, u: f64, v: f64) -> (Option<Fault>, bool) {
        let mut edge = 0.0;
        let mut pick = None;
        let throttles = self
            .throttle
            .iter()
            .filter_map(|(name, &rate)| Some((Fault::Throttle(reason(name)?), rate)));
        let others = [
            (Fault::ServiceError, self.service_error),
            (Fault::ServiceErrorAfter, self.service_error_after),
            (Fault::DropBefore, self.drop_before),
            (Fault::DropAfter, self.drop_after),
            (Fault::FunctionError, self.function_error),
            (Fault::Timeout, self.timeout),
        ];
        for (fault, rate) in throttles.chain(others) {
            edge += rate;
            if u < edge {
                pick = Some(fault);
                break;
            }
        }
        (pick, v < self.slow)
    }
}

/// The faults in force and what they did, for every function.
pub struct FaultState {
    rates: HashMap<String, Faults>,
    rng: ChaCha8Rng,
    /// Per function: faults injected, by name.
    injected: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Per function: executions of each distinct payload, while faults were set.
    executions: HashMap<String, HashMap<u64, u32>>,
}

/// What `GET /_emulator/faults` answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultReport {
    pub faults: BTreeMap<String, Faults>,
    pub injected: BTreeMap<String, BTreeMap<String, u64>>,
    /// Executions, and payloads executed more than once, per function.
    pub executions: BTreeMap<String, u64>,
    pub repeated: BTreeMap<String, u64>,
}

impl FaultState {
    pub fn new(seed: u64) -> Self {
        Self {
            rates: HashMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            injected: BTreeMap::new(),
            executions: HashMap::new(),
        }
    }

    /// Sets `function`'s faults (validated); all zero clears them.
    pub fn set(&mut self, function: &str, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        if faults == Faults::default() {
            self.rates.remove(function);
        } else {
            self.rates.insert(function.to_string(), faults);
        }
        Ok(())
    }

    /// Whether any function has faults set.
    pub fn active(&self) -> bool {
        !self.rates.is_empty()
    }

    /// The fault one invocation of `function` meets, counted; and its extra delay.
    pub fn draw(&mut self, function: &str) -> (Option<Fault>, std::time::Duration) {
        let Some(faults) = self.rates.get(function) else {
            return (None, std::time::Duration::ZERO);
        };
        let (u, v) = (self.rng.random::<f64>(), self.rng.random::<f64>());
        let (fault, slow) = faults.draw(u, v);
        let delay = std::time::Duration::from_millis(if slow { faults.slow_ms } else { 0 });
        if let Some(fault) = fault {
            *self
                .injected
                .entry(function.to_string())
                .or_default()
                .entry(fault.name())
                .or_default() += 1;
        }
        (fault, delay)
    }

    /// Records that `function` executed a client's `payload` (while faults are set anywhere).
    pub fn executed(&mut self, function: &str, payload: &[u8]) {
        if !self.active() {
            return;
        }
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        payload.hash(&mut hasher);
        *self
            .executions
            .entry(function.to_string())
            .or_default()
            .entry(hasher.finish())
            .or_default() += 1;
    }

    pub fn report(&self) -> FaultReport {
        let per_function = |f: fn(&HashMap<u64, u32>) -> u64| {
            self.executions
                .iter()
                .map(|(name, seen)| (name.clone(), f(seen)))
                .collect()
        };
        FaultReport {
            faults: self
                .rates
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            injected: self
                .injected
                .iter()
                .map(|(f, by)| {
                    (
                        f.clone(),
                        by.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    )
                })
                .collect(),
            executions: per_function(|seen| seen.values().map(|&n| u64::from(n)).sum()),
            repeated: per_function(|seen| seen.values().filter(|&&n| n > 1).count() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_shares_in_order() {
        let faults = Faults {
            throttle: [("ConcurrentInvocationLimitExceeded".to_string(), 0.1)].into(),
            drop_after: 0.2,
            slow: 0.5,
            slow_ms: 100,
            ..Faults::default()
        };
        faults.validate().unwrap();
        assert_eq!(
            faults.draw(0.05, 0.9),
            (
                Some(Fault::Throttle(
                    ThrottleReason::ConcurrentInvocationLimitExceeded
                )),
                false
            )
        );
        assert_eq!(faults.draw(0.25, 0.1), (Some(Fault::DropAfter), true));
        assert_eq!(faults.draw(0.31, 0.9), (None, false));
    }

    #[test]
    fn bad_rates_are_named() {
        let over = Faults {
            drop_before: 0.7,
            timeout: 0.7,
            ..Faults::default()
        };
        assert!(over.validate().unwrap_err().contains("add up"));
        let negative = Faults {
            slow: -1.0,
            ..Faults::default()
        };
        assert!(negative.validate().unwrap_err().starts_with("slow"));
        let unknown = Faults {
            throttle: [("Busy".to_string(), 0.1)].into(),
            ..Faults::default()
        };
        assert!(unknown.validate().unwrap_err().starts_with("throttle.Busy"));
    }

    #[test]
    fn repeated_payloads_are_counted_while_faults_are_set() {
        let mut state = FaultState::new(0);
        state.executed("f", b"{}"); // no faults yet: not tracked
        state
            .set(
                "f",
                Faults {
                    drop_after: 0.5,
                    ..Faults::default()
                },
            )
            .unwrap();
        state.executed("f", b"{\"id\":1}");
        state.executed("f", b"{\"id\":2}");
        state.executed("f", b"{\"id\":1}");
        let report = state.report();
        assert_eq!(report.executions["f"], 3);
        assert_eq!(report.repeated["f"], 1);
    }
}
