//! A failed invocation as data ([`InvokeError`]), and its mapping from aws-sdk-lambda's
//! errors: what went wrong, and whether the function may have run.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ConnectorError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::invoke::InvokeError as SdkInvokeError;

/// Whether the function may have run before the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Execution {
    /// Lambda refused the request before running anything, or it never left this process.
    NotExecuted,
    /// The request reached Lambda and the answer was lost or was a server-side error: the
    /// function may have run, perhaps to completion.
    MayHaveExecuted,
}

/// What went wrong, as the caller needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InvokeErrorKind {
    /// 429 `TooManyRequestsException`. `reason` is Lambda's `Reason`
    /// (`ConcurrentInvocationLimitExceeded`, `ReservedFunctionConcurrentInvocationLimitExceeded`,
    /// ...) when the SDK could read it.
    Throttled { reason: Option<String> },
    /// 404 `ResourceNotFoundException`: no such function, alias or version.
    NotFound,
    /// 400 `InvalidParameterValueException`, `InvalidRequestContentException` and other 400s.
    InvalidRequest,
    /// 413 `RequestTooLargeException` (6 MB synchronous limit).
    RequestTooLarge,
    /// 415 `UnsupportedMediaTypeException`.
    UnsupportedMediaType,
    /// 502 `ResourceNotReadyException`: the function is inactive (its VPC connection is gone).
    ResourceNotReady,
    /// 409 `ResourceConflictException` (the function is being updated, or a SnapStart version
    /// is not ready).
    ResourceConflict,
    /// The request's own timeout ([`InvokeRequest::timeout`]) elapsed, or an SDK operation
    /// timeout.
    ///
    /// [`InvokeRequest::timeout`]: super::InvokeRequest::timeout
    Timeout,
    /// A 5xx from Lambda (`ServiceException` and the environment-setup 5xx errors), or an
    /// answer that could not be read.
    Service,
    /// Connection refused, reset or closed, DNS failure, connect timeout...
    Transport,
    /// Anything else: authorization failures, a request that could not be built, an unknown
    /// error code.
    Other,
}

impl fmt::Display for InvokeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeErrorKind::Throttled {
                reason: Some(reason),
            } => write!(f, "throttled ({reason})"),
            InvokeErrorKind::Throttled { reason: None } => f.write_str("throttled"),
            InvokeErrorKind::NotFound => f.write_str("not found"),
            InvokeErrorKind::InvalidRequest => f.write_str("invalid request"),
            InvokeErrorKind::RequestTooLarge => f.write_str("request too large"),
            InvokeErrorKind::UnsupportedMediaType => f.write_str("unsupported media type"),
            InvokeErrorKind::ResourceNotReady => f.write_str("resource not ready"),
            InvokeErrorKind::ResourceConflict => f.write_str("resource conflict"),
            InvokeErrorKind::Timeout => f.write_str("timed out"),
            InvokeErrorKind::Service => f.write_str("service error"),
            InvokeErrorKind::Transport => f.write_str("transport error"),
            InvokeErrorKind::Other => f.write_str("error"),
        }
    }
}

/// A failed invocation (or control-plane call). Read the fields; do not match the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct InvokeError {
    /// What went wrong.
    pub kind: InvokeErrorKind,
    /// For people: the service's error code and message, or the transport error's chain.
    pub message: String,
    /// How long the service asked us to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
    /// Whether the function may have run.
    pub executed: Execution,
    /// The underlying error (the SDK's, with its HTTP response), where there is one.
    #[source]
    pub source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// Two errors are equal when they say the same: the source is not compared.
impl PartialEq for InvokeError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.message == other.message
            && self.retry_after == other.retry_after
            && self.executed == other.executed
    }
}

impl Eq for InvokeError {}

impl InvokeError {
    /// Builds an error by hand (for other [`Invoker`] implementations and tests).
    ///
    /// [`Invoker`]: super::Invoker
    pub fn new(kind: InvokeErrorKind, executed: Execution, message: impl Into<String>) -> Self {
        InvokeError {
            kind,
            message: message.into(),
            retry_after: None,
            executed,
            source: None,
        }
    }

