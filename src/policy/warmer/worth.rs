//! What keeping a function's environments warm is worth, in the user's dollars.
//!
//! A ping of a round pays its hold (priced at the least, `ROUND_HOLD`; a round's size adds a
//! few milliseconds) at the function's memory and a request; a
//! cold start it saves pays the function's init at that memory (billed since August 2025)
//! and costs a caller the init's seconds. The planner keeps the `j`-th environment of a
//! function only while the share of recent windows that needed `j` environments, times what
//! a cold start is worth, pays the ping that keeps it: the depth is chosen per function, by
//! its memory and by the init it actually pays (a model-loading function's cold start costs
//! seconds, so its deep environments are worth keeping far more often than a small
//! function's).

use std::time::Duration;

use crate::platform::spec::Architecture;
use crate::policy::cost::{gb_s, Prices};
use crate::policy::pool::Lifetime;
use crate::policy::ROUND_HOLD;

/// The init a function is assumed to pay before one of its cold starts was seen: a small
/// Python or Node function's (the platform model's `small` median).
pub const INIT_PRIOR: Duration = Duration::from_secs(1);

/// The sizing quantile is kept within these bounds: below the lower one a function's usual
/// concurrency is let go; above the upper one single spikes are paid for hours.
const QUANTILE_BOUNDS: (f64, f64) = (0.5, 0.995);

/// How long an environment lives on average whatever its use ([`Lifetime::FEW_HOURS`]).
fn mean_lifetime() -> Duration {
    (Lifetime::FEW_HOURS.min + Lifetime::FEW_HOURS.max) / 2
}

/// One function's costs, learned from the cold starts seen (real and pings).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionWorth {
    memory_mb: u32,
    init_seconds: f64,
    inits: u32,
}

impl FunctionWorth {
    pub fn new(memory_mb: u32) -> Self {
        FunctionWorth {
            memory_mb,
            init_seconds: 0.0,
            inits: 0,
        }
    }

    /// A cold start's init was seen.
    pub fn record_init(&mut self, init: Duration) {
        self.init_seconds += init.as_secs_f64();
        self.inits = self.inits.saturating_add(1);
    }

    /// The mean init seen, or [`INIT_PRIOR`] before any.
    pub fn mean_init(&self) -> Duration {
        if self.inits == 0 {
            INIT_PRIOR
        } else {
            Duration::from_secs_f64(self.init_seconds / f64::from(self.inits))
        }
    }

    fn prices() -> Prices {
        // The planner does not know the architecture; x86 is the default and the dearer.
        Prices::us_east_1(Architecture::X86_64)
    }

    /// Dollars one ping of a round costs (its hold and its request).
    pub fn round_ping_dollars(&self) -> f64 {
        let p = Self::prices();
        p.per_request + gb_s(ROUND_HOLD, self.memory_mb) * p.on_demand_gb_s
    }

    /// Dollars of init one cold start bills.
    pub fn init_dollars(&self) -> f64 {
        gb_s(self.mean_init(), self.memory_mb) * Self::prices().on_demand_gb_s
    }

    /// How many refreshes of one environment cost as much as the init that starts it again:
    /// how long a depth the forecast stops asking for is worth holding (see `depth`).
    pub fn hold_rounds(&self) -> f64 {
        self.init_dollars() / self.round_ping_dollars()
    }

    /// Dollars keeping one environment costs per refresh interval `refresh`: a round's ping,
    /// and its share of the init that replaces it when its lifetime ends (a few hours
    /// whatever its use, [`Lifetime::FEW_HOURS`]).
    pub fn keep_dollars(&self, refresh: Duration) -> f64 {
        let lifetime = mean_lifetime();
        self.round_ping_dollars()
            + self.init_dollars() * refresh.as_secs_f64() / lifetime.as_secs_f64()
    }

    /// GB-s a day one environment kept warm bills: a round's hold every `refresh`, and the
    /// init that replaces it at the end of each lifetime (see [`Self::keep_dollars`]).
    pub fn daily_gb_s(&self, refresh: Duration) -> f64 {
        let day = Duration::from_secs(24 * 3600).as_secs_f64();
        let lifetime = mean_lifetime().as_secs_f64();
        day / refresh.as_secs_f64() * gb_s(ROUND_HOLD, self.memory_mb)
            + day / lifetime * gb_s(self.mean_init(), self.memory_mb)
    }

    /// The quantile of recent window peaks to keep warm: the `j`-th environment is worth
    /// keeping (see [`Self::keep_dollars`]) while it is needed in more than
    /// `keep / (init × worth)` of the windows, `worth` being what a cold start is worth to
    /// the user in multiples of its billed init.
    pub fn sizing_quantile(&self, worth: f64, refresh: Duration) -> f64 {
        let share = self.keep_dollars(refresh) / (self.init_dollars() * worth);
        (1.0 - share).clamp(QUANTILE_BOUNDS.0, QUANTILE_BOUNDS.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Duration = Duration::from_secs(298);

    #[test]
    fn a_dearer_init_keeps_deeper_environments() {
        let mut small = FunctionWorth::new(128);
        let mut model = FunctionWorth::new(128);
        small.record_init(Duration::from_millis(900));
        small.record_init(Duration::from_millis(1100));
        model.record_init(Duration::from_secs(6));
        assert_eq!(small.mean_init(), Duration::from_secs(1));
        let (qs, qm) = (small.sizing_quantile(1.0, R), model.sizing_quantile(1.0, R));
        assert!(qs < qm, "{qs} {qm}");
        // At 128 MB a round's ping (its request, mostly) costs about a tenth of a 1-second
        // init, and the lifetime's replacement a fortieth.
        assert!(qs > 0.8 && qs < 0.9, "{qs}");
        // Worth more to the user, kept deeper.
        assert!(small.sizing_quantile(3.0, R) > qs);
    }

    #[test]
    fn before_any_cold_start_the_prior_init_applies() {
        let w = FunctionWorth::new(1024);
        assert_eq!(w.mean_init(), INIT_PRIOR);
        let q = w.sizing_quantile(1.0, R);
        assert!((QUANTILE_BOUNDS.0..=QUANTILE_BOUNDS.1).contains(&q));
    }
}
