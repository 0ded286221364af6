//! The gateway's HTTP routes: two ingress paths to one dispatch, health, and the fallbacks
//! that keep every answer a clear JSON error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use super::error::{ErrorKind, GatewayError};
use super::layers::{invoke_route, panic_answer, Shape};
use super::openapi;
use super::{Dispatch, FunctionState, Gateway, Served};
use crate::cache::Directives;
use crate::lambda::{InvocationType, TraceContext};
use crate::telemetry::{Outcome, RequestCompleted, UNKNOWN_FUNCTION};

pub(super) fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/v1/functions/{name}/invoke",
            invoke_route(post(invoke_v1), &gateway, Shape::V1),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            invoke_route(post(invoke_lambda_api), &gateway, Shape::LambdaApi),
        )
        .route(
            "/v1/functions/{name}/environments/ended",
            post(super::ends::environment_ended),
        )
        .route(
            "/v1/functions/{name}/environments/calls",
            post(super::calls::call_reported),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .fallback(|| async {
            GatewayError::new(ErrorKind::NoRoute, "no such route; see README for the API")
        })
        .method_not_allowed_fallback(|| async {
            GatewayError::new(
                ErrorKind::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        // Payload limits are per function, enforced while reading the body.
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(gateway)
}

/// The span of one request: method, path, and the caller's trace ids, so that every log line
/// of the request carries them. Never the payload (its size is in the request's log line).
fn request_span(request: &http::Request<Body>) -> tracing::Span {
    let trace = TraceContext::from_headers(request.headers());
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        amzn_trace_id = trace.amzn_trace_id.as_deref(),
        traceparent = trace.traceparent.as_deref(),
    )
}

/// Alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = openapi::Status)))]
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The admin listener's routes, away from client traffic (and its access control): the live
/// estimates, and health for the operator. `/metrics` joins them.
pub(super) fn admin_router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/pools", get(pools))
        .route("/v1/cache", get(cache_status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(gateway)
}

/// Ready to serve: every function's targets resolved and checked; 503 while not, and from
/// the moment a shutdown begins.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "ready", body = openapi::Status),
        (status = 503, description = "not ready, with the problems", body = openapi::Status),
    ))]
pub(super) async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.readiness() {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(problems) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "problems": problems })),
        )
            .into_response(),
    }
}

/// The live warm-pool estimates per function and target.
async fn pools(State(gateway): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let now = gateway.now();
    let functions: Vec<_> = gateway
        .functions()
        .map(|f| {
            let set = f.targets();
            let targets: Vec<_> = f
                .pool_views(now)
                .into_iter()
                .map(|(qualifier, view)| {
                    let resolved = set.routable.iter().find(|t| t.qualifier == qualifier);
                    let reclaim_s = |p| f.reclaim_quantile(&qualifier, p).map(|d| d.as_secs_f64());
                    json!({
                        "target": qualifier,
                        "routable": resolved.is_some(),
                        "version": resolved.map(|t| t.version.clone()),
                        "estimate": view,
                        "idle_reclaim_s": { "p10": reclaim_s(0.1), "p50": reclaim_s(0.5), "p90": reclaim_s(0.9) },
                    })
                })
                .collect();
            let mut view =
                json!({ "function": f.config.name, "targets": targets, "problems": set.problems });
            if let Some(rises) = gateway.daily_rises(f.index) {
                view["daily_rises"] = rises;
            }
            view
        })
        .collect();
    Json(json!({ "functions": functions }))
}

/// The cache: the shared tier's state, each caching or coalescing function's local use, and
/// the invocations in flight that identical requests share.
async fn cache_status(State(gateway): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let functions: Vec<_> = gateway
        .functions()
        .filter_map(|f| {
            let cache = f.cache.as_ref()?;
            let usage = cache.local_usage();
            Some(json!({
                "function": f.config.name,
                "cached": cache.config().is_some(),
                "ttl_s": cache.config().map(|c| c.ttl_s),
                "coalesce": cache.coalesces(),
                "local_entries": usage.map(|u| u.0),
                "local_bytes": usage.map(|u| u.1),
            }))
        })
        .collect();
    Json(json!({
        "redis": gateway.redis.as_ref().map(|r| json!({ "up": r.is_up() })),
        "flights": gateway.flights.len(),
        "functions": functions,
    }))
}

/// Reads a body within the function's limit and checks it is JSON (an empty body is `{}`'s
/// stand-in, as Lambda accepts it).
async fn read_payload(
    function: &FunctionState,
    body: Body,
    within: Duration,
) -> Result<Bytes, GatewayError> {
    let limit = function.config.max_payload_bytes;
    let payload = tokio::time::timeout(within, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| GatewayError::body_timeout(within))?
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                GatewayError::payload_too_large(limit)
            } else {
                GatewayError::unreadable_body(error)
            }
        })?;
    if !payload.is_empty() {
        serde_json::from_slice::<serde::de::IgnoredAny>(&payload)
            .map_err(GatewayError::invalid_json)?;
    }
    Ok(payload)
}