    fn caused_by(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Whether the same request may be sent to another (equivalent) target. ARCHITECTURE.md invariant 4:
    ///
    /// - an invocation that may have executed: only if the function is `idempotent`;
    /// - one that was not executed: yes when another target could answer differently
    ///   (throttles, a missing or conflicting target, a refused connection), no when the
    ///   request itself is at fault (invalid, too large, wrong media type) or the cause is
    ///   unknown.
    pub fn may_retry_elsewhere(&self, idempotent: bool) -> bool {
        match self.executed {
            Execution::MayHaveExecuted => idempotent,
            Execution::NotExecuted => match self.kind {
                InvokeErrorKind::Throttled { .. }
                | InvokeErrorKind::NotFound
                | InvokeErrorKind::ResourceConflict
                | InvokeErrorKind::ResourceNotReady
                | InvokeErrorKind::Transport
                | InvokeErrorKind::Service
                | InvokeErrorKind::Timeout => true,
                InvokeErrorKind::InvalidRequest
                | InvokeErrorKind::RequestTooLarge
                | InvokeErrorKind::UnsupportedMediaType
                | InvokeErrorKind::Other => false,
            },
        }
    }

    /// Whether this is a throttle (429).
    pub fn is_throttle(&self) -> bool {
        matches!(self.kind, InvokeErrorKind::Throttled { .. })
    }

    pub(super) fn timed_out(function_name: &str, timeout: Duration) -> Self {
        InvokeError::new(
            InvokeErrorKind::Timeout,
            Execution::MayHaveExecuted,
            format!("{function_name}: no complete answer within {timeout:?}"),
        )
    }
}

/// What an operation-specific look at a typed service error adds.
pub(super) struct Refined {
    kind: InvokeErrorKind,
    executed: Execution,
    retry_after: Option<Duration>,
}

/// Typed `InvokeError` variants into our kinds. Variants not named here fall back to the error
/// code and HTTP status ([`classify_service`]).
pub(super) fn classify_invoke_error(err: &SdkInvokeError) -> Option<Refined> {
    use Execution::{MayHaveExecuted, NotExecuted};
    let refined = |kind, executed| Refined {
        kind,
        executed,
        retry_after: None,
    };
    Some(match err {
        SdkInvokeError::TooManyRequestsException(e) => Refined {
            kind: InvokeErrorKind::Throttled {
                reason: e.reason().map(|r| r.as_str().to_owned()),
            },
            executed: NotExecuted,
            retry_after: e.retry_after_seconds().and_then(parse_retry_after),
        },
        SdkInvokeError::ResourceNotFoundException(_) => {
            refined(InvokeErrorKind::NotFound, NotExecuted)
        }
        SdkInvokeError::InvalidParameterValueException(_)
        | SdkInvokeError::InvalidRequestContentException(_) => {
            refined(InvokeErrorKind::InvalidRequest, NotExecuted)
        }
        SdkInvokeError::RequestTooLargeException(_)
        | SdkInvokeError::SerializedRequestEntityTooLargeException(_) => {
            refined(InvokeErrorKind::RequestTooLarge, NotExecuted)
        }
        SdkInvokeError::UnsupportedMediaTypeException(_) => {
            refined(InvokeErrorKind::UnsupportedMediaType, NotExecuted)
        }
        SdkInvokeError::ResourceConflictException(_) => {
            refined(InvokeErrorKind::ResourceConflict, NotExecuted)
        }
        // A 502. Lambda documents it as "the function is inactive", so in practice nothing
        // ran, but as a 5xx it is classed conservatively.
        SdkInvokeError::ResourceNotReadyException(_) => {
            refined(InvokeErrorKind::ResourceNotReady, MayHaveExecuted)
        }
        SdkInvokeError::ServiceException(_) => refined(InvokeErrorKind::Service, MayHaveExecuted),
        _ => return None,
    })
}

/// Any SDK error into ours. `refine` looks at the typed service error of one operation.
pub(super) fn from_sdk_error<E>(
    err: SdkError<E, HttpResponse>,
    refine: fn(&E) -> Option<Refined>,
) -> InvokeError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let error = match &err {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let status = raw.status().as_u16();
            let e = service.err();
            let (mut kind, mut executed) = classify_service(e.code(), status);
            let mut retry_after = raw.headers().get("retry-after").and_then(parse_retry_after);
            if let Some(refined) = refine(e) {
                kind = refined.kind;
                executed = refined.executed;
                retry_after = refined.retry_after.or(retry_after);
            }
            let message = match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code} ({status}): {message}"),
                (Some(code), None) => format!("{code} ({status})"),
                (None, Some(message)) => format!("HTTP {status}: {message}"),
                (None, None) => format!("HTTP {status}: {}", DisplayErrorContext(e)),
            };
            InvokeError {
                retry_after,
                ..InvokeError::new(kind, executed, message)
            }
        }
        SdkError::DispatchFailure(failure) => {
            let (kind, executed) = match failure.as_connector_error() {
                Some(connector) => dispatch_execution(connector),
                None => (InvokeErrorKind::Transport, Execution::MayHaveExecuted),
            };
            InvokeError::new(kind, executed, DisplayErrorContext(&err).to_string())
        }
        SdkError::TimeoutError(_) => InvokeError::new(
            InvokeErrorKind::Timeout,
            Execution::MayHaveExecuted,
            DisplayErrorContext(&err).to_string(),
        ),
        SdkError::ResponseError(_) => InvokeError::new(
            InvokeErrorKind::Service,
            Execution::MayHaveExecuted,
            DisplayErrorContext(&err).to_string(),
        ),
        // The request could not be built (a missing field, no region, no credentials): it
        // never left this process.
        SdkError::ConstructionFailure(_) => InvokeError::new(
            InvokeErrorKind::Other,
            Execution::NotExecuted,
            DisplayErrorContext(&err).to_string(),
        ),
        _ => InvokeError::new(
            InvokeErrorKind::Other,
            Execution::MayHaveExecuted,
            DisplayErrorContext(&err).to_string(),
        ),
    };
    error.caused_by(err)
}

