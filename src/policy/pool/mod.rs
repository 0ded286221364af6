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
//!
//! The pool and its completion matching are here; the reclaim curve and lifetime prior in
//! `reclaim`, probes in `probe`, the expected wait in `wait`.

mod probe;
mod reclaim;
mod wait;

pub use probe::{Probe, ProbePolicy, PROBE_RESOLUTION, PROBE_SPACING};
pub use reclaim::{Lifetime, ReclaimModel};
pub use wait::queue_wait;

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::Time;
use crate::policy::Start;
use wait::{Ewma, RECENT_DURATIONS};

/// Below this survival probability an idle environment is dropped from the estimate (kept
/// as a ghost, in case a warm start proves it alive).
const DROP_BELOW: f64 = 0.02;
/// Ghosts remembered per target.
const GHOSTS: usize = 64;

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
    /// whole, the ends of old environments at young idle ages would pull the curve down where
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

    /// Requests in flight on provisioned environments.
    fn on_provisioned(&self) -> u32 {
        self.in_flight.iter().filter(|s| s.provisioned).count() as u32
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
            provisioned_free: self.provisioned.saturating_sub(self.on_provisioned()),
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
        // Lambda gives a provisioned environment whenever one is idle: while fewer requests
        // hold provisioned ones than are allocated, whatever runs on demand beside them (a
        // request that met them all busy stays on its on-demand environment).
        let provisioned = self.on_provisioned() < self.provisioned;
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

    /// Another replica's round of `count` pings, this replica's own left to the function's
    /// keeper, reached this target at `now`: as the round would have, it refreshes the
    /// `count` most recently idle environments thought warm, past the free provisioned ones
    /// (Lambda gives those first). It teaches the reclaim curve nothing; without it, an
    /// environment the keeper keeps would look reclaimed here, and a request that met it warm
    /// at a long idle age would teach the curve that environments live that long.
    pub fn refreshed_elsewhere(&mut self, now: Time, count: u32) {
        self.forget_reclaimed(now);
        let free = self.provisioned.saturating_sub(self.on_provisioned());
        let on_demand = count.saturating_sub(free) as usize;
        let from = self.idle.len().saturating_sub(on_demand);
        // The most recently idle are last, and `now` is no earlier than any: order holds.
        for env in &mut self.idle[from..] {
            env.idle_since = env.idle_since.max(now);
        }
    }

    /// The request `started` ended at `now`: its environment is idle from now on (unless it
    /// was provisioned), and how it met its environment teaches the reclaim model.
    pub fn complete(
        &mut self,
        now: Time,
        started: &Started,
        met: Option<Start>,
        duration: Duration,
        init: Option<Duration>,
    ) {
        // A provisioned environment was warm; an unknown start teaches nothing of reclaim.
        let met = match met {
            Some(Start::Provisioned) => Some(Start::Warm),
            other => other,
        };
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
    fn learn(&mut self, started: &Started, met: Option<Start>) -> Time {
        let arrived = started.at;
        match (met, started.expected) {
            (Some(Start::Warm), Some(env)) => {
                self.reclaim
                    .observe(arrived.saturating_sub(env.idle_since), true);
                env.created
            }
            (Some(Start::Cold), expected) if !started.provisioned => {
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
            (Some(Start::Warm), None) if !started.provisioned => {
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
    fn attribute(&mut self, pos: usize, met: Option<Start>) -> Started {
        let holders = self
            .in_flight
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.expected.map(|env| (i, env.idle_since)));
        let holder = match met {
            // Youngest environment: the latest idle-since time.
            Some(Start::Warm) => holders.max_by_key(|&(_, since)| since),
            Some(Start::Cold) => holders.min_by_key(|&(_, since)| since),
            None | Some(Start::Provisioned) => None,
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
    fn completions_leave_idle_environments_that_age_out() {
        let mut pool = Pool::default();
        let a = pool.start(Duration::ZERO);
        let b = pool.start(Duration::ZERO);
        assert_eq!(pool.view(Duration::ZERO).in_flight, 2);
        pool.complete(
            2 * S,
            &a,
            Some(Start::Cold),
            Duration::from_millis(50),
            Some(S),
        );
        pool.complete(
            2 * S,
            &b,
            Some(Start::Cold),
            Duration::from_millis(50),
            Some(S),
        );
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
            pool.complete(now + S, &s, Some(Start::Cold), S, Some(S));
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
            pool.complete(now + S, &s, Some(Start::Warm), S, None);
            now += 15 * MIN; // beyond the prior's 5 minutes, yet warm every time
        }
        assert!(
            pool.reclaim().survival(14 * MIN) > 0.6,
            "{}",
            pool.reclaim().survival(14 * MIN)
        );
    }

    #[test]
    fn a_cold_start_dates_the_end_of_the_ghosts_too() {
        // Five environments idle past the prior are dropped as ghosts; a cold start 7 minutes
        // on says they were gone by then, which the curve learns.
        let mut pool = Pool::default();
        let burst: Vec<Started> = (0..5).map(|_| pool.start(Duration::ZERO)).collect();
        for s in &burst {
            pool.complete(2 * S, s, Some(Start::Cold), S, Some(S));
        }
        let at = 2 * S + 7 * MIN;
        assert_eq!(pool.view(at).warm_idle, 0.0);
        let s = pool.start(at);
        assert_eq!(s.expected, None, "dropped as probably reclaimed");
        pool.complete(at + 3 * S, &s, Some(Start::Cold), S, Some(S));
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
        let mut met = Some(Start::Cold);
        loop {
            let burst: Vec<Started> = (0..n).map(|_| pool.start(now)).collect();
            for s in &burst {
                pool.complete(now + S, s, met, S, None);
            }
            met = Some(Start::Warm);
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
                pool.complete(idle + 4 * MIN + 2 * S, s, Some(Start::Cold), S, Some(S));
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
    fn provisioned_capacity_is_used_first_and_not_counted_idle() {
        let mut pool = Pool::default();
        pool.set_provisioned(2);
        let a = pool.start(Duration::ZERO);
        assert!(a.provisioned);
        assert_eq!(pool.view(Duration::ZERO).provisioned_free, 1);
        pool.complete(S, &a, Some(Start::Warm), S, None);
        assert_eq!(pool.view(S).warm_idle, 0.0);
        assert_eq!(pool.view(S).provisioned_free, 2);
    }

    #[test]
    fn a_provisioned_environment_freed_beside_an_on_demand_call_is_taken_next() {
        let mut pool = Pool::default();
        pool.set_provisioned(1);
        // One call holds the provisioned environment, the next starts one on demand.
        let a = pool.start(Duration::ZERO);
        let b = pool.start(Duration::ZERO);
        assert!(a.provisioned && !b.provisioned);
        // The first ends: its provisioned environment is idle while the second runs on.
        pool.complete(S, &a, Some(Start::Warm), S, None);
        assert_eq!(pool.view(S).provisioned_free, 1);
        // Lambda gives the next call that one, not an on-demand environment: counted by the
        // calls in flight alone (one, as many as are provisioned), it was taken for on
        // demand, and the on-demand pool looked freshly used where it was ageing.
        let c = pool.start(S);
        assert!(c.provisioned);
        assert_eq!(pool.view(S).provisioned_free, 0);
        pool.complete(2 * S, &b, Some(Start::Cold), S, Some(S));
        assert_eq!(pool.view(2 * S).in_flight, 1);
        assert!(
            pool.view(2 * S).warm_idle > 0.0,
            "the on-demand one is idle"
        );
    }

    #[test]
    fn a_round_left_to_the_keeper_refreshes_the_most_recently_idle_and_teaches_nothing() {
        let two_idle = || {
            let mut pool = Pool::default();
            let a = pool.start(Duration::ZERO);
            let b = pool.start(Duration::ZERO);
            pool.complete(S, &a, Some(Start::Cold), S, Some(S));
            pool.complete(2 * S, &b, Some(Start::Cold), S, Some(S));
            pool
        };
        let alone = two_idle();
        let mut kept = two_idle();
        kept.refreshed_elsewhere(4 * MIN, 1);
        // Past the idle lifetime the curve starts from (5 minutes), only the refreshed one
        // is warm; the other aged as it would have.
        let late = 8 * MIN;
        assert!(alone.view(late).warm_idle < 0.05);
        let warm = kept.view(late).warm_idle;
        assert!((0.5..1.05).contains(&warm), "{warm}");
        assert_eq!(
            kept.next_taken(late).map(|env| env.idle_since),
            Some(4 * MIN),
            "the next call is expected on the refreshed one"
        );
        assert_eq!(
            kept.reclaim().survival(8 * MIN),
            alone.reclaim().survival(8 * MIN)
        );
        // A free provisioned environment takes a round's ping first.
        let mut provisioned = two_idle();
        provisioned.set_provisioned(1);
        provisioned.refreshed_elsewhere(4 * MIN, 1);
        assert!(provisioned.view(late).warm_idle < 0.05);
    }
}
