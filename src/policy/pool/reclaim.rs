//! How long an environment stays warm: the idle-reclaim survival curve learnt online
//! ([`ReclaimModel`]) and the prior on an environment's whole lifetime ([`Lifetime`]).

use std::time::Duration;

/// Width of an idle-age bin of the reclaim model: fine, because a burst's environments share
/// one idle age and the curve falls within a minute or so of the reclaim time.
pub(super) const BIN: Duration = Duration::from_secs(10);
/// Ages the model distinguishes: two hours of idle, beyond any measured reclaim.
const BINS: usize = 720;
/// How far the fitted curve may lag the observations at any age before it is refit.
const MAX_DRIFT: f64 = 0.005;
/// Weight of the prior, in pseudo-observations per bin.
const PRIOR_WEIGHT: f64 = 0.5;

/// How long an idle environment survives, learned from current-status observations ("alive
/// at idle age a", "gone by idle age a"), as a non-increasing survival curve.
///
/// The prior is the shortest published reclaim time (about 5 minutes of idle): environments
/// are counted warm up to it, and past it only as far as observations show them surviving.
/// Lambda reuses the most recently idle environment first, so old idle environments are
/// rarely observed; a prior that assumed a longer life would keep counting environments long
/// gone. A platform that keeps them longer shows it: a warm start where none was expected
/// extends the curve, and a cold start dates the ends of the environments past it. Between
/// the oldest age seen alive and the next age seen gone the curve falls linearly (the data
/// cannot place the reclaim there; see `refit`). The fit is pool-adjacent-violators, the
/// maximum-likelihood estimate for current-status data.
#[derive(Debug, Clone)]
pub struct ReclaimModel {
    /// Observations per bin, the prior apart: where it applies depends on the observations.
    alive: Vec<f64>,
    seen: Vec<f64>,
    /// The prior's bins: below it, pseudo-observations alive; from it on, gone.
    prior_bins: usize,
    /// The oldest bin with an environment observed alive.
    oldest_alive: Option<usize>,
    survival: Vec<f64>,
    /// A bound on how far the observations since the last fit have moved the curve.
    drift: f64,
}

impl Default for ReclaimModel {
    fn default() -> Self {
        Self::with_prior(Duration::from_secs(300))
    }
}

impl ReclaimModel {
    /// A model whose prior says idle environments survive `min`, and no longer.
    pub fn with_prior(min: Duration) -> Self {
        let prior_bins = (0..BINS)
            .position(|b| BIN.as_secs_f64() * b as f64 >= min.as_secs_f64())
            .unwrap_or(BINS);
        let mut model = Self {
            alive: vec![0.0; BINS],
            seen: vec![0.0; BINS],
            prior_bins,
            oldest_alive: None,
            survival: vec![1.0; BINS],
            drift: 0.0,
        };
        model.refit();
        model
    }

    fn bin(age: Duration) -> usize {
        ((age.as_secs_f64() / BIN.as_secs_f64()).round() as usize).min(BINS - 1)
    }

    /// Records that an environment idle for `age` was (or was not) still there.
    pub fn observe(&mut self, age: Duration, alive: bool) {
        self.observe_weighted(age, alive, 1.0);
    }

    /// Records an observation that counts `weight` (0 to 1) of one: the share of the
    /// probability that it says something of the idle reclaim (an environment gone may have
    /// met its lifetime cap instead).
    pub fn observe_weighted(&mut self, age: Duration, alive: bool, weight: f64) {
        let weight = weight.clamp(0.0, 1.0);
        if weight <= 0.0 {
            return;
        }
        let b = Self::bin(age);
        // A refit is a pass over every bin, too costly per request (it holds the gateway's
        // pool lock), so it waits until the observations since the last one could have moved
        // the curve by MAX_DRIFT. The fit at any age is a min-max of weighted averages over
        // ranges of bins; those that hold this one move by at most
        // weight / (its bin's weight + weight), the others not at all. So the sparsely
        // observed ages where the curve falls are refit promptly, while a busy function's
        // thousands of warm starts at young ages barely move it. One that moves where the
        // prior applies is fitted at once.
        self.drift += weight / (self.seen[b] + weight);
        let refuted = self.refuted();
        self.seen[b] += weight;
        if alive {
            self.alive[b] += weight;
            self.oldest_alive = self.oldest_alive.max(Some(b));
        }
        if self.refuted() != refuted || self.drift > MAX_DRIFT {
            self.refit();
        }
    }

    /// Probability that an environment idle for `age` is still warm.
    ///
    /// Linear between bins (bin `b` holds the ages nearest `b` × `BIN`): near the reclaim
    /// time the curve falls steeply, and a whole burst's environments share one idle age, so
    /// a bin-wide step would miss them together.
    pub fn survival(&self, age: Duration) -> f64 {
        let x = age.as_secs_f64() / BIN.as_secs_f64();
        if x <= 0.0 {
            return self.survival[0];
        }
        let b = x as usize;
        if b + 1 >= BINS {
            return self.survival[BINS - 1];
        }
        let t = x - b as f64;
        self.survival[b] * (1.0 - t) + self.survival[b + 1] * t
    }