/// A service error by its code, else by HTTP status. The SDK takes the code from
/// `X-Amzn-ErrorType` (then the body's `code` or `__type`); a backend that sends none still
/// gets classified by status.
fn classify_service(code: Option<&str>, status: u16) -> (InvokeErrorKind, Execution) {
    use Execution::{MayHaveExecuted, NotExecuted};
    match code {
        Some("TooManyRequestsException") => {
            return (InvokeErrorKind::Throttled { reason: None }, NotExecuted)
        }
        Some("ResourceNotFoundException") => return (InvokeErrorKind::NotFound, NotExecuted),
        Some("InvalidParameterValueException" | "InvalidRequestContentException") => {
            return (InvokeErrorKind::InvalidRequest, NotExecuted)
        }
        Some("RequestTooLargeException" | "SerializedRequestEntityTooLargeException") => {
            return (InvokeErrorKind::RequestTooLarge, NotExecuted)
        }
        Some("UnsupportedMediaTypeException") => {
            return (InvokeErrorKind::UnsupportedMediaType, NotExecuted)
        }
        Some("ResourceConflictException") => {
            return (InvokeErrorKind::ResourceConflict, NotExecuted)
        }
        Some("ResourceNotReadyException") => {
            return (InvokeErrorKind::ResourceNotReady, MayHaveExecuted)
        }
        Some("ServiceException") => return (InvokeErrorKind::Service, MayHaveExecuted),
        _ => {}
    }
    match status {
        429 => (InvokeErrorKind::Throttled { reason: None }, NotExecuted),
        404 => (InvokeErrorKind::NotFound, NotExecuted),
        400 => (InvokeErrorKind::InvalidRequest, NotExecuted),
        413 => (InvokeErrorKind::RequestTooLarge, NotExecuted),
        415 => (InvokeErrorKind::UnsupportedMediaType, NotExecuted),
        409 => (InvokeErrorKind::ResourceConflict, NotExecuted),
        // Authentication and authorization are checked before anything runs.
        401 | 403 => (InvokeErrorKind::Other, NotExecuted),
        500..=599 => (InvokeErrorKind::Service, MayHaveExecuted),
        // 408 and 410 (SnapStart and EFS errors) and anything unforeseen.
        _ => (InvokeErrorKind::Other, MayHaveExecuted),
    }
}

/// Whether a request that failed in the HTTP connector can have reached Lambda.
///
/// `ConnectorError::is_io()` alone does not say: it covers a refused connection (nothing sent)
/// as well as a connection reset or closed after the request was written. So:
///
/// - a timeout: with [`harden`]'s settings (no read timeout, no stalled-stream protection)
///   the only timeout inside the connector is the connect timeout, which covers TCP and TLS
///   set-up: nothing was sent;
/// - an I/O error whose chain holds `ConnectionRefused` or `AddrNotAvailable`: errors of
///   `connect(2)` only, so nothing was sent;
/// - a "user" error: the request could not be written as HTTP at all;
/// - any other I/O or unclassified error (reset, broken pipe, incomplete message, DNS errors
///   too, which the connector does not let us tell apart reliably): it may have executed.
///
/// [`harden`]: super::client::harden
fn dispatch_execution(connector: &ConnectorError) -> (InvokeErrorKind, Execution) {
    let not_sent =
        connector.is_timeout() || (connector.is_io() && chain_has_connect_error(connector));
    if connector.is_user() {
        (InvokeErrorKind::Other, Execution::NotExecuted)
    } else if not_sent {
        (InvokeErrorKind::Transport, Execution::NotExecuted)
    } else {
        (InvokeErrorKind::Transport, Execution::MayHaveExecuted)
    }
}

