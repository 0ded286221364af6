//! Calls reported from inside the function: where clients call Lambda directly, no gateway
//! sees their calls. A reporter in the function (warmgate-extension's Runtime API proxy sees
//! each call's start and end) tells the gateway instead, and the warmer counts them in
//! flight and learns from each as from its own (ARCHITECTURE.md, "Calls reported").
//!
//! The gateway marks the invocations it sends ([`sent_by_gateway`]) and the reporter leaves
//! them out: the gateway counts and observes those itself, so none is counted twice.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ErrorKind, GatewayError};
use super::{openapi, Gateway};
use crate::clock::Time;
use crate::policy::{Observation, Start};
use crate::telemetry;

/// The most a report's body may hold: a request id and a word.
const MAX_REPORT_BYTES: usize = 1024;

/// The most calls of one function reported running at once: past it a start is refused
/// (503), so that a reporter whose ends are lost cannot grow the gateway's memory.
pub const MAX_REPORTED_CALLS: usize = 100_000;

/// The client-context key (in `custom`) that marks an invocation the gateway sent: a
/// reporter leaves those out, since the gateway counts and observes its own calls.
pub const SENT_BY_GATEWAY_KEY: &str = "warmgate-gateway";

/// The client context of a call that came without one, base64 as Lambda takes it.
static SENT_BY_GATEWAY: LazyLock<String> = LazyLock::new(|| {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "custom": { SENT_BY_GATEWAY_KEY: "1" } }).to_string())
});

/// The client context the gateway sends with an invocation: the caller's (or a ping's),
/// with [`SENT_BY_GATEWAY_KEY`] added to its `custom`. One that is not base64 JSON is left
/// as it came, for Lambda to refuse as it would without the gateway.
pub fn sent_by_gateway(client_context: Option<String>) -> String {
    let Some(given) = client_context else {
        return SENT_BY_GATEWAY.clone();
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = engine
        .decode(&given)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let Some(Value::Object(mut context)) = decoded else {
        return given;
    };
    let custom = context
        .entry("custom")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(custom) = custom else {
        return given;
    };
    custom.insert(SENT_BY_GATEWAY_KEY.into(), "1".into());
    engine.encode(Value::Object(context).to_string())
}

/// How often the calls whose end was lost are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One call's start or end, as a reporter sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallReport {
    /// `started` or `finished`.
    pub event: String,
    /// Lambda's request id of the call (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// A finished call's handler time, from its event's delivery to its response.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// A finished call that met a new environment: the environment's init, which the call
    /// waited for.
    #[serde(default)]
    pub init_ms: Option<u64>,
}

/// What a report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent {
    Started,
    /// With what the call took, where the reporter said: its handler time and, on a cold
    /// start, the init it waited for.
    Finished {
        duration: Option<Duration>,
        init: Option<Duration>,
    },
}

impl CallEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            CallEvent::Started => "started",
            CallEvent::Finished { .. } => "finished",
        }
    }
}

impl CallReport {
    /// Reads a report, or says what was wrong with it.
    pub fn parse(body: &[u8]) -> Result<(CallEvent, String), GatewayError> {
        let report: CallReport =
            serde_json::from_slice(body).map_err(GatewayError::invalid_json)?;
        let event = match report.event.as_str() {
            "started" if report.duration_ms.is_none() && report.init_ms.is_none() => {
                CallEvent::Started
            }
            "started" => {
                return Err(GatewayError::new(
                    ErrorKind::InvalidRequest,
                    "duration_ms and init_ms belong to a finished call, not a started one",
                ))
            }
            "finished" => CallEvent::Finished {
                duration: report.duration_ms.map(Duration::from_millis),
                init: report.init_ms.map(Duration::from_millis),
            },
            other => {
                return Err(GatewayError::new(
                    ErrorKind::InvalidRequest,
                    format!("event {other:?} is not started or finished"),
                ))
            }
        };
        if report.request_id.is_empty() || report.request_id.len() > 128 {
            return Err(GatewayError::new(
                ErrorKind::InvalidRequest,
                "request_id must be 1 to 128 characters",
            ));
        }
        Ok((event, report.request_id))
    }
}

