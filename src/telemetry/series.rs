//! Metric handles registered once per configured function and target, so that a request's
//! telemetry is a few atomic operations: no label strings allocated, no lookups in the
//! recorder. Labels still come only from the configuration (invariant 6); a name not
//! registered with the configuration (the `_unknown` function) is added on first use.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use super::{
    Outcome, ADDED_LATENCY, COLD_STARTS, INIT_DURATION, IN_FLIGHT, LAMBDA_DURATION, POOL_BUSY,
    POOL_PROVISIONED, POOL_PROVISIONED_FREE, POOL_WARM_IDLE, REQUESTS, REQUEST_DURATION,
    RESTORE_DURATION, ROUTES, UNKNOWN_STARTS, WAITS,
};

/// What the router expected of a chosen target, the `expect` label of [`ROUTES`].
pub(super) const ROUTE_EXPECTS: [&str; 5] = ["provisioned", "warm", "cold", "pinned", "failover"];

/// One function's handles.
#[derive(Clone)]
pub(crate) struct FunctionSeries {
    pub in_flight: Gauge,
    pub added_latency: Histogram,
    /// [`WAITS`] by outcome: freed, timed out.
    pub waits: [Counter; 2],
    /// Requests that ended before a target was chosen (target label empty).
    pub unrouted: RequestSeries,
    targets: Vec<(String, TargetSeries)>,
}

impl FunctionSeries {
    fn new(function: &str) -> Self {
        FunctionSeries {
            in_flight: gauge!(IN_FLIGHT, "function" => function.to_string()),
            added_latency: histogram!(ADDED_LATENCY, "function" => function.to_string()),
            waits: ["freed", "timed_out"].map(
                |outcome| counter!(WAITS, "function" => function.to_string(), "outcome" => outcome),
            ),
            unrouted: RequestSeries::new(function, ""),
            targets: Vec::new(),
        }
    }

    /// Creates its series at zero, targets' too (a series that exists already keeps its
    /// value): a configured function's series exist before its first request.
    fn zero(&self) {
        self.in_flight.increment(0.0);
        self.waits.iter().for_each(|c| c.increment(0));
        self.unrouted.requests.iter().for_each(|c| c.increment(0));
        for (_, target) in &self.targets {
            // A real target's request histogram exists from the start, unlike the unrouted one.
            let _ = target.request.duration();
            let counters = [&target.cold_starts, &target.unknown_starts];
            for counter in counters
                .into_iter()
                .chain(&target.request.requests)
                .chain(&target.routes)
            {
                counter.increment(0);
            }
            target.pool.iter().for_each(|g| g.increment(0.0));
        }
    }

    fn target(&self, target: &str) -> Option<&TargetSeries> {
        self.targets
            .iter()
            .find(|(name, _)| name == target)
            .map(|(_, series)| series)
    }
}

/// A function and target's requests: by outcome, and their time in the gateway.
#[derive(Clone)]
pub(crate) struct RequestSeries {
    function: String,
    target: String,
    /// [`REQUESTS`] by outcome, in [`Outcome::ALL`]'s order.
    requests: Vec<Counter>,
    /// Made at the first request: a histogram is a score of series in every scrape, and most
    /// functions never have a request end without a target.
    duration: OnceLock<Histogram>,
}

impl RequestSeries {
    fn new(function: &str, target: &str) -> Self {
        RequestSeries {
            function: function.to_string(),
            target: target.to_string(),
            requests: Outcome::ALL
                .iter()
                .map(|o| {
                    counter!(REQUESTS, "function" => function.to_string(), "target" => target.to_string(), "outcome" => o.as_str())
                })
                .collect(),
            duration: OnceLock::new(),
        }
    }

    /// The histogram of their time in the gateway.
    pub fn duration(&self) -> &Histogram {
        self.duration.get_or_init(|| {
            histogram!(REQUEST_DURATION, "function" => self.function.clone(), "target" => self.target.clone())
        })
    }

    /// The requests counter of `outcome`.
    pub fn requests(&self, outcome: Outcome) -> &Counter {
        &self.requests[outcome as usize]
    }
}

