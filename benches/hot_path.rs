//! Criterion micro-benchmarks of what the gateway does for every request, apart from the
//! network: the routing decision, the pool's update at an answer, the REPORT line's parse,
//! an error turned into its HTTP answer, the request's metrics, and a cache key.
//!
//! `cargo bench --bench hot_path` prints each one's time per iteration; the end-to-end figures
//! (against the emulator directly and nginx) are `loadtest/compare.sh`'s.

use std::hint::black_box;
use std::time::Duration;

use axum::response::IntoResponse;
use criterion::{criterion_group, criterion_main, Criterion};

use warmgate::config::Config;
use warmgate::gateway::error::GatewayError;
use warmgate::lambda::report::parse_log_tail;
use warmgate::lambda::{Execution, InvokeError, InvokeErrorKind};
use warmgate::platform::Start;
use warmgate::policy::driver::{Admission, FunctionDriver, FunctionSettings, Outcome};
use warmgate::policy::pool::PoolView;
use warmgate::policy::router;
use warmgate::telemetry::{self, RequestCompleted};

const REPORT_TAIL: &str = "START RequestId: 6f1c Version: 3\nEND RequestId: 6f1c\nREPORT RequestId: 6f1c\tDuration: 48.21 ms\tBilled Duration: 49 ms\tMemory Size: 2048 MB\tMax Memory Used: 612 MB\tInit Duration: 2480.22 ms\t\n";

fn routing(c: &mut Criterion) {
    let pools: Vec<PoolView> = (0..3)
        .map(|t| PoolView {
            in_flight: t,
            warm_idle: 0.5 * f64::from(t),
            warm_probability: 0.3 * f64::from(t),
            provisioned: 0,
            provisioned_free: 0,
            expected_duration: Duration::from_millis(50),
            expected_init: Duration::from_secs(2),
        })
        .collect();
    c.bench_function("router::choose, 3 targets", |b| {
        b.iter(|| router::choose(black_box(&pools)))
    });
}

/// A request's whole way through its function's driver: admitted (routed among two targets
/// with warm pools), then finished warm, which updates the pool's estimate and reclaim curve.
fn driver(c: &mut Criterion) {
    let mut driver = FunctionDriver::new(0, 2, FunctionSettings::default());
    let mut now = Duration::from_secs(1);
    let step = Duration::from_millis(20);
    c.bench_function("driver: arrive, route, finish warm", |b| {
        b.iter(|| {
            now += step;
            let Admission::Send(send) = driver.arrive(now) else {
                panic!("sequential requests are never held");
            };
            driver.finish(
                now + step / 2,
                &send.attempt,
                Outcome::Ran {
                    start: Some(Start::Warm),
                    duration: step / 2,
                    init: None,
                    billed_gb_s: Some(0.001),
                },
            )
        })
    });
}

fn report(c: &mut Criterion) {
    c.bench_function("parse REPORT line", |b| {
        b.iter(|| parse_log_tail(black_box(REPORT_TAIL)))
    });
}

fn error_answer(c: &mut Criterion) {
    let mut throttle = InvokeError::new(
        InvokeErrorKind::Throttled {
            reason: Some("ConcurrentInvocationLimitExceeded".into()),
        },
        Execution::NotExecuted,
        "TooManyRequestsException: Rate Exceeded.",
    );
    throttle.retry_after = Some(Duration::from_secs(1));
    c.bench_function("throttle to its HTTP answer", |b| {
        b.iter(|| GatewayError::from_invoke("sentiment", black_box(&throttle)).into_response())
    });
}

fn metrics(c: &mut Criterion) {
    let config = Config::parse(
        r#"
[backend]
kind = "endpoint"
url = "http://127.0.0.1:9001"
[access]
open = true
[[function]]
name = "sentiment"
targets = ["live", "blue"]
"#,
        std::iter::empty::<(String, String)>(),
        "bench",
    )
    .expect("valid configuration");
    telemetry::functions_configured(&config.functions);
    let event = RequestCompleted {
        function: "sentiment",
        target: "live",
        outcome: telemetry::Outcome::Ok,
        elapsed: Duration::from_millis(51),
        lambda: Some(Duration::from_millis(48)),
        cold_start: Some(None),
        restore: None,
        added: Some(Duration::from_micros(900)),
        shared: false,
    };
    c.bench_function("request metrics (RequestCompleted::emit)", |b| {
        b.iter(|| black_box(&event).emit())
    });
}

/// A cache key of a 4 KB prompt: parse, drop the ignored member, canonical JSON, SHA-256.
fn cache_key(c: &mut Criterion) {
    let payload = format!(
        r#"{{"request_id":"r-1","prompt":"{}","params":{{"temperature":0,"max_tokens":256}}}}"#,
        "x".repeat(4096)
    );
    let ignore = vec!["/request_id".to_string()];
    c.bench_function("cache key of a 4 KB payload (Key::new)", |b| {
        b.iter(|| {
            warmgate::cache::Key::new(
                "sentiment",
                "code-sha",
                black_box(payload.as_bytes()),
                None,
                &ignore,
            )
            .unwrap()
        })
    });
}

criterion_group!(
    hot_path,
    routing,
    driver,
    report,
    error_answer,
    metrics,
    cache_key
);
criterion_main!(hot_path);
