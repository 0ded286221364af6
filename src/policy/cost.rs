//! The user's bill at Lambda's prices (us-east-1, published on AWS's pricing page).
//!
//! Since 1 August 2025 the init phase of on-demand functions is billed too, so a cold start
//! costs its init duration times memory, and a ping that saves one can cost less than the
//! cold start it saves.

use crate::platform::spec::Architecture;

/// Prices per GB-s and per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// On-demand duration (init included), per GB-s.
    pub on_demand_gb_s: f64,
    /// Per request (pings included).
    pub per_request: f64,
    /// Provisioned concurrency allocated, per GB-s.
    pub provisioned_gb_s: f64,
    /// Duration on provisioned environments, per GB-s.
    pub provisioned_duration_gb_s: f64,
}

impl Prices {
    /// us-east-1 prices for an architecture.
    pub fn us_east_1(architecture: Architecture) -> Self {
        match architecture {
            Architecture::X86_64 => Self {
                on_demand_gb_s: 0.000_016_666_7,
                per_request: 0.20 / 1e6,
                provisioned_gb_s: 0.000_004_166_7,
                provisioned_duration_gb_s: 0.000_009_722_2,
            },
            Architecture::Arm64 => Self {
                on_demand_gb_s: 0.000_013_333_4,
                per_request: 0.20 / 1e6,
                provisioned_gb_s: 0.000_003_333_4,
                provisioned_duration_gb_s: 0.000_007_777_8,
            },
        }
    }
}

/// What a workload used, in billing units.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub requests: u64,
    /// Billed GB-s on on-demand environments (init included).
    pub on_demand_gb_s: f64,
    /// GB-s of allocated provisioned concurrency.
    pub provisioned_gb_s: f64,
    /// Billed GB-s of invocations on provisioned environments.
    pub provisioned_duration_gb_s: f64,
}

/// The bill for `usage`, in dollars.
pub fn bill(usage: &Usage, prices: &Prices) -> f64 {
    usage.requests as f64 * prices.per_request
        + usage.on_demand_gb_s * prices.on_demand_gb_s
        + usage.provisioned_gb_s * prices.provisioned_gb_s
        + usage.provisioned_duration_gb_s * prices.provisioned_duration_gb_s
}

pub use crate::platform::stats::gb_s;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn provisioned_breaks_even_near_sixty_percent_utilisation() {
        // One GB environment for an hour, used a share u of the time.
        let p = Prices::us_east_1(Architecture::X86_64);
        let cost_at = |u: f64| {
            let on_demand = bill(
                &Usage {
                    on_demand_gb_s: 3600.0 * u,
                    ..Usage::default()
                },
                &p,
            );
            let provisioned = bill(
                &Usage {
                    provisioned_gb_s: 3600.0,
                    provisioned_duration_gb_s: 3600.0 * u,
                    ..Usage::default()
                },
                &p,
            );
            (on_demand, provisioned)
        };
        let (od, pc) = cost_at(0.55);
        assert!(od < pc);
        let (od, pc) = cost_at(0.65);
        assert!(od > pc);
    }

    #[test]
    fn a_million_requests_cost_twenty_cents() {
        let p = Prices::us_east_1(Architecture::Arm64);
        let dollars = bill(
            &Usage {
                requests: 1_000_000,
                ..Usage::default()
            },
            &p,
        );
        assert!((dollars - 0.20).abs() < 1e-12);
        assert!((gb_s(Duration::from_secs(1), 2048) - 2.0).abs() < 1e-12);
    }
}
