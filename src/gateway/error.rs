//! Every way a gateway request can fail, and its HTTP answer, in one place.
//!
//! The `/v1` ingress answers with a JSON body `{"error": {"code", "message"}}`; the Lambda
//! Invoke ingress answers in Lambda's own error shape (`X-Amzn-ErrorType`), so that an AWS SDK
//! pointed at warmgate gets the typed errors it would get from Lambda.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::lambda::wire::ApiError;
use crate::lambda::{InvokeError, InvokeErrorKind};
use crate::telemetry::Outcome;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The function is not in the configuration's allow-list.
    UnknownFunction,
    /// The qualifier a Lambda-API client named is not one of the function's targets.
    UnknownTarget,
    /// The route exists, not for this method.
    MethodNotAllowed,
    /// No such route.
    NoRoute,
    InvalidJson,
    PayloadTooLarge,
    /// A header or parameter is malformed, or the body could not be read.
    InvalidRequest,
    /// The body did not arrive within `gateway.body_read_timeout_ms`.
    BodyTimeout,
    /// No credentials, or credentials that are not valid.
    Unauthenticated,
    /// Valid credentials, not allowed this function.
    Forbidden,
    /// The caller's own request rate is over its limit.
    RateLimited,
    /// Lambda throttled every target it was allowed to try.
    Throttled,
    /// The function's timeout passed.
    Timeout,
    /// Lambda or the network failed.
    Upstream,
    /// Targets not yet resolved and checked.
    NotReady,
    /// Too many requests in flight: shed.
    Overloaded,
    /// The gateway itself failed (a handler panicked).
    Internal,
}

