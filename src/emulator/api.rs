//! Routes of the Lambda REST API, over the platform model.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT};
use super::faults::{Fault, Faults};
use super::{Emulator, FAULTS_PATH, STATE_PATH};
use crate::lambda::report::Report;
use crate::platform::{Function, Invocation, ProvisionedView, Request, Version};

/// Lambda's limit on the decoded client context.
const CLIENT_CONTEXT_LIMIT: usize = 3583;
/// The log tail Lambda returns: the last 4 KB.
const LOG_TAIL_LIMIT: usize = 4096;

pub(super) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .route("/2015-03-31/functions", get(list_functions))
        .route("/2015-03-31/functions/", get(list_functions))
        .route("/2015-03-31/functions/{function}", get(get_function))
        .route(
            "/2015-03-31/functions/{function}/configuration",
            get(get_function_configuration),
        )
        .route(
            "/2015-03-31/functions/{function}/versions",
            get(list_versions),
        )
        .route(
            "/2015-03-31/functions/{function}/aliases",
            get(list_aliases),
        )
        .route(
            "/2015-03-31/functions/{function}/aliases/{alias}",
            get(get_alias),
        )
        .route(
            "/2019-09-30/functions/{function}/provisioned-concurrency",
            get(get_provisioned)
                .put(put_provisioned)
                .delete(delete_provisioned),
        )
        .route(
            "/2019-09-30/functions/{function}/concurrency",
            get(get_function_concurrency),
        )
        .route(STATE_PATH, get(state))
        .route(FAULTS_PATH, get(fault_report))
        .route(
            "/_emulator/faults/{function}",
            axum::routing::put(put_faults).delete(delete_faults),
        )
        .route("/_emulator/health", get(|| async { "ok" }))
        // Payload limits are Lambda's, answered in Lambda's error shape by the handler.
        .layer(DefaultBodyLimit::disable())
        .with_state(emulator)
}

/// Splits what the API accepts as a function name: a name, `name:qualifier`, or a full or
/// partial ARN, into the name and the qualifier it carries.
fn function_and_qualifier(raw: &str) -> (&str, Option<&str>) {
    let rest = match raw.find("function:") {
        Some(i) if raw.starts_with("arn:") || raw.contains(':') => &raw[i + "function:".len()..],
        _ => raw,
    };
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

#[derive(Debug, Deserialize)]
struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
    #[serde(rename = "List")]
    list: Option<String>,
}

fn target<'a>(
    raw: &'a str,
    query: &'a QualifierQuery,
) -> Result<(&'a str, Option<&'a str>), ApiError> {
    let (name, in_name) = function_and_qualifier(raw);
    match (in_name, query.qualifier.as_deref()) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid_parameter(format!(
            "The derived qualifier from the function name does not match the specified qualifier: {a} vs {b}"
        ))),
        (a, b) => Ok((name, a.or(b))),
    }
}

async fn invoke(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (name, qualifier) = target(&raw, &query)?;
    let header = |key: &str| headers.get(key).and_then(|v| v.to_str().ok());
    let invocation_type = header("x-amz-invocation-type").unwrap_or("RequestResponse");
    let limit = match invocation_type {
        "RequestResponse" | "DryRun" => SYNC_PAYLOAD_LIMIT,
        "Event" => ASYNC_PAYLOAD_LIMIT,
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to \
                 satisfy constraint: Member must satisfy enum value set: [Event, \
                 RequestResponse, DryRun]"
            )))
        }
    };
    let payload = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    if !payload.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        let reason = serde_json::from_slice::<serde::de::IgnoredAny>(&payload).unwrap_err();
        return Err(ApiError::invalid_content(format!(
            "Could not parse request body into json: Could not parse payload into json: {reason}"
        )));
    }
    let client_context = header("x-amz-client-context")
        .map(decode_client_context)
        .transpose()?;
    let tail = header("x-amz-log-type") == Some("Tail");

    if invocation_type == "DryRun" {
        emulator
            .platform
            .lock()
            .resolve_version(name, qualifier)
            .map_err(ApiError::from)?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }

    let request = Request {
        function: name,
        qualifier,
        payload: &payload,
        client_context: client_context.as_ref(),
    };
    let (fault, delay) = emulator.faults.lock().draw(name);
    match fault {
        Some(Fault::Throttle(reason)) => return Err(ApiError::throttled(reason.as_str())),
        Some(Fault::ServiceError) => {
            return Err(ApiError::service(
                "injected fault: service error before running",
            ))
        }
        Some(Fault::DropBefore) => return Ok(dropped()),
        _ => {}
    }
    let now = emulator.clock.now();
    let outcome = emulator.platform.lock().invoke(now, &request);
    if let Ok(invocation) = &outcome {
        emulator.report_call(name, invocation, client_context.as_ref());
    }
    // Pings share one payload by design: only clients' invocations are judged.
    if outcome.as_ref().is_ok_and(|invocation| !invocation.ping) {
        emulator.faults.lock().executed(name, &payload);
    }
    if invocation_type == "Event" {
        // Lambda queues an event and retries it; the emulator runs it at once and counts a
        // throttle as the platform saw it, but the caller only ever learns it was queued.
        return match outcome {
            Err(crate::platform::Rejection::NotFound { message }) => {
                Err(ApiError::not_found(message))
            }
            _ => Ok(StatusCode::ACCEPTED.into_response()),
        };
    }
    let mut invocation = outcome?;
    emulator
        .clock
        .sleep(invocation.completes_at - now + delay)
        .await;
    match fault {
        Some(Fault::ServiceErrorAfter) => {
            return Err(ApiError::service(
                "injected fault: service error after running",
            ))
        }
        Some(Fault::DropAfter) => return Ok(dropped()),
        Some(Fault::FunctionError) => {
            invocation.function_error = Some("Unhandled");
            invocation.payload = json!({
                "errorType": "InjectedFault",
                "errorMessage": "injected fault: the function failed",
            })
            .to_string()
            .into_bytes();
        }
        Some(Fault::Timeout) => {
            let timeout_s =
                emulator.with_platform(|p, _| p.function(name).map_or(3.0, |f| f.spec.timeout_s));
            let ran = invocation.completes_at - invocation.started_at;
            let timeout = Duration::from_secs_f64(timeout_s);
            emulator.clock.sleep(timeout.saturating_sub(ran)).await;
            invocation.function_error = Some("Unhandled");
            invocation.payload = json!({
                "errorMessage": format!("Task timed out after {timeout_s:.2} seconds"),
            })
            .to_string()
            .into_bytes();
        }
        _ => {}
    }
    Ok(invocation_response(invocation, tail))
}

