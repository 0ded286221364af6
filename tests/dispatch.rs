//! The gateway's request path against a scripted backend, in process and in paused time: no
//! socket, no emulator. Each test scripts what Lambda answers, target by target, and checks
//! what the gateway sent and what it answered.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::ServiceExt;
use warmgate::clock::TokioClock;
use warmgate::config::Config;
use warmgate::gateway::Gateway;
use warmgate::lambda::{
    Execution, InvokeError, InvokeErrorKind, InvokeRequest, InvokeResponse, Invoker, TraceContext,
};

/// What a scripted target answers next.
enum Answer {
    Ok,
    FunctionError,
    Throttled,
    TimedOut,
    Panic,
}

/// A Lambda whose answers are scripted per qualifier, recording every invoke it receives.
#[derive(Default)]
struct Scripted {
    answers: Mutex<HashMap<String, VecDeque<Answer>>>,
    invoked: Mutex<Vec<String>>,
    traces: Mutex<Vec<TraceContext>>,
    contexts: Mutex<Vec<Option<String>>>,
}

impl Scripted {
    fn script(self: &Arc<Self>, qualifier: &str, answers: impl IntoIterator<Item = Answer>) {
        self.answers
            .lock()
            .entry(qualifier.to_string())
            .or_default()
            .extend(answers);
    }

    fn invoked(&self) -> Vec<String> {
        self.invoked.lock().clone()
    }
}

const WARM_TAIL: &str = "REPORT RequestId: r\tDuration: 5.00 ms\tBilled Duration: 5 ms\tMemory Size: 128 MB\tMax Memory Used: 60 MB\t\n";

#[async_trait::async_trait]
impl Invoker for Scripted {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let qualifier = req.qualifier.clone().unwrap_or_default();
        self.invoked.lock().push(qualifier.clone());
        self.traces.lock().push(req.trace.clone());
        self.contexts.lock().push(req.client_context.clone());
        let answer = self
            .answers
            .lock()
            .get_mut(&qualifier)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Ok);
        let response = |payload: &'static str, function_error: Option<&str>| InvokeResponse {
            status: 200,
            payload: Bytes::from_static(payload.as_bytes()),
            executed_version: Some("1".into()),
            function_error: function_error.map(str::to_string),
            report: warmgate::lambda::parse_log_tail(WARM_TAIL),
            log_tail: Some(WARM_TAIL.into()),
        };
        match answer {
            Answer::Ok => Ok(response(r#"{"ok":true}"#, None)),
            Answer::FunctionError => Ok(response(
                r#"{"errorMessage":"bad input","errorType":"ValueError"}"#,
                Some("Unhandled"),
            )),
            Answer::Throttled => Err(InvokeError::new(
                InvokeErrorKind::Throttled {
                    reason: Some("ReservedFunctionConcurrentInvocationLimitExceeded".into()),
                },
                Execution::NotExecuted,
                "TooManyRequestsException: rate exceeded",
            )),
            Answer::TimedOut => {
                // The function runs past the gateway's timeout for it.
                tokio::time::sleep(req.timeout).await;
                Err(InvokeError::new(
                    InvokeErrorKind::Timeout,
                    Execution::MayHaveExecuted,
                    format!("no answer within {:?}", req.timeout),
                ))
            }
            Answer::Panic => panic!("scripted panic in the invoker"),
        }
    }
}

const CONFIG: &str = r#"
[backend]
kind = "endpoint"
url = "http://unused"

[access]
open = true

[warmer]
enabled = false

[[function]]
name = "model"
targets = ["live", "standby", "spare"]
timeout_ms = 2000

[[function]]
name = "idempotent-model"
lambda_name = "model"
targets = ["live", "standby"]
timeout_ms = 2000
idempotent = true
"#;

async fn gateway(scripted: &Arc<Scripted>) -> Arc<Gateway> {
    gateway_of(CONFIG, scripted).await
}

/// A gateway of `config` in front of `scripted`, its targets resolved.
async fn gateway_of(config: &str, scripted: &Arc<Scripted>) -> Arc<Gateway> {
    let config = Config::parse(config, [], "test").expect("valid config");
    let gateway = Gateway::new(
        config,
        scripted.clone(),
        Arc::new(common::SameCode),
        Arc::new(TokioClock::new()),
    );
    gateway.refresh_targets().await;
    gateway.readiness().expect("every target resolved");
    gateway
}