/// Records the request's end, whatever it was.
fn record(
    function: &str,
    target: &str,
    outcome: Outcome,
    started: Instant,
    served: Option<&Served>,
) {
    // What this request's own invocation taught; nothing for a stored or shared answer.
    let own = served.and_then(|s| s.invocation.map(|i| (s, i)));
    let report = own.and_then(|(s, _)| s.response.report.as_ref());
    RequestCompleted {
        function,
        target,
        outcome,
        elapsed: started.elapsed(),
        lambda: report.map(|r| r.duration),
        cold_start: own.and_then(|(s, _)| s.response.cold_start()).map(|cold| {
            if cold {
                report
                    .and_then(|r| r.init_duration)
                    .or(Some(Duration::ZERO))
            } else {
                None
            }
        }),
        restore: report.and_then(|r| r.restore_duration),
        added: own.map(|(_, i)| {
            started
                .elapsed()
                .saturating_sub(i.upstream + i.waited.unwrap_or_default())
        }),
        shared: served.is_some() && own.is_none(),
    }
    .emit();
}

fn failed(function: &str, target: Option<&str>, error: &GatewayError, started: Instant) {
    record(
        function,
        target.unwrap_or(""),
        error.outcome(),
        started,
        None,
    );
}

/// `x-warmgate-*` and `Server-Timing` headers of an answered request.
fn facts_headers(headers: &mut HeaderMap, served: &Served, started: Instant) {
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"));
    headers.insert(
        HeaderName::from_static("x-warmgate-target"),
        value(&served.target),
    );
    if let Some(cache) = served.cache {
        headers.insert(
            HeaderName::from_static("x-warmgate-cache"),
            HeaderValue::from_static(cache.as_str()),
        );
    }
    let invocation = served.invocation;
    if let Some(invocation) = invocation {
        headers.insert(
            HeaderName::from_static("x-warmgate-route"),
            HeaderValue::from_static(invocation.route.as_str()),
        );
        if let Some(waited) = invocation.waited {
            headers.insert(
                HeaderName::from_static("x-warmgate-waited-ms"),
                value(&format!("{:.1}", waited.as_secs_f64() * 1000.0)),
            );
        }
    }
    // A stored answer met no environment; a shared one met its invocation's.
    let cold = match served.tier.map(|_| false).or(served.response.cold_start()) {
        Some(true) => "true",
        Some(false) => "false",
        None => "unknown",
    };
    headers.insert(
        HeaderName::from_static("x-warmgate-cold-start"),
        HeaderValue::from_static(cold),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total = started.elapsed();
    let upstream = invocation.map_or(Duration::ZERO, |i| i.upstream);
    let mut timing = format!(
        "gateway;dur={:.2};desc=\"time in warmgate\"",
        ms(total.saturating_sub(upstream))
    );
    if let Some(lookup) = served.lookup {
        let found = match served.tier {
            Some(tier) => tier.as_str(),
            None => "none",
        };
        timing.push_str(&format!(
            ", cache;dur={:.3};desc=\"lookup: {found}\"",
            ms(lookup)
        ));
    }
    if invocation.is_some() {
        timing.push_str(&format!(
            ", upstream;dur={:.2};desc=\"Lambda round trip\"",
            ms(upstream)
        ));
    }
    if let Some(report) = &served.response.report {
        timing.push_str(&format!(", lambda;dur={:.2}", ms(report.duration)));
        if let Some(init) = report.init_duration {
            timing.push_str(&format!(", init;dur={:.2}", ms(init)));
        }
    }
    headers.insert(HeaderName::from_static("server-timing"), value(&timing));
}

/// What an ingress path says of a request beyond its function and body.
struct Ingress {
    client_context: Option<String>,
    invocation_type: InvocationType,
    pinned: Option<String>,
    trace: TraceContext,
    directives: Directives,
}

/// The part both ingress paths share: find the configured function, read and check the
/// body, dispatch. A failure is recorded here and returned for the caller to answer in its
/// ingress's shape.
async fn invoke(
    gateway: &Arc<Gateway>,
    name: &str,
    body: Body,
    ingress: Result<Ingress, GatewayError>,
    started: Instant,
) -> Result<(Arc<FunctionState>, Served), GatewayError> {
    let Some(function) = gateway.function(name).cloned() else {
        let error = GatewayError::unknown_function(name);
        failed(UNKNOWN_FUNCTION, None, &error, started);
        return Err(error);
    };
    let fname = function.config.name.as_str();
    let prepared = match ingress {
        Ok(ingress) => read_payload(&function, body, gateway.body_read_timeout())
            .await
            .map(|payload| (ingress, payload)),
        Err(error) => Err(error),
    };
    let (ingress, payload) = prepared.inspect_err(|error| failed(fname, None, error, started))?;
    // Payloads are never logged: their size, and at debug level a digest to match repeats.
    if tracing::enabled!(tracing::Level::DEBUG) {
        use sha2::Digest as _;
        let digest = crate::gateway::access::hex(&sha2::Sha256::digest(&payload)[..8]);
        tracing::debug!(function = fname, payload_bytes = payload.len(), payload_sha256_64 = %digest, "request read");
    }
    let request = Dispatch {
        payload,
        client_context: ingress.client_context,
        invocation_type: ingress.invocation_type,
        pinned: ingress.pinned,
        trace: ingress.trace,
    };
    match gateway.serve(&function, request, ingress.directives).await {
        Ok(served) => Ok((function, served)),
        Err((error, target)) => {
            failed(fname, target.as_deref(), &error, started);
            Err(error)
        }
    }
}

/// Invokes a configured function with a JSON payload and answers with the function's JSON.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "invoke",
    params(
        ("name" = String, Path, description = "the function's public name, from the configuration"),
        ("x-api-key" = Option<String>, Header, description = "an API key (or `Authorization: Bearer`)"),
        ("x-amzn-trace-id" = Option<String>, Header, description = "passed to Lambda"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context, passed along"),
        ("cache-control" = Option<String>, Header, description = "no-cache: a fresh answer (then stored); no-store: the cache is neither read nor written"),
    ),
    request_body(content = Object, content_type = "application/json", description = "the function's input"),
    responses(
        (status = 200, description = "the function's answer", body = Object, headers(
            ("x-warmgate-target" = String, description = "the alias or version that served"),
            ("x-warmgate-cold-start" = String, description = "true, false or unknown"),
            ("x-warmgate-route" = Option<String>, description = "provisioned, warm, cold, pinned or failover; absent when the answer was stored or shared"),
            ("x-warmgate-cache" = Option<String>, description = "hit, miss, coalesced or bypass, for a function that caches or coalesces"),
            ("x-warmgate-waited-ms" = Option<String>, description = "time held for a busy environment"),
            ("server-timing" = String, description = "gateway, upstream, lambda, init"),
        )),
        (status = 400, description = "invalid_json, invalid_request", body = openapi::ErrorBody),
        (status = 401, description = "unauthenticated", body = openapi::ErrorBody),
        (status = 403, description = "forbidden", body = openapi::ErrorBody),
        (status = 404, description = "unknown_function", body = openapi::ErrorBody),
        (status = 408, description = "body_timeout", body = openapi::ErrorBody),
        (status = 413, description = "payload_too_large", body = openapi::ErrorBody),
        (status = 429, description = "throttled (by Lambda, with its reason) or rate_limited (the caller's own rate); with Retry-After", body = openapi::ErrorBody),
        (status = 500, description = "internal", body = openapi::ErrorBody),
        (status = 502, description = "function_error (with the function's error payload) or upstream_error", body = openapi::ErrorBody),
        (status = 503, description = "not_ready or overloaded; with Retry-After", body = openapi::ErrorBody),
        (status = 504, description = "timeout", body = openapi::ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = [])))]