/// Walks the error chain, visiting each `io::Error`'s payload too (`io::Error::source` skips
/// it), looking for an error that only `connect(2)` returns.
fn chain_has_connect_error(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    // A bound, in case some error's chain loops.
    for _ in 0..32 {
        let Some(error) = next else { return false };
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => {
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
                ) {
                    return true;
                }
                io.get_ref()
                    .map(|payload| payload as &(dyn StdError + 'static))
            }
            None => error.source(),
        };
    }
    false
}

/// `Retry-After` in seconds (Lambda sends whole seconds; fractions are accepted). HTTP dates
/// are not.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (0.0..1e9)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lambda::config::http::HttpResponse;
    use aws_sdk_lambda::error::ErrorMetadata;
    use aws_sdk_lambda::primitives::SdkBody;
    use aws_sdk_lambda::types::error::{
        InvalidParameterValueException, ResourceNotFoundException, ServiceException,
        TooManyRequestsException,
    };
    use aws_sdk_lambda::types::ThrottleReason;

    fn err(kind: InvokeErrorKind, executed: Execution) -> InvokeError {
        InvokeError::new(kind, executed, "test")
    }

    fn http(status: u16, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        for (name, value) in headers {
            raw.headers_mut().insert(*name, *value);
        }
        raw
    }

    fn service(
        e: SdkInvokeError,
        status: u16,
        headers: &[(&'static str, &'static str)],
    ) -> InvokeError {
        from_sdk_error(
            SdkError::service_error(e, http(status, headers)),
            classify_invoke_error,
        )
    }

    #[test]
    fn throttles_may_go_elsewhere() {
        let e = err(
            InvokeErrorKind::Throttled { reason: None },
            Execution::NotExecuted,
        );
        assert!(e.may_retry_elsewhere(false));
        assert!(e.may_retry_elsewhere(true));
    }

    #[test]
    fn may_have_executed_only_if_idempotent() {
        for kind in [
            InvokeErrorKind::Timeout,
            InvokeErrorKind::Service,
            InvokeErrorKind::Transport,
            InvokeErrorKind::ResourceNotReady,
            InvokeErrorKind::Other,
        ] {
            let e = err(kind.clone(), Execution::MayHaveExecuted);
            assert!(!e.may_retry_elsewhere(false), "{kind:?}");
            assert!(e.may_retry_elsewhere(true), "{kind:?}");
        }
    }

    #[test]
    fn faults_of_the_request_never_go_elsewhere() {
        for kind in [
            InvokeErrorKind::InvalidRequest,
            InvokeErrorKind::RequestTooLarge,
            InvokeErrorKind::UnsupportedMediaType,
            InvokeErrorKind::Other,
        ] {
            let e = err(kind.clone(), Execution::NotExecuted);
            assert!(!e.may_retry_elsewhere(false), "{kind:?}");
            assert!(!e.may_retry_elsewhere(true), "{kind:?}");
        }
        for kind in [
            InvokeErrorKind::NotFound,
            InvokeErrorKind::ResourceConflict,
            InvokeErrorKind::Transport,
        ] {
            assert!(
                err(kind.clone(), Execution::NotExecuted).may_retry_elsewhere(false),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn typed_throttle_keeps_reason_and_retry_after() {
        let e = SdkInvokeError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Rate Exceeded.")
                .reason(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
                .retry_after_seconds("2")
                .r#type("User")
                .meta(
                    ErrorMetadata::builder()
                        .code("TooManyRequestsException")
                        .message("Rate Exceeded.")
                        .build(),
                )
                .build(),
        );
        let e = service(e, 429, &[("Retry-After", "2")]);
        assert_eq!(
            e.kind,
            InvokeErrorKind::Throttled {
                reason: Some("ReservedFunctionConcurrentInvocationLimitExceeded".to_owned())
            }
        );
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(e.executed, Execution::NotExecuted);
        assert!(e.is_throttle());
        assert!(e.may_retry_elsewhere(false));
        assert!(e.to_string().contains("Rate Exceeded."), "{e}");
    }

    #[test]
    fn typed_service_errors() {
        let not_found = service(
            SdkInvokeError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Function not found")
                    .build(),
            ),
            404,
            &[],
        );
        assert_eq!(not_found.kind, InvokeErrorKind::NotFound);
        assert_eq!(not_found.executed, Execution::NotExecuted);

        let invalid = service(
            SdkInvokeError::InvalidParameterValueException(
                InvalidParameterValueException::builder().build(),
            ),
            400,
            &[],
        );
        assert_eq!(invalid.kind, InvokeErrorKind::InvalidRequest);
        assert!(!invalid.may_retry_elsewhere(true));

        let service_err = service(
            SdkInvokeError::ServiceException(ServiceException::builder().build()),
            500,
            &[],
        );
        assert_eq!(service_err.kind, InvokeErrorKind::Service);
        assert_eq!(service_err.executed, Execution::MayHaveExecuted);
        assert!(!service_err.may_retry_elsewhere(false));
    }

    #[test]
    fn untyped_errors_fall_back_to_the_status() {
        // A backend without X-Amzn-ErrorType: the SDK cannot type the error.
        let untyped = |status| {
            service(
                SdkInvokeError::generic(ErrorMetadata::builder().message("boom").build()),
                status,
                &[("retry-after", "1")],
            )
        };
        let throttle = untyped(429);
        assert_eq!(throttle.kind, InvokeErrorKind::Throttled { reason: None });
        assert_eq!(throttle.executed, Execution::NotExecuted);
        assert_eq!(throttle.retry_after, Some(Duration::from_secs(1)));
        for (status, kind) in [
            (404, InvokeErrorKind::NotFound),
            (400, InvokeErrorKind::InvalidRequest),
            (413, InvokeErrorKind::RequestTooLarge),
            (415, InvokeErrorKind::UnsupportedMediaType),
            (409, InvokeErrorKind::ResourceConflict),
        ] {
            let e = untyped(status);
            assert_eq!(
                (e.kind, e.executed),
                (kind, Execution::NotExecuted),
                "{status}"
            );
        }
        for status in [500, 502, 503] {
            let e = untyped(status);
            assert_eq!(
                (e.kind, e.executed),
                (InvokeErrorKind::Service, Execution::MayHaveExecuted)
            );
        }
        // Known code, not a typed variant of this operation's error.
        let by_code = service(
            SdkInvokeError::generic(
                ErrorMetadata::builder()
                    .code("ResourceNotReadyException")
                    .build(),
            ),
            502,
            &[],
        );
        assert_eq!(by_code.kind, InvokeErrorKind::ResourceNotReady);
        assert_eq!(by_code.executed, Execution::MayHaveExecuted);
    }

    #[test]
    fn dispatch_failures() {
        let dispatch = |c: ConnectorError| {
            from_sdk_error(
                SdkError::<SdkInvokeError, HttpResponse>::dispatch_failure(c),
                classify_invoke_error,
            )
        };
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        // Wrapped the way connectors wrap it: a payload inside another io::Error.
        let wrapped = std::io::Error::other(Box::new(refused) as Box<dyn StdError + Send + Sync>);
        let e = dispatch(ConnectorError::io(Box::new(wrapped)));
        assert_eq!(
            (e.kind.clone(), e.executed),
            (InvokeErrorKind::Transport, Execution::NotExecuted)
        );
        assert!(e.may_retry_elsewhere(false));

        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = dispatch(ConnectorError::io(Box::new(reset)));
        assert_eq!(
            (e.kind.clone(), e.executed),
            (InvokeErrorKind::Transport, Execution::MayHaveExecuted)
        );
        assert!(!e.may_retry_elsewhere(false));

        let e = dispatch(ConnectorError::timeout(
            "HTTP connect timeout occurred after 3.1s".into(),
        ));
        assert_eq!(e.executed, Execution::NotExecuted);

        let e = dispatch(ConnectorError::other("incomplete message".into(), None));
        assert_eq!(e.executed, Execution::MayHaveExecuted);

        let e = from_sdk_error(
            SdkError::<SdkInvokeError, HttpResponse>::timeout_error("operation timeout"),
            classify_invoke_error,
        );
        assert_eq!(
            (e.kind, e.executed),
            (InvokeErrorKind::Timeout, Execution::MayHaveExecuted)
        );

        let e = from_sdk_error(
            SdkError::<SdkInvokeError, HttpResponse>::response_error("garbled", http(200, &[])),
            classify_invoke_error,
        );
        assert_eq!(
            (e.kind, e.executed),
            (InvokeErrorKind::Service, Execution::MayHaveExecuted)
        );
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
