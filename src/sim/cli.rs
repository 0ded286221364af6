//! `warmgate simulate`: replay a trace through the baseline policies and compare them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::engine::{self, Candidate, Mode, SimSettings, Traffic, DEFAULT_ACCOUNT_CONCURRENCY};
use super::plot;
use super::report::{Report, RunInfo};
use super::trace::{self, AzureOptions, LoadOptions, SpreadRule, Trace};
use crate::platform::dist::Dist;
use crate::policy::baselines::fixed_peak::FixedPeak;
use crate::policy::baselines::target_tracking::TargetTracking;
use crate::policy::budget::PingBudget;
use crate::policy::provisioning::{Provisioning, ProvisioningConfig, WithKeepAlive};
use crate::policy::registry;

/// Policies `all` stands for, in the order the table lists them.
const ALL: [&str; 7] = [
    "none",
    "fixed-5min",
    "hybrid-histogram",
    "fixed-peak",
    "target-tracking",
    "never-reclaim",
    "warmer",
];

/// Target utilization of `target-tracking` without a figure: AWS's example for provisioned
/// concurrency, and the judged baseline.
const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;

/// How long a cold start's init takes, as a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitProfile {
    /// A small Python or Node function: log-normal, median 1 s, spread 1.5.
    Small,
    /// A function that loads an ML model at init: log-normal, median 6 s, spread 1.6.
    ModelLoading,
}

