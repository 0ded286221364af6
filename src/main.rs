//! The `warmgate` binary: one CLI, a verb per job. `serve` is the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use warmgate::config::Config;
use warmgate::gateway::Gateway;

// The allocator: every request allocates its buffers, headers and SDK state, and glibc's
// malloc was a sixth of the gateway's CPU under load (docs/hot-path.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "warmgate",
    version,
    about = "Serve AI inference from AWS Lambda without cold starts"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default verb).
    Serve {
        /// The gateway's TOML file; `WARMGATE_<SECTION>__<KEY>` variables override its keys.
        #[arg(long, env = "WARMGATE_CONFIG", default_value = "config/warmgate.toml")]
        config: PathBuf,
    },
    /// Run the emulated Lambda alone (the Lambda REST API over the platform model).
    Emulator {
        /// The emulator's TOML file.
        #[arg(long, default_value = "config/emulator.toml")]
        config: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
        /// How much faster than real time the emulated clock runs (60: a real second is an
        /// emulated minute of idle).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Faults to inject from the start, a TOML file of `[<function>]` tables (see
        /// README, "Fault injection"); changeable at run time through `/_emulator/faults`.
        #[arg(long)]
        faults: Option<PathBuf>,
    },
    /// Replay a public trace through keep-alive and provisioning policies, in virtual time.
    Simulate(Box<warmgate::sim::cli::SimulateArgs>),
    /// Recommend provisioned concurrency, memory, architecture and SnapStart per function,
    /// from the gateway's history (`[history]`) and each function's settings on Lambda.
    Advise(warmgate::advise::AdviseArgs),
    /// Make a new API key: prints the key (give it to the caller) and the `[[access.keys]]`
    /// entry to configure (it holds only the key's SHA-256).
    Keygen {
        /// Who will hold the key, as logs and metrics will name them.
        #[arg(long)]
        id: String,
        /// The functions it may invoke; `*` for every one.
        #[arg(long, num_args = 1.., default_value = "*")]
        functions: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let service = matches!(
        cli.command,
        None | Some(Command::Serve { .. }) | Some(Command::Emulator { .. })
    );
    warmgate::telemetry::init_tracing(!service);
    let result = match cli.command.unwrap_or(Command::Serve {
        config: std::env::var_os("WARMGATE_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| "config/warmgate.toml".into()),
    }) {
        Command::Serve { config } => serve(&config).await,
        Command::Emulator {
            config,
            listen,
            time_scale,
            faults,
        } => run_emulator(&config, listen, time_scale, faults.as_deref()).await,
        Command::Keygen { id, functions } => {
            let (key, sha256) = warmgate::gateway::access::generate_key();
            let functions: Vec<String> = functions.iter().map(|f| format!("{f:?}")).collect();
            println!(
                "# The key, for the caller only (shown once; warmgate keeps only its hash):\n# {key}\n\
                 [[access.keys]]\nid = {id:?}\nsha256 = \"{sha256}\"\nfunctions = [{}]",
                functions.join(", ")
            );
            Ok(())
        }
        Command::Advise(args) => warmgate::advise::run(args).await,
        // A replay is CPU-bound and runs its policies on threads of its own.
        Command::Simulate(args) => {
            tokio::task::spawn_blocking(move || warmgate::sim::cli::run(*args)).await?
        }
    };
    if let Err(e) = result {
        // Logged once, in the log's format (JSON on Fargate), rather than also by anyhow.
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run_emulator(
    config: &Path,
    listen: SocketAddr,
    time_scale: f64,
    faults: Option<&Path>,
) -> anyhow::Result<()> {
    let running = warmgate::stack::start_emulator(config, listen, time_scale).await?;
    if let Some(file) = faults {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read faults {}", file.display()))?;
        let table: std::collections::BTreeMap<String, warmgate::emulator::faults::Faults> =
            toml::from_str(&text).with_context(|| format!("faults {}", file.display()))?;
        for (function, faults) in table {
            anyhow::ensure!(
                running.emulator().snapshot().function(&function).is_some(),
                "faults {}: no function {function:?} in the emulator",
                file.display()
            );
            running
                .emulator()
                .set_faults(&function, faults)
                .map_err(|e| anyhow::anyhow!("faults {}: [{function}] {e}", file.display()))?;
        }
    }
    tracing::info!(
        endpoint = %running.endpoint_url(),
        time_scale,
        "emulator ready; point an AWS SDK at the endpoint with any static credentials"
    );
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight invocations");
    running.shutdown().await?;
    Ok(())
}

/// The variable that may carry the whole configuration file's text, in place of `--config`:
/// on ECS it is filled from SSM Parameter Store (deploy/cloudformation/).
const CONFIG_TEXT_VAR: &str = "WARMGATE_CONFIG_TOML";

async fn serve(path: &Path) -> anyhow::Result<()> {
    let config = match std::env::var(CONFIG_TEXT_VAR) {
        Ok(text) if !text.trim().is_empty() => {
            Config::parse(&text, std::env::vars(), CONFIG_TEXT_VAR)?
        }
        _ => Config::load(path)?,
    };
    let (lambda, emulator) = warmgate::stack::lambda_for(&config.backend).await?;
    let grace = Duration::from_millis(config.gateway.shutdown_grace_ms);
    let first = config.functions[0].name.clone();
    // With the embedded emulator, its functions carry the extension where the warmer is
    // told they do: each end, and each call made to the emulator directly, is reported
    // under the function's public name.
    let public_names: std::collections::HashMap<String, String> = config
        .functions
        .iter()
        .map(|f| {
            (
                f.lambda_name.clone().unwrap_or_else(|| f.name.clone()),
                f.name.clone(),
            )
        })
        .collect();
    let ends_reported = config.warmer.enabled && config.warmer.ends_reported;
    let gateway = Gateway::over_lambda(config, lambda);
    let running = gateway.bind(None, None).await.context("cannot listen")?;
    let addr = running.addr();
    let public_names = std::sync::Arc::new(public_names);
    let _reporters = emulator.as_ref().filter(|_| ends_reported).map(|emulator| {
        let url = format!("http://{addr}");
        let (ends, calls) = (public_names.clone(), public_names.clone());
        (
            emulator.emulator().report_ends_to(
                &url,
                Duration::from_millis(100),
                move |lambda_name| ends.get(lambda_name).cloned(),
            ),
            emulator
                .emulator()
                .report_calls_to(&url, move |lambda_name| calls.get(lambda_name).cloned()),
        )
    });
    match running.wait_ready(Duration::from_secs(30)).await {
        Ok(()) => tracing::info!(%addr, "warmgate ready"),
        Err(problems) => tracing::warn!(?problems, "warmgate serving, some functions not ready"),
    }
    println!(
        "warmgate is ready. Try:\n  curl -s -i -X POST http://{addr}/v1/functions/{first}/invoke -d '{{\"text\":\"warm starts are lovely\"}}'\nMetrics: http://{}/metrics",
        running.metrics_addr()
    );
    shutdown_signal().await;
    tracing::info!(
        ?grace,
        "draining: not ready, no new connections, finishing requests in flight"
    );
    // A second signal means "now": exit without waiting for the drain.
    tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    running.shutdown(grace).await?;
    if let Some(emulator) = emulator {
        emulator.shutdown().await?;
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what ECS sends a task it stops).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
