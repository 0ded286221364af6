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
        let answer = self
            .sdk()
            .get_provisioned_concurrency_config()
            .function_name(function)
            .qualifier(qualifier)
            .send()
            .await;
        match answer {
            Ok(config) => Ok(config
                .allocated_provisioned_concurrent_executions()
                .unwrap_or(0)
                .max(0) as u32),
            Err(e) => match e.into_service_error() {
                e if e.is_provisioned_concurrency_config_not_found_exception() => Ok(0),
                e if e.is_resource_not_found_exception() => Ok(0),
                e => Err(InvokeError::new(
                    InvokeErrorKind::Service,
                    Execution::NotExecuted,
                    format!("{function}:{qualifier}: GetProvisionedConcurrencyConfig: {e}"),
                )),
            },
        }
    }
}
