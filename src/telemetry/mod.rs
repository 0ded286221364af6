//! Telemetry: metric names, typed events that both log and count, and tracing setup.
//!
//! Metric labels come from the configuration (function and target names), never from
//! request data, so cardinality stays bounded (ARCHITECTURE.md invariant 6). An unknown function a
//! client asked for is counted under [`UNKNOWN_FUNCTION`].
//!
//! The exposition follows Prometheus's conventions (checked by `promtool check metrics` in
//! `scripts/deploy-check.sh`): every family has HELP text ([`describe`]), counters end in
//! `_total`, units are base units named in full (seconds, bytes), and every configured
//! function's series exist at zero from the start ([`functions_configured`]), so that `rate()`
//! and absence alerts work before a function's first request.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};

pub mod cache;
mod pings;
pub use pings::*;
mod series;
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

/// Time in the gateway beyond the Lambda round trip and any hold for a busy environment, by
/// function: the latency warmgate adds.
pub const ADDED_LATENCY: &str = "warmgate_added_latency_seconds";
/// SnapStart restore durations, by function and target.
pub const RESTORE_DURATION: &str = "warmgate_restore_duration_seconds";
/// 1 once a function's targets are resolved and checked, 0 before or when they are lost.
pub const FUNCTION_READY: &str = "warmgate_function_ready";
/// The provisioned concurrency the planner recommends, by function and target (advise mode).
pub const PROVISIONED_RECOMMENDED: &str = "warmgate_provisioned_recommended_environments";
/// The running build: constant 1, its version and revision as labels.
pub const BUILD_INFO: &str = "warmgate_build_info";

/// Histogram buckets for durations, 1-2-5 steps from 1 ms to 60 s: a ping answers in about
/// 1 ms, a warm inference in tens of ms, a cold start (Lambda caps on-demand init at 10 s) in
/// seconds, and a slow model up to the function's timeout.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0,
];

/// Buckets for the latency warmgate adds: 100 µs to 1 s (about 1 ms at the median).
pub const ADDED_LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
];

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder (real histograms, not summaries), installed on first
/// use; the handle renders the exposition.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ADDED_LATENCY.into()), ADDED_LATENCY_BUCKETS)
                .and_then(|b| {
                    // A Redis round trip takes well under a millisecond.
                    b.set_buckets_for_metric(
                        Matcher::Full(cache::CACHE_REDIS_DURATION.into()),
                        ADDED_LATENCY_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                })
                .expect("static buckets are valid")
                .install_recorder()
                .expect("the only recorder of the process");
            // Histogram samples wait in the handle until drained; without a scrape they
            // would pile up, so drain them every few seconds whatever Prometheus does.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(METRICS_UPKEEP);
                    upkeep.run_upkeep();
                })
                .expect("a thread for the metrics' upkeep");
            describe();
            gauge!(
                BUILD_INFO,
                "version" => env!("CARGO_PKG_VERSION"),
                "revision" => option_env!("WARMGATE_REVISION").unwrap_or("unknown")
            )
            .set(1.0);
            for task in ["request", "warmer"] {
                counter!(PANICS, "task" => task).increment(0);
            }
            counter!(SHED, "reason" => "max_in_flight").increment(0);
            gauge!(CONNECTIONS_OPEN).increment(0.0);
            counter!(CONNECTIONS_REFUSED).increment(0);
            for deadline in ["header", "idle"] {
                counter!(CONNECTIONS_TIMED_OUT, "deadline" => deadline).increment(0);
            }
            for code in ["unauthenticated", "forbidden", "rate_limited"] {
                counter!(ACCESS_REFUSED, "code" => code).increment(0);
            }
            handle
        })
        .clone()
}

