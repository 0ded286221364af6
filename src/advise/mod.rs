//! `warmgate advise`: per function, what to change on Lambda, with its expected cost.
//!
//! What it weighs, per function of the gateway's configuration:
//! - its settings, from GetFunctionConfiguration of its first target (memory, architecture,
//!   runtime, SnapStart) and GetProvisionedConcurrencyConfig (today's level);
//! - its calls, from the gateway's history file (`[history]`: one REPORT line per call);
//! - their replay through the simulator, under on-demand only, today's level and the
//!   provisioning planner the gateway runs (`policy::provisioning`): dollars and cold starts
//!   of each, and the planner's level hour by hour. The replay is `warmgate simulate` with the
//!   arguments printed beside it, so anyone can reproduce the figures.
//!
//! The decisions here are pure ([`memory_advice`], [`architecture_advice`],
//! [`snap_start_advice`], [`levels_by_hour`]); `run` is the shell that gathers their inputs.

mod run;

use serde::Serialize;

use crate::platform::spec::Architecture;
use crate::policy::cost::Prices;

pub use run::{advise, run, Advice, AdviseArgs};

/// Lambda's memory sizes step by 1 MB; advice rounds to 64 MB, a size people pick.
const MEMORY_STEP_MB: u32 = 64;
/// Headroom over the most memory a function was seen to use.
const MEMORY_HEADROOM: f64 = 1.25;
/// Memory is worth lowering when the advised size is at most this share of today's.
const MEMORY_WORTH_LOWERING: f64 = 0.75;
/// Memory use above this share of the size risks running out.
const MEMORY_NEAR_LIMIT: f64 = 0.9;
/// Init, at its median, past which SnapStart is worth proposing.
const SNAP_START_INIT_MS: f64 = 1000.0;

/// The advice for one function.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionAdvice {
    pub function: String,
    /// The target provisioned concurrency applies to: the function's first.
    pub target: String,
    pub memory_mb: u32,
    pub architecture: Architecture,
    pub runtime: Option<String>,
    pub snap_start: bool,
    pub observed: ObservedCalls,
    pub provisioned: ProvisionedAdvice,
    pub memory: Option<MemoryAdvice>,
    pub architecture_change: Option<ArchitectureAdvice>,
    pub snap_start_advice: SnapStartAdvice,
}

/// What the history holds of the function.
#[derive(Debug, Clone, Serialize)]
pub struct ObservedCalls {
    pub invocations: usize,
    /// Hours from the history's first record to its end.
    pub hours: f64,
    /// Unix time of the first hour's start, in seconds.
    pub start_unix_s: u64,
    pub cold_starts: usize,
    pub init_p50_ms: Option<f64>,
    pub restore_p50_ms: Option<f64>,
    pub max_memory_used_mb: u32,
}

/// One replay's figures over the history.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Expected {
    pub usd: f64,
    pub cold_starts: u64,
    pub invocations: u64,
}

/// Provisioned concurrency: today's level against the planner's.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionedAdvice {
    /// Requested today on the target (0: none).
    pub today: u32,
    /// The planner's level, hour by hour of the history: the most it held in that hour.
    pub recommended_by_hour: Vec<u32>,
    pub on_demand_only: Expected,
    pub today_setting: Expected,
    pub recommended: Expected,
    /// The command that replays these figures.
    pub reproduce: String,
}

/// A memory size to try.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryAdvice {
    pub configured_mb: u32,
    pub max_used_mb: u32,
    pub recommended_mb: u32,
    /// Dollars over the history the new size would save at an unchanged duration: an upper
    /// bound, as less memory also means less CPU (negative: it costs more).
    pub saving_usd: f64,
    pub why: String,
}

/// Moving to arm64.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArchitectureAdvice {
    pub to: Architecture,
    /// Dollars over the history at arm64's prices, at an unchanged duration.
    pub saving_usd: f64,
    pub why: String,
}

