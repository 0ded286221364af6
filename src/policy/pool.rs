//! The warm-pool estimate of one target: how many execution environments are probably warm
//! and idle, how many are busy, and how much provisioned capacity is free.
//!
//! Lambda does not say which environments are warm, so the estimate is built from what the
//! gateway sees: its own requests in flight, their completions (each leaves an environment
//! idle), and the cold starts the REPORT line reveals. Whether an idle environment survives
//! to a given idle age is learned online ([`ReclaimModel`]): a cold start while environments
//! were thought idle says they were all gone (Lambda reuses an idle environment whenever one
//! exists), and so were those already dropped from the estimate ("ghosts"); a warm start says
//! the most recently idle one was still there. Environments also end a few hours after their
//! creation whatever their use ([`Lifetime`]); the pool tracks each one's creation time so
//! that this cap neither surprises the estimate nor is taught to the reclaim curve as early
//! reclaim. Where nothing observed places the reclaim, the pool asks for a probe: a ping timed
//! so that its outcome does ([`Pool::probe_due`]).
//!
//! Pure code: `now` is an argument; no clock, no I/O. Observations are plain values, so
//! several replicas can later share them (ARCHITECTURE.md, "Several replicas").

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
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
/// How far the fitted curve may lag the observations at any age before it is refit.
const MAX_DRIFT: f64 = 0.005;
/// Weight of the prior, in pseudo-observations per bin.
const PRIOR_WEIGHT: f64 = 0.5;
/// An unobserved stretch of the reclaim curve this narrow is sharp enough not to probe: two
/// bins (ages are taught to the nearest bin). In the scripted day of `tests/routing.rs`
/// (seeds 1 to 30), 10 s asked 25% more probes for the same figures, 30 s did worse.
pub const PROBE_RESOLUTION: Duration = Duration::from_secs(20);
/// Least time between two probes of a target: a probe refused (or unanswered) leaves the
/// pool as it was, and would otherwise be due again at once.
pub const PROBE_SPACING: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

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
        // A refit is a pass over every bin (per request, it was most of a replay's time and
        // held the gateway's pool lock), so it waits until the observations since the last
        // one could have moved the curve by MAX_DRIFT. The fit at any age is a min-max of
        // weighted averages over ranges of bins; those that hold this one move by at most
        // weight / (its bin's weight + weight), the others not at all. (Refitting every 32
        // observations instead left the curve stale just where it falls, over the sparsely
        // observed ages that matter; a busy function's thousands of warm starts at young
        // ages barely move it.) One that moves where the prior applies is fitted at once.
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
    /// counts again. With the prior in every bin the curve fell right after the oldest bin
    /// seen alive: Lambda reuses the youngest environment first, so the ages just short of
    /// the reclaim are the least observed, and whole bursts idle there were counted gone.
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
/// AWS publishes no figure. DESIGN.md: "environments also end after a few hours regardless";
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

/// When the gateway may probe a target: ping it to learn whether its next idle environment
/// is alive at an idle age where the reclaim curve is uncertain (see [`Pool::probe_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbePolicy {
    /// On by default: a few pings per target while the curve is uncertain, none once it is
    /// sharp, and the estimate they sharpen decides every routed request (warm or cold,
    /// wait or not). The gateway's burst pings already assume a handler that answers pings.
    pub enabled: bool,
    /// At most this many probes of a target within any hour: a probe that meets no
    /// environment costs an init.
    pub max_per_hour: u32,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_hour: 4,
        }
    }
}

/// A probe due now: the environment it will meet is `idle_age` idle, inside the stretch
/// from `alive` (the oldest idle age seen alive) to `gone` (the next seen gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub idle_age: Duration,
    pub alive: Duration,
    pub gone: Duration,
}

/// How a request that went to a target met its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Met {
    Warm,
    Cold,
    /// No log tail: nothing learned about reclaim.
    Unknown,
}

/// An execution environment as the pool knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Environment {
    /// The start of the cold start that created it: its lifetime runs from there.
    pub created: Time,
    /// When it last became idle (its last request's completion): it was alive then.
    pub idle_since: Time,
}