/// HELP text and unit of every metric family, given to the recorder once it is installed.
fn describe() {
    cache::describe();
    describe_gauge!(
        PROVISIONED_APPLIED,
        "Provisioned concurrency the controller set on a function's target (provisioning.mode = apply)."
    );
    describe_gauge!(
        PROVISIONING_LEASE_HELD,
        "1 while this replica applies provisioned concurrency (provisioning.mode = apply): it holds the lease among the replicas sharing [cache.redis], or runs without Redis; 0 while it advises only."
    );
    describe_counter!(
        PROVISIONING_PROBLEMS,
        Unit::Count,
        "The controller's problems by function: throttled control-plane calls (retried with backoff), allocations that ended FAILED."
    );
    describe_counter!(
        HISTORY_RECORDS,
        Unit::Count,
        "Records written to the history file ([history]), one per invocation made for a client."
    );
    describe_counter!(
        HISTORY_DROPPED,
        Unit::Count,
        "History records not written, by reason: full (the file reached max_bytes), behind (the writer fell behind), error (the file could not be written)."
    );
    describe_gauge!(
        PROVISIONED_RECOMMENDED,
        "Provisioned concurrency the planner recommends for a function's target (provisioning.mode = advise: reported, not applied)."
    );
    describe_counter!(
        REQUESTS,
        Unit::Count,
        "Requests the gateway finished, by function, target (empty when none was chosen) and outcome."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its answer, by function and target."
    );
    describe_histogram!(
        LAMBDA_DURATION,
        Unit::Seconds,
        "Handler duration Lambda reported in the REPORT line, by function and target."
    );
    describe_histogram!(
        ADDED_LATENCY,
        Unit::Seconds,
        "Time a request spent in warmgate beyond the Lambda round trip and any hold for a busy environment, by function."
    );
    describe_counter!(
        COLD_STARTS,
        Unit::Count,
        "Requests that met a new environment (Init Duration or a SnapStart restore in the REPORT line), by function and target."
    );
    describe_histogram!(
        INIT_DURATION,
        Unit::Seconds,
        "Init Duration of the cold starts requests met, by function and target."
    );
    describe_histogram!(
        RESTORE_DURATION,
        Unit::Seconds,
        "SnapStart Restore Duration of the restores requests met, by function and target."
    );
    describe_counter!(
        UNKNOWN_STARTS,
        Unit::Count,
        "Requests whose start (cold or warm) could not be told: Lambda sent no log tail."
    );
    describe_gauge!(
        IN_FLIGHT,
        Unit::Count,
        "Requests in flight through this gateway, by function."
    );
    describe_counter!(
        SHED,
        Unit::Count,
        "Requests refused with 503 before reaching a function, by reason."
    );
    describe_counter!(
        PANICS,
        Unit::Count,
        "Tasks that panicked, by task (request: answered 500; others: started again)."
    );
    describe_gauge!(
        POOL_WARM_IDLE,
        Unit::Count,
        "Estimated warm idle environments (sum of survival probabilities), by function and target."
    );
    describe_gauge!(
        POOL_BUSY,
        Unit::Count,
        "Environments busy with requests or pings in flight through this gateway, by function and target."
    );
    describe_gauge!(
        POOL_PROVISIONED,
        Unit::Count,
        "Provisioned concurrency allocated to a target, as last read from Lambda."
    );
    describe_gauge!(
        POOL_PROVISIONED_FREE,
        Unit::Count,
        "Provisioned environments free, as far as this gateway can tell, by function and target."
    );
    describe_counter!(
        ROUTES,
        Unit::Count,
        "Routing decisions, by function, chosen target and what the router expected there (provisioned, warm, cold, pinned, failover)."
    );
    describe_counter!(
        WAITS,
        Unit::Count,
        "Requests held for a busy environment rather than sent to a cold start, by whether one freed in time."
    );
    describe_counter!(
        PINGS,
        Unit::Count,
        "Keep-alive pings sent, by function, target, reason (keep_alive, burst, probe) and how they met their environment."
    );
    describe_counter!(
        KEEP_ALIVE_PINGS,
        Unit::Count,
        "Keep-alive pings sent, by function and the policy's rule that asked for them (schedule, unseen, fallback, forecast, bridge, floor, held, headroom, rotation, daily)."
    );
    describe_counter!(
        PING_COST,
        Unit::Count,
        "Billed memory-time of pings, in byte-seconds (Lambda bills GB-seconds of 2^30 bytes: divide by 1073741824)."
    );
    describe_gauge!(
        PING_BUDGET_PINGS,
        Unit::Count,
        "Pings a function's budget still allows this hour."
    );
    describe_gauge!(
        PING_BUDGET_BYTE_SECONDS,
        Unit::Count,
        "Billed memory-time a function's ping budget still allows today, in byte-seconds."
    );
    describe_counter!(
        PINGS_REFUSED,
        Unit::Count,
        "Pings a keep-alive policy asked for that the function's budget refused."
    );
    describe_counter!(
        PINGS_LEFT_TO_KEEPER,
        Unit::Count,
        "Pings of keep-alive rounds this replica left to the function's keeper, another replica sharing [cache.redis] ([warmer] share_keep_alive)."
    );
    describe_gauge!(
        KEEP_ALIVE_REPLICAS,
        "The replicas this one shares keep-alive with through Redis, itself included; 0 while it cannot tell (or shares with none) and keeps every function."
    );
    describe_gauge!(
        KEEP_ALIVE_FUNCTIONS_KEPT,
        "The functions whose keep-alive rounds this replica sends."
    );
    describe_counter!(
        KEEP_ALIVE_CALLS_SHARED,
        Unit::Count,
        "Calls and pings this replica served, published to the other replicas' keep-alive policies (outcome=published) or not (outcome=dropped: Redis away, or too many between two batches)."
    );
    describe_counter!(
        KEEP_ALIVE_CALLS_HEARD,
        Unit::Count,
        "Calls and pings the other replicas served that this replica's keep-alive policy heard of."
    );
    describe_counter!(
        ROUNDS_CHECKED,
        Unit::Count,
        "Rounds of several keep-alive pings, by function and what their answers showed (reached: a distinct environment per ping; short: an environment named twice; unchecked: a ping failed or named no environment)."
    );
    describe_counter!(
        ROUND_ENVIRONMENTS_MISSED,
        Unit::Count,
        "Environments rounds of pings asked for and missed: pings that reached an environment another ping of their round had reached."
    );
    describe_gauge!(
        ROUND_HOLD_SECONDS,
        Unit::Seconds,
        "The hold a function's next round of pings asks each ping for, in seconds."
    );
    describe_counter!(
        PROBES,
        Unit::Count,
        "Probes of the idle-reclaim curve, by function, target and outcome (warm, cold, unknown, refused)."
    );
    describe_gauge!(
        FUNCTION_READY,
        Unit::Count,
        "1 when a function's primary target is resolved and its targets checked to run the same code, else 0."
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        Unit::Count,
        "Client connections open now."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        Unit::Count,
        "Client connections refused (503) because max_connections were open."
    );
    describe_counter!(
        CONNECTIONS_TIMED_OUT,
        Unit::Count,
        "Client connections closed at a deadline, by deadline (header: request head too slow; idle: kept alive unused)."
    );
    describe_counter!(
        ACCESS_REFUSED,
        Unit::Count,
        "Requests refused by access control, by code (unauthenticated 401, forbidden 403, rate_limited 429)."
    );
    describe_counter!(
        ENVIRONMENT_ENDS,
        Unit::Count,
        "Environment ends warmgate's Lambda extension reported, by function and reason (spindown, timeout, failure)."
    );
    describe_counter!(
        CALLS_REPORTED,
        Unit::Count,
        "Calls' starts and ends reported from inside the functions, by function and event (started, finished)."
    );
    describe_gauge!(
        BREAKER_OPEN,
        Unit::Count,
        "1 while a target's circuit breaker is open (the target is skipped), else 0; by function and target."
    );
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Constant 1, labelled with the running build's version and revision."
    );
}

