//! warmgate's Lambda extension (`warmgate-extension`), run as Lambda runs it: a process
//! given `AWS_LAMBDA_RUNTIME_API`. Lambda's Extensions and Runtime APIs cannot run here, so a
//! stand-in serves their calls (register, next event; a runtime's next call and its
//! response) as Lambda documents them; the test plays the runtime where the extension's
//! proxy is in its way. The reports go to a real gateway in front of the emulator, and to a
//! recorder that keeps what was sent.

mod common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{Mutex, Notify};

/// The Extensions and Runtime APIs' stand-in, and a recorder of reports on the same port.
#[derive(Default)]
struct Lambda {
    registered: Mutex<Vec<(HeaderMap, Value)>>,
    shutdown: Notify,
    reports: Mutex<Vec<(String, HeaderMap, Value)>>,
    /// The calls the runtime's next `/next` answers, in order: request id, payload, client
    /// context.
    events: Mutex<VecDeque<(&'static str, &'static str, &'static str)>>,
    /// What the runtime posted: request id, response.
    responses: Mutex<Vec<(String, String)>>,
    /// Call reports: function, body.
    calls: Mutex<Vec<(String, Value)>>,
}

async fn next_call(State(lambda): State<Arc<Lambda>>) -> impl IntoResponse {
    let Some((id, payload, context)) = lambda.events.lock().await.pop_front() else {
        // No call comes: Lambda would freeze the environment here.
        std::future::pending::<()>().await;
        unreachable!()
    };
    (
        [
            ("Lambda-Runtime-Aws-Request-Id", id),
            ("Lambda-Runtime-Deadline-Ms", "4102444800000"),
            ("Lambda-Runtime-Client-Context", context),
        ],
        payload,
    )
}

async fn call_response(
    State(lambda): State<Arc<Lambda>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    lambda.responses.lock().await.push((id, body));
    StatusCode::ACCEPTED
}

async fn record_call(
    State(lambda): State<Arc<Lambda>>,
    Path(function): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    lambda.calls.lock().await.push((function, body));
    StatusCode::ACCEPTED
}

async fn register(
    State(lambda): State<Arc<Lambda>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    lambda.registered.lock().await.push((headers, body));
    ([("Lambda-Extension-Identifier", "ext-1")], Json(json!({})))
}

async fn next(State(lambda): State<Arc<Lambda>>, headers: HeaderMap) -> impl IntoResponse {
    if headers
        .get("Lambda-Extension-Identifier")
        .map(|v| v.as_bytes())
        != Some(b"ext-1")
    {
        return (StatusCode::FORBIDDEN, Json(json!({}))).into_response();
    }
    lambda.shutdown.notified().await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Json(json!({
        "eventType": "SHUTDOWN",
        "shutdownReason": "SPINDOWN",
        "deadlineMs": now_ms + 2000,
    }))
    .into_response()
}

async fn record(
    State(lambda): State<Arc<Lambda>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    lambda.reports.lock().await.push((function, headers, body));
    StatusCode::ACCEPTED
}

async fn serve_lambda() -> (Arc<Lambda>, String) {
    let lambda = Arc::new(Lambda::default());
    let app = Router::new()
        .route("/2020-01-01/extension/register", post(register))
        .route("/2020-01-01/extension/event/next", get(next))
        .route("/v1/functions/{name}/environments/ended", post(record))
        .route("/2018-06-01/runtime/invocation/next", get(next_call))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(call_response),
        )
        .route("/v1/functions/{name}/environments/calls", post(record_call))
        .with_state(lambda.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (lambda, addr)
}

/// Starts the extension against `runtime_api`, reporting to `gateway`, its proxy on
/// `proxy_port` (0: any).
fn spawn_extension(
    runtime_api: &str,
    gateway: Option<&str>,
    proxy_port: u16,
) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warmgate-extension"));
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "sentiment-prod")
        .env("WARMGATE_FUNCTION", "sentiment")
        .env("WARMGATE_API_KEY", "wg_key")
        .env("WARMGATE_PROXY_PORT", proxy_port.to_string())
        .env_remove("WARMGATE_URL")
        .env_remove("WARMGATE_PING_PAYLOAD");
    if let Some(gateway) = gateway {
        command.env("WARMGATE_URL", gateway);
    }
    command.spawn().expect("the extension starts")
}

