//! Whether a function's pool pays for its rounds, learned from what the rounds bought.
//!
//! The sizing ([`worth`](super::worth)) keeps the `j`-th environment while the windows that
//! need it are worth more than its ping. Two things it cannot see: Lambda gives a ping the
//! most recently used idle environment, so a round that refreshes the deepest of a busy
//! function's pool first occupies every one above it that traffic keeps warm anyway (a round
//! of 20 to refresh 2); and a window that reaches depth `j` often finds the `j`-th
//! environment warm from traffic alone. So the planner also keeps a ledger of what each
//! function's rounds cost and bought: the pings that went beyond a few small caps (1, 2 and
//! 4 environments), and the calls that found, beyond each cap, an environment only pings had
//! kept warm (a cold start spared: the call found every idle environment kept by pings
//! alone). Where a cap would have saved more in pings than the cold starts it would have cost
//! are worth, the pool is kept within the cap that saves the most; while capped, the calls
//! that meet a cold start beyond it count for the pool, so the cap lifts when they outweigh
//! the pings (older evidence fades with a half-life of `HALF_LIFE`).

use std::time::Duration;

use crate::clock::Time;

/// The caps a pool may be kept within, smallest first.
const CAPS: [u32; 3] = [1, 2, 4];
/// Evidence this old counts half.
const HALF_LIFE: Duration = Duration::from_secs(3600);

/// One function's ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct PoolLedger {
    /// When the sums were last brought up to date.
    at: Time,
    /// Per cap of [`CAPS`]: the dollars the pings sent beyond it billed (their requests, and
    /// the inits of the environments they started), and the calls that found beyond it an
    /// environment only pings kept (or, while capped there, met a cold start).
    beyond: [(f64, f64); CAPS.len()],
    cap: Option<u32>,
    /// The depth of the latest round, which the cold starts its pings meet are charged to.
    last_depth: u32,
}

impl PoolLedger {
    /// The cap the pool is kept within (`None`: none).
    pub(super) fn cap(&self) -> Option<u32> {
        self.cap
    }

    fn fade(&mut self, now: Time) {
        if now <= self.at {
            return;
        }
        let f = 0.5f64.powf((now - self.at).as_secs_f64() / HALF_LIFE.as_secs_f64());
        for b in &mut self.beyond {
            b.0 *= f;
            b.1 *= f;
        }
        self.at = now;
    }

    /// A round of `pings`, each billing `dollars`, kept the pool at `depth` environments:
    /// its pings reached the `pings` deepest of them.
    pub(super) fn round(&mut self, now: Time, depth: u32, pings: u32, dollars: f64) {
        self.fade(now);
        self.last_depth = depth;
        for (b, &cap) in self.beyond.iter_mut().zip(&CAPS) {
            b.0 += f64::from(pings.min(depth.saturating_sub(cap))) * dollars;
        }
    }

    /// A ping of the latest round started an environment, billing its init (`dollars`):
    /// charged beyond the caps the round went past.
    pub(super) fn started(&mut self, now: Time, dollars: f64) {
        self.fade(now);
        for (b, &cap) in self.beyond.iter_mut().zip(&CAPS) {
            if self.last_depth > cap {
                b.0 += dollars;
            }
        }
    }

    /// A call found an environment only pings had kept, with `depth` real executions
    /// running, itself included.
    pub(super) fn spared(&mut self, now: Time, depth: u32) {
        self.fade(now);
        for (b, &cap) in self.beyond.iter_mut().zip(&CAPS) {
            if depth > cap {
                b.1 += 1.0;
            }
        }
    }

    /// A call met a cold start with `depth` real executions running: while the pool is
    /// capped below that, a pool might have spared it.
    pub(super) fn cold(&mut self, now: Time, depth: u32) {
        if self.cap.is_some_and(|cap| depth > cap) {
            self.spared(now, depth);
        }
    }

    /// Chooses the cap at `now`, a spared cold start being worth `spared` dollars: the one
    /// that saves the most over no cap, if any saves.
    pub(super) fn choose(&mut self, now: Time, spared: f64) -> Option<u32> {
        self.fade(now);
        let mut best = (None, 0.0);
        for (&(billed, saves), &cap) in self.beyond.iter().zip(&CAPS) {
            let saved = billed - saves * spared;
            if saved > best.1 {
                best = (Some(cap), saved);
            }
        }
        self.cap = best.0;
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    /// A small function's: a ping about a fiftieth of what a spared cold start is worth.
    const PING: f64 = 1.0;
    const SPARED: f64 = 50.0;

    #[test]
    fn a_pool_whose_rounds_spare_little_is_capped_where_traffic_keeps_it() {
        let mut l = PoolLedger::default();
        // A busy function: a pool of 25 kept by rounds of 12 every 5 minutes for two hours,
        // which spared two calls at depths 24 and 25.
        for i in 0..24 {
            l.round(i * 5 * MIN, 25, 12, PING);
        }
        l.spared(100 * MIN, 24);
        l.spared(110 * MIN, 25);
        // 288 pings (about 150 once faded) bought 2 cold starts worth 50 each: every cap
        // saves as much, and the smallest is taken.
        assert_eq!(l.choose(120 * MIN, SPARED), Some(1));
        // Had they spared three more, they would have paid for themselves.
        let mut paid = l.clone();
        for depth in [23, 24, 25] {
            paid.spared(120 * MIN, depth);
        }
        assert_eq!(paid.choose(120 * MIN, SPARED), None);
    }

    #[test]
    fn spares_at_a_shallow_depth_choose_a_cap_above_them() {
        let mut l = PoolLedger::default();
        // A pool of 7: each round's 4 pings reach depths 4 to 7 and spared nothing there,
        // while three calls found a third environment only pings had kept.
        for i in 0..40 {
            l.round(i * 5 * MIN, 7, 4, PING);
        }
        for t in [150, 160, 170] {
            l.spared(t * MIN, 3);
        }
        // Cap 1 or 2 would lose the three spared at depth 3 for the rounds' pings; cap 4
        // loses none and saves three pings a round.
        assert_eq!(l.choose(200 * MIN, SPARED), Some(4));
    }

    #[test]
    fn while_capped_the_cold_starts_beyond_the_cap_lift_it() {
        let mut l = PoolLedger::default();
        for i in 0..12 {
            l.round(i * 5 * MIN, 10, 9, PING);
        }
        assert_eq!(l.choose(60 * MIN, SPARED), Some(1));
        // A cold start at depth 1 is the floor's business, not the pool's.
        l.cold(61 * MIN, 1);
        assert_eq!(l.choose(61 * MIN, SPARED), Some(1));
        // Two hours on, the pings count a quarter; three calls that met a cold start beyond the
        // cap outweigh them.
        for t in [170, 175, 180] {
            l.cold(t * MIN, 5);
        }
        assert_eq!(l.choose(180 * MIN, SPARED), None);
        // Uncapped, a cold start is no evidence either way.
        let before = l.clone();
        l.cold(181 * MIN, 5);
        assert_eq!(l, before);
    }
}