/// POSTs `{}` to the function on the /v1 path, in process.
async fn call(gateway: &Arc<Gateway>, function: &str) -> (StatusCode, Option<String>, Value) {
    let request = Request::post(format!("/v1/functions/{function}/invoke"))
        .body(Body::from("{}"))
        .unwrap();
    let response = gateway.app().oneshot(request).await.unwrap();
    let status = response.status();
    let target = response
        .headers()
        .get("x-warmgate-target")
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, target, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_throttle_fails_over_to_the_next_equivalent_target() {
    let scripted = Arc::new(Scripted::default());
    scripted.script("live", [Answer::Throttled]);
    let gateway = gateway(&scripted).await;
    let (status, target, body) = call(&gateway, "model").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(target.as_deref(), Some("standby"));
    assert_eq!(scripted.invoked(), ["live", "standby"]);
}

#[tokio::test(start_paused = true)]
async fn when_every_target_throttles_the_answer_is_429_after_one_try_each() {
    let scripted = Arc::new(Scripted::default());
    for q in ["live", "standby", "spare"] {
        scripted.script(q, [Answer::Throttled]);
    }
    let gateway = gateway(&scripted).await;
    let (status, _, body) = call(&gateway, "model").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "throttled");
    assert_eq!(
        body["error"]["reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert_eq!(scripted.invoked(), ["live", "standby", "spare"]);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_may_have_run_is_never_sent_again_unless_idempotent() {
    let scripted = Arc::new(Scripted::default());
    scripted.script("live", [Answer::TimedOut, Answer::TimedOut]);
    let gateway = gateway(&scripted).await;
    let (status, _, body) = call(&gateway, "model").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["error"]["code"], "timeout");
    assert_eq!(scripted.invoked(), ["live"], "invariant 4: sent once");
    // Declared idempotent, the same failure may go to the next target.
    let (status, target, _) = call(&gateway, "idempotent-model").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(target.as_deref(), Some("standby"));
    assert_eq!(scripted.invoked(), ["live", "live", "standby"]);
}

#[tokio::test(start_paused = true)]
async fn a_function_error_is_answered_502_with_what_the_function_said() {
    let scripted = Arc::new(Scripted::default());
    scripted.script("live", [Answer::FunctionError]);
    let gateway = gateway(&scripted).await;
    let (status, target, body) = call(&gateway, "model").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "function_error");
    assert_eq!(body["error"]["payload"]["errorType"], "ValueError");
    assert_eq!(target.as_deref(), Some("live"));
    assert_eq!(
        scripted.invoked(),
        ["live"],
        "a function error is not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_answered_500_counted_and_the_gateway_keeps_serving() {
    let metrics = warmgate::telemetry::prometheus();
    let scripted = Arc::new(Scripted::default());
    scripted.script("live", [Answer::Panic]);
    let gateway = gateway(&scripted).await;
    let (status, _, body) = call(&gateway, "model").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "internal");
    let exposition = metrics.render();
    let panics = exposition
        .lines()
        .find(|l| l.starts_with("warmgate_panics_total{task=\"request\"}"))
        .unwrap_or_else(|| panic!("no request panic counted in:\n{exposition}"));
    assert!(panics.ends_with(" 1"), "{panics}");
    // The panic left no environment busy in the estimate, and the next call is served.
    let (status, target, _) = call(&gateway, "model").await;
    assert_eq!((status, target.as_deref()), (StatusCode::OK, Some("live")));
    let views = gateway.function("model").unwrap().pool_views(gateway.now());
    assert!(views.iter().all(|(_, v)| v.in_flight == 0), "{views:?}");
}