/// Lambda's SHUTDOWN; the process's exit status.
async fn shut_down(lambda: &Lambda, mut child: tokio::process::Child) -> std::process::ExitStatus {
    lambda.shutdown.notify_one();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the extension exits at shutdown")
        .unwrap()
}

/// Runs the extension against `runtime_api`, reporting to `gateway`; Lambda's SHUTDOWN comes
/// after `lives`. Returns the process's exit status.
async fn run_extension(
    lambda: &Lambda,
    runtime_api: &str,
    gateway: Option<&str>,
    lives: Duration,
) -> std::process::ExitStatus {
    let child = spawn_extension(runtime_api, gateway, 0);
    tokio::time::sleep(lives).await;
    shut_down(lambda, child).await
}

/// A port free a moment ago, for the proxy.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The runtime's view: the proxy's Runtime API once it listens.
async fn runtime_api_through(port: u16) -> String {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the extension's proxy never listened on {port}");
}

/// Plays the runtime through the proxy at `runtime`: takes the next call, checks its id and
/// payload, and posts `answer` as its response.
async fn serve_one_call(runtime: &str, id: &str, payload: &str, answer: &str) {
    let http = reqwest::Client::new();
    let next = http.get(format!("{runtime}/next")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.headers()["lambda-runtime-aws-request-id"], id);
    assert_eq!(
        next.headers()["lambda-runtime-deadline-ms"],
        "4102444800000"
    );
    assert_eq!(next.text().await.unwrap(), payload);
    let posted = http
        .post(format!("{runtime}/{id}/response"))
        .body(answer.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
}

#[tokio::test]
async fn the_extension_registers_for_shutdown_and_reports_its_environments_age() {
    let (lambda, addr) = serve_lambda().await;
    let status = run_extension(
        &lambda,
        &addr,
        Some(&format!("http://{addr}/")),
        Duration::from_millis(600),
    )
    .await;
    assert!(status.success(), "{status}");
    let registered = lambda.registered.lock().await;
    let (headers, body) = &registered[0];
    assert_eq!(headers["Lambda-Extension-Name"], "warmgate-extension");
    assert_eq!(body, &json!({ "events": ["SHUTDOWN"] }));
    let reports = lambda.reports.lock().await;
    let [(function, headers, body)] = &reports[..] else {
        panic!("one report: {reports:?}");
    };
    assert_eq!(function, "sentiment");
    assert_eq!(headers["x-api-key"], "wg_key");
    assert_eq!(body["reason"], "spindown");
    let age = body["age_ms"].as_u64().unwrap();
    // From its own start, a little after the test's spawn: about the 600 ms.
    assert!(
        (300..5_000).contains(&age),
        "lived about 600 ms, reported {age}"
    );
}

#[tokio::test]
async fn the_gateway_hears_the_extensions_reports() {
    let (lambda, addr) = serve_lambda().await;
    lambda.events.lock().await.push_back(("r-1", "{}", "{}"));
    let stack = common::start().await;
    let gateway = stack.url("");
    let port = free_port();
    let child = spawn_extension(&addr, Some(&gateway), port);
    serve_one_call(&runtime_api_through(port).await, "r-1", "{}", "ok").await;
    let status = shut_down(&lambda, child).await;
    assert!(status.success(), "{status}");
    let metrics = stack
        .http
        .get(format!("http://{}/metrics", stack.gateway.metrics_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for heard in [
        "warmgate_environment_ends_total{function=\"sentiment\",reason=\"spindown\"} 1",
        "warmgate_calls_reported_total{function=\"sentiment\",event=\"started\"} 1",
        "warmgate_calls_reported_total{function=\"sentiment\",event=\"finished\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == heard),
            "{heard} not among the metrics"
        );
    }
}

#[tokio::test]
async fn the_proxy_passes_the_runtimes_calls_through_and_reports_each_calls_start_and_end() {
    let (lambda, addr) = serve_lambda().await;
    let ping = r#"{"warmgate":"ping"}"#;
    let hi = r#"{"text": "hi"}"#;
    let gateways = r#"{"custom": {"warmgate-gateway": "1"}}"#;
    lambda.events.lock().await.extend([
        ("r-0", hi, r#"{"custom": {"k": "v"}}"#),
        ("p-1", ping, r#"{"custom": {"warmgate-ping": "1"}}"#),
        ("g-1", hi, gateways),
        ("r-1", hi, "{}"),
    ]);
    let port = free_port();
    let child = spawn_extension(&addr, Some(&format!("http://{addr}")), port);
    let runtime = runtime_api_through(port).await;
    serve_one_call(&runtime, "r-0", hi, "first").await;
    serve_one_call(&runtime, "p-1", ping, "pong").await;
    serve_one_call(&runtime, "g-1", hi, "for the gateway").await;
    serve_one_call(&runtime, "r-1", hi, "answer").await;
    // Lambda had each response; by the time the runtime's post was answered, the call's
    // start and end were reported, and the ping's and the gateway's call's were not.
    let responses: Vec<_> = lambda.responses.lock().await.clone();
    let ids: Vec<_> = responses.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["r-0", "p-1", "g-1", "r-1"]);
    assert_eq!(responses[3].1, "answer");
    let calls = lambda.calls.lock().await.clone();
    let said: Vec<_> = calls
        .iter()
        .map(|(function, body)| {
            (
                function.as_str(),
                body["event"].as_str().unwrap(),
                body["request_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            ("sentiment", "started", "r-0"),
            ("sentiment", "finished", "r-0"),
            ("sentiment", "started", "r-1"),
            ("sentiment", "finished", "r-1"),
        ]
    );
    // The environment's first call waited for its init (from the extension's start to the
    // first event: here the moments the test took to begin playing the runtime); the later
    // one did not. Each says how long its handler took.
    assert!(calls[1].1["init_ms"].as_u64().is_some(), "{:?}", calls[1]);
    assert!(calls[3].1.get("init_ms").is_none(), "{:?}", calls[3]);
    for finished in [&calls[1].1, &calls[3].1] {
        assert!(finished["duration_ms"].as_u64().unwrap() < 5_000);
    }
    assert!(shut_down(&lambda, child).await.success());
}

#[tokio::test]
async fn without_a_gateway_url_the_proxy_still_passes_the_runtimes_calls_through() {
    let (lambda, addr) = serve_lambda().await;
    lambda.events.lock().await.push_back(("r-1", "{}", "{}"));
    let port = free_port();
    let child = spawn_extension(&addr, None, port);
    serve_one_call(&runtime_api_through(port).await, "r-1", "{}", "ok").await;
    assert_eq!(
        *lambda.responses.lock().await,
        [("r-1".into(), "ok".into())]
    );
    assert!(lambda.calls.lock().await.is_empty());
    assert!(shut_down(&lambda, child).await.success());
}

#[tokio::test]
async fn without_a_gateway_url_the_extension_still_registers_and_exits_cleanly() {
    // An extension that exits during init would fail the function's: it must not.
    let (lambda, addr) = serve_lambda().await;
    let status = run_extension(&lambda, &addr, None, Duration::from_millis(200)).await;
    assert!(status.success(), "{status}");
    assert_eq!(lambda.registered.lock().await.len(), 1);
    assert!(lambda.reports.lock().await.is_empty());
}
