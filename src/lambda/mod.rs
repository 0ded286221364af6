//! The gateway's view of Lambda: an [`Invoker`] trait, its implementation on aws-sdk-lambda
//! ([`LambdaClient`]), and the parsing of the platform's REPORT line ([`report`]).
//!
//! Every invocation asks for the log tail (`LogType: Tail`) so that the gateway learns, per
//! call, whether the environment was cold and how long init took. A backend that sends no tail
//! (an Event or DryRun call, or an emulator without logs) leaves the start unknown:
//! [`InvokeResponse::cold_start`] is `None` then, never "warm".
//!
//! Errors are data, in the style of pingora: [`InvokeError`] says what went wrong
//! ([`InvokeErrorKind`]), whether the function may have run ([`Execution`]) and how long the
//! service asked us to wait. [`InvokeError::may_retry_elsewhere`] applies DESIGN invariant 4:
//! an invocation that may have executed is retried only for an idempotent function, while a
//! throttle returned before execution may go to another target.
//!
//! The SDK never retries an invocation by itself: the client is built with retries disabled
//! (the SDK's standard mode would retry `TooManyRequestsException` and transport errors, which
//! is warmgate's decision to make). Read-only control-plane calls made here
//! ([`LambdaClient::target_config`]) turn the standard retries back on for themselves.

pub mod report;
pub mod wire;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_lambda::error::{ConnectorError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::invoke::InvokeError as SdkInvokeError;
use aws_sdk_lambda::operation::invoke::InvokeOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType as SdkInvocationType, LogType};
use bytes::Bytes;

pub use report::{decode_log_result, parse_log_tail, Report, StartKind};

/// How long the client waits for a TCP (and TLS) connection to the Lambda endpoint. The SDK's
/// default for the latest behavior version, stated here because the error classification below
/// relies on the connect timeout being the only timeout inside the HTTP connector.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// How many attempts read-only control-plane calls get (the SDK's standard mode).
const CONTROL_PLANE_ATTEMPTS: u32 = 3;

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InvocationType {
    /// Synchronous: the answer carries the function's payload (status 200).
    #[default]
    RequestResponse,
    /// Asynchronous: Lambda queues the event and answers 202 with an empty payload.
    Event,
    /// Checks parameters and permissions only: 204 with an empty payload.
    DryRun,
}

impl InvocationType {
    fn to_sdk(self) -> SdkInvocationType {
        match self {
            InvocationType::RequestResponse => SdkInvocationType::RequestResponse,
            InvocationType::Event => SdkInvocationType::Event,
            InvocationType::DryRun => SdkInvocationType::DryRun,
        }
    }
}

/// One invocation of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeRequest {
    /// Function name (from the configuration, never from a client: invariant 5).
    pub function_name: String,
    /// Alias or version; `None` means `$LATEST`.
    pub qualifier: Option<String>,
    /// The JSON payload.
    pub payload: Bytes,
    /// Base64 JSON, passed through as `X-Amz-Client-Context`.
    pub client_context: Option<String>,
    /// Synchronous, asynchronous or dry run.
    pub invocation_type: InvocationType,
    /// The whole call, from sending to the last byte of the answer, must fit in this; past it
    /// the call fails with [`InvokeErrorKind::Timeout`].
    pub timeout: Duration,
}

impl InvokeRequest {
    /// A synchronous invocation of `$LATEST` without client context.
    pub fn new(
        function_name: impl Into<String>,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Self {
        InvokeRequest {
            function_name: function_name.into(),
            qualifier: None,
            payload: payload.into(),
            client_context: None,
            invocation_type: InvocationType::RequestResponse,
            timeout,
        }
    }
}

/// The answer of an invocation that reached the function (or was accepted, for Event and
/// DryRun). A function error is an answer too: status 200 with `function_error` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResponse {
    /// 200 (RequestResponse), 202 (Event) or 204 (DryRun).
    pub status: u16,
    /// The function's payload; empty for Event and DryRun.
    pub payload: Bytes,
    /// `X-Amz-Executed-Version`: the version that ran (an alias resolved).
    pub executed_version: Option<String>,
    /// `X-Amz-Function-Error`: `Handled` or `Unhandled` when the function failed; the payload
    /// then is `{"errorMessage","errorType","stackTrace"}`.
    pub function_error: Option<String>,
    /// The REPORT line of the log tail, if the tail had a whole one.
    pub report: Option<Report>,
    /// The decoded log tail (`X-Amz-Log-Result`), if the backend sent one.
    pub log_tail: Option<String>,
}