/// Creates at zero a configured function's series that have no registered handle (those the
/// warmer, the breakers and the budget write).
fn function_configured(function: &crate::config::FunctionConfig) {
    let name = function.name.as_str();
    gauge!(FUNCTION_READY, "function" => name.to_string()).increment(0.0);
    counter!(PINGS_REFUSED, "function" => name.to_string()).increment(0);
    counter!(PINGS_LEFT_TO_KEEPER, "function" => name.to_string()).increment(0);
    rounds_configured(name);
    for kept_by in crate::policy::KeptBy::ALL {
        counter!(KEEP_ALIVE_PINGS, "function" => name.to_string(), "kept_by" => kept_by.as_str())
            .increment(0);
    }
    let budget = &function.ping_budget;
    ping_budget(name, budget.pings_per_hour, budget.gb_s_per_day);
    for target in &function.targets {
        let labels = [
            ("function", name.to_string()),
            ("target", target.to_string()),
        ];
        counter!(PING_COST, &labels).increment(0);
        gauge!(BREAKER_OPEN, &labels).increment(0.0);
        for reason in ["keep_alive", "burst", "probe"] {
            for met in ["warm", "cold", "provisioned", "unknown", "refused"] {
                counter!(PINGS, "function" => name.to_string(), "target" => target.to_string(), "reason" => reason, "met" => met)
                    .increment(0);
            }
        }
        for outcome in ["warm", "cold", "provisioned", "unknown", "refused"] {
            counter!(PROBES, "function" => name.to_string(), "target" => target.to_string(), "outcome" => outcome)
                .increment(0);
        }
    }
}

