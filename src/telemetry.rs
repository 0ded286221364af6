//! Telemetry: metric names, typed events that both log and count, and tracing setup.
//!
//! Metric labels come from the configuration (function and target names), never from
//! request data, so cardinality stays bounded (ARCHITECTURE.md invariant 6). An unknown function a
//! client asked for is counted under [`UNKNOWN_FUNCTION`].

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests by function, target and outcome.
pub const REQUESTS: &str = "warmgate_requests_total";
/// End-to-end time in the gateway, by function and target.
pub const REQUEST_DURATION: &str = "warmgate_request_duration_seconds";
/// Handler time Lambda reported, by function and target.
pub const LAMBDA_DURATION: &str = "warmgate_lambda_duration_seconds";
/// Cold starts seen in REPORT lines, by function and target.
pub const COLD_STARTS: &str = "warmgate_cold_starts_total";
/// Init durations of those cold starts.
pub const INIT_DURATION: &str = "warmgate_init_duration_seconds";
/// Requests whose start could not be told (no log tail).
pub const UNKNOWN_STARTS: &str = "warmgate_unknown_starts_total";
/// Requests in flight, by function.
pub const IN_FLIGHT: &str = "warmgate_in_flight_requests";
/// Requests shed before reaching a function, by reason.
pub const SHED: &str = "warmgate_shed_requests_total";

/// The label value for a function not in the configuration.
pub const UNKNOWN_FUNCTION: &str = "_unknown";

/// Histogram buckets, 1 ms to 30 s: inference answers in tens of ms warm, seconds cold.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder (real histograms, not summaries), installed on first
/// use; the handle renders the exposition.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("the only recorder of the process")
        })
        .clone()
}

/// `GET /metrics`: `handle` rendered for Prometheus.
pub fn metrics_router(handle: PrometheusHandle) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}

/// Sets up tracing: JSON lines when stdout is not a terminal (Fargate, CI), human-readable
/// otherwise. `RUST_LOG` filters; the default is `info`.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if std::io::stdout().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

/// How a gateway request ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    FunctionError,
    Throttled,
    Timeout,
    UpstreamError,
    BadRequest,
    NotFound,
    Unavailable,
    /// The gateway itself failed (a handler panicked).
    Internal,
    /// Refused: no valid credentials (401), or not allowed this function (403).
    Denied,
    /// Over the caller's own rate limit (429, before Lambda).
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::FunctionError => "function_error",
            Outcome::Throttled => "throttled",
            Outcome::Timeout => "timeout",
            Outcome::UpstreamError => "upstream_error",
            Outcome::BadRequest => "bad_request",
            Outcome::NotFound => "not_found",
            Outcome::Unavailable => "unavailable",
            Outcome::Internal => "internal",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

/// A request the gateway finished: logged once, counted once.
#[derive(Debug, Clone)]
pub struct RequestCompleted<'a> {
    pub function: &'a str,
    /// Empty when no target was chosen (the request failed before).
    pub target: &'a str,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// Handler duration from the REPORT line.
    pub lambda: Option<Duration>,
    /// `Some(init)` on a cold start; `None` on a warm one.
    pub cold_start: Option<Option<Duration>>,
}

impl RequestCompleted<'_> {
    pub fn emit(&self) {
        let labels = [
            ("function", self.function.to_string()),
            ("target", self.target.to_string()),
        ];
        counter!(REQUESTS, "function" => self.function.to_string(), "target" => self.target.to_string(), "outcome" => self.outcome.as_str())
            .increment(1);
        histogram!(REQUEST_DURATION, &labels).record(self.elapsed.as_secs_f64());
        if let Some(lambda) = self.lambda {
            histogram!(LAMBDA_DURATION, &labels).record(lambda.as_secs_f64());
        }
        match self.cold_start {
            Some(Some(init)) => {
                counter!(COLD_STARTS, &labels).increment(1);
                histogram!(INIT_DURATION, &labels).record(init.as_secs_f64());
            }
            Some(None) => {}
            None if self.outcome == Outcome::Ok || self.outcome == Outcome::FunctionError => {
                counter!(UNKNOWN_STARTS, &labels).increment(1);
            }
            None => {}
        }
        tracing::info!(
            function = self.function,
            target = self.target,
            outcome = self.outcome.as_str(),
            elapsed_ms = self.elapsed.as_secs_f64() * 1000.0,
            lambda_ms = self.lambda.map(|d| d.as_secs_f64() * 1000.0),
            cold_start = self.cold_start.map(|c| c.is_some()),
            "request"
        );
    }
}