/// SnapStart: whether the runtime has it, and what it would change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapStartAdvice {
    pub supported: bool,
    pub enabled: bool,
    /// Whether turning it on (or keeping it) is advised.
    pub advised: bool,
    pub why: String,
}

/// The smallest 64 MB step at least `max_used_mb` with headroom, within Lambda's range; advice
/// when it is well below the size (a saving) or the size is nearly all used (a risk).
/// `duration_usd` is what the history's duration cost at today's size.
pub fn memory_advice(
    configured_mb: u32,
    max_used_mb: u32,
    duration_usd: f64,
) -> Option<MemoryAdvice> {
    if max_used_mb == 0 || configured_mb == 0 {
        return None;
    }
    let wanted = (f64::from(max_used_mb) * MEMORY_HEADROOM).ceil() as u32;
    let recommended = wanted
        .div_ceil(MEMORY_STEP_MB)
        .saturating_mul(MEMORY_STEP_MB)
        .clamp(
            crate::sim::trace::MIN_MEMORY_MB,
            crate::sim::trace::MAX_MEMORY_MB,
        );
    let share = f64::from(recommended) / f64::from(configured_mb);
    let saving_usd = duration_usd * (1.0 - share);
    if share <= MEMORY_WORTH_LOWERING {
        Some(MemoryAdvice {
            configured_mb,
            max_used_mb,
            recommended_mb: recommended,
            saving_usd,
            why: format!(
                "at most {max_used_mb} MB of {configured_mb} MB used: {recommended} MB leaves \
                 25% headroom; Lambda gives CPU in proportion to memory, so measure the \
                 duration at the new size (the saving assumes it unchanged)"
            ),
        })
    } else if f64::from(max_used_mb) >= MEMORY_NEAR_LIMIT * f64::from(configured_mb)
        && recommended > configured_mb
    {
        Some(MemoryAdvice {
            configured_mb,
            max_used_mb,
            recommended_mb: recommended,
            saving_usd,
            why: format!(
                "{max_used_mb} MB of {configured_mb} MB used: near the limit, where an \
                 invocation runs out of memory and its environment is lost"
            ),
        })
    } else {
        None
    }
}

/// arm64 for an x86_64 function: the same GB-s at arm64's prices. `usage_usd` is the
/// history's dollars at today's prices less the request charges (the same on both).
pub fn architecture_advice(
    architecture: Architecture,
    usage_usd: f64,
) -> Option<ArchitectureAdvice> {
    if architecture == Architecture::Arm64 || usage_usd <= 0.0 {
        return None;
    }
    let x86 = Prices::us_east_1(Architecture::X86_64);
    let arm = Prices::us_east_1(Architecture::Arm64);
    let saving_usd = usage_usd * (1.0 - arm.on_demand_gb_s / x86.on_demand_gb_s);
    Some(ArchitectureAdvice {
        to: Architecture::Arm64,
        saving_usd,
        why: "arm64 (Graviton) costs 20% less per GB-s, on demand and provisioned; its code \
              and layers must be built for arm64, and its duration measured there"
            .into(),
    })
}

/// Whether a runtime supports SnapStart: Java 11 and later, Python 3.12 and later, .NET 8
/// and later.
pub fn snap_start_supported(runtime: &str) -> bool {
    let version = |prefix: &str| -> Option<Vec<u32>> {
        let rest = runtime.strip_prefix(prefix)?;
        let parts: Option<Vec<u32>> = rest.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty())
    };
    if let Some(v) = version("java") {
        return v[0] >= 11;
    }
    if let Some(v) = version("python") {
        return v[0] > 3 || (v[0] == 3 && v.get(1).copied().unwrap_or(0) >= 12);
    }
    if let Some(v) = version("dotnet") {
        return v[0] >= 8;
    }
    false
}