/// One function's calls reported running: each request id and when its start was heard.
#[derive(Debug, Default)]
pub struct ReportedCalls {
    running: HashMap<String, Time>,
    /// When lost ends were last looked for: once a second at most, not at every report.
    swept: Option<Time>,
}

/// A start refused: [`MAX_REPORTED_CALLS`] are running already.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany;

impl ReportedCalls {
    /// Hears a report at `now`. Calls heard starting more than `outlived` before (longer
    /// than the function may run: their end was lost) are forgotten first. A second start
    /// of one id, or an end never started (reordered, or its start lost), changes no count.
    pub fn hear(
        &mut self,
        event: CallEvent,
        request_id: String,
        now: Time,
        outlived: Duration,
    ) -> Result<(), TooMany> {
        let full = self.running.len() >= MAX_REPORTED_CALLS;
        if full
            || self
                .swept
                .is_none_or(|at| now.saturating_sub(at) >= SWEEP_EVERY)
        {
            self.running
                .retain(|_, started| now.saturating_sub(*started) <= outlived);
            self.swept = Some(now);
        }
        match event {
            CallEvent::Started => {
                if self.running.len() >= MAX_REPORTED_CALLS
                    && !self.running.contains_key(&request_id)
                {
                    return Err(TooMany);
                }
                self.running.entry(request_id).or_insert(now);
            }
            CallEvent::Finished { .. } => {
                self.running.remove(&request_id);
            }
        }
        Ok(())
    }

    /// How many are running.
    pub fn running(&self) -> u32 {
        self.running.len() as u32
    }
}

/// A call of `name` started or finished in one of its environments: the warmer hears the
/// function's calls in flight.
#[utoipa::path(post, path = "/v1/functions/{name}/environments/calls", tag = "extension",
    params(
        ("name" = String, Path, description = "the function's public name, from the configuration"),
        ("x-api-key" = Option<String>, Header, description = "an API key (or `Authorization: Bearer`)"),
    ),
    request_body(content = CallReport, content_type = "application/json"),
    responses(
        (status = 202, description = "heard", body = openapi::Status),
        (status = 400, description = "invalid_json, invalid_request", body = openapi::ErrorBody),
        (status = 401, description = "unauthenticated", body = openapi::ErrorBody),
        (status = 403, description = "forbidden", body = openapi::ErrorBody),
        (status = 404, description = "unknown_function", body = openapi::ErrorBody),
        (status = 413, description = "payload_too_large", body = openapi::ErrorBody),
        (status = 503, description = "overloaded: too many calls reported running", body = openapi::ErrorBody),
    ))]
pub(super) async fn call_reported(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    super::ends::heard(hear(&gateway, &name, &headers, body).await)
}

