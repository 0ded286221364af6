//! [`LambdaClient`]: the [`Invoker`] on aws-sdk-lambda, configured for warmgate (no retries
//! inside the SDK, only a connect timeout), and `GetFunctionConfiguration` for a target.

use std::time::Duration;

use crate::platform::spec::Architecture;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_lambda::operation::invoke::InvokeOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType as SdkInvocationType, LogType};
use bytes::Bytes;

use super::error::{classify_invoke_error, from_sdk_error};
use super::{
    decode_log_result, parse_log_tail, Execution, InvocationType, InvokeError, InvokeErrorKind,
    InvokeRequest, InvokeResponse, Invoker, TargetConfig, TraceContext,
};

/// How long the client waits for a TCP (and TLS) connection to the Lambda endpoint. The SDK's
/// default for the latest behavior version, stated here because the error classification
/// (`dispatch_execution` in `error`) relies on the connect timeout being the only timeout
/// inside the HTTP connector.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// How many attempts read-only control-plane calls get (the SDK's standard mode).
const CONTROL_PLANE_ATTEMPTS: u32 = 3;

impl InvocationType {
    fn to_sdk(self) -> SdkInvocationType {
        match self {
            InvocationType::RequestResponse => SdkInvocationType::RequestResponse,
            InvocationType::Event => SdkInvocationType::Event,
            InvocationType::DryRun => SdkInvocationType::DryRun,
        }
    }
}

impl InvokeResponse {
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
        let architecture = match output.architectures().first() {
            Some(aws_sdk_lambda::types::Architecture::Arm64) => Architecture::Arm64,
            _ => Architecture::X86_64,
        };
        let runtime = output.runtime().map(|r| r.as_str().to_owned());
        let snap_start = output.snap_start().is_some_and(|s| {
            s.optimization_status() == Some(&aws_sdk_lambda::types::SnapStartOptimizationStatus::On)
        });
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
            architecture,
            runtime,
            snap_start,
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
            trace,
        } = req;
        let payload = (!payload.is_empty()).then(|| Blob::new(payload.to_vec()));
        let invoke = self
            .client
            .invoke()
            .function_name(function_name.as_str())
            .set_qualifier(qualifier)
            .set_client_context(client_context)
            .invocation_type(invocation_type.to_sdk())
            // Lambda ignores it for Event and DryRun, and answers those without a tail.
            .log_type(LogType::Tail)
            .set_payload(payload);
        let send: futures::future::BoxFuture<'_, _> = if trace.is_empty() {
            Box::pin(invoke.send())
        } else {
            Box::pin(
                invoke
                    .customize()
                    .mutate_request(move |request| {
                        let headers = request.headers_mut();
                        if let Some(id) = &trace.amzn_trace_id {
                            headers.insert(TraceContext::AMZN_TRACE_ID, id.clone());
                        }
                        if let Some(parent) = &trace.traceparent {
                            headers.insert(TraceContext::TRACEPARENT, parent.clone());
                        }
                    })
                    .send(),
            )
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const COLD_TAIL: &str = "START RequestId: r1 Version: 1\nEND RequestId: r1\nREPORT RequestId: r1\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 1480.22 ms\t\n";
    const WARM_TAIL: &str = "START RequestId: r2 Version: 1\nEND RequestId: r2\nREPORT RequestId: r2\tDuration: 2.00 ms\tBilled Duration: 2 ms\tMemory Size: 1024 MB\tMax Memory Used: 180 MB\t\n";

    fn response(raw_tail: Option<&str>) -> InvokeResponse {
        let output = InvokeOutput::builder()
            .status_code(200)
            .payload(Blob::new("{}"))
            .executed_version("1")
            .set_log_result(raw_tail.map(|t| base64::engine::general_purpose::STANDARD.encode(t)))
            .build();
        InvokeResponse::from_output(output)
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