impl InvokeResponse {
    /// Whether the invocation met a new environment (a cold start or a SnapStart restore).
    ///
    /// None when the backend sent no log tail: then the cold start is unknown, never "warm".
    /// Also `None` when the tail holds no readable REPORT line.
    pub fn cold_start(&self) -> Option<bool> {
        self.log_tail.as_ref()?;
        self.report
            .as_ref()
            .map(|report| report.start() != StartKind::Warm)
    }

    fn from_output(output: InvokeOutput) -> Self {
        let log_tail = output.log_result.as_deref().and_then(decode_log_result);
        let report = log_tail.as_deref().and_then(parse_log_tail);
        InvokeResponse {
            status: u16::try_from(output.status_code).unwrap_or_default(),
            payload: output
                .payload
                .map(|blob| Bytes::from(blob.into_inner()))
                .unwrap_or_default(),
            executed_version: output.executed_version,
            function_error: output.function_error,
            report,
            log_tail,
        }
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

impl InvokeError {
    /// Builds an error by hand (for other [`Invoker`] implementations and tests).
    pub fn new(kind: InvokeErrorKind, executed: Execution, message: impl Into<String>) -> Self {
        InvokeError {
            kind,
            message: message.into(),
            retry_after: None,
            executed,
        }
    }

    /// Whether the same request may be sent to another (equivalent) target. DESIGN invariant 4:
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

    fn timed_out(function_name: &str, timeout: Duration) -> Self {
        InvokeError::new(
            InvokeErrorKind::Timeout,
            Execution::MayHaveExecuted,
            format!("{function_name}: no complete answer within {timeout:?}"),
        )
    }
}

/// Invokes Lambda functions: [`LambdaClient`] on AWS or the emulator, or a test double.
#[async_trait::async_trait]
pub trait Invoker: Send + Sync + 'static {
    /// Invokes one target once. Never retries by itself.
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError>;
}

/// The configuration of one target (function plus alias or version), as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// The function name asked for.
    pub function_name: String,
    /// The alias or version asked for.
    pub qualifier: Option<String>,
    /// The version the qualifier resolves to (`$LATEST`, or a number for a version or alias).
    pub version: String,
    /// `CodeSha256`: targets are equivalent only if these are equal (invariant 3).
    pub code_sha256: String,
    /// Configured memory.
    pub memory_mb: u32,
    /// The function's own timeout.
    pub timeout: Duration,
    /// `FunctionArn` as Lambda returned it.
    pub function_arn: String,
}

/// Lambda's default memory when a backend leaves `MemorySize` out.
const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's default function timeout when a backend leaves `Timeout` out.
const DEFAULT_TIMEOUT_S: u64 = 3;

/// The aws-sdk-lambda client, configured for warmgate. Cloning is cheap and shares the
/// connection pool and credentials cache: make one and clone it.
#[derive(Debug, Clone)]
pub struct LambdaClient {
    client: aws_sdk_lambda::Client,
}

impl LambdaClient {
    /// A client for AWS: the default credentials chain (on Fargate, the task role) and the
    /// default region chain unless `region` is given. Also honours `AWS_ENDPOINT_URL_LAMBDA` /
    /// `AWS_ENDPOINT_URL`, like every SDK.
    pub async fn for_aws(region: Option<String>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        let shared = loader.load().await;
        let config = harden(aws_sdk_lambda::config::Builder::from(&shared)).build();
        LambdaClient {
            client: aws_sdk_lambda::Client::from_conf(config),
        }
    }