/// Replay a trace in virtual time through keep-alive and provisioning policies, and compare
/// their cold starts and cost.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The trace: a directory of Azure Functions 2019 files, an Azure Functions 2021 file or
    /// directory, or a directory of Azure LLM inference 2023 files.
    #[arg(long, value_name = "DIR")]
    pub trace: PathBuf,
    /// Policies to compare, comma-separated: none, fixed-5min (or `fixed-<N>min`,
    /// `fixed-<N>min-x<C>` for C pings), hybrid-histogram, fixed-peak, target-tracking (0.7,
    /// or `target-tracking-<U>`), `pc-fixed-<N>` (N provisioned environments throughout),
    /// never-reclaim; ours: warmer, warmer-peak, `warmer-max<N>`, pc-planner (provisioned
    /// concurrency); `all` for every baseline and warmer.
    #[arg(
        long,
        value_name = "P[,P...]",
        value_delimiter = ',',
        default_value = "all"
    )]
    pub policy: Vec<String>,
    /// Keep only the first N functions of the trace.
    #[arg(long, value_name = "N")]
    pub functions: Option<usize>,
    /// Keep only the functions with these ids (comma-separated), in the trace's order.
    #[arg(long, value_name = "ID[,ID...]", value_delimiter = ',')]
    pub function_id: Vec<String>,
    /// Keep only the functions called at least R times a second in their busiest minute
    /// (after `--functions`): the heavy, steady traffic provisioned concurrency is for.
    #[arg(long, value_name = "R")]
    pub min_peak_rate: Option<f64>,
    /// Seed of every random draw (arrival spreading, durations, the platform's draws).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkable mode: each minute's invocations evenly spaced, durations at each function's
    /// average, zero init, a fixed idle reclaim (10 min unless --reclaim-minutes), no
    /// lifetime cap.
    #[arg(long)]
    pub deterministic: bool,
    /// Minutes at the start that the figures leave out (the policies see them).
    #[arg(long, value_name = "M", default_value_t = 60.0)]
    pub warmup_minutes: f64,
    /// Init duration of cold starts (default mode).
    #[arg(long, value_enum, default_value_t = InitProfile::Small)]
    pub init: InitProfile,
    /// Fixed idle reclaim, in minutes, instead of the mode's (default mode: 5 to 10 minutes,
    /// uniform; deterministic: 10).
    #[arg(long, value_name = "M")]
    pub reclaim_minutes: Option<f64>,
    /// The account's concurrency quota. The trace's functions belong to many owners, so the
    /// default is one large account rather than Lambda's default quota of 1,000.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ACCOUNT_CONCURRENCY)]
    pub account_concurrency: u32,
    /// Equivalent targets per function: K published versions of the same code, with the
    /// aliases live, live-2, ..., live-K. Each policy is replayed with its traffic to the first
    /// target (a client calling one alias), plus the rows --spread and --route ask for.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub targets: usize,
    /// Also replay each policy with each request sent to a target drawn uniformly among the
    /// K (seeded; in turn with --deterministic), no routing: clients pinned to different
    /// aliases. Rows labelled `<policy>+spread`.
    #[arg(long)]
    pub spread: bool,
    /// Also replay each policy with the gateway's router choosing each request's target over
    /// the warm-pool estimates. Rows labelled `<policy>+route`.
    #[arg(long)]
    pub route: bool,
    /// Also replay each policy as the gateway serves it: routed, and, when every warm
    /// environment is busy, each request held briefly for the first to free up rather than
    /// sent to a cold start (the gateway's default wait). Rows labelled `<policy>+wait`.
    #[arg(long)]
    pub wait: bool,
    /// Each function's budget for keep-alive pings, as the gateway's warmer enforces it:
    /// `<pings per hour>,<GB-s per day>`, or `none`. Default: the gateway's default budget
    /// (1200,20000).
    #[arg(long, value_name = "BUDGET")]
    pub ping_budget: Option<String>,
    /// Routed replays (`--route`, `--wait`) send no probes; the gateway sends them by default.
    #[arg(long)]
    pub no_probes: bool,
    /// The gateway's admission limit on requests in flight, replayed: while clients hold
    /// every permit, keep-alive rounds and probes are skipped. Default: no limit (a gateway
    /// sized for the trace).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// How long the warmer policies assume Lambda keeps an idle environment, in minutes
    /// (default 5), as the gateway's `[warmer] idle_lifetime_s`: with `--reclaim-minutes`, what
    /// knowing the platform's lifetime is worth.
    #[arg(long, value_name = "M")]
    pub idle_lifetime_minutes: Option<f64>,
    /// The warmer policies do not pre-warm rises that come back each day, as the gateway's
    /// `[warmer] daily_rises = false`.
    #[arg(long)]
    pub no_daily_rises: bool,
    /// Waiting replays (`--wait`): one burst ping, which starts an environment for the rest of
    /// a burst, for every N requests held, as the gateway's `[[function]]
    /// wait.waiters_per_burst_ping` (default 2; a large N, one at a time).
    #[arg(long, value_name = "N")]
    pub waiters_per_burst_ping: Option<u32>,
    /// Every function carries warmgate's Lambda extension, which reports each environment's
    /// end to the gateway (`POST /v1/functions/{name}/environments/ended`): the warmer
    /// replaces a kept environment when it ends rather than rotating it before.
    #[arg(long)]
    pub extension: bool,
    /// The extension also reports each call as it starts and ends
    /// (`POST /v1/functions/{name}/environments/calls`): replayed directly, the warmer
    /// knows the calls in flight as the gateway knows its own. Implies `--extension`.
    #[arg(long)]
    pub call_reports: bool,
    /// Each replay as N gateway replicas behind a load balancer, each serving every N-th call
    /// of each function with its own estimates, as gateways sharing Redis do (`[warmer]
    /// share_keep_alive`): every replica's policy hears every replica's calls, and each
    /// function's keep-alive rounds are sent by its keeper alone. Rows labelled
    /// `<policy>@N`. Provisioned concurrency is applied by the first replica only.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub replicas: usize,
    /// With `--replicas`: every replica plans on the calls it serves and sends its own rounds,
    /// as gateways without Redis do. Rows labelled `<policy>@N-unshared`.
    #[arg(long)]
    pub keep_alive_per_replica: bool,
    /// Write the figures to FILE.csv or FILE.json.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write every function's figures under every policy to FILE (CSV): invocations, cold
    /// starts, pings and its part of the bill.
    #[arg(long, value_name = "FILE")]
    pub per_function: Option<PathBuf>,
    /// Write every policy's pings by why they were sent to FILE (CSV): the policy's rule
    /// (schedule, unseen, fallback, forecast, bridge, floor, held, headroom, rotation, daily), burst
    /// or probe; pings, those that started an environment, those that reached one traffic had
    /// just used, and the environments they started that no call used.
    #[arg(long, value_name = "FILE")]
    pub pings: Option<PathBuf>,
    /// Write SVG plots into DIR: cold-start share against cost, and the CDF of per-function
    /// cold-start share.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
}