/// An answer that never arrives: the body fails before its first byte, so the server closes
/// the connection and the caller cannot tell whether the function ran.
fn dropped() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("injected fault: connection dropped"))
    });
    Response::new(Body::from_stream(failing))
}

async fn fault_report(State(emulator): State<Emulator>) -> Json<super::faults::FaultReport> {
    Json(emulator.fault_report())
}

async fn put_faults(
    State(emulator): State<Emulator>,
    Path(function): Path<String>,
    body: Bytes,
) -> Result<Json<super::faults::FaultReport>, ApiError> {
    let faults: Faults = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_parameter(format!("faults: {e}")))?;
    if emulator.with_platform(|p, _| p.function(&function).is_none()) {
        return Err(ApiError::not_found(format!(
            "Function not found: {function}"
        )));
    }
    emulator
        .set_faults(&function, faults)
        .map_err(|e| ApiError::invalid_parameter(format!("faults.{e}")))?;
    Ok(Json(emulator.fault_report()))
}

async fn delete_faults(
    State(emulator): State<Emulator>,
    Path(function): Path<String>,
) -> Json<super::faults::FaultReport> {
    let _ = emulator.set_faults(&function, Faults::default());
    Json(emulator.fault_report())
}

fn decode_client_context(encoded: &str) -> Result<Value, ApiError> {
    let invalid =
        || ApiError::invalid_content("Client context must be a valid Base64-encoded JSON object.");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid())?;
    if bytes.len() > CLIENT_CONTEXT_LIMIT {
        return Err(ApiError::invalid_parameter(format!(
            "Client context must be smaller than {CLIENT_CONTEXT_LIMIT} bytes"
        )));
    }
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

fn invocation_response(invocation: Invocation, tail: bool) -> Response {
    let mut response = (StatusCode::OK, invocation.payload.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let header_value = |s: &str| HeaderValue::from_str(s).expect("ASCII header value");
    headers.insert(
        "x-amz-executed-version",
        header_value(&invocation.executed_version),
    );
    headers.insert("x-amzn-requestid", header_value(&invocation.request_id));
    if let Some(kind) = invocation.function_error {
        headers.insert("x-amz-function-error", HeaderValue::from_static(kind));
    }
    if tail {
        headers.insert("x-amz-log-result", header_value(&log_tail(&invocation)));
    }
    response
}

/// The base64 of the last 4 KB of the invocation's log, as Lambda writes it.
fn log_tail(invocation: &Invocation) -> String {
    let report = Report {
        request_id: invocation.request_id.clone(),
        duration: round_to_hundredth_ms(invocation.duration),
        billed_duration: invocation.billed,
        memory_size_mb: invocation.memory_mb,
        max_memory_used_mb: invocation.max_memory_used_mb,
        init_duration: invocation.init.map(round_to_hundredth_ms),
        restore_duration: invocation.restore.map(round_to_hundredth_ms),
        billed_restore_duration: invocation.billed_restore(),
    };
    let id = &invocation.request_id;
    let mut log = format!(
        "START RequestId: {id} Version: {}\n",
        invocation.executed_version
    );
    if invocation.function_error.is_some() {
        let body = String::from_utf8_lossy(&invocation.payload);
        log.push_str(&format!("[ERROR] {body}\n"));
    }
    log.push_str(&format!("END RequestId: {id}\n{}\n", report.render()));
    let bytes = log.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(LOG_TAIL_LIMIT)..];
    base64::engine::general_purpose::STANDARD.encode(tail)
}