pub(super) async fn invoke_v1(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let ingress = Ok(Ingress {
        client_context: None,
        invocation_type: InvocationType::RequestResponse,
        pinned: None,
        trace: TraceContext::from_headers(&headers),
        directives: directives(&headers),
    });
    match invoke(&gateway, &name, body, ingress, started).await {
        Err(error) => error.into_response(),
        Ok((function, served)) => {
            let fname = function.config.name.as_str();
            let response = &served.response;
            let (status, body, outcome) = match &response.function_error {
                None => (StatusCode::OK, response.payload.clone(), Outcome::Ok),
                Some(kind) => {
                    // The function ran and failed: its error is the upstream's, so 502,
                    // with what it said.
                    let detail: serde_json::Value = serde_json::from_slice(&response.payload)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&response.payload).into());
                    let message = detail["errorMessage"]
                        .as_str()
                        .unwrap_or("the function failed")
                        .to_string();
                    let body = json!({ "error": {
                        "code": "function_error",
                        "message": format!("function {fname:?} failed: {message}"),
                        "function_error": kind,
                        "payload": detail,
                    }});
                    (
                        StatusCode::BAD_GATEWAY,
                        Bytes::from(body.to_string()),
                        Outcome::FunctionError,
                    )
                }
            };
            let mut http = (status, body).into_response();
            http.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            facts_headers(http.headers_mut(), &served, started);
            record(
                fname,
                target_label(&function, &served),
                outcome,
                started,
                Some(&served),
            );
            http
        }
    }
}