/// A request in flight on a target, as the pool tracks it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Started {
    /// Identifies the request within its pool.
    pub id: u64,
    pub at: Time,
    /// Served by provisioned capacity, as far as the pool can tell.
    pub provisioned: bool,
    /// The idle environment the pool expected it to take, if any.
    pub expected: Option<Environment>,
    /// A keep-alive ping rather than a real request: its duration is the ping's hold, not
    /// the handler's, and is not taught to the handler's duration.
    pub ping: bool,
}

impl Started {
    /// The idle age, at the request's start, of the environment it was expected to take.
    pub fn expected_idle_age(&self) -> Option<Duration> {
        self.expected
            .map(|env| self.at.saturating_sub(env.idle_since))
    }
}

/// The estimate for one target.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Environments thought idle, by idle-since time, oldest first (Lambda reuses the most
    /// recently idle one, the last).
    idle: Vec<Environment>,
    /// Environments dropped as probably gone, by idle-since time, newest last.
    ghosts: Vec<Environment>,
    in_flight: Vec<Started>,
    next_id: u64,
    /// Allocated provisioned concurrency on this target, as last read from Lambda.
    provisioned: u32,
    reclaim: ReclaimModel,
    lifetime: Lifetime,
    /// Smoothed handler duration and init duration seen on this target.
    duration: Ewma,
    init: Ewma,
    /// The last [`RECENT_DURATIONS`] handler durations of real requests: the tail that says
    /// how much longer a long request will run.
    recent: VecDeque<Duration>,
    /// Smoothed duration of pings (a lone ping returns at once, a round's hold).
    ping_duration: Ewma,
    /// When probes went to this target within the last hour, oldest first.
    probes: Vec<Time>,
}

/// Handler durations kept for the expected wait.
const RECENT_DURATIONS: usize = 32;

