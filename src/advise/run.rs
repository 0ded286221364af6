//! The shell of `warmgate advise`: reads the configuration, asks Lambda for each function's
//! settings, reads the history, replays it, and hands the figures to the pure advice.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use parking_lot::Mutex;
use serde::Serialize;

use super::{
    architecture_advice, levels_by_hour, median, memory_advice, snap_start_advice, table, Expected,
    FunctionAdvice, ObservedCalls, ProvisionedAdvice,
};
use crate::clock::Time;
use crate::config::Config;
use crate::lambda::ControlPlane;
use crate::policy::cost::Prices;
use crate::policy::{Action, FunctionInfo, Observation, Policy};
use crate::sim::cli::SimulateArgs;
use crate::sim::engine::{self, Figures};
use crate::sim::trace::{read_history, HistoryTrace, Trace};

/// Recommend provisioned concurrency, memory, architecture and SnapStart per function, from
/// the gateway's history and each function's settings on Lambda.
#[derive(Debug, Clone, clap::Args)]
pub struct AdviseArgs {
    /// The gateway's TOML file: its functions, its backend, and its `[history] path`.
    #[arg(long, env = "WARMGATE_CONFIG", default_value = "config/warmgate.toml")]
    pub config: PathBuf,
    /// The history file to read, in place of the configuration's `[history] path`.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Seed of the replays' draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Everything `advise` found.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub history: PathBuf,
    pub functions: Vec<FunctionAdvice>,
    /// Configured functions the history has no call of.
    pub without_calls: Vec<String>,
}

impl Advice {
    /// The advice as a table for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!("From {}:\n\n", self.history.display());
        out += &table(&self.functions);
        if !self.without_calls.is_empty() {
            out += &format!(
                "No calls in the history for: {}\n",
                self.without_calls.join(", ")
            );
        }
        out
    }
}

/// `warmgate advise`: prints the advice.
pub async fn run(args: AdviseArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let (lambda, emulator) = crate::stack::lambda_for(&config.backend).await?;
    let history = match (&args.history, &config.history.path) {
        (Some(path), _) | (None, Some(path)) => path.clone(),
        (None, None) => bail!(
            "{}: no [history] path, and no --history: advise reads the calls the gateway \
             recorded",
            args.config.display()
        ),
    };
    let advice = advise(&config, &lambda, &history, args.seed).await;
    if let Some(emulator) = emulator {
        emulator.shutdown().await?;
    }
    let advice = advice?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&advice)?);
    } else {
        print!("{}", advice.table());
    }
    Ok(())
}

/// The advice for `config`'s functions, from their settings through `control` and their calls
/// in the history at `history`, replayed with `seed`.
pub async fn advise(
    config: &Config,
    control: &dyn ControlPlane,
    history: &std::path::Path,
    seed: u64,
) -> anyhow::Result<Advice> {
    let read = read_history(history)
        .with_context(|| format!("cannot read the history {}", history.display()))?;
    let mut advice = Advice {
        history: history.to_path_buf(),
        functions: Vec::new(),
        without_calls: Vec::new(),
    };
    for function in &config.functions {
        let Some(index) = read
            .trace
            .functions
            .iter()
            .position(|f| f.id == function.name)
        else {
            advice.without_calls.push(function.name.clone());
            continue;
        };
        let target = function.targets[0].clone();
        let settings = control
            .target_config(&function.name, Some(&target))
            .await
            .with_context(|| format!("GetFunctionConfiguration of {}:{target}", function.name))?;
        let today = control
            .provisioned(&function.name, &target)
            .await
            .with_context(|| {
                format!(
                    "GetProvisionedConcurrencyConfig of {}:{target}",
                    function.name
                )
            })?
            .map_or(0, |p| p.requested);
        // The history is read once; each replay gets the one function `--function-id` keeps.
        let only = Trace {
            name: read.trace.name.clone(),
            format: read.trace.format,
            functions: vec![read.trace.functions[index].clone()],
            duration: read.trace.duration,
        };
        let (history_path, name) = (history.to_path_buf(), function.name.clone());
        let replayed =
            tokio::task::spawn_blocking(move || replay(&history_path, only, &name, today, seed))
                .await??;
        advice.functions.push(function_advice(
            &read, index, &target, &settings, today, replayed,
        ));
    }
    Ok(advice)
}

/// The three replays of one function, and the planner's levels.
struct Replayed {
    figures: Vec<Figures>,
    /// `(seconds from the history's start, level)` as the planner set them.
    levels: Vec<(f64, u32)>,
    command: String,
}