#[tokio::test(start_paused = true)]
async fn beyond_the_admission_limit_a_request_is_shed_before_its_body_is_read() {
    let metrics = warmgate::telemetry::prometheus();
    let scripted = Arc::new(Scripted::default());
    scripted.script("live", [Answer::TimedOut]);
    let one_at_a_time = CONFIG.replace("[warmer]", "[gateway]\nmax_in_flight = 1\n\n[warmer]");
    let gateway = gateway_of(&one_at_a_time, &scripted).await;
    let busy = tokio::spawn({
        let gateway = gateway.clone();
        async move { call(&gateway, "model").await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // A body that never ends: shed all the same, since admission comes first.
    let (_tx, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let stream = tokio_stream_body(body);
    let request = Request::post("/v1/functions/model/invoke")
        .body(stream)
        .unwrap();
    let response = gateway.app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(busy.await.unwrap().0, StatusCode::GATEWAY_TIMEOUT);
    // The shed request is one of the requests counted, under its function.
    let exposition = metrics.render();
    // (Every target's series exists from the start, at zero: sum them.)
    let shed: f64 = exposition
        .lines()
        .filter(|l| {
            l.starts_with("warmgate_requests_total{")
                && l.contains("function=\"model\"")
                && l.contains("outcome=\"unavailable\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(shed, 1.0, "no shed request counted in:\n{exposition}");
}

/// A request body fed from a channel: it ends when the sender is dropped.
fn tokio_stream_body(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Body::from_stream(stream)
}

const BREAKER: &str = r#"
[backend]
kind = "endpoint"
url = "http://unused"

[access]
open = true

[warmer]
enabled = false

[[function]]
name = "model"
targets = ["live", "standby"]
timeout_ms = 2000
wait = { enabled = false }
probe = { enabled = false }
breaker = { failures = 3, open_ms = 10000 }
"#;

#[tokio::test(start_paused = true)]
async fn a_failing_target_is_skipped_once_its_breaker_opens_and_tried_again_later() {
    let scripted = Arc::new(Scripted::default());
    scripted.script(
        "live",
        [Answer::Throttled, Answer::Throttled, Answer::Throttled],
    );
    scripted.script(
        "standby",
        [Answer::Ok, Answer::Throttled, Answer::Throttled],
    );
    let gateway = gateway_of(BREAKER, &scripted).await;
    // live fails three times (the third opens its breaker); standby answers in between.
    let statuses = [
        call(&gateway, "model").await.0,
        call(&gateway, "model").await.0,
        call(&gateway, "model").await.0,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(
        scripted.invoked(),
        ["live", "standby", "standby", "live", "standby", "live"]
    );
    // Open: live is not tried at all, not even as a failover.
    assert_eq!(call(&gateway, "model").await.0, StatusCode::OK);
    scripted.script("standby", [Answer::Throttled]);
    assert_eq!(
        call(&gateway, "model").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(&scripted.invoked()[6..], ["standby", "standby"]);
    // Past open_ms, live takes a trial (a failover here) and, answered, serves again.
    tokio::time::advance(Duration::from_secs(11)).await;
    scripted.script("standby", [Answer::Throttled]);
    let (status, target, _) = call(&gateway, "model").await;
    assert_eq!((status, target.as_deref()), (StatusCode::OK, Some("live")));
}

#[tokio::test(start_paused = true)]
async fn with_every_breaker_open_a_request_fails_fast_with_retry_after() {
    let scripted = Arc::new(Scripted::default());
    for q in ["live", "standby"] {
        scripted.script(q, [Answer::Throttled, Answer::Throttled, Answer::Throttled]);
    }
    let gateway = gateway_of(BREAKER, &scripted).await;
    for _ in 0..3 {
        assert_eq!(
            call(&gateway, "model").await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let sent = scripted.invoked().len();
    let request = Request::post("/v1/functions/model/invoke")
        .body(Body::from("{}"))
        .unwrap();
    let response = gateway.app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(scripted.invoked().len(), sent, "nothing was sent to Lambda");
}

#[tokio::test(start_paused = true)]
async fn the_callers_trace_context_is_passed_to_lambda_on_every_attempt() {
    let scripted = Arc::new(Scripted::default());
    scripted.script("live", [Answer::Throttled]);
    let gateway = gateway(&scripted).await;
    let request = Request::post("/v1/functions/model/invoke")
        .header(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        )
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(Body::from("{}"))
        .unwrap();
    let response = gateway.app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let traces = scripted.traces.lock().clone();
    assert_eq!(traces.len(), 2, "the throttled attempt and its failover");
    for trace in traces {
        assert_eq!(
            trace.amzn_trace_id.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        );
        assert_eq!(
            trace.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_gateway_marks_its_synchronous_calls_beside_the_callers_client_context() {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let scripted = Arc::new(Scripted::default());
    let gateway = gateway(&scripted).await;
    let callers = engine.encode(r#"{"custom":{"k":"v"}}"#);
    let send = |path: &str, headers: &[(&str, &str)]| {
        let mut request = Request::post(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        gateway
            .app()
            .oneshot(request.body(Body::from("{}")).unwrap())
    };
    let lambda_api = "/2015-03-31/functions/model/invocations";
    send("/v1/functions/model/invoke", &[]).await.unwrap();
    send(lambda_api, &[("x-amz-client-context", &callers)])
        .await
        .unwrap();
    let event = [
        ("x-amz-client-context", callers.as_str()),
        ("x-amz-invocation-type", "Event"),
    ];
    send(lambda_api, &event).await.unwrap();
    let contexts = scripted.contexts.lock().clone();
    let read = |c: &Option<String>| -> Value {
        serde_json::from_slice(&engine.decode(c.as_ref().unwrap()).unwrap()).unwrap()
    };
    assert_eq!(
        read(&contexts[0]),
        json!({"custom": {"warmgate-gateway": "1"}})
    );
    assert_eq!(
        read(&contexts[1]),
        json!({"custom": {"k": "v", "warmgate-gateway": "1"}})
    );
    // Lambda passes no client context to an asynchronous call: the caller's goes as it came.
    assert_eq!(contexts[2].as_deref(), Some(callers.as_str()));
}

/// The OpenAPI document lists every client route, each route it lists exists, and the
/// gateway's error answers read into its error schema.
#[tokio::test(start_paused = true)]
async fn the_openapi_document_matches_the_routes_and_the_error_shape() {
    let scripted = Arc::new(Scripted::default());
    let gateway = gateway(&scripted).await;
    let request = Request::get("/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let response = gateway.app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for route in [
        "/v1/functions/{name}/invoke",
        "/2015-03-31/functions/{name}/invocations",
        "/v1/functions/{name}/environments/ended",
        "/v1/functions/{name}/environments/calls",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let uri = path.replace("{name}", "model");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .body(Body::from("{}"))
                .unwrap();
            let response = gateway.app().oneshot(request).await.unwrap();
            assert!(
                ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED]
                    .contains(&response.status()),
                "{method} {path} is documented but not served"
            );
        }
    }
    // Error answers have the documented shape.
    let (status, _, body) = call(&gateway, "nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: warmgate::gateway::openapi::ErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!(error.error.code, "unknown_function");
    scripted.script("live", [Answer::FunctionError]);
    scripted.script("standby", [Answer::FunctionError]);
    let (status, _, body) = call(&gateway, "model").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let error: warmgate::gateway::openapi::ErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!(error.error.code, "function_error");
    assert!(error.error.payload.is_some());
}

/// POSTs an environment's end report for `function`, in process.
async fn report_end(gateway: &Arc<Gateway>, function: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::post(format!("/v1/functions/{function}/environments/ended"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = gateway.app().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(start_paused = true)]
async fn an_end_report_is_heard_or_refused_with_what_was_wrong() {
    let scripted = Arc::new(Scripted::default());
    let gateway = gateway(&scripted).await;
    let good = r#"{"age_ms": 9000000, "reason": "spindown"}"#;
    let (status, body) = report_end(&gateway, "model", good).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("heard"))
    );
    let (status, body) = report_end(&gateway, "nope", good).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_function");
    let (status, body) = report_end(&gateway, "model", r#"{"age_ms": 5}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reason"),
        "{body}"
    );
    let odd = r#"{"age_ms": 5, "reason": "tired"}"#;
    let (status, body) = report_end(&gateway, "model", odd).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    let large = format!(r#"{{"age_ms": 5, "reason": "{}"}}"#, "x".repeat(2000));
    let (status, body) = report_end(&gateway, "model", &large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Nothing was invoked for any of them.
    assert!(scripted.invoked().is_empty());
}