/// SnapStart for a function: advised where the runtime has it and inits dominate its cold
/// starts; where it is on, the restores seen against the inits seen.
pub fn snap_start_advice(
    runtime: Option<&str>,
    enabled: bool,
    init_p50_ms: Option<f64>,
    restore_p50_ms: Option<f64>,
    provisioned_recommended: bool,
) -> SnapStartAdvice {
    let supported = runtime.is_some_and(snap_start_supported);
    let shown = |ms: Option<f64>| ms.map_or("none seen".to_string(), |ms| format!("{ms:.0} ms"));
    let (advised, why) = match (supported, enabled) {
        (_, true) => match (restore_p50_ms, init_p50_ms) {
            (Some(restore), Some(init)) if restore >= init => (
                false,
                format!(
                    "on, but restores (median {restore:.0} ms) take as long as inits \
                     (median {init:.0} ms): check the snapshot's hooks"
                ),
            ),
            (restore, init) => (
                true,
                format!(
                    "on: restores median {}, inits (of $LATEST) median {}",
                    shown(restore),
                    shown(init)
                ),
            ),
        },
        (false, false) => (
            false,
            format!(
                "not supported by runtime {}",
                runtime.unwrap_or("(a container image)")
            ),
        ),
        (true, false) => match init_p50_ms {
            Some(init) if init >= SNAP_START_INIT_MS && !provisioned_recommended => (
                true,
                format!(
                    "inits take {init:.0} ms at the median: a restore from a snapshot usually \
                     takes a few hundred; turn it on for published versions"
                ),
            ),
            Some(init) if init >= SNAP_START_INIT_MS => (
                false,
                format!(
                    "inits take {init:.0} ms, but provisioned concurrency is advised and \
                     Lambda does not run both on one version"
                ),
            ),
            Some(init) => (false, format!("inits are short already ({init:.0} ms)")),
            None => (false, "no cold start seen".into()),
        },
    };
    SnapStartAdvice {
        supported,
        enabled,
        advised,
        why,
    }
}

/// The most provisioned concurrency in effect in each hour of `hours`, from the levels set
/// (`(time in seconds, level)`, in time order; 0 before the first).
pub fn levels_by_hour(changes: &[(f64, u32)], hours: usize) -> Vec<u32> {
    (0..hours)
        .map(|h| {
            let (from, to) = (h as f64 * 3600.0, (h + 1) as f64 * 3600.0);
            let at_start = changes
                .iter()
                .take_while(|(t, _)| *t <= from)
                .last()
                .map_or(0, |&(_, level)| level);
            changes
                .iter()
                .filter(|(t, _)| *t > from && *t < to)
                .map(|&(_, level)| level)
                .fold(at_start, u32::max)
        })
        .collect()
}