async fn hear(
    gateway: &Gateway,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), GatewayError> {
    let (function, body) =
        super::ends::read_report(gateway, name, headers, body, MAX_REPORT_BYTES).await?;
    let (event, request_id) = CallReport::parse(&body)?;
    // A call runs no longer than the function's timeout; a minute more covers the report.
    let outlived = Duration::from_millis(function.config.timeout_ms) + Duration::from_secs(60);
    function
        .reported
        .lock()
        .hear(event, request_id, gateway.now(), outlived)
        .map_err(|TooMany| {
            GatewayError::new(
                ErrorKind::Overloaded,
                format!("{MAX_REPORTED_CALLS} calls of {name} are reported running already"),
            )
        })?;
    telemetry::call_reported(name, event.as_str());
    gateway.tell_in_flight(function);
    if let (
        CallEvent::Finished {
            duration: Some(duration),
            init,
        },
        Some(warmer),
    ) = (event, &gateway.warmer)
    {
        let now = gateway.now();
        let start = if init.is_some() {
            Start::Cold
        } else {
            Start::Warm
        };
        warmer.observe(Observation {
            function: function.index,
            // The policy learns from every target's calls and pings the first.
            target: 0,
            arrived: now.saturating_sub(duration + init.unwrap_or_default()),
            duration,
            init,
            start: Some(start),
            ping: false,
            throttled: false,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_the_event_and_the_request_id_or_says_what_is_wrong() {
        let parsed = CallReport::parse(br#"{"event": "started", "request_id": "8f5e-3c1a"}"#);
        assert_eq!(
            parsed.unwrap(),
            (CallEvent::Started, "8f5e-3c1a".to_string())
        );
        let wrong = |body: &[u8]| CallReport::parse(body).unwrap_err();
        let event = wrong(br#"{"event": "begun", "request_id": "a"}"#);
        assert_eq!(event.kind, ErrorKind::InvalidRequest);
        assert!(event.message.contains("\"begun\""), "{}", event.message);
        let empty = wrong(br#"{"event": "finished", "request_id": ""}"#);
        assert!(empty.message.contains("request_id"), "{}", empty.message);
        let missing = wrong(br#"{"event": "finished"}"#);
        assert_eq!(missing.kind, ErrorKind::InvalidJson);
        assert!(
            missing.message.contains("request_id"),
            "{}",
            missing.message
        );
        let early = wrong(br#"{"event": "started", "request_id": "a", "duration_ms": 5}"#);
        assert!(early.message.contains("finished"), "{}", early.message);
        let cold = CallReport::parse(
            br#"{"event": "finished", "request_id": "a", "duration_ms": 60, "init_ms": 2500}"#,
        );
        let took = |ms| Some(Duration::from_millis(ms));
        assert_eq!(
            cold.unwrap().0,
            CallEvent::Finished {
                duration: took(60),
                init: took(2500)
            }
        );
    }

    #[test]
    fn the_gateways_invocations_carry_its_mark_beside_the_callers_context() {
        let engine = base64::engine::general_purpose::STANDARD;
        let read = |c: &str| serde_json::from_slice::<Value>(&engine.decode(c).unwrap()).unwrap();
        let none = sent_by_gateway(None);
        assert_eq!(read(&none), json!({"custom": {SENT_BY_GATEWAY_KEY: "1"}}));
        let caller = engine.encode(r#"{"client": {"app_title": "a"}, "custom": {"k": "v"}}"#);
        assert_eq!(
            read(&sent_by_gateway(Some(caller))),
            json!({"client": {"app_title": "a"}, "custom": {"k": "v", SENT_BY_GATEWAY_KEY: "1"}})
        );
        // Not base64 JSON: Lambda refuses it as it came.
        assert_eq!(sent_by_gateway(Some("%%".into())), "%%");
    }

    #[test]
    fn calls_run_from_their_start_to_their_end_and_lost_ends_are_forgotten() {
        const S: Duration = Duration::from_secs(1);
        let outlived = 60 * S;
        let mut calls = ReportedCalls::default();
        let hear = |calls: &mut ReportedCalls, event, id: &str, at: Duration| {
            calls.hear(event, id.to_string(), at, outlived).unwrap();
            calls.running()
        };
        assert_eq!(hear(&mut calls, CallEvent::Started, "a", S), 1);
        assert_eq!(hear(&mut calls, CallEvent::Started, "b", 2 * S), 2);
        // A start heard twice is one call; an end never started changes nothing.
        assert_eq!(hear(&mut calls, CallEvent::Started, "b", 3 * S), 2);
        let finished = CallEvent::Finished {
            duration: None,
            init: None,
        };
        assert_eq!(hear(&mut calls, finished, "z", 3 * S), 2);
        assert_eq!(hear(&mut calls, finished, "a", 4 * S), 1);
        // `b`'s end was lost: past the function's longest run it no longer counts.
        assert_eq!(hear(&mut calls, CallEvent::Started, "c", 63 * S), 1);
    }

    #[test]
    fn past_the_most_running_a_new_start_is_refused() {
        let mut calls = ReportedCalls::default();
        let forever = Duration::from_secs(3600);
        for k in 0..MAX_REPORTED_CALLS {
            calls
                .hear(CallEvent::Started, k.to_string(), Duration::ZERO, forever)
                .unwrap();
        }
        let more = calls.hear(CallEvent::Started, "more".into(), Duration::ZERO, forever);
        assert_eq!(more, Err(TooMany));
        // Its end still counts, and a start already heard is no new call.
        calls
            .hear(CallEvent::Started, "7".into(), Duration::ZERO, forever)
            .unwrap();
        let finished = CallEvent::Finished {
            duration: None,
            init: None,
        };
        calls
            .hear(finished, "7".into(), Duration::ZERO, forever)
            .unwrap();
        assert_eq!(calls.running() as usize, MAX_REPORTED_CALLS - 1);
    }
}