/// The `warmgate simulate` arguments that replay `function`'s calls: on demand only, at
/// today's level, and under the planner.
fn simulate_command(
    history: &std::path::Path,
    function: &str,
    today: u32,
    seed: u64,
) -> Vec<String> {
    [
        "warmgate",
        "simulate",
        "--trace",
        &history.display().to_string(),
        "--function-id",
        function,
        "--policy",
        &format!("none,pc-fixed-{today},pc-planner"),
        "--warmup-minutes",
        "0",
        "--seed",
        &seed.to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Replays one function's calls (`trace`, read from `history`) as `warmgate simulate` would
/// with [`simulate_command`]'s arguments (the same parsing, the same selection, the same
/// settings), recording the planner's levels on the way.
fn replay(
    history: &std::path::Path,
    trace: Trace,
    function: &str,
    today: u32,
    seed: u64,
) -> anyhow::Result<Replayed> {
    #[derive(Parser)]
    struct Simulate {
        #[command(flatten)]
        args: SimulateArgs,
    }
    let command = simulate_command(history, function, today, seed);
    let args = Simulate::try_parse_from(&command[1..])?.args;
    let (settings, baselines, trace) = crate::sim::cli::prepare_loaded(&args, trace)?;
    let levels = Arc::new(Mutex::new(Vec::new()));
    let candidates = baselines
        .iter()
        .map(|(label, baseline)| {
            let mut candidate = baseline.candidate(label, &trace, &settings);
            if label == "pc-planner" {
                candidate.policy = Box::new(Recorded {
                    inner: candidate.policy,
                    levels: levels.clone(),
                });
            }
            candidate
        })
        .collect();
    let figures = engine::compare(&trace, &settings, candidates, &|_, _| {});
    let levels = levels.lock().clone();
    Ok(Replayed {
        figures,
        levels,
        command: command.join(" "),
    })
}

/// A policy that notes the provisioned levels it sets.
struct Recorded {
    inner: Box<dyn Policy>,
    levels: Arc<Mutex<Vec<(f64, u32)>>>,
}

impl Recorded {
    fn note(&self, now: Time, actions: Vec<Action>) -> Vec<Action> {
        for action in &actions {
            if let Action::SetProvisioned { concurrency, .. } = action {
                self.levels.lock().push((now.as_secs_f64(), *concurrency));
            }
        }
        actions
    }
}

impl Policy for Recorded {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        let actions = self.inner.start(functions, now);
        self.note(now, actions)
    }
    fn observe(&mut self, observation: &Observation) {
        self.inner.observe(observation);
    }
    fn act(&mut self, now: Time) -> Vec<Action> {
        let actions = self.inner.act(now);
        self.note(now, actions)
    }
    fn next_wake(&self) -> Option<Time> {
        self.inner.next_wake()
    }
    fn provisioned_ready(
        &mut self,
        function: crate::policy::FunctionId,
        after: std::time::Duration,
    ) {
        self.inner.provisioned_ready(function, after);
    }
    fn finished_minutes(
        &mut self,
    ) -> Vec<(
        crate::policy::FunctionId,
        u64,
        crate::policy::provisioning::MinuteLoad,
    )> {
        self.inner.finished_minutes()
    }
    fn fleet_minute(
        &mut self,
        function: crate::policy::FunctionId,
        minute: u64,
        total: crate::policy::provisioning::MinuteLoad,
    ) {
        self.inner.fleet_minute(function, minute, total);
    }
}

/// A replay's figures for its one function: the whole bill, provisioned allocation included.
fn expected(figures: &Figures) -> Expected {
    Expected {
        usd: figures.bill_usd,
        cold_starts: figures.cold_starts,
        invocations: figures.invocations,
    }
}

fn function_advice(
    read: &HistoryTrace,
    index: usize,
    target: &str,
    settings: &crate::lambda::TargetConfig,
    today: u32,
    replayed: Replayed,
) -> FunctionAdvice {
    let traced = &read.trace.functions[index];
    let seen = &read.observed[index];
    let [none, fixed, planner] = [0, 1, 2].map(|i| expected(&replayed.figures[i]));
    let hours = read.trace.duration.as_secs_f64() / 3600.0;
    let recommended_by_hour = levels_by_hour(&replayed.levels, hours.ceil() as usize);
    let recommended = recommended_by_hour.iter().any(|&l| l > 0);
    // The dollars that scale with GB-s under the planner: all but the request charges.
    let prices = Prices::us_east_1(settings.architecture);
    let gb_s_usd = (planner.usd - planner.invocations as f64 * prices.per_request).max(0.0);
    let (init_p50, restore_p50) = (median(&seen.inits_ms), median(&seen.restores_ms));
    FunctionAdvice {
        function: traced.id.clone(),
        target: target.to_string(),
        memory_mb: settings.memory_mb,
        architecture: settings.architecture,
        runtime: settings.runtime.clone(),
        snap_start: settings.snap_start,
        observed: ObservedCalls {
            invocations: traced.arrivals.len(),
            hours,
            start_unix_s: (read.start_unix_ms / 1e3) as u64,
            cold_starts: seen.inits_ms.len() + seen.restores_ms.len(),
            init_p50_ms: init_p50,
            restore_p50_ms: restore_p50,
            max_memory_used_mb: seen.max_memory_used_mb,
        },
        provisioned: ProvisionedAdvice {
            today,
            recommended_by_hour,
            on_demand_only: none,
            today_setting: fixed,
            recommended: planner,
            reproduce: replayed.command,
        },
        memory: memory_advice(settings.memory_mb, seen.max_memory_used_mb, gb_s_usd),
        architecture_change: architecture_advice(settings.architecture, gb_s_usd),
        snap_start_advice: snap_start_advice(
            settings.runtime.as_deref(),
            settings.snap_start,
            init_p50,
            restore_p50,
            recommended,
        ),
    }
}