/// A request refused before it reached a function, to protect the gateway.
pub fn request_shed(reason: &'static str) {
    counter!(SHED, "reason" => reason).increment(1);
    tracing::warn!(reason, "request shed");
}

/// Tasks (a request's handler, a background task such as the warmer) that panicked.
pub const PANICS: &str = "warmgate_panics_total";

/// What a panic said, if it said it as text.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// A request's handler panicked; the gateway answered 500.
pub fn request_panicked(message: &str) {
    counter!(PANICS, "task" => "request").increment(1);
    tracing::error!(panic = message, "request handler panicked; answered 500");
}

/// A background task panicked and is started again.
pub fn task_panicked(task: &'static str, message: &str) {
    counter!(PANICS, "task" => task).increment(1);
    tracing::error!(
        task,
        panic = message,
        "background task panicked; starting it again"
    );
}

/// Moves a function's in-flight gauge.
pub fn in_flight(function: &str, delta: f64) {
    gauge!(IN_FLIGHT, "function" => function.to_string()).increment(delta);
}

/// Where the metrics listener is, for the startup log.
pub fn metrics_ready(addr: SocketAddr) {
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
}

/// Estimated warm idle environments, by function and target.
pub const POOL_WARM_IDLE: &str = "warmgate_pool_warm_idle_environments";
/// Estimated busy environments (requests in flight through this gateway).
pub const POOL_BUSY: &str = "warmgate_pool_busy_environments";
/// Free provisioned environments, as far as the gateway can tell.
pub const POOL_PROVISIONED_FREE: &str = "warmgate_pool_provisioned_free_environments";
/// Routing decisions, by what the router expected of the chosen target.
pub const ROUTES: &str = "warmgate_routes_total";
/// Requests that waited for a busy environment, by whether one freed in time.
pub const WAITS: &str = "warmgate_waits_total";
/// Keep-alive pings sent, by reason.
pub const PINGS: &str = "warmgate_pings_total";

/// Publishes one target's pool estimate.
pub fn pool_estimate(function: &str, target: &str, view: &crate::policy::pool::PoolView) {
    let labels = [
        ("function", function.to_string()),
        ("target", target.to_string()),
    ];
    gauge!(POOL_WARM_IDLE, &labels).set(view.warm_idle);
    gauge!(POOL_BUSY, &labels).set(f64::from(view.in_flight));
    gauge!(POOL_PROVISIONED_FREE, &labels).set(f64::from(view.provisioned_free));
}

/// A routing decision.
pub fn routed(function: &str, target: &str, expect: &'static str) {
    counter!(ROUTES, "function" => function.to_string(), "target" => target.to_string(), "expect" => expect)
        .increment(1);
}

/// A request waited for a busy environment; `freed` when one freed before the limit.
pub fn waited(function: &str, freed: bool) {
    let outcome = if freed { "freed" } else { "timed_out" };
    counter!(WAITS, "function" => function.to_string(), "outcome" => outcome).increment(1);
    tracing::debug!(function, outcome, "request waited for a busy environment");
}

/// A keep-alive ping was sent; `met` is how it met its environment (warm: an environment
/// confirmed warm; cold: a new one started).
pub fn ping_sent(function: &str, target: &str, reason: &'static str, met: &'static str) {
    counter!(PINGS, "function" => function.to_string(), "target" => target.to_string(), "reason" => reason, "met" => met)
        .increment(1);
    tracing::debug!(function, target, reason, met, "ping");
}

/// Billed GB-s of pings, by function and target.
pub const PING_COST: &str = "warmgate_ping_billed_gb_seconds";
/// What is left of a function's ping budget.
pub const PING_BUDGET: &str = "warmgate_ping_budget_remaining";
/// Pings a policy asked for that the budget refused.
pub const PINGS_REFUSED: &str = "warmgate_pings_refused_total";