impl SimulateArgs {
    fn settings(&self) -> anyhow::Result<SimSettings> {
        if !(self.warmup_minutes.is_finite() && self.warmup_minutes >= 0.0) {
            bail!(
                "--warmup-minutes must be a non-negative number, got {}",
                self.warmup_minutes
            );
        }
        if self.targets == 0 {
            bail!("--targets must be at least 1");
        }
        if self.replicas == 0 {
            bail!("--replicas must be at least 1");
        }
        let idle_reclaim_s = match self.reclaim_minutes {
            Some(m) if m.is_finite() && m >= 0.0 => Some(Dist::Fixed(m * 60.0)),
            Some(m) => bail!("--reclaim-minutes must be a non-negative number, got {m}"),
            None => None,
        };
        let warmer_idle_lifetime = match self.idle_lifetime_minutes {
            Some(m) if m.is_finite() && (1.0..=60.0).contains(&m) => {
                Some(Duration::from_secs_f64(m * 60.0))
            }
            Some(m) => bail!("--idle-lifetime-minutes must be between 1 and 60, got {m}"),
            None => None,
        };
        Ok(SimSettings {
            seed: self.seed,
            mode: if self.deterministic {
                Mode::Deterministic
            } else {
                Mode::Default
            },
            warmup: Duration::from_secs_f64(self.warmup_minutes * 60.0),
            init_ms: match self.init {
                InitProfile::Small => SimSettings::small_function_init(),
                InitProfile::ModelLoading => SimSettings::model_loading_init(),
            },
            idle_reclaim_s,
            account_concurrency: self.account_concurrency,
            targets: self.targets,
            // A routing study measures the estimator in every row.
            measure_estimator: self.targets > 1 || self.spread || self.route,
            ping_budget: match &self.ping_budget {
                None => Some(PingBudget::default()),
                Some(text) => parse_ping_budget(text)?,
            },
            probes: !self.no_probes,
            max_in_flight: self.max_in_flight,
            warmer_idle_lifetime,
            warmer_daily_rises: !self.no_daily_rises,
            waiters_per_burst_ping: match self.waiters_per_burst_ping {
                None => SimSettings::default().waiters_per_burst_ping,
                Some(0) => bail!("--waiters-per-burst-ping must be at least 1, got 0"),
                Some(n) => n,
            },
            extension: self.extension,
            call_reports: self.call_reports,
        })
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            azure_2019: AzureOptions {
                spread: if self.deterministic {
                    SpreadRule::Even
                } else {
                    SpreadRule::Uniform
                },
                seed: self.seed,
                max_functions: self.functions,
                ..AzureOptions::default()
            },
            ..LoadOptions::default()
        }
    }
}

/// The policy names the CLI accepts, for error messages.
fn valid_names() -> String {
    format!(
        "{}, warmer-peak, warmer-max<N>, fixed-<N>min, fixed-<N>min-x<C>, target-tracking-<U> (0 < U <= 1), pc-fixed-<N>, pc-planner, or all",
        ALL.join(", ")
    )
}

/// `--ping-budget`: `none`, or `<pings per hour>,<GB-s per day>`.
fn parse_ping_budget(text: &str) -> anyhow::Result<Option<PingBudget>> {
    if text == "none" {
        return Ok(None);
    }
    let parsed = text.split_once(',').and_then(|(pings, gb_s)| {
        let pings_per_hour = pings.trim().parse().ok()?;
        let gb_s_per_day: f64 = gb_s.trim().parse().ok()?;
        (gb_s_per_day.is_finite() && gb_s_per_day >= 0.0).then_some(PingBudget {
            pings_per_hour,
            gb_s_per_day,
        })
    });
    match parsed {
        Some(budget) => Ok(Some(budget)),
        None => bail!(
            "--ping-budget must be `none` or `<pings per hour>,<GB-s per day>` (like 1200,20000), \
             got {text:?}"
        ),
    }
}

/// `target-tracking` or `target-tracking-<U>`: the target utilization.
fn parse_target_tracking(name: &str) -> Option<f64> {
    if name == "target-tracking" {
        return Some(DEFAULT_TARGET_UTILIZATION);
    }
    let u: f64 = name.strip_prefix("target-tracking-")?.parse().ok()?;
    (u > 0.0 && u <= 1.0).then_some(u)
}