    /// A client for a Lambda-compatible endpoint such as the emulator
    /// (`http://127.0.0.1:9001`), with static test credentials (`test` / `test`).
    pub fn for_endpoint(endpoint_url: &str, region: &str) -> Self {
        let builder = aws_sdk_lambda::config::Builder::new()
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint_url)
            .credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "warmgate-static",
            ));
        LambdaClient {
            client: aws_sdk_lambda::Client::from_conf(harden(builder).build()),
        }
    }

    /// The underlying SDK client, for control-plane calls (provisioned concurrency, aliases).
    /// Its retries are disabled; a caller that wants them for an idempotent call adds them per
    /// operation with `.customize().config_override(...)`, as [`Self::target_config`] does.
    pub fn sdk(&self) -> &aws_sdk_lambda::Client {
        &self.client
    }

    /// `GetFunctionConfiguration` for a function and qualifier: the version an alias resolves
    /// to and its `CodeSha256`, used to check that targets are equivalent (invariant 3).
    ///
    /// An alias with a routing configuration (weighted versions) reports only its primary
    /// version here.
    pub async fn target_config(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<TargetConfig, InvokeError> {
        let output =
            self.client
                .get_function_configuration()
                .function_name(function_name)
                .set_qualifier(qualifier.map(str::to_owned))
                .customize()
                .config_override(aws_sdk_lambda::config::Builder::new().retry_config(
                    RetryConfig::standard().with_max_attempts(CONTROL_PLANE_ATTEMPTS),
                ))
                .send()
                .await
                .map_err(|err| from_sdk_error(err, |_| None))?;

        let missing = |field: &str| {
            InvokeError::new(
                InvokeErrorKind::Service,
                Execution::NotExecuted,
                format!("{function_name}: GetFunctionConfiguration answered without {field}"),
            )
        };
        Ok(TargetConfig {
            function_name: function_name.to_owned(),
            qualifier: qualifier.map(str::to_owned),
            version: output.version.ok_or_else(|| missing("Version"))?,
            code_sha256: output.code_sha256.ok_or_else(|| missing("CodeSha256"))?,
            memory_mb: output
                .memory_size
                .and_then(|mb| u32::try_from(mb).ok())
                .unwrap_or(DEFAULT_MEMORY_MB),
            timeout: Duration::from_secs(
                output
                    .timeout
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(DEFAULT_TIMEOUT_S),
            ),
            function_arn: output.function_arn.ok_or_else(|| missing("FunctionArn"))?,
        })
    }
}

/// Settings every warmgate client gets, whatever its endpoint.
fn harden(builder: aws_sdk_lambda::config::Builder) -> aws_sdk_lambda::config::Builder {
    builder
        .behavior_version(BehaviorVersion::latest())
        // Never retry inside the SDK: whether an invocation is sent again, and where, is
        // warmgate's decision (invariant 4). Standard mode would retry throttles, 5xx and
        // transport errors, some of them after the function ran.
        .retry_config(RetryConfig::disabled())
        // Only a connect timeout. No read timeout: an inference may keep the answer back for
        // 30 s or more, and `InvokeRequest::timeout` bounds the whole call instead. Stating
        // every field also keeps timeouts from the shared config out.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .disable_read_timeout()
                .disable_operation_timeout()
                .disable_operation_attempt_timeout()
                .build(),
        )
        // Stalled-stream protection is off. It would cancel a transfer whose throughput stays
        // below 1 B/s past a grace period (5 s by default). Invoke bodies are buffered, at most
        // 6 MB each way, and the request's own timeout already bounds the whole call, so it
        // protects nothing here; yet it could only fire after bytes were sent, as a connector
        // *timeout* that would be indistinguishable from the connect timeout. With it off, a
        // timeout inside the connector is always the connect timeout, so nothing was sent
        // (see `dispatch_execution`), and a 30 s inference is never cut short by a stall check.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
}

#[async_trait::async_trait]
impl Invoker for LambdaClient {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let InvokeRequest {
            function_name,
            qualifier,
            payload,
            client_context,
            invocation_type,
            timeout,
        } = req;
        let payload = (!payload.is_empty()).then(|| Blob::new(payload.to_vec()));
        let send = self
            .client
            .invoke()
            .function_name(function_name.as_str())
            .set_qualifier(qualifier)
            .set_client_context(client_context)
            .invocation_type(invocation_type.to_sdk())
            // Lambda ignores it for Event and DryRun, and answers those without a tail.
            .log_type(LogType::Tail)
            .set_payload(payload)
            .send();
        match tokio::time::timeout(timeout, send).await {
            Err(_elapsed) => {
                tracing::debug!(function = %function_name, ?timeout, "lambda invoke timed out");
                Err(InvokeError::timed_out(&function_name, timeout))
            }
            Ok(Err(err)) => {
                let err = from_sdk_error(err, classify_invoke_error);
                tracing::debug!(function = %function_name, error = %err, executed = ?err.executed, "lambda invoke failed");
                Err(err)
            }
            Ok(Ok(output)) => Ok(InvokeResponse::from_output(output)),
        }
    }
}

/// What an operation-specific look at a typed service error adds.
struct Refined {
    kind: InvokeErrorKind,
    executed: Execution,
    retry_after: Option<Duration>,
}

