//! The `warmgate` binary: one CLI, a verb per job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use warmgate::clock::TokioClock;
use warmgate::emulator::Emulator;
use warmgate::platform::PlatformSpec;

#[derive(Debug, Parser)]
#[command(
    name = "warmgate",
    version,
    about = "Serve AI inference from AWS Lambda without cold starts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the emulated Lambda alone (the Lambda REST API over the platform model).
    Emulator {
        /// The emulator's TOML file.
        #[arg(long, default_value = "config/emulator.toml")]
        config: PathBuf,
        /// Where to listen.
        #[arg(
            long,
            default_value = "127.0.0.1:9001",
            env = "WARMGATE_EMULATOR_LISTEN"
        )]
        listen: SocketAddr,
        /// How much faster than real time the emulated clock runs (60: a real second is an
        /// emulated minute of idle).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Emulator {
            config,
            listen,
            time_scale,
        } => run_emulator(config, listen, time_scale).await,
    }
}

async fn run_emulator(config: PathBuf, listen: SocketAddr, time_scale: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        time_scale.is_finite() && time_scale > 0.0,
        "--time-scale must be a positive number, got {time_scale}"
    );
    let spec = PlatformSpec::from_file(&config)?;
    let functions = spec.functions.len();
    let emulator = Emulator::new(spec, Arc::new(TokioClock::scaled(time_scale)));
    let running = emulator
        .bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        endpoint = %running.endpoint_url(),
        functions,
        time_scale,
        "emulator ready; point an AWS SDK at the endpoint with any static credentials"
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down: finishing in-flight invocations");
    running.shutdown().await?;
    Ok(())
}
