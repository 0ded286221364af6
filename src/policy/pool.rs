//! The warm-pool estimate of one target: how many execution environments are probably warm
//! and idle, how many are busy, and how much provisioned capacity is free.
//!
//! Lambda does not say which environments are warm, so the estimate is built from what the
//! gateway sees: its own requests in flight, their completions (each leaves an environment
//! idle), and the cold starts the REPORT line reveals. Whether an idle environment survives
//! to a given idle age is learned online ([`ReclaimModel`]): a cold start while environments
//! were thought idle says they were all gone (Lambda reuses an idle environment whenever one
//! exists), and so were those already dropped from the estimate ("ghosts"); a warm start says
//! the most recently idle one was still there.
//!
//! Pure code: `now` is an argument; no clock, no I/O. Observations are plain values, so
//! several replicas can later share them (ARCHITECTURE.md, "Several replicas").

use std::time::Duration;

use crate::clock::Time;

/// Width of an idle-age bin of the reclaim model: fine, because a burst's environments share
/// one idle age and the curve falls within a minute or so of the reclaim time.
const BIN: Duration = Duration::from_secs(10);
/// Ages the model distinguishes: two hours of idle, beyond any measured reclaim.
const BINS: usize = 720;
/// Below this survival probability an idle environment is dropped from the estimate (kept
/// as a ghost, in case a warm start proves it alive).
const DROP_BELOW: f64 = 0.02;
/// Ghosts remembered per target.
const GHOSTS: usize = 64;
/// Observations after which the survival curve is refit only every [`REFIT_EVERY`].
const EAGER_OBSERVATIONS: u64 = 256;
const REFIT_EVERY: u32 = 32;
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
    /// Observations so far, and those not yet in the fitted curve.
    observed: u64,
    unfitted: u32,
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
            observed: 0,
            unfitted: 0,
        };
        model.refit();
        model
    }

    fn bin(age: Duration) -> usize {
        ((age.as_secs_f64() / BIN.as_secs_f64()).round() as usize).min(BINS - 1)
    }

    /// Records that an environment idle for `age` was (or was not) still there.
    pub fn observe(&mut self, age: Duration, alive: bool) {
        let b = Self::bin(age);
        self.seen[b] += 1.0;
        if alive {
            self.alive[b] += 1.0;
            self.oldest_alive = self.oldest_alive.max(Some(b));
        }
        self.observed += 1;
        self.unfitted += 1;
        // The curve moves slowly once it has learnt: refit after every observation while it
        // is young, then every REFIT_EVERY (a refit is a pass over every bin; doing it per
        // request was most of a replay's time and held the gateway's pool lock).
        if self.observed <= EAGER_OBSERVATIONS || self.unfitted >= REFIT_EVERY {
            self.refit();
            self.unfitted = 0;
        }
    }

    /// Probability that an environment idle for `age` is still warm.
    ///
    /// Linear between bins (bin `b` holds the ages nearest `b` × [`BIN`]): near the reclaim
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

    /// Pool-adjacent-violators: the non-increasing fit of alive/seen, weighted by seen, with
    /// the prior's pseudo-observations where the observations leave room for it.
    ///
    /// An environment seen alive at idle age `a` was alive at every younger age, so the
    /// prior's "gone after `min`" is refuted up to the oldest age seen alive. Between that
    /// age and the next one with observations (environments seen gone) the data cannot tell
    /// where the reclaim lies, and the curve falls linearly across; from there on the prior
    /// counts again. With the prior in every bin the curve fell right after the oldest bin
    /// seen alive: Lambda reuses the youngest environment first, so the ages just short of
    /// the reclaim are the least observed, and whole bursts idle there were counted gone.
    fn refit(&mut self) {
        // Seen alive short of the prior's end refutes nothing: it holds from there on.
        let refuted = match self.oldest_alive {
            Some(a) if a >= self.prior_bins => {
                (a + 1..BINS).find(|&b| self.seen[b] > 0.0).unwrap_or(a + 1)
            }
            _ => self.prior_bins,
        };
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

/// How a request that went to a target met its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Met {
    Warm,
    Cold,
    /// No log tail: nothing learned about reclaim.
    Unknown,
}

/// A request in flight on a target, as the pool tracks it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Started {
    /// Identifies the request within its pool.
    pub id: u64,
    pub at: Time,
    /// Served by provisioned capacity, as far as the pool can tell.
    pub provisioned: bool,
    /// The idle age of the environment the pool expected it to take, if any.
    pub expected_idle_age: Option<Duration>,
}