/// One function and target's handles.
#[derive(Clone)]
pub(crate) struct TargetSeries {
    pub request: RequestSeries,
    pub lambda_duration: Histogram,
    pub init_duration: Histogram,
    pub restore_duration: Histogram,
    pub cold_starts: Counter,
    pub unknown_starts: Counter,
    /// [`ROUTES`] by expectation, in [`ROUTE_EXPECTS`]'s order.
    routes: Vec<Counter>,
    /// Warm idle, busy, provisioned, provisioned free.
    pub pool: [Gauge; 4],
}

impl TargetSeries {
    fn new(function: &str, target: &str) -> Self {
        let labels = [
            ("function", function.to_string()),
            ("target", target.to_string()),
        ];
        TargetSeries {
            request: RequestSeries::new(function, target),
            lambda_duration: histogram!(LAMBDA_DURATION, &labels),
            init_duration: histogram!(INIT_DURATION, &labels),
            restore_duration: histogram!(RESTORE_DURATION, &labels),
            cold_starts: counter!(COLD_STARTS, &labels),
            unknown_starts: counter!(UNKNOWN_STARTS, &labels),
            routes: ROUTE_EXPECTS
                .iter()
                .map(|expect| {
                    counter!(ROUTES, "function" => function.to_string(), "target" => target.to_string(), "expect" => *expect)
                })
                .collect(),
            pool: [POOL_WARM_IDLE, POOL_BUSY, POOL_PROVISIONED, POOL_PROVISIONED_FREE]
                .map(|name| gauge!(name, &labels)),
        }
    }

    /// The routes counter of an expectation, if it is one of [`ROUTE_EXPECTS`].
    pub fn route(&self, expect: &str) -> Option<&Counter> {
        ROUTE_EXPECTS
            .iter()
            .position(|e| *e == expect)
            .map(|i| &self.routes[i])
    }
}

type Registry = ArcSwap<HashMap<String, Arc<FunctionSeries>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Registers configured functions' handles, by name and targets (again for a function
/// registered before: a handle of the same labels is the same series). The recorder must be
/// installed first.
pub(super) fn register<'a>(functions: impl IntoIterator<Item = (&'a str, &'a [String])>) {
    let added: Vec<(String, Arc<FunctionSeries>)> = functions
        .into_iter()
        .map(|(function, targets)| {
            let mut series = FunctionSeries::new(function);
            series.targets = targets
                .iter()
                .map(|t| (t.clone(), TargetSeries::new(function, t)))
                .collect();
            series.zero();
            (function.to_string(), Arc::new(series))
        })
        .collect();
    registry().rcu(|current| {
        let mut next = HashMap::clone(current);
        next.extend(added.iter().cloned());
        next
    });
}

/// Adds what [`register`] did not: a function, or a target of it ("" adds none).
fn add(function: &str, target: &str) {
    registry().rcu(|current| {
        let mut next = HashMap::clone(current);
        let entry = next
            .entry(function.to_string())
            .or_insert_with(|| Arc::new(FunctionSeries::new(function)));
        if !target.is_empty() && entry.target(target).is_none() {
            let mut grown = FunctionSeries::clone(entry);
            grown
                .targets
                .push((target.to_string(), TargetSeries::new(function, target)));
            *entry = Arc::new(grown);
        }
        next
    });
}

/// Runs `f` on a function's handles and its target's (`None` for the empty target: no target
/// was chosen), registering them on first use if configuration did not.
pub(crate) fn with<R>(
    function: &str,
    target: &str,
    f: impl FnOnce(&FunctionSeries, Option<&TargetSeries>) -> R,
) -> R {
    let functions = registry().load();
    if let Some(series) = functions.get(function) {
        if target.is_empty() {
            return f(series, None);
        }
        if let Some(t) = series.target(target) {
            return f(series, Some(t));
        }
    }
    drop(functions);
    add(function, target);
    let functions = registry().load();
    let series = functions.get(function).expect("added above");
    f(series, series.target(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_index_their_counters() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(
                *outcome as usize, i,
                "{outcome:?} out of Outcome::ALL's order"
            );
        }
    }
}