/// Typed `InvokeError` variants into our kinds. Variants not named here fall back to the error
/// code and HTTP status ([`classify_service`]).
fn classify_invoke_error(err: &SdkInvokeError) -> Option<Refined> {
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
fn from_sdk_error<E>(
    err: SdkError<E, HttpResponse>,
    refine: fn(&E) -> Option<Refined>,
) -> InvokeError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
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
                kind,
                message,
                retry_after,
                executed,
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
    }
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
    use base64::Engine as _;

    const COLD_TAIL: &str = "START RequestId: r1 Version: 1\nEND RequestId: r1\nREPORT RequestId: r1\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 1480.22 ms\t\n";
    const WARM_TAIL: &str = "START RequestId: r2 Version: 1\nEND RequestId: r2\nREPORT RequestId: r2\tDuration: 2.00 ms\tBilled Duration: 2 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\t\n";

    fn err(kind: InvokeErrorKind, executed: Execution) -> InvokeError {
        InvokeError::new(kind, executed, "test")
    }

    fn response(raw_tail: Option<&str>) -> InvokeResponse {
        let output = InvokeOutput::builder()
            .status_code(200)
            .payload(Blob::new("{}"))
            .executed_version("1")
            .set_log_result(raw_tail.map(|t| base64::engine::general_purpose::STANDARD.encode(t)))
            .build();
        InvokeResponse::from_output(output)
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
    fn cold_start_is_unknown_without_a_tail() {
        let r = response(None);
        assert_eq!(r.log_tail, None);
        assert_eq!(r.report, None);
        assert_eq!(r.cold_start(), None);
        // A tail without a REPORT line is unknown too, not warm.
        assert_eq!(response(Some("some output\n")).cold_start(), None);
        let mut hand_made = response(Some(WARM_TAIL));
        hand_made.log_tail = None;
        assert_eq!(
            hand_made.cold_start(),
            None,
            "no tail means unknown, whatever the report"
        );
    }

    #[test]
    fn cold_start_from_the_report() {
        let cold = response(Some(COLD_TAIL));
        assert_eq!(cold.cold_start(), Some(true));
        assert_eq!(
            cold.report.as_ref().unwrap().init_duration,
            Some(Duration::from_micros(1_480_220))
        );
        assert_eq!(cold.payload, Bytes::from_static(b"{}"));
        assert_eq!(cold.executed_version.as_deref(), Some("1"));
        assert_eq!(response(Some(WARM_TAIL)).cold_start(), Some(false));
        let restored = "REPORT RequestId: r3\tDuration: 8.00 ms\tBilled Duration: 8 ms\tMemory Size: 512 MB\tMax Memory Used: 90 MB\tRestore Duration: 300.10 ms\tBilled Restore Duration: 200 ms\t\n";
        assert_eq!(response(Some(restored)).cold_start(), Some(true));
    }

    #[test]
    fn event_and_dry_run_answers_have_empty_payloads() {
        for status in [202, 204] {
            let r =
                InvokeResponse::from_output(InvokeOutput::builder().status_code(status).build());
            assert_eq!(r.status, status as u16);
            assert!(r.payload.is_empty());
            assert_eq!(r.cold_start(), None);
        }
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

    #[test]
    fn clients_are_configured_for_warmgate() {
        // Built outside any runtime, as main may do.
        let client = LambdaClient::for_endpoint("http://127.0.0.1:9", "us-east-1");
        let conf = client.sdk().config();
        let retry = conf.retry_config().expect("retry config");
        assert_eq!(retry.max_attempts(), 1);
        let timeouts = conf.timeout_config().expect("timeout config");
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.read_timeout(), None);
        assert_eq!(timeouts.operation_timeout(), None);
        let ssp = conf
            .stalled_stream_protection()
            .expect("stalled stream config");
        assert!(!ssp.upload_enabled() && !ssp.download_enabled());
        let _shared_pool = client.clone();
    }

    /// A port nobody listens on: the connection is refused before anything is sent.
    #[tokio::test]
    async fn refused_connection_is_not_executed() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = LambdaClient::for_endpoint(&format!("http://127.0.0.1:{port}"), "us-east-1");
        let e = client
            .invoke(InvokeRequest::new("f", "{}", Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(e.kind, InvokeErrorKind::Transport, "{e}");
        assert_eq!(e.executed, Execution::NotExecuted, "{e}");
        assert!(e.message.to_lowercase().contains("refused"), "{e}");
        assert!(e.may_retry_elsewhere(false));
    }

    /// A socket that accepts (in the kernel's backlog) but never answers: the request's own
    /// timeout fires, and the function may have run.
    #[tokio::test]
    async fn silent_endpoint_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = LambdaClient::for_endpoint(&format!("http://127.0.0.1:{port}"), "us-east-1");
        let e = client
            .invoke(InvokeRequest::new("f", "{}", Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert_eq!(e.kind, InvokeErrorKind::Timeout, "{e}");
        assert_eq!(e.executed, Execution::MayHaveExecuted);
        assert!(!e.may_retry_elsewhere(false));
        assert!(e.may_retry_elsewhere(true));
        drop(listener);
    }
}