/// The estimate for one target.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Idle-since times of environments thought idle, oldest first (Lambda reuses the most
    /// recently idle one, the last).
    idle: Vec<Time>,
    /// Idle-since times of environments dropped as probably reclaimed, newest last.
    ghosts: Vec<Time>,
    in_flight: Vec<Started>,
    next_id: u64,
    /// Allocated provisioned concurrency on this target, as last read from Lambda.
    provisioned: u32,
    reclaim: ReclaimModel,
    /// Smoothed handler duration and init duration seen on this target.
    duration: Ewma,
    init: Ewma,
}

/// An exponentially weighted moving average with a starting guess.
#[derive(Debug, Clone, Copy)]
struct Ewma {
    value: f64,
}

impl Ewma {
    const ALPHA: f64 = 0.2;
    fn update(&mut self, sample: Duration) {
        self.value += Self::ALPHA * (sample.as_secs_f64() - self.value);
    }
    fn get(self) -> Duration {
        Duration::from_secs_f64(self.value.max(0.0))
    }
}

/// What the router and the operators see of a pool at one instant.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PoolView {
    pub in_flight: u32,
    /// Expected number of warm idle environments: the sum of their survival probabilities.
    pub warm_idle: f64,
    /// Probability that at least one idle environment is warm.
    pub warm_probability: f64,
    pub provisioned: u32,
    pub provisioned_free: u32,
    #[serde(serialize_with = "ms")]
    pub expected_duration: Duration,
    #[serde(serialize_with = "ms")]
    pub expected_init: Duration,
}

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Default for Pool {
    fn default() -> Self {
        Self::new(ReclaimModel::default())
    }
}

impl Pool {
    pub fn new(reclaim: ReclaimModel) -> Self {
        Self {
            idle: Vec::new(),
            ghosts: Vec::new(),
            in_flight: Vec::new(),
            next_id: 0,
            provisioned: 0,
            reclaim,
            duration: Ewma { value: 0.1 },
            init: Ewma { value: 3.0 },
        }
    }

    /// Sets the allocated provisioned concurrency (read from Lambda's control plane).
    pub fn set_provisioned(&mut self, allocated: u32) {
        self.provisioned = allocated;
    }

    /// Drops idle environments that are almost surely reclaimed by `now`.
    fn forget_reclaimed(&mut self, now: Time) {
        let reclaim = &self.reclaim;
        let (keep, gone): (Vec<Time>, Vec<Time>) = self
            .idle
            .iter()
            .partition(|&&since| reclaim.survival(now.saturating_sub(since)) >= DROP_BELOW);
        self.idle = keep;
        self.ghosts.extend(gone);
        if self.ghosts.len() > GHOSTS {
            let excess = self.ghosts.len() - GHOSTS;
            self.ghosts.drain(..excess);
        }
    }

    /// The estimate at `now`.
    pub fn view(&self, now: Time) -> PoolView {
        let survivals = self
            .idle
            .iter()
            .map(|&since| self.reclaim.survival(now.saturating_sub(since)));
        let (warm_idle, none_warm) =
            survivals.fold((0.0, 1.0), |(sum, none), s| (sum + s, none * (1.0 - s)));
        let busy = self.in_flight.len() as u32;
        PoolView {
            in_flight: busy,
            warm_idle,
            warm_probability: 1.0 - none_warm,
            provisioned: self.provisioned,
            provisioned_free: self.provisioned.saturating_sub(busy),
            expected_duration: self.duration.get(),
            expected_init: self.init.get(),
        }
    }

    /// A request goes to this target at `now`: it takes the most recently idle environment,
    /// if one is thought warm.
    pub fn start(&mut self, now: Time) -> Started {
        self.forget_reclaimed(now);
        let provisioned = (self.in_flight.len() as u32) < self.provisioned;
        let expected_idle_age = if provisioned {
            None
        } else {
            self.idle.pop().map(|since| now.saturating_sub(since))
        };
        self.next_id += 1;
        let started = Started {
            id: self.next_id,
            at: now,
            provisioned,
            expected_idle_age,
        };
        self.in_flight.push(started);
        started
    }