    /// The idle age by which an environment is gone with probability `p`.
    pub fn quantile(&self, p: f64) -> Duration {
        let b = self
            .survival
            .iter()
            .position(|&s| s <= 1.0 - p)
            .unwrap_or(BINS);
        BIN * b as u32
    }

    /// The stretch of idle ages where nothing places the reclaim: from the oldest age seen
    /// alive past the prior to the next age with observations (environments seen gone), across
    /// which the curve falls linearly. `None` where the prior or observations make the curve
    /// sharp: nothing seen alive past the prior, or nothing seen beyond the oldest alive (the
    /// prior's "gone" then counts right after it).
    pub fn unobserved(&self) -> Option<(Duration, Duration)> {
        let (alive, gone) = self.alive_past_prior()?;
        Some((BIN * alive as u32, BIN * gone? as u32))
    }

    /// The oldest bin seen alive, if past the prior, and the next bin with observations.
    fn alive_past_prior(&self) -> Option<(usize, Option<usize>)> {
        let alive = self.oldest_alive.filter(|&a| a >= self.prior_bins)?;
        Some((alive, (alive + 1..BINS).find(|&b| self.seen[b] > 0.0)))
    }

    /// The first bin where the prior's "gone" counts: past the oldest age seen alive, from the
    /// next age with observations (see `refit`). Seen alive short of the prior's end refutes
    /// nothing: it holds from there on.
    fn refuted(&self) -> usize {
        match self.alive_past_prior() {
            Some((alive, next_seen)) => next_seen.unwrap_or(alive + 1),
            None => self.prior_bins,
        }
    }

    /// Pool-adjacent-violators: the non-increasing fit of alive/seen, weighted by seen, with
    /// the prior's pseudo-observations where the observations leave room for it.
    ///
    /// An environment seen alive at idle age `a` was alive at every younger age, so the
    /// prior's "gone after `min`" is refuted up to the oldest age seen alive. Between that
    /// age and the next one with observations (environments seen gone) the data cannot tell
    /// where the reclaim lies, and the curve falls linearly across; from there on the prior
    /// counts again. The prior is left out of the stretch because Lambda reuses the youngest
    /// environment first: the ages just short of the reclaim are the least observed, and a
    /// prior there would count whole bursts idle at them gone.
    fn refit(&mut self) {
        let refuted = self.refuted();
        // Blocks of (sum alive, sum seen, bins), merged while a later block's rate exceeds
        // an earlier one's; bins without weight are left out and interpolated afterwards.
        let mut weighted: Vec<usize> = Vec::with_capacity(BINS);
        let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(BINS);
        for b in 0..BINS {
            let (mut alive, mut seen) = (self.alive[b], self.seen[b]);
            if b < self.prior_bins {
                alive += PRIOR_WEIGHT;
                seen += PRIOR_WEIGHT;
            } else if b >= refuted {
                seen += PRIOR_WEIGHT;
            }
            if seen <= 0.0 {
                continue;
            }
            weighted.push(b);
            blocks.push((alive, seen, 1));
            while blocks.len() > 1 {
                let (a2, s2, n2) = blocks[blocks.len() - 1];
                let (a1, s1, n1) = blocks[blocks.len() - 2];
                if a2 / s2 > a1 / s1 {
                    blocks.pop();
                    *blocks.last_mut().expect("two blocks") = (a1 + a2, s1 + s2, n1 + n2);
                } else {
                    break;
                }
            }
        }
        self.drift = 0.0;
        let mut bins = weighted.iter();
        for (a, s, n) in blocks {
            for &b in bins.by_ref().take(n) {
                self.survival[b] = (a / s).clamp(0.0, 1.0);
            }
        }
        // Bins without weight lie between weighted ones (every bin from `refuted` on has the
        // prior's): straight lines between those, from "warm" at an idle age of zero.
        let (mut left, mut left_s) = (-1.0, 1.0);
        for &b in &weighted {
            let right_s = self.survival[b];
            let from = (left + 1.0) as usize;
            for g in from..b {
                let t = (g as f64 - left) / (b as f64 - left);
                self.survival[g] = left_s + (right_s - left_s) * t;
            }
            (left, left_s) = (b as f64, right_s);
        }
        let last = (left + 1.0) as usize;
        self.survival[last..].fill(left_s);
    }
}