/// The target a request's metrics are labelled with: the one that served, if configured here.
/// A stored answer may come from another replica's target (through Redis), which is data, not
/// configuration (ARCHITECTURE.md invariant 6).
fn target_label<'a>(function: &FunctionState, served: &'a Served) -> &'a str {
    match function.target_id(&served.target) {
        Some(_) => &served.target,
        None => "",
    }
}

/// The request's `Cache-Control`.
fn directives(headers: &HeaderMap) -> Directives {
    Directives::parse(
        headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct LambdaQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// The Lambda Invoke API: an application that uses an AWS SDK points its endpoint here and
/// changes nothing else. The name must be a configured public name, never an ARN
/// (ARCHITECTURE.md invariant 5); a `Qualifier` pins one of the function's targets.
/// Lambda's own Invoke API: an AWS SDK pointed at warmgate works unchanged. Errors are in
/// Lambda's shape (`X-Amzn-ErrorType`, `{"Type", "message"}`).
#[utoipa::path(post, path = "/2015-03-31/functions/{name}/invocations", tag = "invoke",
    params(
        ("name" = String, Path, description = "the function's public name (never an ARN)"),
        ("Qualifier" = Option<String>, Query, description = "one of the function's configured targets"),
        ("x-amz-invocation-type" = Option<String>, Header, description = "RequestResponse (default), Event or DryRun"),
        ("x-amz-client-context" = Option<String>, Header, description = "base64 JSON, passed to the function"),
        ("x-amz-log-type" = Option<String>, Header, description = "Tail: the answer carries the log tail"),
    ),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "the function's answer (a function error too, with X-Amz-Function-Error)", body = Object),
        (status = 202, description = "an Event was accepted"),
        (status = 204, description = "a DryRun succeeded"),
        (status = 400, description = "InvalidParameterValueException, InvalidRequestContentException"),
        (status = 401, description = "UnrecognizedClientException"),
        (status = 403, description = "AccessDeniedException"),
        (status = 404, description = "ResourceNotFoundException"),
        (status = 413, description = "RequestTooLargeException"),
        (status = 429, description = "TooManyRequestsException"),
        (status = 500, description = "ServiceException"),
        (status = 502, description = "ServiceException"),
        (status = 503, description = "ServiceException"),
        (status = 504, description = "ServiceException"),
    ),
    security((), ("api_key" = []), ("bearer" = [])))]
pub(super) async fn invoke_lambda_api(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Query(query): Query<LambdaQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let header = |key: &str| headers.get(key).and_then(|v| v.to_str().ok());
    let wants_tail = header("x-amz-log-type") == Some("Tail");
    let ingress = match header("x-amz-invocation-type").unwrap_or("RequestResponse") {
        "RequestResponse" => Ok(InvocationType::RequestResponse),
        "Event" => Ok(InvocationType::Event),
        "DryRun" => Ok(InvocationType::DryRun),
        other => Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!("X-Amz-Invocation-Type {other:?} is not RequestResponse, Event or DryRun"),
        )),
    }
    .map(|invocation_type| Ingress {
        client_context: header("x-amz-client-context").map(str::to_string),
        invocation_type,
        pinned: query.qualifier,
        trace: TraceContext::from_headers(&headers),
        directives: directives(&headers),
    });
    match invoke(&gateway, &name, body, ingress, started).await {
        Err(error) => error.into_lambda_response(),
        Ok((function, served)) => {
            let fname = function.config.name.as_str();
            let response = &served.response;
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
            let mut http = (status, response.payload.clone()).into_response();
            let out = http.headers_mut();
            if status == StatusCode::OK {
                out.insert("content-type", HeaderValue::from_static("application/json"));
            }
            if let Some(v) = response
                .executed_version
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                out.insert("x-amz-executed-version", v);
            }
            if let Some(v) = response
                .function_error
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                out.insert("x-amz-function-error", v);
            }
            if let (true, Some(tail)) = (wants_tail, &response.log_tail) {
                let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
                if let Ok(v) = HeaderValue::from_str(&encoded) {
                    out.insert("x-amz-log-result", v);
                }
            }
            facts_headers(out, &served, started);
            let outcome = if response.function_error.is_some() {
                Outcome::FunctionError
            } else {
                Outcome::Ok
            };
            record(
                fname,
                target_label(&function, &served),
                outcome,
                started,
                Some(&served),
            );
            http
        }
    }
}