/// The median of `values` (none for none).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// The advice as a table for a terminal.
pub fn table(advice: &[FunctionAdvice]) -> String {
    let mut out = String::new();
    for a in advice {
        let o = &a.observed;
        let p = &a.provisioned;
        out += &format!(
            "{} (target {}, {} MB, {}, {}): {} calls over {}, {} cold starts seen\n",
            a.function,
            a.target,
            a.memory_mb,
            a.architecture.as_str(),
            a.runtime.as_deref().unwrap_or("container image"),
            o.invocations,
            if o.hours < 1.0 {
                format!("{:.0} min", o.hours * 60.0)
            } else {
                format!("{:.1} h", o.hours)
            },
            o.cold_starts,
        );
        let row = |name: &str, e: &Expected| {
            format!(
                "    {name:<28} ${:>10.4}  {:>6} cold starts of {}\n",
                e.usd, e.cold_starts, e.invocations
            )
        };
        out += "  provisioned concurrency, replayed over the history (no keep-alive pings):\n";
        out += &row("on demand only", &p.on_demand_only);
        out += &row(&format!("today's level ({})", p.today), &p.today_setting);
        out += &row("the planner's levels", &p.recommended);
        let hours: Vec<String> = p
            .recommended_by_hour
            .iter()
            .enumerate()
            .map(|(h, level)| format!("+{h}h:{level}"))
            .collect();
        out += &format!("    levels by hour: {}\n", hours.join(" "));
        out += &format!("    reproduce: {}\n", p.reproduce);
        match &a.memory {
            Some(m) => {
                out += &format!(
                    "  memory: {} MB -> {} MB (${:.4} over the history): {}\n",
                    m.configured_mb, m.recommended_mb, m.saving_usd, m.why
                )
            }
            None => {
                out += &format!(
                    "  memory: keep {} MB (at most {} MB used)\n",
                    a.memory_mb, o.max_memory_used_mb
                )
            }
        }
        match &a.architecture_change {
            Some(c) => {
                out += &format!(
                    "  architecture: {} -> {} (${:.4} over the history): {}\n",
                    a.architecture.as_str(),
                    c.to.as_str(),
                    c.saving_usd,
                    c.why
                )
            }
            None => out += &format!("  architecture: keep {}\n", a.architecture.as_str()),
        }
        let s = &a.snap_start_advice;
        out += &format!(
            "  SnapStart: {}: {}\n\n",
            if s.advised { "advised" } else { "not advised" },
            s.why
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_lowered_with_headroom_and_raised_near_the_limit() {
        let lower = memory_advice(1024, 180, 1.0).unwrap();
        assert_eq!(lower.recommended_mb, 256, "180 MB * 1.25 = 225, up to 256");
        assert!((lower.saving_usd - 0.75).abs() < 1e-12);
        assert_eq!(
            memory_advice(1024, 700, 1.0),
            None,
            "896 MB is not worth it"
        );
        let raise = memory_advice(512, 500, 1.0).unwrap();
        assert_eq!(raise.recommended_mb, 640);
        assert!(raise.saving_usd < 0.0, "it costs more");
        assert_eq!(memory_advice(128, 20, 1.0), None, "128 MB is the least");
        assert_eq!(memory_advice(1024, 0, 1.0), None, "nothing seen");
    }

    #[test]
    fn arm64_saves_a_fifth_of_the_gb_s_dollars() {
        let a = architecture_advice(Architecture::X86_64, 10.0).unwrap();
        assert!((a.saving_usd - 2.0).abs() < 1e-3, "{}", a.saving_usd);
        assert_eq!(architecture_advice(Architecture::Arm64, 10.0), None);
    }

    #[test]
    fn snap_start_runtimes() {
        for yes in ["java11", "java21", "python3.12", "python3.13", "dotnet8"] {
            assert!(snap_start_supported(yes), "{yes}");
        }
        for no in [
            "java8.al2",
            "python3.11",
            "nodejs20.x",
            "dotnet6",
            "provided.al2023",
            "",
        ] {
            assert!(!snap_start_supported(no), "{no}");
        }
    }

    #[test]
    fn snap_start_is_advised_where_inits_dominate_and_pc_is_not() {
        let a = snap_start_advice(Some("python3.12"), false, Some(6000.0), None, false);
        assert!(a.advised && a.supported, "{a:?}");
        let pc = snap_start_advice(Some("python3.12"), false, Some(6000.0), None, true);
        assert!(!pc.advised && pc.why.contains("provisioned"), "{pc:?}");
        let short = snap_start_advice(Some("python3.12"), false, Some(300.0), None, false);
        assert!(!short.advised);
        let node = snap_start_advice(Some("nodejs20.x"), false, Some(6000.0), None, false);
        assert!(!node.advised && node.why.contains("not supported"));
        let on = snap_start_advice(Some("java21"), true, Some(4000.0), Some(250.0), false);
        assert!(on.advised && on.why.contains("250 ms"), "{on:?}");
        let slow = snap_start_advice(Some("java21"), true, Some(400.0), Some(900.0), false);
        assert!(!slow.advised, "{slow:?}");
    }

    #[test]
    fn levels_by_hour_take_the_most_held_in_each_hour() {
        let changes = [(120.0, 2), (3000.0, 5), (3700.0, 1), (9000.0, 0)];
        assert_eq!(levels_by_hour(&changes, 4), [5, 5, 1, 0]);
        assert_eq!(levels_by_hour(&[], 2), [0, 0]);
    }
}
