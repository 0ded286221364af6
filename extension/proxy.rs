//! The Runtime API proxy: set between the function's runtime and Lambda (the layer's
//! `warmgate-wrapper`, named by `AWS_LAMBDA_EXEC_WRAPPER`, points the runtime's
//! `AWS_LAMBDA_RUNTIME_API` here), it passes every request through unchanged and sees each
//! call start (`/next` answers with an event) and end (the runtime posts its response or
//! error). It reports both to the gateway, so that the warmer counts the calls of clients
//! that call Lambda directly as they run and learns from each (ARCHITECTURE.md, "Calls
//! reported"). The gateway's own calls and pings carry its mark in their client context and
//! are left out: the gateway knows them.
//!
//! A start is reported while the handler runs; the end after Lambda has the response, so
//! the caller waits for neither. The runtime's post of its response is answered once both
//! reports are sent (a millisecond or so, billed): Lambda freezes the environment when the
//! runtime asks for the next event, and a report sent then would wait for the next thaw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::task::JoinHandle;

use crate::{Reporting, NAME};

/// The longest a call report may take; past it the call goes unreported, not the runtime
/// held.
const REPORT_TIMEOUT: Duration = Duration::from_millis(500);

/// The gateway's default ping payload (`[[function]] ping_payload`): pings are not calls.
pub const DEFAULT_PING_PAYLOAD: &str = r#"{"warmgate":"ping"}"#;

/// The client-context keys (in `custom`) of what the gateway sends: its calls and its pings.
const GATEWAY_KEYS: [&str; 2] = ["warmgate-gateway", "warmgate-ping"];

/// A call reported started: its start report, when its event was delivered, and the init it
/// waited for if it was the environment's first.
struct Running {
    report: JoinHandle<()>,
    delivered: Instant,
    init: Option<Duration>,
}

pub struct Proxy {
    /// Lambda's Runtime API, as `http://host:port`, and a client for it.
    upstream: String,
    lambda: reqwest::Client,
    /// For the reports to the gateway.
    http: reqwest::Client,
    reporting: Option<Arc<Reporting>>,
    ping_payload: Vec<u8>,
    /// About when the environment's init began (the extension's own start).
    born: Instant,
    /// Whether `/next` has answered with an event yet: the first met the init.
    delivered_one: AtomicBool,
    /// The calls reported started, by request id: the end waits for its start report.
    started: Mutex<HashMap<String, Running>>,
}

impl Proxy {
    pub fn new(
        runtime_api: &str,
        lambda: &reqwest::Client,
        http: &reqwest::Client,
        reporting: Option<Arc<Reporting>>,
        ping_payload: &str,
        born: Instant,
    ) -> Arc<Self> {
        Arc::new(Proxy {
            upstream: format!("http://{runtime_api}"),
            lambda: lambda.clone(),
            http: http.clone(),
            reporting,
            ping_payload: ping_payload.trim().as_bytes().to_vec(),
            born,
            delivered_one: AtomicBool::new(false),
            started: Mutex::new(HashMap::new()),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(pass).with_state(self.clone())
    }

    /// What `/next` answered: a call starts, unless the gateway sent it or it is a ping.
    fn call_started(&self, headers: &HeaderMap, payload: &[u8]) {
        let delivered = Instant::now();
        let first = !self.delivered_one.swap(true, Ordering::Relaxed);
        let Some(reporting) = &self.reporting else {
            return;
        };
        let Some(id) = request_id(headers) else {
            return;
        };
        if sent_by_gateway(headers) || payload.trim_ascii() == self.ping_payload.as_slice() {
            return;
        }
        let report = tokio::spawn(report(
            self.http.clone(),
            reporting.clone(),
            serde_json::json!({ "event": "started", "request_id": id }),
        ));
        let init = first.then(|| delivered.saturating_duration_since(self.born));
        let running = Running {
            report,
            delivered,
            init,
        };
        self.started.lock().unwrap().insert(id, running);
    }

    /// The runtime posted the call's response or error, and Lambda has it.
    async fn call_finished(&self, id: &str) {
        let Some(reporting) = &self.reporting else {
            return;
        };
        let Some(running) = self.started.lock().unwrap().remove(id) else {
            return;
        };
        let duration = running.delivered.elapsed();
        let _ = running.report.await;
        let mut body = serde_json::json!({
            "event": "finished",
            "request_id": id,
            "duration_ms": duration.as_millis() as u64,
        });
        if let Some(init) = running.init {
            body["init_ms"] = (init.as_millis() as u64).into();
        }
        report(self.http.clone(), reporting.clone(), body).await;
    }
}

/// Whether the event's client context carries the gateway's mark: a call or ping it sent.
fn sent_by_gateway(headers: &HeaderMap) -> bool {
    let Some(context) = headers
        .get("lambda-runtime-client-context")
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v.as_bytes()).ok())
    else {
        return false;
    };
    GATEWAY_KEYS
        .iter()
        .any(|key| context["custom"].get(key).is_some())
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-aws-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The request id of a call's end: `/2018-06-01/runtime/invocation/{id}/response` or
/// `/error`.
fn finished_id<'p>(method: &Method, path: &'p str) -> Option<&'p str> {
    if method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/2018-06-01/runtime/invocation/")?;
    let (id, what) = rest.split_once('/')?;
    matches!(what, "response" | "error").then_some(id)
}

/// Passes one request of the runtime to Lambda and Lambda's answer back, unchanged.
async fn pass(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut request = proxy
        .lambda
        .request(method.clone(), format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("{NAME}: the Runtime API did not answer {path}: {error}");
            return (StatusCode::BAD_GATEWAY, error.to_string()).into_response();
        }
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("{NAME}: the Runtime API's answer to {path} broke off: {error}");
            return (StatusCode::BAD_GATEWAY, error.to_string()).into_response();
        }
    };
    if status.is_success() {
        if uri.path() == "/2018-06-01/runtime/invocation/next" {
            proxy.call_started(&answer_headers, &bytes);
        } else if let Some(id) = finished_id(&method, uri.path()) {
            proxy.call_finished(id).await;
        }
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// Posts one call report; a failure is logged, never retried.
async fn report(http: reqwest::Client, reporting: Arc<Reporting>, body: serde_json::Value) {
    reporting
        .send(&http, "calls", &body, REPORT_TIMEOUT, "a call report")
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_calls_and_pings_are_told_by_their_client_context() {
        let with = |context: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-client-context", context.parse().unwrap());
            sent_by_gateway(&headers)
        };
        assert!(with(r#"{"custom": {"warmgate-gateway": "1"}}"#));
        assert!(with(
            r#"{"client": {}, "custom": {"warmgate-ping": "1", "k": "v"}}"#
        ));
        assert!(!with(r#"{"custom": {"k": "v"}}"#));
        assert!(!with("not json"));
        assert!(!sent_by_gateway(&HeaderMap::new()));
    }

    #[test]
    fn a_calls_end_is_its_response_or_error_posted() {
        let post = Method::POST;
        let path = |what: &str| format!("/2018-06-01/runtime/invocation/r-1/{what}");
        assert_eq!(finished_id(&post, &path("response")), Some("r-1"));
        assert_eq!(finished_id(&post, &path("error")), Some("r-1"));
        assert_eq!(finished_id(&Method::GET, &path("response")), None);
        assert_eq!(
            finished_id(&post, "/2018-06-01/runtime/invocation/next"),
            None
        );
        assert_eq!(finished_id(&post, "/2018-06-01/runtime/init/error"), None);
    }
}
