//! warmgate's Lambda extension (`warmgate-extension`), run as Lambda runs it: a process
//! given `AWS_LAMBDA_RUNTIME_API`. Lambda's Extensions API cannot run here, so a stand-in
//! serves its two calls (register, next event) as Lambda documents them; the reports go to
//! a real gateway in front of the emulator, and to a recorder that keeps what was sent.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{Mutex, Notify};

/// The Extensions API's stand-in, and a recorder of end reports on the same port.
#[derive(Default)]
struct Lambda {
    registered: Mutex<Vec<(HeaderMap, Value)>>,
    shutdown: Notify,
    reports: Mutex<Vec<(String, HeaderMap, Value)>>,
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
        .with_state(lambda.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (lambda, addr)
}

/// Runs the extension against `runtime_api`, reporting to `gateway`; Lambda's SHUTDOWN comes
/// after `lives`. Returns the process's exit status.
async fn run_extension(
    lambda: &Lambda,
    runtime_api: &str,
    gateway: Option<&str>,
    lives: Duration,
) -> std::process::ExitStatus {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warmgate-extension"));
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "sentiment-prod")
        .env("WARMGATE_FUNCTION", "sentiment")
        .env("WARMGATE_API_KEY", "wg_key")
        .env_remove("WARMGATE_URL");
    if let Some(gateway) = gateway {
        command.env("WARMGATE_URL", gateway);
    }
    let mut child = command.spawn().expect("the extension starts");
    tokio::time::sleep(lives).await;
    lambda.shutdown.notify_one();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the extension exits at shutdown")
        .unwrap()
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
async fn the_gateway_hears_the_extensions_report() {
    let (lambda, addr) = serve_lambda().await;
    let stack = common::start().await;
    let gateway = stack.url("");
    let status = run_extension(&lambda, &addr, Some(&gateway), Duration::from_millis(200)).await;
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
    let heard = "warmgate_environment_ends_total{function=\"sentiment\",reason=\"spindown\"} 1";
    assert!(
        metrics.lines().any(|l| l == heard),
        "{heard} not among the metrics"
    );
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