/// How long an environment lives from its creation, whatever its use: a prior, uniform
/// between `min` and `max`, not learnt (nothing the gateway sees dates a lifetime's end apart
/// from an idle reclaim; see `Pool::observe_gone`).
///
/// AWS publishes no figure; published measurements say environments also end after a few
/// hours regardless;
/// the platform model draws the cap uniformly from 2 to 4 hours (`max_lifetime_s`,
/// `src/platform/spec.rs`), and [`Lifetime::FEW_HOURS`] says the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Lifetime {
    fn default() -> Self {
        Self::FEW_HOURS
    }
}

impl Lifetime {
    /// "A few hours regardless": 2 to 4 hours.
    pub const FEW_HOURS: Self = Self {
        min: Duration::from_secs(2 * 3600),
        max: Duration::from_secs(4 * 3600),
    };
    /// No cap: only the idle reclaim ends environments.
    pub const NONE: Self = Self {
        min: Duration::MAX,
        max: Duration::MAX,
    };

    /// Probability that an environment lives longer than `age`.
    fn survival(&self, age: Duration) -> f64 {
        if age <= self.min {
            1.0
        } else if age >= self.max {
            0.0
        } else {
            (self.max - age).as_secs_f64() / (self.max - self.min).as_secs_f64()
        }
    }

    /// Probability that an environment seen alive at `seen` (its age then) lives to `age`.
    /// Seen alive past `max` refutes the prior for that environment: nothing is known of its
    /// cap, and it is not counted (rather than counted gone for good).
    pub fn survival_after(&self, seen: Duration, age: Duration) -> f64 {
        let alive_then = self.survival(seen);
        if alive_then <= 0.0 {
            return 1.0;
        }
        (self.survival(age) / alive_then).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_prior_counts_environments_warm_for_five_minutes() {
        let m = ReclaimModel::default();
        assert!(m.survival(4 * MIN) > 0.99);
        assert!(m.survival(6 * MIN) < 0.01);
    }

    #[test]
    fn observations_move_the_survival_curve() {
        let mut m = ReclaimModel::default();
        for _ in 0..50 {
            m.observe(3 * MIN, false);
        }
        assert!(m.survival(3 * MIN) < 0.2, "{}", m.survival(3 * MIN));
        let mut m = ReclaimModel::default();
        for _ in 0..50 {
            m.observe(20 * MIN, true);
        }
        assert!(m.survival(15 * MIN) > 0.7, "{}", m.survival(15 * MIN));
        // Always non-increasing.
        let s: Vec<f64> = (0..BINS).map(|b| m.survival(BIN * b as u32)).collect();
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn alive_past_the_prior_refutes_it_up_to_there_and_no_further() {
        let mut m = ReclaimModel::default();
        m.observe(7 * MIN, true);
        // An environment seen alive at 7 minutes was alive at every younger age.
        assert_eq!(m.survival(6 * MIN), 1.0);
        assert_eq!(m.survival(7 * MIN), 1.0);
        // Beyond it nothing is known: the prior counts them gone.
        assert!(m.survival(7 * MIN + 10 * S) < 0.01);
    }

    #[test]
    fn between_the_oldest_seen_alive_and_the_first_seen_gone_the_curve_falls_linearly() {
        let mut m = ReclaimModel::default();
        for _ in 0..5 {
            m.observe(6 * MIN, true);
            m.observe(8 * MIN, false);
        }
        assert_eq!(m.survival(6 * MIN), 1.0);
        assert!((m.survival(7 * MIN) - 0.5).abs() < 1e-9);
        assert_eq!(m.survival(8 * MIN), 0.0);
        // Between bins too: a burst idle just past a bin is not counted with the next one.
        let (a, b) = (m.survival(6 * MIN + 10 * S), m.survival(6 * MIN + 15 * S));
        assert!(a > b && b > m.survival(6 * MIN + 20 * S), "{a} {b}");
    }

    #[test]
    fn the_curve_lags_a_full_refit_by_little() {
        // Observations of a reclaim uniform from 5 to 10 minutes, most at young ages, where
        // one in a hundred is gone, as on a busy function; the curve, refit only when they
        // could have moved it, stays close to one refit after every observation.
        let mut m = ReclaimModel::default();
        let mut x: u64 = 42;
        let mut uniform = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut worst: f64 = 0.0;
        for _ in 0..5_000 {
            let u = uniform();
            let age = if u < 0.7 {
                u * 60.0
            } else {
                240.0 + (u - 0.7) * 1_400.0
            };
            let survival = if age < 60.0 {
                0.99
            } else {
                ((600.0 - age) / 300.0).clamp(0.0, 1.0)
            };
            m.observe(Duration::from_secs_f64(age), uniform() < survival);
            let mut fresh = m.clone();
            fresh.refit();
            let lag = (0..BINS)
                .map(|b| (m.survival[b] - fresh.survival[b]).abs())
                .fold(0.0, f64::max);
            worst = worst.max(lag);
        }
        assert!(worst <= MAX_DRIFT, "{worst}");
    }
}
