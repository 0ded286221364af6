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
//! service asked us to wait. [`InvokeError::may_retry_elsewhere`] applies ARCHITECTURE.md invariant 4:
//! an invocation that may have executed is retried only for an idempotent function, while a
//! throttle returned before execution may go to another target.
//!
//! The SDK never retries an invocation by itself: the client is built with retries disabled
//! (the SDK's standard mode would retry `TooManyRequestsException` and transport errors, which
//! is warmgate's decision to make). Read-only control-plane calls made here
//! ([`LambdaClient::target_config`]) turn the standard retries back on for themselves.
//!
//! The request, answer and target types and the [`Invoker`] trait are here; errors and their
//! mapping from the SDK's in `error`, the aws-sdk-lambda client in `client`.

mod client;
mod control;
mod error;
pub mod report;
pub mod wire;

use std::time::Duration;

use bytes::Bytes;

use crate::platform::Start;

pub use client::{LambdaClient, CONNECT_TIMEOUT};
pub use control::{ControlPlane, ProvisionedState};
pub use error::{Execution, InvokeError, InvokeErrorKind};
pub use report::{decode_log_result, parse_log_tail, Report};

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
    /// The client's trace context, passed on to Lambda.
    pub trace: TraceContext,
}

/// A caller's trace context, as it came: Lambda continues an X-Ray trace from
/// `X-Amzn-Trace-Id` (the function sees it as `_X_AMZN_TRACE_ID`); W3C `traceparent` travels
/// along for tracers that read it. Both appear in the gateway's logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub amzn_trace_id: Option<String>,
    pub traceparent: Option<String>,
}

impl TraceContext {
    pub const AMZN_TRACE_ID: &'static str = "x-amzn-trace-id";
    pub const TRACEPARENT: &'static str = "traceparent";

    /// From a request's headers (values that are not visible ASCII are ignored).
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 256)
                .map(str::to_string)
        };
        Self {
            amzn_trace_id: value(Self::AMZN_TRACE_ID),
            traceparent: value(Self::TRACEPARENT),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.amzn_trace_id.is_none() && self.traceparent.is_none()
    }
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
            trace: TraceContext::default(),
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
    /// How the invocation met its environment, from its REPORT line.
    ///
    /// None when the backend sent no log tail: then the start is unknown, never "warm".
    /// Also `None` when the tail holds no readable REPORT line.
    pub fn start(&self) -> Option<Start> {
        self.log_tail.as_ref()?;
        self.report.as_ref().map(Report::start)
    }

    /// Whether the invocation met a new environment (a cold start or a SnapStart restore);
    /// `None` where [`InvokeResponse::start`] cannot tell.
    pub fn cold_start(&self) -> Option<bool> {
        self.start().map(|start| start == Start::Cold)
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
    /// Its architecture (the first of `Architectures`), which sets its prices.
    pub architecture: crate::platform::spec::Architecture,
    /// `Runtime`; none for a container image.
    pub runtime: Option<String>,
    /// SnapStart is on for this target (`OptimizationStatus` On): a new environment is
    /// restored from a snapshot instead of initialised.
    pub snap_start: bool,
}