/// A policy the CLI can replay, parsed from its name before the trace is read, so that a typo
/// fails at once. Every keep-alive policy the gateway runs is named as the gateway names it
/// (`policy::registry`, one list for both); the rest need what only a replay has.
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// A policy the live gateway runs too, by its registry name.
    Live(String),
    /// The oracle: each function's peak concurrency over the whole trace, provisioned.
    FixedPeak,
    /// `pc-fixed-<N>`: N provisioned environments for every function throughout (a level set
    /// by hand).
    FixedLevel(u32),
    TargetTracking {
        utilization: f64,
    },
    NeverReclaim,
    /// The provisioned-concurrency planner (`policy::provisioning`), valuing a cold start at
    /// `worth` times its init (`pc-planner-w<N>`).
    Provisioning {
        worth: f64,
        min_utilisation: f64,
    },
    /// The planner beside a keep-alive policy the gateway runs (`pc-planner-<keep-alive>`).
    ProvisioningWith(String),
}

impl Baseline {
    /// The baseline a policy name stands for.
    pub fn parse(name: &str) -> anyhow::Result<Baseline> {
        Ok(match name {
            "fixed-peak" => Baseline::FixedPeak,
            "never-reclaim" => Baseline::NeverReclaim,
            "pc-planner" => Baseline::Provisioning {
                worth: ProvisioningConfig::default().cold_start_worth,
                min_utilisation: ProvisioningConfig::default().min_utilisation,
            },
            _ => {
                if let Some(worth) = name
                    .strip_prefix("pc-planner-w")
                    .and_then(|w| w.parse::<f64>().ok())
                    .filter(|w| w.is_finite() && *w >= 0.0)
                {
                    Baseline::Provisioning {
                        worth,
                        min_utilisation: ProvisioningConfig::default().min_utilisation,
                    }
                } else if let Some(min_utilisation) = name
                    .strip_prefix("pc-planner-u")
                    .and_then(|u| u.parse::<f64>().ok())
                    .filter(|u| (0.0..=1.0).contains(u))
                {
                    Baseline::Provisioning {
                        worth: ProvisioningConfig::default().cold_start_worth,
                        min_utilisation,
                    }
                } else if let Some(keep_alive) = name
                    .strip_prefix("pc-planner-")
                    .filter(|k| registry::live_policy(k).is_ok())
                {
                    Baseline::ProvisioningWith(keep_alive.to_string())
                } else if let Some(level) = name
                    .strip_prefix("pc-fixed-")
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    Baseline::FixedLevel(level)
                } else if let Some(utilization) = parse_target_tracking(name) {
                    Baseline::TargetTracking { utilization }
                } else if registry::live_policy(name).is_ok() {
                    Baseline::Live(name.to_string())
                } else {
                    bail!("unknown policy {name:?}; valid: {}", valid_names())
                }
            }
        })
    }

    /// The candidate to replay on `trace`, under the label it was asked for by.
    pub fn candidate(&self, label: &str, trace: &Trace, settings: &SimSettings) -> Candidate {
        let policy: Box<dyn crate::policy::Policy> = match self {
            Baseline::NeverReclaim => return Candidate::never_reclaim(),
            Baseline::Live(name) => registry::live_policy_tuned(name, settings.warmer_tuning())
                .expect("checked when parsed"),
            // The oracle: each function's peak concurrency over the whole trace, with the very
            // durations the replay will use.
            Baseline::FixedPeak => {
                Box::new(FixedPeak::new(engine::peak_concurrency(trace, settings)))
            }
            Baseline::FixedLevel(level) => {
                Box::new(FixedPeak::new(vec![*level; trace.functions.len()]))
            }
            Baseline::TargetTracking { utilization } => Box::new(TargetTracking::new(*utilization)),
            Baseline::ProvisioningWith(keep_alive) => Box::new(WithKeepAlive {
                planner: Provisioning::new(ProvisioningConfig::default()),
                keep_alive: registry::live_policy_tuned(keep_alive, settings.warmer_tuning())
                    .expect("checked when parsed"),
            }),
            Baseline::Provisioning {
                worth,
                min_utilisation,
            } => Box::new(Provisioning::new(ProvisioningConfig {
                cold_start_worth: *worth,
                min_utilisation: *min_utilisation,
                ..ProvisioningConfig::default()
            })),
        };
        Candidate {
            label: label.to_string(),
            policy,
            reclaim: engine::Reclaim::AsLambda,
            traffic: Traffic::First,
            more_replicas: Vec::new(),
            share_keep_alive: true,
        }
    }
}