/// Creates configured functions' series at zero (or, for a series that exists already,
/// leaves its value), so that they exist from the start rather than from the function's first
/// request: `rate()` then sees the first increment, and an alert can tell "no requests" from
/// "no series". The per-request series are created by registering their handles, in one step
/// (one registry copy, not one per function). Installs the recorder if it is not yet.
pub fn functions_configured(functions: &[crate::config::FunctionConfig]) {
    let _ = prometheus();
    counter!(REQUESTS, "function" => UNKNOWN_FUNCTION, "target" => "", "outcome" => Outcome::NotFound.as_str())
        .increment(0);
    for function in functions {
        function_configured(function);
    }
    series::register(
        functions
            .iter()
            .map(|f| (f.name.as_str(), f.targets.as_slice())),
    );
}

/// Whether a function is ready (its targets resolved and checked), as a 0/1 gauge.
pub fn function_ready(function: &str, ready: bool) {
    gauge!(FUNCTION_READY, "function" => function.to_string()).set(if ready { 1.0 } else { 0.0 });
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
///
/// The services (`serve`, `emulator`) log to stdout, where the container's log driver reads
/// it; the verbs that print a result (`simulate`, `advise`, `keygen`) log to stderr
/// (`to_stderr`), so that their output stays theirs (`advise --json | jq`).
pub fn init_tracing(to_stderr: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let terminal = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let _ = match (to_stderr, terminal) {
        (false, true) => builder.try_init(),
        (false, false) => builder.json().flatten_event(true).try_init(),
        (true, true) => builder.with_writer(std::io::stderr).try_init(),
        (true, false) => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init(),
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
    /// Every outcome (a new variant belongs here too: each function's series are created for
    /// every outcome at start).
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::FunctionError,
        Outcome::Throttled,
        Outcome::Timeout,
        Outcome::UpstreamError,
        Outcome::BadRequest,
        Outcome::NotFound,
        Outcome::Unavailable,
        Outcome::Internal,
        Outcome::Denied,
        Outcome::RateLimited,
    ];

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
    /// The SnapStart restore duration, on a restore.
    pub restore: Option<Duration>,
    /// Time in warmgate beyond the Lambda round trip and any hold, when a target answered.
    pub added: Option<Duration>,
    /// Answered by the cache or by another request's invocation: this request met no
    /// environment of its own, so it counts no start.
    pub shared: bool,
}

impl RequestCompleted<'_> {
    pub fn emit(&self) {
        series::with(self.function, self.target, |function, target| {
            let request = target.map_or(&function.unrouted, |t| &t.request);
            request.requests(self.outcome).increment(1);
            request.duration().record(self.elapsed.as_secs_f64());
            if let Some(added) = self.added {
                function.added_latency.record(added.as_secs_f64());
            }
            let Some(target) = target.filter(|_| !self.shared) else {
                return;
            };
            if let Some(lambda) = self.lambda {
                target.lambda_duration.record(lambda.as_secs_f64());
            }
            if let Some(restore) = self.restore {
                target.restore_duration.record(restore.as_secs_f64());
            }
            match self.cold_start {
                Some(Some(init)) => {
                    target.cold_starts.increment(1);
                    if self.restore.is_none() {
                        target.init_duration.record(init.as_secs_f64());
                    }
                }
                Some(None) => {}
                None if self.outcome == Outcome::Ok || self.outcome == Outcome::FunctionError => {
                    target.unknown_starts.increment(1);
                }
                None => {}
            }
        });
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

/// Provisioned concurrency the controller set, by function and target (apply mode).
pub const PROVISIONED_APPLIED: &str = "warmgate_provisioned_applied_environments";
/// Control-plane calls of the controller that were throttled, or allocations that FAILED.
pub const PROVISIONING_PROBLEMS: &str = "warmgate_provisioning_problems_total";
/// 1 while this replica applies provisioned concurrency (it holds the lease among replicas,
/// or applies alone without Redis), 0 while it only advises (apply mode).
pub const PROVISIONING_LEASE_HELD: &str = "warmgate_provisioning_lease_held";

pub const HISTORY_RECORDS: &str = "warmgate_history_records_total";
pub const HISTORY_DROPPED: &str = "warmgate_history_records_dropped_total";

/// `n` history records written.
pub fn history_written(n: u64) {
    counter!(HISTORY_RECORDS).increment(n);
}

/// A history record not written, and why (`full`, `behind`, `error`).
pub fn history_dropped(reason: &'static str) {
    counter!(HISTORY_DROPPED, "reason" => reason).increment(1);
}

/// The level the controller set (apply mode).
pub fn provisioned_applied(function: &str, target: &str, environments: u32) {
    gauge!(PROVISIONED_APPLIED, "function" => function.to_string(), "target" => target.to_string())
        .set(f64::from(environments));
}

/// Whether this replica applies provisioned concurrency now (apply mode).
pub fn provisioning_lease_held(held: bool) {
    gauge!(PROVISIONING_LEASE_HELD).set(if held { 1.0 } else { 0.0 });
}

/// A throttled control-plane call of the controller.
pub fn provisioning_throttled(function: &str) {
    counter!(PROVISIONING_PROBLEMS, "function" => function.to_string(), "problem" => "throttled")
        .increment(1);
}

/// An allocation the controller asked for ended FAILED.
pub fn provisioning_failed(function: &str) {
    counter!(PROVISIONING_PROBLEMS, "function" => function.to_string(), "problem" => "failed")
        .increment(1);
}

/// The planner's level for a target (advise mode).
pub fn provisioned_recommended(function: &str, target: &str, environments: u32) {
    gauge!(PROVISIONED_RECOMMENDED, "function" => function.to_string(), "target" => target.to_string())
        .set(f64::from(environments));
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
    series::with(function, "", |f, _| f.in_flight.increment(delta));
}

/// Where the metrics listener is, for the startup log.
pub fn metrics_ready(addr: SocketAddr) {
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
}

/// Estimated warm idle environments, by function and target.
pub const POOL_WARM_IDLE: &str = "warmgate_pool_warm_idle_environments";
/// Estimated busy environments (requests in flight through this gateway).
pub const POOL_BUSY: &str = "warmgate_pool_busy_environments";
/// Provisioned concurrency allocated to a target.
pub const POOL_PROVISIONED: &str = "warmgate_pool_provisioned_environments";
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
    series::with(function, target, |_, t| {
        let Some(t) = t else { return };
        let [warm_idle, busy, provisioned, provisioned_free] = &t.pool;
        warm_idle.set(view.warm_idle);
        busy.set(f64::from(view.in_flight));
        provisioned.set(f64::from(view.provisioned));
        provisioned_free.set(f64::from(view.provisioned_free));
    });
}

/// A routing decision.
pub fn routed(function: &str, target: &str, expect: &'static str) {
    let counted = series::with(function, target, |_, t| {
        t.and_then(|t| t.route(expect)).map(|c| c.increment(1))
    });
    if counted.is_none() {
        counter!(ROUTES, "function" => function.to_string(), "target" => target.to_string(), "expect" => expect)
            .increment(1);
    }
}

/// A request waited for a busy environment; `freed` when one freed before the limit.
pub fn waited(function: &str, freed: bool) {
    let outcome = if freed { "freed" } else { "timed_out" };
    series::with(function, "", |f, _| {
        f.waits[usize::from(!freed)].increment(1)
    });
    tracing::debug!(function, outcome, "request waited for a busy environment");
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

/// Environment ends warmgate's Lambda extension reported, by function and `reason`
/// (`spindown`, `timeout`, `failure`).
pub const ENVIRONMENT_ENDS: &str = "warmgate_environment_ends_total";

pub fn environment_ended(function: &str, reason: &'static str) {
    counter!(ENVIRONMENT_ENDS, "function" => function.to_string(), "reason" => reason).increment(1);
    tracing::debug!(function, reason, "environment end reported");
}

/// Calls' starts and ends reported from inside the functions, by function and `event`
/// (`started`, `finished`).
pub const CALLS_REPORTED: &str = "warmgate_calls_reported_total";

pub fn call_reported(function: &str, event: &'static str) {
    counter!(CALLS_REPORTED, "function" => function.to_string(), "event" => event).increment(1);
    tracing::trace!(function, event, "call reported");
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
