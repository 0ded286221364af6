//! A local stack: the emulator and a gateway in front of it, both on loopback.
//!
//! What tests, benches and demos start when they want the whole product without a cloud
//! account. The gateway talks to the emulator over HTTP through aws-sdk-lambda, exactly as
//! it talks to AWS; only this wiring knows both.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::TokioClock;
use anyhow::Context;

use crate::config::{Backend, Config};
use crate::emulator::{Emulator, RunningEmulator};
use crate::gateway::{Gateway, RunningGateway};
use crate::lambda::LambdaClient;
use crate::platform::PlatformSpec;

/// The Lambda client a configuration's backend asks for: AWS, an endpoint, or the embedded
/// emulator, started here from its file on a loopback port (returned, to be shut down).
pub async fn lambda_for(
    backend: &Backend,
) -> anyhow::Result<(LambdaClient, Option<RunningEmulator>)> {
    Ok(match backend {
        Backend::Aws { region } => (LambdaClient::for_aws(region.clone()).await, None),
        Backend::Endpoint { url, region, .. } => (LambdaClient::for_endpoint(url, region), None),
        Backend::Embedded { config, time_scale } => {
            let running = start_emulator(config, "127.0.0.1:0".parse()?, *time_scale).await?;
            tracing::info!(endpoint = %running.endpoint_url(), "embedded emulator started");
            let client = LambdaClient::for_endpoint(&running.endpoint_url(), "us-east-1");
            (client, Some(running))
        }
    })
}

/// Starts the emulator from its TOML file on `listen`, its clock `time_scale` times faster
/// than real time.
pub async fn start_emulator(
    config: &std::path::Path,
    listen: std::net::SocketAddr,
    time_scale: f64,
) -> anyhow::Result<RunningEmulator> {
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "the time scale must be a positive number, got {time_scale}"
    );
    let spec = PlatformSpec::from_file(config)?;
    let emulator = Emulator::new(spec, Arc::new(TokioClock::scaled(time_scale)));
    emulator
        .bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// An emulator and a gateway, serving on ports of their own on 127.0.0.1.
pub struct LocalStack {
    pub emulator: RunningEmulator,
    pub gateway: RunningGateway,
}

impl LocalStack {
    /// Starts the emulator from `emulator_toml` and a gateway from `gateway_toml` (whose
    /// backend is replaced by the emulator's endpoint), then waits until the gateway's
    /// targets are resolved (or `ready_within` passes).
    ///
    /// # Panics
    /// On invalid TOML or a port that cannot be bound: this is for tests and benches.
    pub async fn start(emulator_toml: &str, gateway_toml: &str, ready_within: Duration) -> Self {
        let spec = PlatformSpec::from_toml(emulator_toml).expect("a valid emulator spec");
        let emulator = Emulator::new(spec, Arc::new(TokioClock::new()))
            .bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("the emulator binds");
        let config =
            Config::parse(gateway_toml, [], "local stack").expect("a valid gateway config");
        let lambda = LambdaClient::for_endpoint(&emulator.endpoint_url(), "us-east-1");
        let local = Some("127.0.0.1:0".parse().expect("an address"));
        let gateway = Gateway::over_lambda(config, lambda)
            .bind(local, local)
            .await
            .expect("the gateway binds");
        let _ = gateway.wait_ready(ready_within).await;
        Self { emulator, gateway }
    }

    /// The URL of `path` on the gateway.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr())
    }
}