/// The baselines `names` ask for, with their names: `all` expanded, each once, in the order
/// asked.
pub fn baselines(names: &[String]) -> anyhow::Result<Vec<(String, Baseline)>> {
    let mut expanded: Vec<String> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let more: Vec<String> = if name == "all" {
            ALL.iter().map(|n| n.to_string()).collect()
        } else {
            vec![name.to_string()]
        };
        for n in more {
            if !expanded.contains(&n) {
                expanded.push(n);
            }
        }
    }
    if expanded.is_empty() {
        bail!("--policy names no policy; valid: {}", valid_names());
    }
    expanded
        .into_iter()
        .map(|name| Baseline::parse(&name).map(|b| (name, b)))
        .collect()
}

/// A progress bar per candidate on stderr; hidden when stderr is not a terminal.
fn progress_bars(labels: &[String], invocations: usize) -> (MultiProgress, Vec<ProgressBar>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix:>18} [{bar:40}] {percent:>3}% {human_pos}/{human_len} eta {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let bars = labels
        .iter()
        .map(|label| {
            let bar = multi.add(ProgressBar::new(invocations as u64));
            bar.set_style(style.clone());
            bar.set_prefix(label.clone());
            bar
        })
        .collect();
    (multi, bars)
}

/// Loads the trace the arguments name, keeping the first `--functions` of any format.
fn load_trace(args: &SimulateArgs) -> anyhow::Result<Trace> {
    let trace = trace::load(&args.trace, &args.load_options())
        .with_context(|| format!("cannot read the trace at {}", args.trace.display()))?;
    select(args, trace)
}

/// The functions of `trace` the arguments keep (`--functions`, `--function-id`,
/// `--min-peak-rate`).
fn select(args: &SimulateArgs, mut trace: Trace) -> anyhow::Result<Trace> {
    if let Some(n) = args.functions {
        trace.functions.truncate(n);
    }
    if !args.function_id.is_empty() {
        if let Some(missing) = args
            .function_id
            .iter()
            .find(|id| trace.function(id).is_none())
        {
            bail!(
                "{}: no function {missing:?} in the trace",
                args.trace.display()
            );
        }
        trace.functions.retain(|f| args.function_id.contains(&f.id));
    }
    if let Some(rate) = args.min_peak_rate {
        trace
            .functions
            .retain(|f| peak_minute_calls(f) as f64 >= rate * 60.0);
    }
    if trace.functions.is_empty() {
        bail!("{}: the trace has no functions", args.trace.display());
    }
    Ok(trace)
}

/// The most calls a function receives in one minute (minutes counted from the trace's start).
fn peak_minute_calls(function: &trace::TraceFunction) -> usize {
    let mut per_minute: HashMap<u64, usize> = HashMap::new();
    for arrival in &function.arrivals {
        *per_minute.entry(arrival.at.as_secs() / 60).or_default() += 1;
    }
    per_minute.into_values().max().unwrap_or(0)
}

/// What a replay runs: its settings, its policies by label, and its trace.
pub type Prepared = (SimSettings, Vec<(String, Baseline)>, Trace);

/// What a replay the arguments ask for runs on: its settings, its policies and its trace.
pub fn prepare(args: &SimulateArgs) -> anyhow::Result<Prepared> {
    prepare_loaded(args, load_trace(args)?)
}

/// [`prepare`] on `trace`, already read from `args.trace` (a caller replaying one file many
/// ways reads it once).
pub fn prepare_loaded(args: &SimulateArgs, trace: Trace) -> anyhow::Result<Prepared> {
    let settings = args.settings()?;
    let baselines = baselines(&args.policy)?;
    Ok((settings, baselines, select(args, trace)?))
}

/// A replay whose warm-up covers the whole trace counts nothing: every figure would be zero
/// (the 2021 fixture and the LLM trace are shorter than the default hour).
fn counts_something(settings: &SimSettings, trace: &Trace) -> anyhow::Result<()> {
    if settings.warmup >= trace.duration {
        bail!(
            "the warm-up ({:.0} min) covers the whole trace ({:.0} min), so nothing would be \
             counted: give --warmup-minutes below {:.0} (0 counts every request)",
            settings.warmup.as_secs_f64() / 60.0,
            trace.duration.as_secs_f64() / 60.0,
            trace.duration.as_secs_f64() / 60.0
        );
    }
    Ok(())
}

