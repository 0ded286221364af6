//! The command line: what to replay (a trace or a rate profile, and which part of it), shared
//! by `plan` and `run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use warmgate::sim::trace::{load, AzureOptions, LoadOptions, Trace};

use crate::client::Api;
use crate::plan::Init;
use crate::schedule::{Pick, RateProfile, Selection};

#[derive(Debug, Parser)]
#[command(
    name = "warmgate-load",
    version,
    about = "Open-loop, trace-driven load: replay a public trace's arrivals (or a rate profile) \
             against the emulator, a proxy or warmgate, with latency from each request's \
             intended send time"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write what the system under test needs: `emulator.toml` (for `warmgate emulator
    /// --config`) and a gateway configuration with warming off and one with it on.
    Plan(PlanArgs),
    /// Send the workload's requests at their times and report what came back.
    Run(RunArgs),
    /// One markdown table of several runs' summaries (the first is the reference for added
    /// latency).
    Compare {
        /// Output directories of `run`, each holding summary.json.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
}

/// What to replay.
#[derive(Debug, Clone, Args)]
pub struct Workload {
    /// A trace directory or file (Azure Functions 2019 or 2021, Azure LLM inference 2023).
    #[arg(long, conflicts_with = "rate", required_unless_present = "rate")]
    pub trace: Option<PathBuf>,
    /// A rate profile in place of a trace: RATE:SECONDS[,RATE:SECONDS...] in requests per
    /// second of trace time.
    #[arg(long)]
    pub rate: Option<RateProfile>,
    /// With a trace: at most N functions (those with arrivals in the window). With a rate
    /// profile: the number of functions it takes in turn (default 1).
    #[arg(long)]
    pub functions: Option<usize>,
    /// Which N functions of a trace.
    #[arg(long, value_enum, default_value = "first")]
    pub pick: Pick,
    /// Start of the window, in trace minutes.
    #[arg(long, default_value_t = 0.0)]
    pub from_minute: f64,
    /// Length of the window, in trace minutes (default: to the trace's end).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// How much faster than the trace to run: an hour of trace in 60/N minutes. Run the
    /// emulator (and the gateway's clock) at the same scale.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seed of the arrivals spread within a minute (Azure 2019) and of the emulator's draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A rate profile's handler duration, in trace ms.
    #[arg(long, default_value_t = 50)]
    pub duration_ms: u64,
    /// A rate profile's function memory, in MB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: u32,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub workload: Workload,
    /// Init durations of the emulated functions (the simulator's `--init`).
    #[arg(long, value_enum, default_value = "model-loading")]
    pub init: Init,
    /// Where to write the files.
    #[arg(long)]
    pub out: PathBuf,
    /// The emulator's URL, for the gateway configurations.
    #[arg(long, default_value = "http://127.0.0.1:19401")]
    pub emulator_url: String,
    /// The gateway's client listener.
    #[arg(long, default_value = "127.0.0.1:19402")]
    pub gateway_listen: String,
    /// The gateway's admin listener (metrics).
    #[arg(long, default_value = "127.0.0.1:19403")]
    pub metrics_listen: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub workload: Workload,
    /// The endpoint: `http://host:port`.
    #[arg(long)]
    pub target: String,
    #[arg(long, value_enum, default_value = "lambda")]
    pub api: Api,
    /// `?Qualifier=` on the Lambda path (e.g. `live`, the emulated functions' alias). Leave
    /// it out in front of warmgate, where it pins one target and skips routing.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// Figures leave out arrivals before this many trace minutes (the warmer learns from them).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_minutes: f64,
    /// A request without an answer after this many (wall) seconds counts as a timeout.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
    /// Processes under test (repeatable): their CPU per request (from /proc/PID/stat) and
    /// peak resident memory go into the report.
    #[arg(long = "watch-pid")]
    pub watch_pids: Vec<u32>,
    /// A name for the system under test, in the report.
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Where to write summary.json, report.md and the plots.
    #[arg(long)]
    pub out: PathBuf,
}

fn minutes(v: f64, flag: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        v.is_finite() && v >= 0.0,
        "{flag} must be a non-negative number of minutes, got {v}"
    );
    Ok(Duration::from_secs_f64(v * 60.0))
}

impl Workload {
    /// The trace (or the profile as one) cut to the selection, and a line that describes it.
    pub fn load(&self) -> anyhow::Result<(Trace, String)> {
        let (full, source) = match (&self.trace, &self.rate) {
            (Some(path), _) => {
                let opts = LoadOptions {
                    azure_2019: AzureOptions {
                        seed: self.seed,
                        ..AzureOptions::default()
                    },
                    ..LoadOptions::default()
                };
                let trace = load(path, &opts)
                    .with_context(|| format!("cannot read the trace {}", path.display()))?;
                let source = format!("{} trace {}", trace.format, trace.name);
                (trace, source)
            }
            (None, Some(rate)) => {
                let trace = rate.trace(
                    self.functions.unwrap_or(1),
                    self.memory_mb,
                    Duration::from_millis(self.duration_ms),
                );
                return Ok((trace, format!("rate profile {}", rate.label())));
            }
            (None, None) => anyhow::bail!("give --trace DIR or --rate RATE:SECONDS"),
        };
        let sel = Selection {
            functions: self.functions,
            pick: self.pick,
            from: minutes(self.from_minute, "--from-minute")?,
            length: self.minutes.map(|m| minutes(m, "--minutes")).transpose()?,
        };
        let cut = crate::schedule::select(&full, &sel).map_err(anyhow::Error::msg)?;
        let description = format!(
            "{source}, {} of its {} functions ({}), trace minutes {:.0} to {:.0}",
            cut.functions.len(),
            full.functions.len(),
            match self.pick {
                Pick::First => "the first",
                Pick::Busiest => "the busiest",
            },
            self.from_minute,
            self.from_minute + cut.duration.as_secs_f64() / 60.0
        );
        Ok((cut, description))
    }
}