/// A failed request: what to answer, and, when Lambda failed it, the invocation error it came
/// from (its `Execution` says whether the function may have run).
#[derive(Debug, Clone)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// The throttle's Reason, when Lambda gave one.
    pub reason: Option<String>,
    /// Boxed: most errors have none, and every handler's `Result` carries this type.
    pub source: Option<Box<InvokeError>>,
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            reason: None,
            source: None,
        }
    }

    pub(super) fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn unknown_function(name: &str) -> Self {
        Self::new(
            ErrorKind::UnknownFunction,
            format!("function {name:?} is not configured in this gateway"),
        )
    }

    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotReady, message).retry_after(Duration::from_secs(1))
    }

    pub fn overloaded(limit: usize) -> Self {
        Self::new(
            ErrorKind::Overloaded,
            format!("the gateway has {limit} requests in flight, its limit; retry shortly"),
        )
        .retry_after(Duration::from_secs(1))
    }

    /// The whole request (body, wait, every attempt) outlasted the gateway's bound.
    pub fn request_timeout(limit: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("the request did not complete within the gateway's {limit:?}"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "the gateway failed while serving this request; it was logged and counted",
        )
    }

    pub fn body_timeout(limit: Duration) -> Self {
        Self::new(
            ErrorKind::BodyTimeout,
            format!("the request body did not arrive within {limit:?}"),
        )
    }

    pub fn unreadable_body(reason: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::InvalidRequest,
            format!("the request body could not be read: {reason}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            format!("the request body exceeds this function's limit of {limit} bytes"),
        )
    }

    pub fn invalid_json(reason: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::InvalidJson,
            format!("the request body is not valid JSON: {reason}"),
        )
    }

    /// Maps an invocation failure; `function` names it in the message.
    pub fn from_invoke(function: &str, error: &InvokeError) -> Self {
        let kind = match &error.kind {
            InvokeErrorKind::Throttled { .. } => ErrorKind::Throttled,
            InvokeErrorKind::Timeout => ErrorKind::Timeout,
            InvokeErrorKind::RequestTooLarge => ErrorKind::PayloadTooLarge,
            InvokeErrorKind::InvalidRequest | InvokeErrorKind::UnsupportedMediaType => {
                ErrorKind::InvalidRequest
            }
            _ => ErrorKind::Upstream,
        };
        let reason = match &error.kind {
            InvokeErrorKind::Throttled { reason } => reason.clone(),
            _ => None,
        };
        let retry_after = match kind {
            ErrorKind::Throttled => Some(error.retry_after.unwrap_or(Duration::from_secs(1))),
            _ => None,
        };
        Self {
            kind,
            message: format!("function {function:?}: {error}"),
            retry_after,
            reason,
            source: Some(Box::new(error.clone())),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::UnknownFunction | ErrorKind::UnknownTarget | ErrorKind::NoRoute => {
                StatusCode::NOT_FOUND
            }
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::InvalidJson | ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Throttled | ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::NotReady | ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code of the `/v1` body.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::UnknownFunction => "unknown_function",
            ErrorKind::UnknownTarget => "unknown_target",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::NotReady => "not_ready",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Internal => "internal",
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self.kind {
            ErrorKind::UnknownFunction | ErrorKind::UnknownTarget | ErrorKind::NoRoute => {
                Outcome::NotFound
            }
            ErrorKind::MethodNotAllowed
            | ErrorKind::InvalidJson
            | ErrorKind::PayloadTooLarge
            | ErrorKind::InvalidRequest
            | ErrorKind::BodyTimeout => Outcome::BadRequest,
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => Outcome::Denied,
            ErrorKind::RateLimited => Outcome::RateLimited,
            ErrorKind::Throttled => Outcome::Throttled,
            ErrorKind::Timeout => Outcome::Timeout,
            ErrorKind::Upstream => Outcome::UpstreamError,
            ErrorKind::NotReady | ErrorKind::Overloaded => Outcome::Unavailable,
            ErrorKind::Internal => Outcome::Internal,
        }
    }

    fn retry_after_s(&self) -> Option<u32> {
        self.retry_after
            .map(|d| d.as_secs_f64().ceil().max(1.0) as u32)
    }

    /// The answer on the Lambda Invoke ingress, in Lambda's error shape.
    pub fn into_lambda_response(self) -> Response {
        let status = self.status();
        let code = match self.kind {
            ErrorKind::UnknownFunction | ErrorKind::UnknownTarget | ErrorKind::NoRoute => {
                return ApiError::not_found(self.message).into_response()
            }
            ErrorKind::PayloadTooLarge => "RequestTooLargeException",
            ErrorKind::InvalidJson => "InvalidRequestContentException",
            ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed | ErrorKind::BodyTimeout => {
                "InvalidParameterValueException"
            }
            // As AWS answers a missing or bad signature, and a principal without the right.
            ErrorKind::Unauthenticated => "UnrecognizedClientException",
            ErrorKind::Forbidden => "AccessDeniedException",
            ErrorKind::Throttled | ErrorKind::RateLimited => "TooManyRequestsException",
            ErrorKind::Timeout | ErrorKind::Upstream => "ServiceException",
            ErrorKind::NotReady | ErrorKind::Overloaded | ErrorKind::Internal => "ServiceException",
        };
        let reason = self.reason.as_deref().and_then(known_reason);
        let retry = self.retry_after_s();
        ApiError::other(status, code, self.message)
            .with_retry(reason, retry)
            .into_response()
    }
}

/// Lambda's throttle reasons, as static strings for the wire.
fn known_reason(reason: &str) -> Option<&'static str> {
    [
        "ConcurrentInvocationLimitExceeded",
        "FunctionInvocationRateLimitExceeded",
        "ReservedFunctionConcurrentInvocationLimitExceeded",
        "ReservedFunctionInvocationRateLimitExceeded",
        "CallerRateLimitExceeded",
        "ConcurrentSnapshotCreateLimitExceeded",
    ]
    .into_iter()
    .find(|r| *r == reason)
}

impl IntoResponse for GatewayError {
    /// The answer on the `/v1` ingress.
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code(), "message": self.message });
        if let Some(reason) = &self.reason {
            error["reason"] = reason.clone().into();
        }
        let mut response = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        if let Some(after) = self.retry_after_s() {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(after));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::lambda::Execution;

    #[test]
    fn a_failed_invocation_keeps_its_source_and_whether_it_may_have_run() {
        let timeout = InvokeError::new(
            InvokeErrorKind::Timeout,
            Execution::MayHaveExecuted,
            "no answer within 1s",
        );
        let error = GatewayError::from_invoke("model", &timeout);
        assert_eq!(error.kind, ErrorKind::Timeout);
        assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
        let source = error.source().expect("the invocation error");
        let source = source
            .downcast_ref::<InvokeError>()
            .expect("an InvokeError");
        assert_eq!(source.executed, Execution::MayHaveExecuted);
        assert!(GatewayError::unknown_function("x").source().is_none());
    }
}