    /// The request `started` ended at `now`: its environment is idle from now on (unless it
    /// was provisioned), and how it met its environment teaches the reclaim model.
    pub fn complete(
        &mut self,
        now: Time,
        started: &Started,
        met: Met,
        duration: Duration,
        init: Option<Duration>,
    ) {
        let Some(pos) = self.in_flight.iter().position(|s| s.id == started.id) else {
            return;
        };
        let started = self.attribute(pos, met);
        self.in_flight.swap_remove(pos);
        let started = &started;
        self.duration.update(duration);
        if let Some(init) = init {
            self.init.update(init);
        }
        let arrived = started.at;
        match (met, started.expected_idle_age) {
            (Met::Warm, Some(age)) => self.reclaim.observe(age, true),
            (Met::Cold, expected) if !started.provisioned => {
                // Lambda reuses any idle environment: a cold start means none was left, the
                // one expected, every other thought idle then, and every ghost. (The ghosts
                // matter most: they are the environments past the curve's end, and without
                // their ends it learns nothing of how far past it the reclaim lies.)
                if let Some(age) = expected {
                    self.reclaim.observe(age, false);
                }
                for list in [&mut self.idle, &mut self.ghosts] {
                    let mut kept = Vec::with_capacity(list.len());
                    for since in std::mem::take(list) {
                        if since <= arrived {
                            self.reclaim.observe(arrived - since, false);
                        } else {
                            kept.push(since);
                        }
                    }
                    *list = kept;
                }
            }
            (Met::Warm, None) if !started.provisioned => {
                // Warm where none was expected: the youngest ghost was still there.
                if let Some(since) = self.ghosts.pop() {
                    self.reclaim.observe(arrived.saturating_sub(since), true);
                }
            }
            _ => {}
        }
        // The environment that served is idle from now; provisioned ones are capacity, counted
        // apart.
        if !started.provisioned {
            self.idle.push(now);
            self.idle.sort_unstable();
        }
    }