/// When the `position`-th waiter (0: the first) gets an environment, first come first
/// served, if environments free up after `frees` and each waiter then holds its own for
/// `duration`: the (position + 1)-th smallest of `free + j * duration` over every free time
/// and j >= 0. `None` when nothing is expected to free up. (One slow environment, such as a
/// cold start in flight, does not hold up the waiters that the quick ones serve in turn.)
pub fn queue_wait(frees: &[Duration], duration: Duration, position: usize) -> Option<Duration> {
    let mut next: BinaryHeap<Reverse<Duration>> = frees.iter().copied().map(Reverse).collect();
    for _ in 0..position {
        let Reverse(free) = next.pop()?;
        next.push(Reverse(free + duration));
    }
    next.peek().map(|Reverse(free)| *free)
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
            lifetime: Lifetime::default(),
            duration: Ewma { value: 0.1 },
            init: Ewma { value: 3.0 },
            recent: VecDeque::with_capacity(RECENT_DURATIONS),
            ping_duration: Ewma { value: 0.1 },
            probes: Vec::new(),
        }
    }

    /// The same pool with another lifetime prior.
    pub fn with_lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets the allocated provisioned concurrency (read from Lambda's control plane).
    pub fn set_provisioned(&mut self, allocated: u32) {
        self.provisioned = allocated;
    }

    /// Probability that `env` has not met its lifetime cap by `now`, given it was alive when
    /// it last became idle.
    fn lifetime_survival(&self, env: &Environment, now: Time) -> f64 {
        let seen = env.idle_since.saturating_sub(env.created);
        self.lifetime
            .survival_after(seen, now.saturating_sub(env.created))
    }

    /// Probability that `env` is still warm at `now`: neither reclaimed for idling nor at its
    /// lifetime cap (independent on the platform: the idle time is drawn at each use, the cap
    /// at creation).
    fn survival(&self, env: &Environment, now: Time) -> f64 {
        let idle = self.reclaim.survival(now.saturating_sub(env.idle_since));
        idle * self.lifetime_survival(env, now)
    }

    /// Teaches the reclaim curve that `env` was gone at `at`, weighted by the chance that its
    /// idle reclaim ended it rather than its lifetime cap, which the curve is not about:
    /// P(reclaimed by idle age a | gone) = (1 - S_idle(a)) / (1 - S_idle(a) S_life). Taught
    /// whole, the ends of old environments at young idle ages pulled the curve down where
    /// the reclaim never comes.
    fn observe_gone(&mut self, env: &Environment, at: Time) {
        let age = at.saturating_sub(env.idle_since);
        let idle = self.reclaim.survival(age);
        let gone = 1.0 - idle * self.lifetime_survival(env, at);
        // Gone though both said it was surely there: the learnt curve is what must move.
        let weight = if gone < 1e-6 {
            1.0
        } else {
            (1.0 - idle) / gone
        };
        self.reclaim.observe_weighted(age, false, weight);
    }

    /// Drops idle environments that are almost surely gone by `now`.
    fn forget_reclaimed(&mut self, now: Time) {
        let (keep, gone): (Vec<Environment>, Vec<Environment>) = self
            .idle
            .iter()
            .partition(|env| self.survival(env, now) >= DROP_BELOW);
        self.idle = keep;
        if gone.is_empty() {
            return;
        }
        // By idle-since time: a lifetime cap drops environments out of that order, and a warm
        // start where none was expected takes the most recently idle ghost.
        self.ghosts.extend(gone);
        self.ghosts.sort_unstable_by_key(|env| env.idle_since);
        if self.ghosts.len() > GHOSTS {
            let excess = self.ghosts.len() - GHOSTS;
            self.ghosts.drain(..excess);
        }
    }

    /// The estimate at `now`.
    pub fn view(&self, now: Time) -> PoolView {
        let survivals = self.idle.iter().map(|env| self.survival(env, now));
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

    /// The idle environment a request starting at `now` would be expected to take: the most
    /// recently idle one still thought warm (as `start` chooses, and Lambda reuses).
    fn next_taken(&self, now: Time) -> Option<&Environment> {
        self.idle
            .iter()
            .rev()
            .find(|env| self.survival(env, now) >= DROP_BELOW)
    }

    /// Whether to probe this target at `now`: one ping, whose outcome says whether an
    /// environment is alive at an idle age where nothing yet places the reclaim.
    ///
    /// Due when the curve has an unobserved stretch ([`ReclaimModel::unobserved`]) wider
    /// than [`PROBE_RESOLUTION`] and the environment the ping would take (the most recently
    /// idle: Lambda reuses it first) has idled past the stretch's midpoint. Each probe halves
    /// the stretch; probing stops once the curve is sharp, and starts again if observations
    /// reopen it. Where only the prior places the fall, it is trusted. The outcome is taught
    /// as any request's (`complete`): warm, alive at that age; cold, it and every other idle
    /// environment and ghost gone. Never with a request or ping in flight here (real traffic
    /// first, one probe at a time), nor on provisioned capacity (the ping would land there
    /// and say nothing of reclaim), nor within [`PROBE_SPACING`] of the last probe or beyond
    /// the policy's probes per hour.
    pub fn probe_due(&self, now: Time, policy: &ProbePolicy) -> Option<Probe> {
        if !policy.enabled || !self.in_flight.is_empty() || self.provisioned > 0 {
            return None;
        }
        let recent = self.probes.iter().filter(|&&t| t + HOUR > now);
        if recent.count() >= policy.max_per_hour as usize
            || self.probes.last().is_some_and(|&t| now < t + PROBE_SPACING)
        {
            return None;
        }
        let (alive, gone) = self.reclaim.unobserved()?;
        if gone - alive <= PROBE_RESOLUTION {
            return None;
        }
        let idle_age = now.saturating_sub(self.next_taken(now)?.idle_since);
        // Past the stretch the environment is counted gone (`next_taken` skips it).
        let midpoint = alive + (gone - alive) / 2;
        (midpoint <= idle_age).then_some(Probe {
            idle_age,
            alive,
            gone,
        })
    }

    /// A probe went to this target at `now`.
    pub fn probe_sent(&mut self, now: Time) {
        self.probes.retain(|&t| t + HOUR > now);
        self.probes.push(now);
    }

    /// A request goes to this target at `now`: it takes the most recently idle environment,
    /// if one is thought warm.
    pub fn start(&mut self, now: Time) -> Started {
        self.start_as(now, false)
    }

    /// A keep-alive ping goes to this target at `now`: it takes an environment as a request
    /// does (Lambda does not tell them apart).
    pub fn start_ping(&mut self, now: Time) -> Started {
        self.start_as(now, true)
    }

    fn start_as(&mut self, now: Time, ping: bool) -> Started {
        self.forget_reclaimed(now);
        let provisioned = (self.in_flight.len() as u32) < self.provisioned;
        let expected = if provisioned { None } else { self.idle.pop() };
        self.next_id += 1;
        let started = Started {
            id: self.next_id,
            at: now,
            provisioned,
            expected,
            ping,
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
        if started.ping {
            self.ping_duration.update(duration);
        } else {
            self.duration.update(duration);
            if self.recent.len() == RECENT_DURATIONS {
                self.recent.pop_front();
            }
            self.recent.push_back(duration);
        }
        if let Some(init) = init {
            self.init.update(init);
        }
        let created = self.learn(&started, met);
        // The environment that served is idle from now; provisioned ones are capacity, counted
        // apart.
        if !started.provisioned {
            self.idle.push(Environment {
                created,
                idle_since: now,
            });
            self.idle.sort_unstable_by_key(|env| env.idle_since);
        }
    }

    /// What the way `started` met its environment says of the reclaim; returns when the
    /// environment that served it was created.
    fn learn(&mut self, started: &Started, met: Met) -> Time {
        let arrived = started.at;
        match (met, started.expected) {
            (Met::Warm, Some(env)) => {
                self.reclaim
                    .observe(arrived.saturating_sub(env.idle_since), true);
                env.created
            }
            (Met::Cold, expected) if !started.provisioned => {
                // Lambda reuses any idle environment: a cold start means none was left, the
                // one expected, every other thought idle then, and every ghost. (The ghosts
                // matter most: they are the environments past the curve's end, and without
                // their ends it learns nothing of how far past it the reclaim lies.)
                if let Some(env) = expected {
                    self.observe_gone(&env, arrived);
                }
                let mut gone = Self::take_idle_by(&mut self.idle, arrived);
                gone.extend(Self::take_idle_by(&mut self.ghosts, arrived));
                for env in &gone {
                    self.observe_gone(env, arrived);
                }
                arrived
            }
            (Met::Warm, None) if !started.provisioned => {
                // Warm where none was expected: the youngest ghost was still there.
                match self.ghosts.pop() {
                    Some(env) => {
                        self.reclaim
                            .observe(arrived.saturating_sub(env.idle_since), true);
                        env.created
                    }
                    // An environment the pool never saw (another replica's): age unknown,
                    // counted new.
                    None => arrived,
                }
            }
            // Unknown: it presumably took the one expected.
            (_, Some(env)) => env.created,
            _ => arrived,
        }
    }

    /// Takes out of `list` the environments idle by `at`.
    fn take_idle_by(list: &mut Vec<Environment>, at: Time) -> Vec<Environment> {
        let (gone, kept) = std::mem::take(list)
            .into_iter()
            .partition(|env| env.idle_since <= at);
        *list = kept;
        gone
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
            .filter_map(|(i, s)| s.expected.map(|env| (i, env.idle_since)));
        let holder = match met {
            // Youngest environment: the latest idle-since time.
            Met::Warm => holders.max_by_key(|&(_, since)| since),
            Met::Cold => holders.min_by_key(|&(_, since)| since),
            Met::Unknown => None,
        };
        if let Some((h, _)) = holder {
            let theirs = self.in_flight[h].expected;
            self.in_flight[h].expected = self.in_flight[pos].expected;
            self.in_flight[pos].expected = theirs;
        }
        self.in_flight[pos]
    }

    /// The request `started` did not run (refused before execution): the environment it was
    /// expected to take is idle still.
    pub fn abandon(&mut self, started: &Started) {
        if let Some(pos) = self.in_flight.iter().position(|s| s.id == started.id) {
            self.in_flight.swap_remove(pos);
        }
        if let Some(env) = started.expected {
            self.idle.push(env);
            self.idle.sort_unstable_by_key(|env| env.idle_since);
        }
    }

    /// How much longer `started`, in flight at `now`, is expected to hold its environment:
    /// the mean excess over its elapsed time of the recent handler durations that exceed it
    /// (durations are heavy-tailed: a request that has run long will likely run longer),
    /// after the init if it was expected to start cold; a ping, its smoothed duration. `None`
    /// when it has outrun every recent duration: nothing says it will end soon.
    fn expected_remaining(&self, started: &Started, now: Time) -> Option<Duration> {
        let init = if started.expected.is_none() && !started.provisioned {
            self.init.get()
        } else {
            Duration::ZERO
        };
        let elapsed = now.saturating_sub(started.at);
        if started.ping {
            let total = init + self.ping_duration.get();
            return (total > elapsed).then(|| total - elapsed);
        }
        // Before any request ended here, the starting guess.
        let guess = self.recent.is_empty().then(|| self.duration.get());
        let (sum, count) = self
            .recent
            .iter()
            .copied()
            .chain(guess)
            .map(|d| init + d)
            .filter(|&total| total > elapsed)
            .fold((Duration::ZERO, 0u32), |(sum, n), total| {
                (sum + (total - elapsed), n + 1)
            });
        (count > 0).then(|| sum / count)
    }

    /// The expected wait until one of the requests in flight frees its environment, for the
    /// `position`-th waiter (0: the first), or `None` if none is expected to end soon.
    pub fn expected_wait(&self, now: Time, position: usize) -> Option<Duration> {
        let frees: Vec<Duration> = self
            .in_flight
            .iter()
            .filter_map(|s| self.expected_remaining(s, now))
            .collect();
        queue_wait(&frees, self.duration.get(), position)
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
        assert_eq!(s.expected, None, "dropped as probably reclaimed");
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

    /// A pool whose `n` environments, created together at zero, serve a burst every 3 minutes
    /// up to `until`; returns the time of the last completion.
    fn kept_busy(pool: &mut Pool, n: usize, until: Duration) -> Duration {
        let mut now = Duration::ZERO;
        let mut met = Met::Cold;
        loop {
            let burst: Vec<Started> = (0..n).map(|_| pool.start(now)).collect();
            for s in &burst {
                pool.complete(now + S, s, met, S, None);
            }
            met = Met::Warm;
            if now + 3 * MIN > until {
                return now + S;
            }
            now += 3 * MIN;
        }
    }

    #[test]
    fn environments_near_their_lifetime_cap_are_counted_as_likely_gone() {
        const HOUR: Duration = Duration::from_secs(3600);
        let mut old = Pool::default();
        let idle = kept_busy(&mut old, 3, 4 * HOUR - MIN);
        // Idle for 4 minutes, well within the idle reclaim's prior, but now past 4 hours old.
        assert!(old.reclaim().survival(4 * MIN) > 0.99);
        assert!(old.view(idle + 4 * MIN).warm_idle < 0.01);
        // Half-way through the prior's 2 to 4 hours, a minute more is a small share of what is
        // left: one seen alive at 3 h and idle a minute is still there with probability 59/60.
        let mut middle = Pool::default();
        let idle = kept_busy(&mut middle, 3, 3 * HOUR);
        let warm = middle.view(idle + MIN).warm_idle;
        assert!((warm - 3.0 * 59.0 / 60.0).abs() < 0.01, "{warm}");
        // Young environments, or no cap at all: all three warm.
        let mut young = Pool::default();
        let idle = kept_busy(&mut young, 3, HOUR);
        assert_eq!(young.view(idle + 4 * MIN).warm_idle, 3.0);
        let mut uncapped = Pool::default().with_lifetime(Lifetime::NONE);
        let idle = kept_busy(&mut uncapped, 3, 4 * HOUR - MIN);
        assert_eq!(uncapped.view(idle + 4 * MIN).warm_idle, 3.0);
    }

    #[test]
    fn lifetime_ends_at_young_idle_ages_do_not_shorten_the_idle_curve() {
        // Five environments kept busy until `until`, then a burst after 4 minutes of idle
        // finds them all gone.
        let ends = |pool: &mut Pool, until: Duration| {
            let idle = kept_busy(pool, 5, until);
            let burst: Vec<Started> = (0..5).map(|_| pool.start(idle + 4 * MIN)).collect();
            for s in &burst {
                pool.complete(idle + 4 * MIN + 2 * S, s, Met::Cold, S, Some(S));
            }
        };
        // At almost four hours old: their lifetime cap, not their idle reclaim.
        let near_the_cap = Duration::from_secs(4 * 3600) - 6 * MIN;
        let mut pool = Pool::default();
        ends(&mut pool, near_the_cap);
        assert_eq!(pool.reclaim().survival(4 * MIN), 1.0);
        // Read as idle reclaim (no cap), the same ends cut the curve at 4 minutes.
        let mut uncapped = Pool::default().with_lifetime(Lifetime::NONE);
        ends(&mut uncapped, near_the_cap);
        assert!(uncapped.reclaim().survival(4 * MIN) < 0.5);
        // An hour old, they could not have met the cap: taught whole.
        let mut young = Pool::default();
        ends(&mut young, Duration::from_secs(3600));
        assert!(young.reclaim().survival(4 * MIN) < 0.5);
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

    /// A pool whose curve was seen alive at `alive` and gone at `gone`, nothing between, with
    /// `n` environments idle from zero.
    fn uncertain(alive: Duration, gone: Duration, n: usize) -> Pool {
        let mut m = ReclaimModel::default();
        m.observe(alive, true);
        m.observe(gone, false);
        let mut pool = Pool::new(m);
        idle_from(&mut pool, Duration::ZERO, n);
        pool
    }

    /// `n` more environments idle from `at` (how they started teaches nothing).
    fn idle_from(pool: &mut Pool, at: Duration, n: usize) {
        let burst: Vec<Started> = (0..n).map(|_| pool.start(at)).collect();
        for s in &burst {
            pool.complete(at, s, Met::Unknown, S, None);
        }
    }

    const PROBES: ProbePolicy = ProbePolicy {
        enabled: true,
        max_per_hour: 4,
    };

    #[test]
    fn a_probe_is_due_at_the_middle_of_the_stretch_nothing_places_the_reclaim_in() {
        let pool = uncertain(6 * MIN, 10 * MIN, 1);
        assert_eq!(pool.reclaim().unobserved(), Some((6 * MIN, 10 * MIN)));
        assert_eq!(pool.probe_due(7 * MIN + 50 * S, &PROBES), None, "too young");
        let due = Probe {
            idle_age: 8 * MIN,
            alive: 6 * MIN,
            gone: 10 * MIN,
        };
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), Some(due));
        assert!(pool.probe_due(9 * MIN + 50 * S, &PROBES).is_some());
        assert_eq!(pool.probe_due(10 * MIN, &PROBES), None, "known gone there");
        let off = ProbePolicy {
            enabled: false,
            ..PROBES
        };
        assert_eq!(pool.probe_due(8 * MIN, &off), None);
    }

    #[test]
    fn no_probe_where_the_curve_is_sharp() {
        let never = |pool: &Pool| (0..120).all(|i| pool.probe_due(10 * S * i, &PROBES).is_none());
        // The prior alone: warm for 5 minutes and no longer.
        let mut prior = Pool::default();
        idle_from(&mut prior, Duration::ZERO, 1);
        assert!(never(&prior));
        // Seen alive past the prior, nothing beyond: the prior's "gone" counts right after.
        let mut beyond = Pool::default();
        beyond.reclaim.observe(7 * MIN, true);
        idle_from(&mut beyond, Duration::ZERO, 1);
        assert!(never(&beyond));
        // A stretch no wider than the resolution.
        assert!(never(&uncertain(6 * MIN, 6 * MIN + PROBE_RESOLUTION, 1)));
        assert!(!never(&uncertain(
            6 * MIN,
            6 * MIN + PROBE_RESOLUTION + BIN,
            1
        )));
    }

    #[test]
    fn no_probe_with_a_request_in_flight_or_on_provisioned_capacity() {
        let mut pool = uncertain(6 * MIN, 10 * MIN, 2);
        let s = pool.start(8 * MIN);
        assert_eq!(
            pool.view(8 * MIN).warm_idle,
            0.5,
            "one left, at the midpoint"
        );
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), None);
        pool.abandon(&s);
        assert!(pool.probe_due(8 * MIN, &PROBES).is_some());
        pool.set_provisioned(1);
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), None);
    }

    #[test]
    fn no_probe_again_too_soon_nor_beyond_the_hourly_bound() {
        let mut pool = uncertain(6 * MIN, 20 * MIN, 1);
        assert!(pool.probe_due(13 * MIN, &PROBES).is_some());
        // Refused, say: the pool is as it was.
        pool.probe_sent(13 * MIN);
        assert_eq!(pool.probe_due(13 * MIN + 59 * S, &PROBES), None);
        assert!(pool.probe_due(14 * MIN, &PROBES).is_some());
        pool.probe_sent(14 * MIN);
        let two = ProbePolicy {
            max_per_hour: 2,
            ..PROBES
        };
        assert_eq!(pool.probe_due(15 * MIN, &two), None);
        assert!(pool.probe_due(15 * MIN, &PROBES).is_some());
    }

    #[test]
    fn the_probe_waits_for_the_environment_it_will_meet() {
        // Two environments, idle from 0 and 2 minutes: a ping takes the younger.
        let mut pool = uncertain(6 * MIN, 10 * MIN, 2);
        idle_from(&mut pool, 2 * MIN, 1);
        assert_eq!(pool.view(2 * MIN).warm_idle, 2.0);
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), None, "the older is due");
        let due = pool.probe_due(10 * MIN, &PROBES).expect("the younger is");
        assert_eq!(due.idle_age, 8 * MIN);
    }

    #[test]
    fn a_probe_halves_the_stretch_through_the_usual_completion() {
        for (met, stretch) in [
            (Met::Cold, (6 * MIN, 8 * MIN)),
            (Met::Warm, (8 * MIN, 10 * MIN)),
        ] {
            let mut pool = uncertain(6 * MIN, 10 * MIN, 3);
            assert!(pool.probe_due(8 * MIN, &PROBES).is_some());
            pool.probe_sent(8 * MIN);
            let s = pool.start(8 * MIN);
            pool.complete(8 * MIN + S, &s, met, S, None);
            assert_eq!(pool.reclaim().unobserved(), Some(stretch), "{met:?}");
        }
    }

    #[test]
    fn probing_stops_when_the_curve_is_sharp_and_resumes_if_it_reopens() {
        let mut pool = uncertain(6 * MIN, 10 * MIN, 1);
        pool.reclaim.observe(8 * MIN, true);
        pool.reclaim.observe(8 * MIN + 20 * S, false);
        assert!((0..120).all(|i| pool.probe_due(10 * S * i, &PROBES).is_none()));
        // A ghost met warm at 12 minutes, and gone ones at 16: nothing between.
        pool.reclaim.observe(12 * MIN, true);
        pool.reclaim.observe(16 * MIN, false);
        assert_eq!(pool.reclaim().unobserved(), Some((12 * MIN, 16 * MIN)));
        assert!(pool.probe_due(14 * MIN, &PROBES).is_some());
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

    const MS: Duration = Duration::from_millis(1);

    /// A pool that has seen `durations` end (each a warm request after the first, cold).
    fn pool_after(durations: &[Duration]) -> Pool {
        let mut pool = Pool::default();
        let mut now = Duration::ZERO;
        for &d in durations {
            let s = pool.start(now);
            now += d;
            let met = if s.expected.is_some() {
                Met::Warm
            } else {
                Met::Cold
            };
            pool.complete(now, &s, met, d, (met == Met::Cold).then_some(2 * S));
            now += S;
        }
        pool
    }

    #[test]
    fn waiters_are_served_in_turn_by_the_quick_environments_first() {
        let frees = [60 * MS, 2080 * MS];
        assert_eq!(queue_wait(&frees, 100 * MS, 0), Some(60 * MS));
        assert_eq!(queue_wait(&frees, 100 * MS, 2), Some(260 * MS));
        // Twenty-one waiters go through the quick one before the slow one frees.
        assert_eq!(queue_wait(&frees, 100 * MS, 20), Some(2060 * MS));
        assert_eq!(queue_wait(&frees, 100 * MS, 21), Some(2080 * MS));
        assert_eq!(queue_wait(&[], 100 * MS, 0), None);
    }

    #[test]
    fn a_request_that_outran_every_recent_duration_is_not_expected_to_end_soon() {
        let mut pool = pool_after(&[100 * MS; 8]);
        let now = 60 * S;
        let _long = pool.start(now);
        assert_eq!(pool.expected_wait(now + 50 * MS, 0), Some(50 * MS));
        // Past every duration seen, nothing says when it ends: better not to wait on it.
        assert_eq!(pool.expected_wait(now + 500 * MS, 0), None);
    }

    #[test]
    fn a_long_request_is_expected_to_run_on() {
        let mut durations = vec![100 * MS; 8];
        durations.extend([1000 * MS; 8]);
        let mut pool = pool_after(&durations);
        let now = 60 * S;
        let _r = pool.start(now);
        // At 50 ms: half the durations end in 50 ms, half in 950: 500 on average.
        assert_eq!(pool.expected_wait(now + 50 * MS, 0), Some(500 * MS));
        // At 200 ms it is one of the long ones: 800 ms to go, not "overdue, any moment".
        assert_eq!(pool.expected_wait(now + 200 * MS, 0), Some(800 * MS));
    }

    #[test]
    fn a_cold_start_in_flight_frees_after_its_init() {
        let mut pool = pool_after(&[100 * MS]);
        // The one environment is taken; the next request starts cold (init seen: 2 s).
        let now = 10 * S;
        let warm = pool.start(now);
        let cold = pool.start(now);
        assert!(warm.expected.is_some() && cold.expected.is_none());
        let init = pool.view(now).expected_init;
        assert!(init > S);
        // The warm one frees first and serves the next waiters in turn, well before the
        // cold one's init is over.
        assert_eq!(pool.expected_wait(now, 0), Some(100 * MS));
        assert_eq!(pool.expected_wait(now, 2), Some(300 * MS));
        // Alone, the cold one frees after its init and a duration.
        let mut fresh = Pool::default();
        let cold = fresh.start(now);
        assert!(cold.expected.is_none());
        let init = fresh.view(now).expected_init;
        assert_eq!(fresh.expected_wait(now, 0), Some(init + 100 * MS));
    }

    #[test]
    fn pings_do_not_teach_the_handlers_duration() {
        let mut pool = pool_after(&[S; 32]);
        let mut now = 120 * S;
        for _ in 0..40 {
            let ping = pool.start_ping(now);
            assert!(ping.ping);
            pool.complete(now + MS, &ping, Met::Warm, MS, None);
            now += 10 * S;
        }
        let smoothed = pool.view(now).expected_duration;
        assert!(smoothed > 990 * MS, "{smoothed:?}");
        // A real request half-way through is expected to end in half a second, though the
        // last forty durations seen here were pings of 1 ms.
        let _real = pool.start(now);
        assert_eq!(pool.expected_wait(now + S / 2, 0), Some(S / 2));
        // A ping in flight frees its environment after a ping's time.
        let mut pinged = pool_after(&[S; 4]);
        let ping = pinged.start_ping(now);
        pinged.complete(now + MS, &ping, Met::Warm, MS, None);
        let _ping = pinged.start_ping(now + S);
        let wait = pinged.expected_wait(now + S, 0).unwrap();
        assert!(wait < 100 * MS, "{wait:?}");
    }
}
