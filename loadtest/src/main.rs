//! `warmgate-load`: an open-loop, trace-driven load generator (docs/loadtest.md).
//!
//! `plan` writes the emulator spec and gateway configurations of a workload; `run` replays the
//! workload against an endpoint at a time scale, latency charged from each request's intended
//! send time; `compare` puts several runs in one table. Saturation throughput is wrk's job
//! (loadtest/compare.sh); this tool answers what a trace's traffic meets.

mod cli;
mod client;
mod compare;
mod plan;
mod plot;
mod procstat;
mod report;
mod run;
mod schedule;
mod tally;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command, PlanArgs, RunArgs};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => plan(args),
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")
            .and_then(|rt| rt.block_on(run(args))),
        Command::Compare { runs } => runs
            .iter()
            .map(|dir| compare::read(dir))
            .collect::<anyhow::Result<Vec<_>>>()
            .map(|runs| print!("{}", compare::table(&runs))),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let (trace, description) = args.workload.load()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let spec = plan::emulator_spec(&trace, args.init, args.workload.seed);
    let write = |name: &str, text: String| {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "emulator.toml",
        plan::emulator_toml(&spec).map_err(anyhow::Error::msg)?,
    )?;
    let names = plan::function_names(&trace);
    for (file, warmer) in [
        ("gateway-warming-off.toml", false),
        ("gateway-warming-on.toml", true),
    ] {
        let gateway = plan::GatewayPlan {
            listen: args.gateway_listen.clone(),
            metrics_listen: args.metrics_listen.clone(),
            backend_url: args.emulator_url.clone(),
            warmer,
            time_scale: args.workload.time_scale,
        };
        write(file, plan::gateway_toml(&names, &gateway))?;
    }
    println!(
        "{description}: {} requests, {} functions; wrote emulator.toml, gateway-warming-off.toml \
         and gateway-warming-on.toml to {}",
        trace.invocations(),
        names.len(),
        args.out.display()
    );
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (trace, description) = args.workload.load()?;
    let schedule =
        schedule::Schedule::new(&trace, args.workload.time_scale).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        args.timeout_s.is_finite() && args.timeout_s > 0.0,
        "--timeout-s must be a positive number of seconds, got {}",
        args.timeout_s
    );
    anyhow::ensure!(
        args.warmup_minutes.is_finite() && args.warmup_minutes >= 0.0,
        "--warmup-minutes must be a non-negative number, got {}",
        args.warmup_minutes
    );
    let warmup = Duration::from_secs_f64(args.warmup_minutes * 60.0);
    let names = plan::function_names(&trace);
    let sender = client::Sender::new(
        &args.target,
        args.api,
        &names,
        args.qualifier.as_deref(),
        Duration::from_secs_f64(args.timeout_s),
    )
    .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let scheduled = schedule.sends.len() as u64;
    let scale = schedule.scale;
    let trace_span = schedule.trace_span;
    let offered_rate = scheduled as f64 / schedule.wall_span().as_secs_f64().max(1e-9);
    let progress = std::io::stderr().is_terminal();
    let done = run::run(schedule, sender, warmup, &args.watch_pids, progress).await?;

    let plots = plot::write(&args.out, &done.tally, &args.label)?;
    let summary = report::Summary {
        label: args.label.clone(),
        target: args.target.clone(),
        api: format!("{:?}", args.api).to_lowercase(),
        workload: description,
        functions: names.len(),
        time_scale: scale,
        trace_span_s: trace_span.as_secs_f64(),
        warmup_s: warmup.as_secs_f64(),
        scheduled,
        sent: done.sent,
        wall_s: done.wall.as_secs_f64(),
        offered_rate,
        figures: done.tally.summary(),
        spent: done.spent,
    };
    report::write(&args.out, &summary, &plots)?;
    print!("{}", report::markdown(&summary, &[]));
    Ok(())
}