    /// Which expectation a result answers. Requests of a burst come back in any order, but
    /// Lambda hands out the most recently idle environments first: a warm result answers the
    /// youngest expectation still outstanding, a cold one the oldest. The request at `pos`
    /// takes that expectation (swapping with its holder), so the evidence does not depend on
    /// the order of the answers.
    fn attribute(&mut self, pos: usize, met: Met) -> Started {
        let holders = self
            .in_flight
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.expected_idle_age.map(|age| (i, s.at.saturating_sub(age))));
        let holder = match met {
            // Youngest environment: the latest idle-since time.
            Met::Warm => holders.max_by_key(|&(_, since)| since),
            Met::Cold => holders.min_by_key(|&(_, since)| since),
            Met::Unknown => None,
        };
        if let Some((h, _)) = holder {
            if h != pos {
                let mine = self.in_flight[pos].expected_idle_age;
                let (theirs_at, mine_at) = (self.in_flight[h].at, self.in_flight[pos].at);
                let since_theirs = theirs_at
                    .saturating_sub(self.in_flight[h].expected_idle_age.expect("a holder"));
                // Ages are relative to each request's start; move idle-since times instead.
                self.in_flight[pos].expected_idle_age = Some(mine_at.saturating_sub(since_theirs));
                self.in_flight[h].expected_idle_age =
                    mine.map(|age| theirs_at.saturating_sub(mine_at.saturating_sub(age)));
            }
        }
        self.in_flight[pos]
    }

    /// The request `started` did not run (refused before execution): the environment it was
    /// expected to take is idle still.
    pub fn abandon(&mut self, started: &Started) {
        if let Some(pos) = self.in_flight.iter().position(|s| s.id == started.id) {
            self.in_flight.swap_remove(pos);
        }
        if let Some(age) = started.expected_idle_age {
            self.idle.push(started.at.saturating_sub(age));
            self.idle.sort_unstable();
        }
    }

    /// The expected wait until one of the requests in flight frees its environment, for the
    /// `position`-th waiter (0: the first), or `None` if none is in flight.
    pub fn expected_wait(&self, now: Time, position: usize) -> Option<Duration> {
        let expected = self.duration.get();
        let mut frees: Vec<Duration> = self
            .in_flight
            .iter()
            .map(|s| (s.at + expected).saturating_sub(now))
            .collect();
        if frees.is_empty() {
            return None;
        }
        frees.sort_unstable();
        // Waiters beyond the number in flight wait for a second round.
        let round = position / frees.len();
        Some(frees[position % frees.len()] + expected * round as u32)
    }

    pub fn reclaim(&self) -> &ReclaimModel {
        &self.reclaim
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
    fn completions_leave_idle_environments_that_age_out() {
        let mut pool = Pool::default();
        let a = pool.start(Duration::ZERO);
        let b = pool.start(Duration::ZERO);
        assert_eq!(pool.view(Duration::ZERO).in_flight, 2);
        pool.complete(2 * S, &a, Met::Cold, Duration::from_millis(50), Some(S));
        pool.complete(2 * S, &b, Met::Cold, Duration::from_millis(50), Some(S));
        let v = pool.view(3 * S);
        assert_eq!(v.in_flight, 0);
        assert!((v.warm_idle - 2.0).abs() < 1e-9);
        assert!(pool.view(20 * MIN).warm_idle < 0.05);
    }

    #[test]
    fn a_cold_start_where_warm_was_expected_teaches_a_shorter_lifetime() {
        let mut pool = Pool::default();
        let mut now = Duration::ZERO;
        for _ in 0..40 {
            let s = pool.start(now);
            pool.complete(now + S, &s, Met::Cold, S, Some(S));
            now += 3 * MIN; // every call after 3 minutes of idle meets a cold start
        }
        assert!(pool.reclaim().survival(3 * MIN) < 0.3);
        assert!(pool.view(now).warm_idle < 0.3, "the estimate follows");
    }

    #[test]
    fn a_warm_start_where_none_was_expected_teaches_a_longer_lifetime() {
        let mut pool = Pool::default();
        let mut now = Duration::ZERO;
        for _ in 0..40 {
            let s = pool.start(now);
            pool.complete(now + S, &s, Met::Warm, S, None);
            now += 15 * MIN; // beyond the prior's 10 minutes, yet warm every time
        }
        assert!(
            pool.reclaim().survival(14 * MIN) > 0.6,
            "{}",
            pool.reclaim().survival(14 * MIN)
        );
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
    fn a_cold_start_dates_the_end_of_the_ghosts_too() {
        // Five environments idle past the prior are dropped as ghosts; a cold start 7 minutes
        // on says they were gone by then, which the curve learns.
        let mut pool = Pool::default();
        let burst: Vec<Started> = (0..5).map(|_| pool.start(Duration::ZERO)).collect();
        for s in &burst {
            pool.complete(2 * S, s, Met::Cold, S, Some(S));
        }
        let at = 2 * S + 7 * MIN;
        assert_eq!(pool.view(at).warm_idle, 0.0);
        let s = pool.start(at);
        assert_eq!(s.expected_idle_age, None, "dropped as probably reclaimed");
        pool.complete(at + 3 * S, &s, Met::Cold, S, Some(S));
        let mut m = pool.reclaim().clone();
        assert_eq!(m.survival(7 * MIN), 0.0);
        // A ghost warm start at 6 minutes then brackets the reclaim between the two.
        m.observe(6 * MIN, true);
        assert!((m.survival(6 * MIN + 30 * S) - 0.5).abs() < 1e-9);
        // Without the ghosts' ends, nothing past 6 minutes would be known: counted gone.
        let mut prior = ReclaimModel::default();
        prior.observe(6 * MIN, true);
        assert!(prior.survival(6 * MIN + 30 * S) < 0.01);
    }

    #[test]
    fn provisioned_capacity_is_used_first_and_not_counted_idle() {
        let mut pool = Pool::default();
        pool.set_provisioned(2);
        let a = pool.start(Duration::ZERO);
        assert!(a.provisioned);
        assert_eq!(pool.view(Duration::ZERO).provisioned_free, 1);
        pool.complete(S, &a, Met::Warm, S, None);
        assert_eq!(pool.view(S).warm_idle, 0.0);
        assert_eq!(pool.view(S).provisioned_free, 2);
    }

    #[test]
    fn expected_wait_is_the_next_completion() {
        let mut pool = Pool::default();
        let s = pool.start(Duration::ZERO);
        pool.complete(
            Duration::from_millis(100),
            &s,
            Met::Cold,
            Duration::from_millis(100),
            Some(S),
        );
        // Duration estimate moves toward 100 ms from its 100 ms start.
        let _a = pool.start(Duration::from_secs(1));
        let wait = pool.expected_wait(Duration::from_millis(1040), 0).unwrap();
        assert_eq!(wait, Duration::from_millis(60));
        let second = pool.expected_wait(Duration::from_millis(1040), 1).unwrap();
        assert_eq!(second, Duration::from_millis(160));
    }
}