fn round_to_hundredth_ms(d: Duration) -> Duration {
    let step = 10_000u128; // 0.01 ms in ns
    Duration::from_nanos(((d.as_nanos() + step / 2) / step * step) as u64)
}

// Control plane.

fn last_modified(emulator: &Emulator, since_start: Duration) -> String {
    let at = emulator.started + since_start;
    aws_sdk_lambda::primitives::DateTime::from(at)
        .fmt(aws_sdk_lambda::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

fn configuration(
    emulator: &Emulator,
    function: &Function,
    version: &Version,
    arn_qualifier: Option<&str>,
) -> Value {
    let spec = &function.spec;
    let arn = match arn_qualifier {
        Some(q) => format!("{}:{q}", function.arn),
        None => function.arn.clone(),
    };
    json!({
        "FunctionName": spec.name,
        "FunctionArn": arn,
        "Runtime": spec.runtime,
        "Role": format!("arn:aws:iam::{}:role/warmgate-emulator", account(&function.arn)),
        "Handler": "app.handler",
        "CodeSize": version.code_size,
        "Description": version.description,
        "Timeout": spec.timeout_s.ceil() as u64,
        "MemorySize": spec.memory_mb,
        "LastModified": last_modified(emulator, Duration::ZERO),
        "CodeSha256": version.code_sha256,
        "Version": version.name,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [spec.architecture.as_str()],
        "EphemeralStorage": { "Size": 512 },
        "RevisionId": revision(&version.code_sha256),
        // As AWS reports it: the function's setting, in effect only on published versions.
        "SnapStart": {
            "ApplyOn": if spec.snap_start { "PublishedVersions" } else { "None" },
            "OptimizationStatus": if spec.restores(&version.name) { "On" } else { "Off" },
        },
    })
}

fn account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

fn revision(seed: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
    uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes"))
        .into_uuid()
        .to_string()
}

async fn list_functions(State(emulator): State<Emulator>) -> Json<Value> {
    let platform = emulator.platform.lock();
    let functions: Vec<Value> = platform
        .functions()
        .map(|f| configuration(&emulator, f, &f.versions[0], None))
        .collect();
    Json(json!({ "Functions": functions }))
}

/// The configuration of the version a function name and qualifier resolve to, and the
/// function's reserved concurrency.
fn resolved_configuration(
    emulator: &Emulator,
    raw: &str,
    query: &QualifierQuery,
) -> Result<(Value, Option<u32>), ApiError> {
    let (name, qualifier) = target(raw, query)?;
    let platform = emulator.platform.lock();
    let version = platform.resolve_version(name, qualifier)?;
    let function = platform.function(name).expect("resolved");
    let configuration = configuration(emulator, function, version, qualifier);
    Ok((configuration, function.spec.reserved_concurrency))
}

async fn get_function_configuration(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Json<Value>, ApiError> {
    let (configuration, _) = resolved_configuration(&emulator, &raw, &query)?;
    Ok(Json(configuration))
}

async fn get_function(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Json<Value>, ApiError> {
    let (configuration, reserved) = resolved_configuration(&emulator, &raw, &query)?;
    let mut body = json!({
        "Configuration": configuration,
        "Code": { "RepositoryType": "S3", "Location": "https://warmgate-emulator.invalid/code.zip" },
    });
    if let Some(reserved) = reserved {
        body["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    Ok(Json(body))
}

/// The function a path names (a name, `name:qualifier` or an ARN), or Lambda's 404.
fn function_named<'p>(
    platform: &'p crate::platform::Platform,
    raw: &str,
) -> Result<&'p Function, ApiError> {
    let (name, _) = function_and_qualifier(raw);
    platform
        .function(name)
        .ok_or_else(|| ApiError::not_found(format!("Function not found: {name}")))
}

async fn list_versions(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let platform = emulator.platform.lock();
    let function = function_named(&platform, &raw)?;
    let versions: Vec<Value> = function
        .versions
        .iter()
        .map(|v| configuration(&emulator, function, v, Some(&v.name)))
        .collect();
    Ok(Json(json!({ "Versions": versions })))
}

fn alias_json(function: &Function, alias: &crate::platform::Alias) -> Value {
    let mut body = json!({
        "AliasArn": format!("{}:{}", function.arn, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.version,
        "Description": alias.description,
        "RevisionId": revision(&format!("{}:{}", function.arn, alias.name)),
    });
    if !alias.routing.is_empty() {
        let weights: BTreeMap<&str, f64> = alias
            .routing
            .iter()
            .map(|(v, w)| (v.as_str(), *w))
            .collect();
        body["RoutingConfig"] = json!({ "AdditionalVersionWeights": weights });
    }
    body
}

async fn list_aliases(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let platform = emulator.platform.lock();
    let function = function_named(&platform, &raw)?;
    let aliases: Vec<Value> = function
        .aliases
        .iter()
        .map(|a| alias_json(function, a))
        .collect();
    Ok(Json(json!({ "Aliases": aliases })))
}

async fn get_alias(
    State(emulator): State<Emulator>,
    Path((raw, alias)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let platform = emulator.platform.lock();
    let function = function_named(&platform, &raw)?;
    let found = function
        .aliases
        .iter()
        .find(|a| a.name == alias)
        .ok_or_else(|| ApiError::not_found(format!("Alias not found: {}:{alias}", function.arn)))?;
    Ok(Json(alias_json(function, found)))
}

fn provisioned_json(emulator: &Emulator, view: &ProvisionedView) -> Value {
    let mut body = json!({
        "RequestedProvisionedConcurrentExecutions": view.requested,
        "AllocatedProvisionedConcurrentExecutions": view.allocated,
        "AvailableProvisionedConcurrentExecutions": view.available,
        "Status": view.status.as_str(),
        "LastModified": last_modified(emulator, view.last_modified),
    });
    if let Some(reason) = &view.status_reason {
        body["StatusReason"] = reason.clone().into();
    }
    body
}

fn required_qualifier(qualifier: Option<&str>) -> Result<&str, ApiError> {
    qualifier.ok_or_else(|| {
        ApiError::invalid_parameter(
            "The Qualifier parameter is required for provisioned concurrency",
        )
    })
}

#[derive(Debug, Deserialize)]
struct PutProvisioned {
    #[serde(rename = "ProvisionedConcurrentExecutions")]
    executions: u32,
}

async fn put_provisioned(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (name, qualifier) = target(&raw, &query)?;
    let qualifier = required_qualifier(qualifier)?;
    let put: PutProvisioned = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_parameter(format!("ProvisionedConcurrentExecutions: {e}"))
    })?;
    let view =
        emulator.with_platform(|p, now| p.put_provisioned(now, name, qualifier, put.executions))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(provisioned_json(&emulator, &view)),
    ))
}

async fn get_provisioned(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Json<Value>, ApiError> {
    let (name, qualifier) = target(&raw, &query)?;
    if query.list.as_deref() == Some("ALL") {
        let views = emulator.with_platform(|p, now| p.list_provisioned(now, name))?;
        let arn = emulator
            .platform
            .lock()
            .function(name)
            .map(|f| f.arn.clone())
            .unwrap_or_default();
        let configs: Vec<Value> = views
            .iter()
            .map(|v| {
                let mut body = provisioned_json(&emulator, v);
                body["FunctionArn"] = format!("{arn}:{}", v.qualifier).into();
                body
            })
            .collect();
        return Ok(Json(json!({ "ProvisionedConcurrencyConfigs": configs })));
    }
    let qualifier = required_qualifier(qualifier)?;
    let view = emulator.with_platform(|p, now| p.get_provisioned(now, name, qualifier))?;
    Ok(Json(provisioned_json(&emulator, &view)))
}

async fn delete_provisioned(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<StatusCode, ApiError> {
    let (name, qualifier) = target(&raw, &query)?;
    let qualifier = required_qualifier(qualifier)?;
    emulator.with_platform(|p, now| p.delete_provisioned(now, name, qualifier))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_function_concurrency(
    State(emulator): State<Emulator>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (name, _) = function_and_qualifier(&raw);
    let reserved = emulator.platform.lock().reserved_concurrency(name)?;
    Ok(Json(match reserved {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    }))
}

async fn state(State(emulator): State<Emulator>) -> Json<crate::platform::Snapshot> {
    Json(emulator.snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_in_every_accepted_form() {
        assert_eq!(function_and_qualifier("f"), ("f", None));
        assert_eq!(function_and_qualifier("f:live"), ("f", Some("live")));
        assert_eq!(
            function_and_qualifier("arn:aws:lambda:us-east-1:123456789012:function:f"),
            ("f", None)
        );
        assert_eq!(
            function_and_qualifier("arn:aws:lambda:us-east-1:123456789012:function:f:3"),
            ("f", Some("3"))
        );
        assert_eq!(
            function_and_qualifier("123456789012:function:f"),
            ("f", None)
        );
    }
}
