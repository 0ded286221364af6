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

/// Names the gateway's warmer accepts.
pub const LIVE_POLICIES: &str =
    "warmer, warmer-peak, warmer-max<N>, none, fixed-<N>min, fixed-<N>min-x<C>, hybrid-histogram";

/// The keep-alive policy called `name`, or why not.
pub fn live_policy(name: &str) -> Result<Box<dyn Policy>, String> {
    match name {
        "none" => Ok(Box::new(NoPolicy)),
        "hybrid-histogram" => Ok(Box::new(HybridHistogram::new())),
        _ => {
            if let Some(config) = WarmerConfig::from_name(name) {
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
        let err = live_policy("fixed-5mins").err().unwrap();
        assert!(err.contains("fixed-5mins") && err.contains("valid"));
    }
}