/// Adds a ping's billed GB-s (a gauge that only grows: the metrics crate counts integers).
pub fn ping_cost(function: &str, target: &str, gb_s: f64) {
    gauge!(PING_COST, "function" => function.to_string(), "target" => target.to_string())
        .increment(gb_s);
}

pub fn ping_budget(function: &str, pings_left: u32, gb_s_left: f64) {
    gauge!(PING_BUDGET, "function" => function.to_string(), "kind" => "pings_this_hour")
        .set(f64::from(pings_left));
    gauge!(PING_BUDGET, "function" => function.to_string(), "kind" => "gb_seconds_today")
        .set(gb_s_left);
}

pub fn pings_refused(function: &str, count: u32) {
    counter!(PINGS_REFUSED, "function" => function.to_string()).increment(u64::from(count));
    tracing::info!(function, count, "pings refused by the budget");
}

/// Probes of the reclaim curve, by function, target and outcome.
pub const PROBES: &str = "warmgate_probes_total";

/// A probe answered: one ping timed to learn whether an environment survives an idle age the
/// reclaim curve was unsure of. Logged once, counted once.
#[derive(Debug, Clone)]
pub struct ProbeSent<'a> {
    pub function: &'a str,
    pub target: &'a str,
    /// The idle age of the environment it was sent to meet.
    pub idle_age: Duration,
    /// The stretch of idle ages it bisects: the oldest seen alive, the next seen gone.
    pub stretch: (Duration, Duration),
    /// warm: that environment was alive; cold: none was left (an init paid); unknown or
    /// refused: nothing learnt.
    pub outcome: &'static str,
}

impl ProbeSent<'_> {
    pub fn emit(&self) {
        counter!(PROBES, "function" => self.function.to_string(), "target" => self.target.to_string(), "outcome" => self.outcome)
            .increment(1);
        tracing::info!(
            function = self.function,
            target = self.target,
            outcome = self.outcome,
            idle_age_s = self.idle_age.as_secs_f64(),
            alive_s = self.stretch.0.as_secs_f64(),
            gone_s = self.stretch.1.as_secs_f64(),
            "probe"
        );
    }
}

/// Client connections open now.
pub const CONNECTIONS_OPEN: &str = "warmgate_client_connections_open";
/// Client connections refused over `max_connections`, answered 503.
pub const CONNECTIONS_REFUSED: &str = "warmgate_client_connections_refused_total";
/// Client connections closed at a deadline, by which (`header`, `idle`).
pub const CONNECTIONS_TIMED_OUT: &str = "warmgate_client_connections_timed_out_total";

pub fn connection_opened() {
    gauge!(CONNECTIONS_OPEN).increment(1.0);
}

pub fn connection_closed() {
    gauge!(CONNECTIONS_OPEN).decrement(1.0);
}

pub fn connection_rejected() {
    counter!(CONNECTIONS_REFUSED).increment(1);
    tracing::warn!("client connection refused: at max_connections");
}

pub fn connection_timed_out(which: &'static str) {
    counter!(CONNECTIONS_TIMED_OUT, "deadline" => which).increment(1);
    tracing::info!(deadline = which, "client connection closed at its deadline");
}

/// Requests refused by access control, by answer (`unauthenticated`, `forbidden`,
/// `rate_limited`).
pub const ACCESS_REFUSED: &str = "warmgate_access_refused_total";

pub fn access_refused(code: &'static str) {
    counter!(ACCESS_REFUSED, "code" => code).increment(1);
    tracing::info!(code, "request refused by access control");
}

/// Whether a target's circuit breaker is open (1) or not (0), by function and target.
pub const BREAKER_OPEN: &str = "warmgate_breaker_open";

/// A target's breaker after a failure: logged when it opens.
pub fn breaker(function: &str, target: &str, state: crate::policy::breaker::BreakerState) {
    use crate::policy::breaker::BreakerState;
    let open = matches!(state, BreakerState::Open { .. });
    gauge!(BREAKER_OPEN, "function" => function.to_string(), "target" => target.to_string())
        .set(if open { 1.0 } else { 0.0 });
    if open {
        tracing::warn!(
            function,
            target,
            "circuit breaker open: the target is skipped for now"
        );
    }
}