/// Replays the candidates and returns the report.
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<Report> {
    let loading = Instant::now();
    let (settings, baselines, trace) = prepare(args)?;
    eprintln!(
        "loaded {} ({} functions, {} invocations) in {:.1} s",
        trace.name,
        trace.functions.len(),
        trace.invocations(),
        loading.elapsed().as_secs_f64()
    );
    counts_something(&settings, &trace)?;
    // Each policy with its traffic to the first target, then spread and routed if asked.
    let traffics: Vec<Traffic> = [
        Some(Traffic::First),
        args.spread.then_some(Traffic::Spread),
        args.route.then_some(Traffic::Routed),
        args.wait.then_some(Traffic::Waiting),
    ]
    .into_iter()
    .flatten()
    .collect();
    let candidates: Vec<Candidate> = baselines
        .iter()
        .flat_map(|(label, baseline)| {
            traffics.iter().map(|&traffic| {
                let more = (1..args.replicas)
                    .map(|_| baseline.candidate(label, &trace, &settings).policy)
                    .collect();
                baseline
                    .candidate(label, &trace, &settings)
                    .with_traffic(traffic)
                    .with_replicas(more, !args.keep_alive_per_replica)
            })
        })
        .collect();
    let labels: Vec<String> = candidates.iter().map(|c| c.label.clone()).collect();
    let (_multi, bars) = progress_bars(&labels, trace.invocations());
    let started = Instant::now();
    let policies = engine::compare(&trace, &settings, candidates, &|i, n| bars[i].inc(n));
    for bar in &bars {
        bar.finish_and_clear();
    }
    Ok(Report {
        run: RunInfo::new(&trace, &settings, started.elapsed()),
        policies,
    })
}

