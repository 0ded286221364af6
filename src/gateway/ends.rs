//! Environment ends, as warmgate's Lambda extension reports them: Lambda sends each extension
//! of an environment a SHUTDOWN event when it ends the environment (idle, or at the end of
//! its lifetime), and the extension tells the gateway how old the environment was. The
//! warmer then replaces a kept environment at its end rather than rotating it before
//! (ARCHITECTURE.md, "Environment ends").

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::{ErrorKind, GatewayError};
use super::{openapi, FunctionState, Gateway};
use crate::telemetry;

/// The most a report's body may hold: it is a few dozen bytes.
const MAX_REPORT_BYTES: usize = 1024;

/// One environment's end, as the extension reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentEnded {
    /// How long the environment lived, from the start of its init to its SHUTDOWN event.
    pub age_ms: u64,
    /// The SHUTDOWN event's `shutdownReason`: `spindown`, `timeout` or `failure` (any case).
    pub reason: String,
}

/// The reasons Lambda gives a SHUTDOWN event, as the metric labels them.
const REASONS: [&str; 3] = ["spindown", "timeout", "failure"];

impl EnvironmentEnded {
    /// Reads a report, or says what was wrong with it.
    pub fn parse(body: &[u8]) -> Result<(Duration, &'static str), GatewayError> {
        let report: EnvironmentEnded =
            serde_json::from_slice(body).map_err(GatewayError::invalid_json)?;
        let reason = REASONS
            .into_iter()
            .find(|r| r.eq_ignore_ascii_case(&report.reason))
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "reason {:?} is not one of spindown, timeout or failure",
                        report.reason
                    ),
                )
            })?;
        Ok((Duration::from_millis(report.age_ms), reason))
    }
}

/// An environment of `name` ended: the warmer forgets it and makes up its pool at once.
#[utoipa::path(post, path = "/v1/functions/{name}/environments/ended", tag = "extension",
    params(
        ("name" = String, Path, description = "the function's public name, from the configuration"),
        ("x-api-key" = Option<String>, Header, description = "an API key (or `Authorization: Bearer`)"),
    ),
    request_body(content = EnvironmentEnded, content_type = "application/json"),
    responses(
        (status = 202, description = "heard", body = openapi::Status),
        (status = 400, description = "invalid_json, invalid_request", body = openapi::ErrorBody),
        (status = 401, description = "unauthenticated", body = openapi::ErrorBody),
        (status = 403, description = "forbidden", body = openapi::ErrorBody),
        (status = 404, description = "unknown_function", body = openapi::ErrorBody),
        (status = 413, description = "payload_too_large", body = openapi::ErrorBody),
    ))]
pub(super) async fn environment_ended(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    heard(hear(&gateway, &name, &headers, body).await)
}

/// A report's answer: 202, or the error that says what was wrong.
pub(super) fn heard(result: Result<(), GatewayError>) -> Response {
    match result {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "status": "heard" }))).into_response(),
        Err(error) => error.into_response(),
    }
}

/// A report from inside function `name` (an environment's end, a call): checked as an
/// invocation is, its body read within the gateway's deadline and `max` bytes.
pub(super) async fn read_report<'g>(
    gateway: &'g Gateway,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<(&'g Arc<FunctionState>, Bytes), GatewayError> {
    if let Err(refused) = gateway.access.check(headers, name) {
        telemetry::access_refused(refused.code());
        return Err(refused);
    }
    let function = gateway
        .function(name)
        .ok_or_else(|| GatewayError::unknown_function(name))?;
    let within = gateway.body_read_timeout();
    let body = tokio::time::timeout(within, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| GatewayError::body_timeout(within))?
        .map_err(|_| GatewayError::payload_too_large(max))?;
    Ok((function, body))
}

async fn hear(
    gateway: &Gateway,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), GatewayError> {
    let (function, body) = read_report(gateway, name, headers, body, MAX_REPORT_BYTES).await?;
    let (age, reason) = EnvironmentEnded::parse(&body)?;
    telemetry::environment_ended(name, reason);
    let now = gateway.now();
    let born = now.saturating_sub(age);
    if let Some(warmer) = &gateway.warmer {
        warmer.environment_ended(function.index, born, now);
    }
    // The function's keeper may be another replica.
    gateway.share_environment_end(function.index, born);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_the_age_and_the_reason_or_says_what_is_wrong() {
        let parsed = EnvironmentEnded::parse(br#"{"age_ms": 7260000, "reason": "SPINDOWN"}"#);
        assert_eq!(parsed.unwrap(), (Duration::from_secs(7260), "spindown"));
        let wrong = |body: &[u8]| EnvironmentEnded::parse(body).unwrap_err();
        let reason = wrong(br#"{"age_ms": 1, "reason": "bored"}"#);
        assert_eq!(reason.kind, ErrorKind::InvalidRequest);
        assert!(reason.message.contains("\"bored\""), "{}", reason.message);
        let missing = wrong(br#"{"reason": "spindown"}"#);
        assert_eq!(missing.kind, ErrorKind::InvalidJson);
        assert!(missing.message.contains("age_ms"), "{}", missing.message);
        let negative = wrong(br#"{"age_ms": -5, "reason": "spindown"}"#);
        assert_eq!(negative.kind, ErrorKind::InvalidJson);
        let unknown = wrong(br#"{"age_ms": 1, "reason": "spindown", "extra": 1}"#);
        assert!(unknown.message.contains("extra"), "{}", unknown.message);
    }
}
