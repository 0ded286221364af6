//! A gateway in front of an emulator, both on 127.0.0.1:0, for integration tests.
#![allow(dead_code)]

pub mod cache;
pub mod process;
pub mod redis;

use std::time::Duration;

use warmgate::emulator::RunningEmulator;
use warmgate::gateway::RunningGateway;
use warmgate::stack::LocalStack;

/// Emulated functions: a model with a 2 s cold start on two aliases of one version, a
/// function whose aliases run different code, one that always fails, a slow one and one
/// with a reserved concurrency of 1.
pub const EMULATOR: &str = r#"
[settings]
seed = 3
idle_reclaim_s = 600

[[function]]
name = "sentiment"
memory_mb = 2048
timeout_s = 30
init_ms = 2000
duration_ms = 40
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "standby"
version = "1"

[[function]]
name = "mixed"
init_ms = 100
duration_ms = 10
[[function.version]]
code = "a"
[[function.version]]
code = "b"
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "other"
version = "2"

[[function]]
name = "flaky"
init_ms = 100
duration_ms = 10
error_rate = 1.0

[[function]]
name = "slow"
timeout_s = 30
init_ms = 100
duration_ms = 5000

[[function]]
name = "limited"
reserved_concurrency = 1
timeout_s = 30
init_ms = 100
duration_ms = 1000
"#;

/// The gateway's allow-list over those functions.
pub const GATEWAY: &str = r#"
[gateway]
max_in_flight = 64

[backend]
kind = "endpoint"
url = "http://placeholder"

[access]
open = true

[[function]]
name = "sentiment"
targets = ["live", "standby"]

[[function]]
name = "mixed"
targets = ["live", "other"]

[[function]]
name = "flaky"

[[function]]
name = "slow"
timeout_ms = 1000

[[function]]
name = "limited"
idempotent = false

[[function]]
name = "tiny"
lambda_name = "sentiment"
targets = ["live"]
max_payload_bytes = 64
"#;

/// One function, `steady:live` (version 1), whose 30 s calls keep an environment busy: the
/// provisioning tests' emulator.
pub const STEADY: &str = r#"
[settings]
seed = 7
idle_reclaim_s = 600

[[function]]
name = "steady"
memory_mb = 2048
timeout_s = 120
init_ms = 500
duration_ms = 30000
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
"#;

pub struct Stack {
    pub emulator: RunningEmulator,
    pub gateway: RunningGateway,
    pub http: reqwest::Client,
}

impl Stack {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr())
    }

    /// An unchanged AWS SDK Lambda client whose endpoint is the gateway.
    pub fn sdk(&self) -> aws_sdk_lambda::Client {
        warmgate::lambda::LambdaClient::for_endpoint(&self.url(""), "us-east-1")
            .sdk()
            .clone()
    }

    pub async fn invoke(&self, function: &str, body: &'static str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/functions/{function}/invoke")))
            .body(body)
            .send()
            .await
            .expect("the gateway answers")
    }
}

/// Starts an emulator of `emulator_toml` and a gateway of `gateway_toml` in front of it;
/// waits until ready unless `expect_ready` is false.
pub async fn start_on(emulator_toml: &str, gateway_toml: &str, expect_ready: bool) -> Stack {
    let wait = if expect_ready {
        Duration::from_secs(30)
    } else {
        Duration::ZERO
    };
    let LocalStack { emulator, gateway } =
        LocalStack::start(emulator_toml, gateway_toml, wait).await;
    if expect_ready {
        gateway
            .wait_ready(Duration::ZERO)
            .await
            .expect("targets resolve");
    }
    Stack {
        emulator,
        gateway,
        http: reqwest::Client::new(),
    }
}

/// The emulated functions above, with `gateway_toml` in front of them.
pub async fn start_with(gateway_toml: &str, expect_ready: bool) -> Stack {
    start_on(EMULATOR, gateway_toml, expect_ready).await
}

pub async fn start() -> Stack {
    start_with(GATEWAY, true).await
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
}

/// A control plane for in-process tests: every target is version 1 of the same code, 128 MB,
/// without provisioned concurrency.
pub struct SameCode;

#[async_trait::async_trait]
impl warmgate::lambda::ControlPlane for SameCode {
    async fn target_config(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<warmgate::lambda::TargetConfig, warmgate::lambda::InvokeError> {
        Ok(warmgate::lambda::TargetConfig {
            function_name: function.into(),
            qualifier: qualifier.map(str::to_string),
            version: "1".into(),
            code_sha256: "same-code".into(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{function}"),
            architecture: Default::default(),
            runtime: None,
            snap_start: false,
        })
    }

    async fn allocated_provisioned(
        &self,
        _: &str,
        _: &str,
    ) -> Result<u32, warmgate::lambda::InvokeError> {
        Ok(0)
    }
}

/// The start of a replica's configuration: Lambda at `endpoint` (an emulator) on a clock
/// `scale` times real time, open to any caller (the emulator is local).
pub fn endpoint_backend_toml(endpoint: &str, scale: f64) -> String {
    format!(
        "[backend]\nkind = \"endpoint\"\nurl = \"{endpoint}\"\ntime_scale = {scale}\n\n[access]\nopen = true\n"
    )
}

/// One gateway replica of `config`, invoking through `invoker` and reading targets through
/// `control`, on a clock `scale` times real time, bound to 127.0.0.1:0 and ready (the
/// multi-replica tests: `provisioning_lease.rs`, `keep_alive_replicas.rs`,
/// `daily_rises_kept.rs`).
pub async fn serve_replica(
    config: warmgate::config::Config,
    invoker: std::sync::Arc<dyn warmgate::lambda::Invoker>,
    control: std::sync::Arc<dyn warmgate::lambda::ControlPlane>,
    scale: f64,
) -> RunningGateway {
    let local = Some("127.0.0.1:0".parse().unwrap());
    let clock = std::sync::Arc::new(warmgate::clock::TokioClock::scaled(scale));
    let running = warmgate::gateway::Gateway::new(config, invoker, control, clock)
        .bind(local, local)
        .await
        .expect("the gateway binds");
    running
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("targets resolve");
    running
}
