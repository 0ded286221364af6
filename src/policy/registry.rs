//! Keep-alive policies by name: the one list the live gateway's `[warmer] policy` and the
//! simulator's `--policy` both read.
//!
//! The simulator replays more (fixed-peak needs the whole trace, an oracle; target tracking
//! sets provisioned concurrency, which the gateway does not control yet).

use super::baselines::fixed_interval::FixedInterval;
use super::baselines::hybrid_histogram::HybridHistogram;
use super::baselines::none::NoPolicy;
use super::warmer::{Warmer, WarmerConfig};
use super::Policy;

use std::time::Duration;

/// Names the gateway's warmer accepts.
pub const LIVE_POLICIES: &str =
    "warmer, warmer-peak, warmer-max<N>, none, fixed-<N>min, fixed-<N>min-x<C>, hybrid-histogram";

/// What a deployment tells a warmer (`warmer`, `warmer-peak`, `warmer-max<N>`) beyond its
/// name; other policies take none of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmerTuning {
    /// How long Lambda keeps an idle environment (`None`: the warmer's default,
    /// [`WarmerConfig::min_lifetime`], 5 minutes): it refreshes what it keeps just before.
    pub idle_lifetime: Option<Duration>,
    /// How long before that it refreshes (`None`: [`WarmerConfig::refresh_margin`], 2 s).
    pub refresh_margin: Option<Duration>,
    /// Whether it pre-warms rises that come back each day ([`WarmerConfig::daily_rises`]).
    pub daily_rises: bool,
    /// Whether every function's environment ends are reported ([`WarmerConfig::ends_reported`]).
    pub ends_reported: bool,
}

impl Default for WarmerTuning {
    fn default() -> Self {
        Self {
            idle_lifetime: None,
            refresh_margin: None,
            daily_rises: true,
            ends_reported: false,
        }
    }
}

/// The keep-alive policy called `name`, or why not.
pub fn live_policy(name: &str) -> Result<Box<dyn Policy>, String> {
    live_policy_tuned(name, WarmerTuning::default())
}

/// The keep-alive policy called `name`, a warmer tuned by `tuning`.
pub fn live_policy_tuned(name: &str, tuning: WarmerTuning) -> Result<Box<dyn Policy>, String> {
    match name {
        "none" => Ok(Box::new(NoPolicy)),
        "hybrid-histogram" => Ok(Box::new(HybridHistogram::new())),
        _ => {
            if let Some(mut config) = WarmerConfig::from_name(name) {
                if let Some(lifetime) = tuning.idle_lifetime {
                    config.min_lifetime = lifetime;
                }
                if let Some(margin) = tuning.refresh_margin {
                    config.refresh_margin = margin;
                }
                config.daily_rises = tuning.daily_rises;
                config.ends_reported = tuning.ends_reported;
                Ok(Box::new(Warmer::new(config)))
            } else if let Some((interval, concurrency)) = FixedInterval::parse_name(name) {
                Ok(Box::new(FixedInterval::new(interval, concurrency)))
            } else {
                Err(format!(
                    "unknown keep-alive policy {name:?}; valid: {LIVE_POLICIES}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_typos_are_refused() {
        for name in [
            "warmer",
            "warmer-max1",
            "warmer-peak",
            "none",
            "hybrid-histogram",
            "fixed-5min",
            "fixed-4min-x3",
        ] {
            assert_eq!(live_policy(name).unwrap().name(), name);
        }
        assert_eq!(
            live_policy_tuned(
                "warmer",
                WarmerTuning {
                    idle_lifetime: Some(Duration::from_secs(600)),
                    ..WarmerTuning::default()
                },
            )
            .unwrap()
            .name(),
            "warmer"
        );
        let err = live_policy("fixed-5mins").err().unwrap();
        assert!(err.contains("fixed-5mins") && err.contains("valid"));
    }

    /// Pings of a warmer tuned by `tuning` that keeps one function warm before its first
    /// call, over `span`.
    fn pings_over(tuning: WarmerTuning, span: Duration) -> u32 {
        let mut policy = live_policy_tuned("warmer", tuning).unwrap();
        let info = crate::policy::FunctionInfo {
            name: "f".into(),
            app: "f".into(),
            memory_mb: 128,
            targets: vec!["live".into()],
            ping_budget: None,
        };
        let count = |actions: Vec<crate::policy::Action>| -> u32 {
            actions
                .iter()
                .map(|a| match a {
                    crate::policy::Action::Ping { count, .. } => *count,
                    _ => 0,
                })
                .sum()
        };
        let mut pings = count(policy.start(&[info], Duration::ZERO));
        while let Some(at) = policy.next_wake().filter(|&at| at < span) {
            pings += count(policy.act(at));
        }
        pings
    }

    #[test]
    fn a_warmer_told_environments_live_longer_refreshes_them_less_often() {
        let hour = Duration::from_secs(3600);
        // Refreshed 2 s before the assumed lifetime: every 4 min 58 s, or every 9 min 58 s.
        assert_eq!(pings_over(WarmerTuning::default(), hour), 13);
        let longer = WarmerTuning {
            idle_lifetime: Some(Duration::from_secs(600)),
            ..WarmerTuning::default()
        };
        assert_eq!(pings_over(longer, hour), 7);
    }

    #[test]
    fn a_warmer_told_a_longer_refresh_margin_refreshes_that_much_sooner() {
        // Every 4 minutes rather than every 4 min 58 s: 15 pings in the hour, not 13.
        let margin = WarmerTuning {
            refresh_margin: Some(Duration::from_secs(60)),
            ..WarmerTuning::default()
        };
        assert_eq!(pings_over(margin, Duration::from_secs(3600)), 15);
    }
}
