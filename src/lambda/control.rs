//! The control-plane calls the gateway makes besides Invoke: what a target runs, and how much
//! provisioned concurrency it has. A trait, so that the gateway can be driven by a scripted
//! backend in tests as well as by aws-sdk-lambda.

use super::{Execution, InvokeError, InvokeErrorKind, LambdaClient, TargetConfig};

#[async_trait::async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    /// `GetFunctionConfiguration` of a function and qualifier.
    async fn target_config(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<TargetConfig, InvokeError>;

    /// Allocated provisioned concurrency of a target: 0 when none is configured.
    async fn allocated_provisioned(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<u32, InvokeError>;

    /// `GetProvisionedConcurrencyConfig`: `None` when the target has none.
    async fn provisioned(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<ProvisionedState>, InvokeError> {
        let _ = (function, qualifier);
        Err(unsupported("GetProvisionedConcurrencyConfig"))
    }

    /// `PutProvisionedConcurrencyConfig` (`n` > 0) or `DeleteProvisionedConcurrencyConfig`
    /// (`n` = 0).
    async fn set_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        n: u32,
    ) -> Result<(), InvokeError> {
        let _ = (function, qualifier, n);
        Err(unsupported("PutProvisionedConcurrencyConfig"))
    }
}

/// A target's provisioned-concurrency configuration, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedState {
    pub requested: u32,
    pub allocated: u32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: String,
    pub reason: Option<String>,
}

fn unsupported(call: &str) -> InvokeError {
    InvokeError::new(
        InvokeErrorKind::Service,
        Execution::NotExecuted,
        format!("{call} is not supported by this control plane"),
    )
}

/// A control-plane error as an [`InvokeError`]: throttles apart, so that callers back off.
fn control_error(
    call: &str,
    function: &str,
    qualifier: &str,
    throttled: bool,
    detail: String,
) -> InvokeError {
    let kind = if throttled {
        InvokeErrorKind::Throttled { reason: None }
    } else {
        InvokeErrorKind::Service
    };
    InvokeError::new(
        kind,
        Execution::NotExecuted,
        format!("{function}:{qualifier}: {call}: {detail}"),
    )
}

#[async_trait::async_trait]
impl ControlPlane for LambdaClient {
    async fn target_config(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<TargetConfig, InvokeError> {
        LambdaClient::target_config(self, function, qualifier).await
    }

    async fn allocated_provisioned(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<u32, InvokeError> {
        let state = ControlPlane::provisioned(self, function, qualifier).await?;
        Ok(state.map_or(0, |state| state.allocated))
    }

    async fn provisioned(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<ProvisionedState>, InvokeError> {
        let answer = self
            .sdk()
            .get_provisioned_concurrency_config()
            .function_name(function)
            .qualifier(qualifier)
            .send()
            .await;
        match answer {
            Ok(c) => Ok(Some(ProvisionedState {
                requested: c
                    .requested_provisioned_concurrent_executions()
                    .unwrap_or(0)
                    .max(0) as u32,
                allocated: c
                    .allocated_provisioned_concurrent_executions()
                    .unwrap_or(0)
                    .max(0) as u32,
                status: c.status().map_or("IN_PROGRESS", |s| s.as_str()).to_string(),
                reason: c.status_reason().map(str::to_string),
            })),
            Err(e) => match e.into_service_error() {
                e if e.is_provisioned_concurrency_config_not_found_exception() => Ok(None),
                e if e.is_resource_not_found_exception() => Ok(None),
                e => Err(control_error(
                    "GetProvisionedConcurrencyConfig",
                    function,
                    qualifier,
                    e.is_too_many_requests_exception(),
                    e.to_string(),
                )),
            },
        }
    }

    async fn set_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        n: u32,
    ) -> Result<(), InvokeError> {
        if n == 0 {
            let answer = self
                .sdk()
                .delete_provisioned_concurrency_config()
                .function_name(function)
                .qualifier(qualifier)
                .send()
                .await;
            return match answer {
                Ok(_) => Ok(()),
                Err(e) => match e.into_service_error() {
                    e if e.is_resource_not_found_exception() => Ok(()),
                    e => Err(control_error(
                        "DeleteProvisionedConcurrencyConfig",
                        function,
                        qualifier,
                        e.is_too_many_requests_exception(),
                        e.to_string(),
                    )),
                },
            };
        }
        let answer = self
            .sdk()
            .put_provisioned_concurrency_config()
            .function_name(function)
            .qualifier(qualifier)
            .provisioned_concurrent_executions(n as i32)
            .send()
            .await;
        answer.map(|_| ()).map_err(|e| {
            let e = e.into_service_error();
            control_error(
                "PutProvisionedConcurrencyConfig",
                function,
                qualifier,
                e.is_too_many_requests_exception(),
                e.to_string(),
            )
        })
    }
}