/// `warmgate simulate`: replays, prints the table, writes the file and plots asked for.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let report = simulate(&args)?;
    println!("{}\n", report.run.preamble());
    print!("{}", report.table());
    if report.has_routing() {
        println!(
            "\nRouting and the warm-pool estimate against the ground truth (after the warm-up):\n"
        );
        print!("{}", report.estimator_table());
    }
    if let Some(path) = &args.out {
        report.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.per_function {
        std::fs::write(path, report.per_function_csv())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.pings {
        std::fs::write(path, report.pings_csv())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.plot {
        for path in plot::write_plots(&report, dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::baselines::fixed_interval::FixedInterval;

    #[test]
    fn fixed_names_parse() {
        assert_eq!(
            FixedInterval::parse_name("fixed-5min"),
            Some((Duration::from_secs(300), 1))
        );
        assert_eq!(
            FixedInterval::parse_name("fixed-9min-x3"),
            Some((Duration::from_secs(540), 3))
        );
        assert_eq!(FixedInterval::parse_name("fixed-0min"), None);
        assert_eq!(FixedInterval::parse_name("fixed-5"), None);
        assert_eq!(FixedInterval::parse_name("fixed-5min-x0"), None);
        assert_eq!(parse_target_tracking("target-tracking"), Some(0.7));
        assert_eq!(parse_target_tracking("target-tracking-0.5"), Some(0.5));
        assert_eq!(parse_target_tracking("target-tracking-2"), None);
    }

    #[test]
    fn provisioning_names_parse() {
        let default = ProvisioningConfig::default();
        assert_eq!(
            Baseline::parse("pc-planner").unwrap(),
            Baseline::Provisioning {
                worth: default.cold_start_worth,
                min_utilisation: default.min_utilisation
            }
        );
        assert_eq!(
            Baseline::parse("pc-planner-w10").unwrap(),
            Baseline::Provisioning {
                worth: 10.0,
                min_utilisation: default.min_utilisation
            }
        );
        assert_eq!(
            Baseline::parse("pc-planner-u0.3").unwrap(),
            Baseline::Provisioning {
                worth: default.cold_start_worth,
                min_utilisation: 0.3
            }
        );
        assert_eq!(
            Baseline::parse("pc-planner-warmer-max1").unwrap(),
            Baseline::ProvisioningWith("warmer-max1".into())
        );
        for typo in ["pc-planner-u2", "pc-planner-warmest", "pc-planner-w-1"] {
            assert!(Baseline::parse(typo).is_err(), "{typo}");
        }
    }

    #[test]
    fn unknown_policies_list_the_valid_ones() {
        let err = baselines(&["none".into(), "warmest".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown policy \"warmest\""), "{err}");
        assert!(
            err.contains("fixed-5min") && err.contains("never-reclaim"),
            "{err}"
        );
        let names: Vec<String> = baselines(&["none".into(), "fixed-5min".into(), "none".into()])
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["none", "fixed-5min"]);
        let all = baselines(&["all".into()]).unwrap();
        assert_eq!(all.len(), ALL.len());
        assert_eq!(all[1].1, Baseline::Live("fixed-5min".into()));
        assert!(baselines(&[" ".into()]).is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn arguments_parse_into_settings() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "simulate",
            "--trace",
            "dir",
            "--policy",
            "none,fixed-9min",
            "--deterministic",
            "--warmup-minutes",
            "30",
            "--functions",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.args.policy, ["none", "fixed-9min"]);
        let settings = cli.args.settings().unwrap();
        assert_eq!(settings.mode, Mode::Deterministic);
        assert_eq!(settings.warmup, Duration::from_secs(1800));
        let options = cli.args.load_options();
        assert_eq!(options.azure_2019.spread, SpreadRule::Even);
        assert_eq!(options.azure_2019.max_functions, Some(5));
        let burst = |n: &str| {
            Cli::try_parse_from(["simulate", "--trace", "dir", "--waiters-per-burst-ping", n])
                .unwrap()
                .args
                .settings()
        };
        assert_eq!(burst("32").unwrap().waiters_per_burst_ping, 32);
        let zero = burst("0").unwrap_err().to_string();
        assert!(zero.contains("--waiters-per-burst-ping"), "{zero}");
        let defaults = Cli::try_parse_from(["simulate", "--trace", "dir"]).unwrap();
        assert_eq!(defaults.args.policy, ["all"]);
        assert_eq!(defaults.args.settings().unwrap(), SimSettings::default());
    }

    #[test]
    fn a_warm_up_that_covers_the_trace_is_refused_with_the_flag_to_change() {
        let trace = Trace {
            name: "short".into(),
            format: trace::TraceFormat::Azure2021,
            functions: Vec::new(),
            duration: Duration::from_secs(21 * 60),
        };
        let hour = SimSettings::default();
        assert_eq!(hour.warmup, Duration::from_secs(3600));
        let err = counts_something(&hour, &trace).unwrap_err().to_string();
        assert!(err.contains("--warmup-minutes below 21"), "{err}");
        let ten = SimSettings {
            warmup: Duration::from_secs(600),
            ..SimSettings::default()
        };
        assert!(counts_something(&ten, &trace).is_ok());
    }

    #[test]
    fn the_ping_budget_is_the_gateways_unless_told() {
        use clap::Parser;
        let settings = |extra: &[&str]| {
            let mut args = vec!["simulate", "--trace", "dir"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().args.settings()
        };
        assert_eq!(
            settings(&[]).unwrap().ping_budget,
            Some(PingBudget::default())
        );
        assert_eq!(
            settings(&["--ping-budget", "none"]).unwrap().ping_budget,
            None
        );
        assert_eq!(
            settings(&["--ping-budget", "60, 500"]).unwrap().ping_budget,
            Some(PingBudget {
                pings_per_hour: 60,
                gb_s_per_day: 500.0
            })
        );
        for bad in ["60", "x,5", "60,-1", "60,NaN"] {
            let err = settings(&["--ping-budget", bad]).unwrap_err().to_string();
            assert!(err.contains("--ping-budget") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn routing_arguments_parse_into_settings() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["simulate", "--trace", "dir", "--targets", "3", "--route"])
            .unwrap();
        assert!(cli.args.route && !cli.args.spread);
        let settings = cli.args.settings().unwrap();
        assert_eq!(settings.targets, 3);
        assert!(
            settings.measure_estimator,
            "a routing study measures the estimator"
        );
        let zero = Cli::try_parse_from(["simulate", "--trace", "dir", "--targets", "0"]).unwrap();
        assert!(zero.args.settings().is_err());
    }
}
