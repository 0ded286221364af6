//! The per-function orchestration that the gateway and the simulator both drive.
//!
//! A [`FunctionDriver`] holds what the gateway knows of one function: a [`Pool`] estimate per
//! target, the requests held for a busy environment, the burst pings on their way, the ping
//! budget. Events come in (a request arrives, an attempt ends, a wait runs out, a round or a
//! probe is due) and decisions come out (send to this target, hold, ping, fail over, grant so
//! many pings). It is pure: time is an argument and it does no I/O (ARCHITECTURE.md,
//! invariant 1). The gateway's async shell carries the decisions out over HTTP, the
//! simulator's event loop against the platform model in virtual time, and neither decides
//! anything of its own, so a simulator figure is a figure about the gateway.

use std::collections::VecDeque;
use std::time::Duration;

use super::breaker::{Breaker, BreakerPolicy, BreakerState, RetryBudget, RetryBudgetPolicy};
use super::budget::{Budget, PingBudget, PING_ESTIMATE};
use super::cost;
use super::pool::{Pool, PoolView, Probe, ProbePolicy, Started};
use super::router::{self, Expectation, WaitDecision, WaitPolicy};
use super::{FunctionId, KeptBy, Observation, Start, TargetId};
use crate::clock::Time;

/// How often the gateway looks for a target to probe: well within the narrowest stretch a
/// probe bisects, so that a probe meets its environment near the middle. The simulator looks
/// as often.
pub const PROBE_CHECK: Duration = Duration::from_secs(5);

/// Why a request went where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The router expected free provisioned capacity there.
    Provisioned,
    /// The router expected a warm idle environment there.
    Warm,
    /// The router expected a cold start (none warm, waiting not worth it).
    Cold,
    /// The client chose the target (Lambda API `Qualifier`).
    Pinned,
    /// A failover after the previous target refused or failed.
    Failover,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Provisioned => "provisioned",
            Route::Warm => "warm",
            Route::Cold => "cold",
            Route::Pinned => "pinned",
            Route::Failover => "failover",
        }
    }

    fn expected(expect: Expectation) -> Self {
        match expect {
            Expectation::Provisioned => Route::Provisioned,
            Expectation::Warm => Route::Warm,
            Expectation::Cold => Route::Cold,
        }
    }
}

/// Why a ping is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingReason {
    /// One of a keep-alive round the warmer's policy asked for, by the rule named.
    KeepAlive(KeptBy),
    /// Starts an environment for a burst while its requests wait for busy ones.
    Burst,
    /// Sharpens the pool's reclaim curve (`Pool::probe_due`).
    Probe,
}

impl PingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PingReason::KeepAlive(_) => "keep_alive",
            PingReason::Burst => "burst",
            PingReason::Probe => "probe",
        }
    }

    /// The policy's rule for a keep-alive ping, else the reason: where the pings go.
    pub fn detail(self) -> &'static str {
        match self {
            PingReason::KeepAlive(kept_by) => kept_by.as_str(),
            other => other.as_str(),
        }
    }
}

/// One invocation to send now: the target, and the pool's record of it (the environment it
/// is expected to take was taken when it was decided, so a burst does not all pick the same
/// free one). Hand it back to [`FunctionDriver::finish`] when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub target: TargetId,
    pub started: Started,
}

/// A request to send now, and why there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Send {
    pub attempt: Attempt,
    pub route: Route,
    /// How long it was held for a busy environment first, if it was.
    pub waited: Option<Duration>,
}

/// What to do with a request that just arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    Send(Send),
    /// Hold it until `until` at the latest: [`FunctionDriver::finish`] releases it when an
    /// environment frees up, [`FunctionDriver::expire`] sends it when the wait runs out.
    Hold {
        waiter: u64,
        until: Time,
        /// A ping to send now, so that an environment is starting for the rest of the burst
        /// (one for every `waiters_per_burst_ping` requests held, [`WaitPolicy::burst_pings`]).
        burst: Option<Attempt>,
    },
    /// Every routable target's breaker is open: fail fast rather than add to the failures.
    Unavailable {
        retry_after: Duration,
    },
}

/// A probe to send now: the ping, and what the pool wants to learn from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeOrder {
    pub attempt: Attempt,
    pub probe: Probe,
}

/// How an attempt ended, as far as its driver could tell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// It ran (or may have): how it met its environment, its handler and init durations, and
    /// what it billed in GB-s (pings spend it from the budget).
    Ran {
        start: Option<Start>,
        duration: Duration,
        init: Option<Duration>,
        billed_gb_s: Option<f64>,
    },
    /// Refused before it ran (a throttle, a refused connection): it occupied nothing.
    NotRun,
}

/// Why an attempt failed, for the failover decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Refused before the function ran; `elsewhere`: another equivalent target could answer
    /// differently (a throttle, a missing target), unlike a request at fault.
    NotRun { elsewhere: bool },
    /// The function may have run.
    MayHaveRun,
}

/// What a finished attempt leaves to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finished {
    /// What the keep-alive policy should learn of it.
    pub observation: Observation,
    /// A held request that the freed environment releases, to send now.
    pub released: Option<(u64, Send)>,
}

/// A function's settings, as the gateway's configuration gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunctionSettings {
    /// Hold a request for a busy environment rather than start cold (off: never hold).
    pub wait: WaitPolicy,
    pub probe: ProbePolicy,
    /// What keep-alive pings may cost; `None`: unbounded.
    pub ping_budget: Option<PingBudget>,
    /// Only then may a call that may have run be sent again (invariant 4).
    pub idempotent: bool,
    pub breaker: BreakerPolicy,
    pub retry_budget: RetryBudgetPolicy,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        Self {
            wait: WaitPolicy::default(),
            probe: ProbePolicy::default(),
            ping_budget: Some(PingBudget::default()),
            idempotent: false,
            breaker: BreakerPolicy::default(),
            retry_budget: RetryBudgetPolicy::default(),
        }
    }
}

/// A request held for a busy environment.
#[derive(Debug, Clone, Copy)]
struct Held {
    waiter: u64,
    arrived: Time,
}

/// The orchestration of one function's requests and pings. Pure.
#[derive(Debug, Clone)]
pub struct FunctionDriver {
    id: FunctionId,
    settings: FunctionSettings,
    pools: Vec<Pool>,
    /// Targets requests may go to, in order of preference (equivalent code, invariant 3).
    routable: Vec<TargetId>,
    /// Requests held for a busy environment, first come first.
    held: VecDeque<Held>,
    next_waiter: u64,
    /// The burst pings on their way, by target and pool id: at most
    /// [`WaitPolicy::burst_pings`] for the requests held.
    bursts: Vec<(TargetId, u64)>,
    budget: Option<Budget>,
    /// Per target: whether it is failing (skipped while open).
    breakers: Vec<Breaker>,
    retries: RetryBudget,
    /// Reused for the router's input.
    views: Vec<PoolView>,
    candidates: Vec<TargetId>,
    /// Whether the pools are kept: see [`FunctionDriver::without_estimate`].
    estimate: bool,
    /// Real attempts started and not yet finished.
    running: u32,
}

impl FunctionDriver {
    /// A driver for function `id` with `targets` targets, every one routable.
    pub fn new(id: FunctionId, targets: usize, settings: FunctionSettings) -> Self {
        assert!(targets > 0, "a function has at least one target");
        Self {
            id,
            settings,
            pools: (0..targets).map(|_| Pool::default()).collect(),
            routable: (0..targets).collect(),
            held: VecDeque::new(),
            next_waiter: 0,
            bursts: Vec::new(),
            budget: settings.ping_budget.map(Budget::new),
            breakers: vec![Breaker::new(settings.breaker); targets],
            retries: RetryBudget::new(settings.retry_budget),
            views: Vec::with_capacity(targets),
            candidates: Vec::with_capacity(targets),
            estimate: true,
            running: 0,
        }
    }

    /// A driver that keeps no warm-pool estimate: for a replay of clients that call Lambda
    /// directly, with no gateway to route or hold (the simulator's direct traffic), where
    /// keeping the estimate would only cost time. Only [`FunctionDriver::pinned`], pings and
    /// the budget are meaningful then.
    pub fn without_estimate(id: FunctionId, targets: usize, settings: FunctionSettings) -> Self {
        Self {
            estimate: false,
            ..Self::new(id, targets, settings)
        }
    }

    /// The function's index, as its policy knows it.
    pub fn id(&self) -> FunctionId {
        self.id
    }

    pub fn settings(&self) -> &FunctionSettings {
        &self.settings
    }

    /// Sets which targets may serve, in order of preference (after a check of their code).
    pub fn set_routable(&mut self, targets: Vec<TargetId>) {
        debug_assert!(targets.iter().all(|&t| t < self.pools.len()));
        self.routable = targets;
    }

    pub fn routable(&self) -> &[TargetId] {
        &self.routable
    }

    pub fn pool(&self, target: TargetId) -> &Pool {
        &self.pools[target]
    }

    /// Allocated provisioned concurrency on `target`, as last read from Lambda.
    pub fn set_provisioned(&mut self, target: TargetId, allocated: u32) {
        self.pools[target].set_provisioned(allocated);
    }

    /// Real requests sent and not yet finished, on every target: what the warmer's policy
    /// hears as [`Policy::in_flight`](crate::policy::Policy::in_flight).
    pub fn running(&self) -> u32 {
        self.running
    }

    /// Requests held now.
    pub fn holding(&self) -> usize {
        self.held.len()
    }

    /// A request arrives at `now` with no target pinned: the router chooses among the
    /// routable targets, and when it expects a cold start and a busy environment is expected
    /// to free up sooner, the request is held (once) while a ping starts an environment.
    ///
    /// # Panics
    /// If no target is routable: callers answer "not ready" before that.
    pub fn arrive(&mut self, now: Time) -> Admission {
        self.retries.request(now);
        let Some((chosen, view)) = self.choose(now) else {
            return Admission::Unavailable {
                retry_after: self.soonest_trial(now),
            };
        };
        if chosen.expect == Expectation::Cold {
            let position = self.held.len();
            let soonest = self
                .routable
                .iter()
                .filter_map(|&t| self.pools[t].expected_wait(now, position))
                .min();
            let init = self.views[view].expected_init;
            if let WaitDecision::Wait(limit) =
                router::wait_or_cold(&self.settings.wait, soonest, init, position)
            {
                let burst = (self.bursts.len() < self.settings.wait.burst_pings(position + 1))
                    .then(|| {
                        let attempt = self.start(chosen.target, now, true);
                        self.bursts.push((chosen.target, attempt.started.id));
                        attempt
                    });
                self.next_waiter += 1;
                let waiter = self.next_waiter;
                self.held.push_back(Held {
                    waiter,
                    arrived: now,
                });
                return Admission::Hold {
                    waiter,
                    until: now + limit,
                    burst,
                };
            }
        }
        Admission::Send(Send {
            attempt: self.start(chosen.target, now, false),
            route: Route::expected(chosen.expect),
            waited: None,
        })
    }

    /// A request whose client chose `target` arrives at `now`.
    pub fn pinned(&mut self, now: Time, target: TargetId) -> Send {
        Send {
            attempt: self.start(target, now, false),
            route: Route::Pinned,
            waited: None,
        }
    }

    /// The wait of `waiter` ran out at `now`: it is sent where the router says, without a
    /// second wait. `None` when it is no longer held (released, or cancelled).
    pub fn expire(&mut self, now: Time, waiter: u64) -> Option<Send> {
        let pos = self.held.iter().position(|h| h.waiter == waiter)?;
        let held = self.held.remove(pos).expect("found");
        Some(self.send_held(now, held))
    }

    /// Another replica sent a call of this function to `target` at `now`: it takes an
    /// environment here as it took one there (Lambda's pool is the same), in the estimate.
    pub fn start_elsewhere(&mut self, now: Time, target: TargetId, ping: bool) -> Option<Started> {
        let pool = &mut self.pools[target];
        self.estimate.then(|| {
            if ping {
                pool.start_ping(now)
            } else {
                pool.start(now)
            }
        })
    }

    /// That call ended at `now` with `outcome`: its environment is idle in the estimate, and
    /// when `release`, it takes the request held longest here, which is sent (the release of
    /// a wait).
    pub fn finish_elsewhere(
        &mut self,
        now: Time,
        target: TargetId,
        started: &Started,
        outcome: Outcome,
        release: bool,
    ) -> Option<(u64, Send)> {
        match outcome {
            Outcome::Ran {
                start,
                duration,
                init,
                ..
            } => self.pools[target].complete(now, started, start, duration, init),
            Outcome::NotRun => self.pools[target].abandon(started),
        }
        if !release {
            return None;
        }
        self.release_longest_held(now)
    }

    /// An environment freed at `now`: the request held longest takes it, and is sent.
    fn release_longest_held(&mut self, now: Time) -> Option<(u64, Send)> {
        let held = self.held.pop_front()?;
        Some((held.waiter, self.send_held(now, held)))
    }

    /// Another replica's attempt on `target` will not be heard of again (the replica left):
    /// the environment it held is forgotten in the estimate.
    pub fn abandon_elsewhere(&mut self, target: TargetId, started: &Started) {
        if self.estimate {
            self.pools[target].abandon(started);
        }
    }

    /// `waiter`'s client went away while it was held: it is forgotten. Returns whether it was
    /// still held.
    pub fn cancel(&mut self, waiter: u64) -> bool {
        let before = self.held.len();
        self.held.retain(|h| h.waiter != waiter);
        self.held.len() < before
    }

    fn send_held(&mut self, now: Time, held: Held) -> Send {
        // A held request goes out even if every breaker opened meanwhile: it was admitted.
        let (target, expect) = match self.choose(now) {
            Some((chosen, _)) => (chosen.target, chosen.expect),
            None => (self.routable[0], Expectation::Cold),
        };
        Send {
            attempt: self.start(target, now, false),
            route: Route::expected(expect),
            waited: Some(now.saturating_sub(held.arrived)),
        }
    }

    /// How long until the first open breaker lets a trial through.
    fn soonest_trial(&self, now: Time) -> Duration {
        self.routable
            .iter()
            .filter_map(|&t| match self.breakers[t].state() {
                BreakerState::Open { until } => Some(until.saturating_sub(now)),
                _ => None,
            })
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1))
    }

    /// An attempt on `target` was answered: the function ran there (whatever it said).
    /// Returns whether that closed a breaker that was open (its trial succeeded).
    pub fn answered(&mut self, target: TargetId) -> bool {
        let was_open = !matches!(self.breakers[target].state(), BreakerState::Closed { .. });
        self.breakers[target].succeeded();
        was_open
    }

    /// Where `target`'s breaker stands.
    pub fn breaker(&self, target: TargetId) -> BreakerState {
        self.breakers[target].state()
    }

    /// `attempt` failed at `now` with `failure`: the next target to try, if any. A request that
    /// was refused before it ran may go to another equivalent target; one that may have run
    /// only when the function is idempotent (invariant 4); either only within the retry
    /// budget, and never to a target whose breaker is open. `tried` lists the targets tried
    /// already, the failed one last; each target is tried once, in order of preference. The
    /// failed target's breaker counts the failure unless the request itself was at fault.
    pub fn failover(&mut self, now: Time, failure: Failure, tried: &[TargetId]) -> Option<Send> {
        let (target_failed, may) = match failure {
            Failure::NotRun { elsewhere } => (elsewhere, elsewhere),
            Failure::MayHaveRun => (true, self.settings.idempotent),
        };
        if let (true, Some(&failed)) = (target_failed, tried.last()) {
            self.breakers[failed].failed(now);
        }
        if !may {
            return None;
        }
        let next = self
            .routable
            .iter()
            .copied()
            .find(|&t| !tried.contains(&t) && self.breakers[t].admits(now))?;
        if !self.retries.try_retry(now) {
            return None;
        }
        Some(Send {
            attempt: self.start(next, now, false),
            route: Route::Failover,
            waited: None,
        })
    }

    /// `attempt` ended at `now` with `outcome`: its pool learns how it met its environment, a
    /// ping spends its bill from the budget, and the first held request, if any, is released
    /// onto the environment it freed.
    pub fn finish(&mut self, now: Time, attempt: &Attempt, outcome: Outcome) -> Finished {
        let Attempt { target, started } = *attempt;
        if !started.ping {
            debug_assert!(self.running > 0, "an attempt finished twice");
            self.running = self.running.saturating_sub(1);
        }
        let estimate = self.estimate;
        let pool = &mut self.pools[target];
        let observation = match outcome {
            Outcome::Ran {
                start,
                duration,
                init,
                billed_gb_s,
            } => {
                if estimate {
                    pool.complete(now, &started, start, duration, init);
                }
                if let (true, Some(budget), Some(gb_s)) =
                    (started.ping, self.budget.as_mut(), billed_gb_s)
                {
                    budget.spend(now, gb_s);
                }
                Observation {
                    function: self.id,
                    target,
                    arrived: started.at,
                    duration,
                    init,
                    start,
                    ping: started.ping,
                    throttled: false,
                }
            }
            Outcome::NotRun => {
                if estimate {
                    pool.abandon(&started);
                }
                Observation {
                    function: self.id,
                    target,
                    arrived: started.at,
                    duration: Duration::ZERO,
                    init: None,
                    start: None,
                    ping: started.ping,
                    throttled: true,
                }
            }
        };
        if let Some(i) = self.bursts.iter().position(|&b| b == (target, started.id)) {
            self.bursts.swap_remove(i);
        }
        let released = self.release_longest_held(now);
        Finished {
            observation,
            released,
        }
    }

    /// How many of a keep-alive round of `count` pings to `target` may go at `now`: none while
    /// clients hold every admission permit (real traffic first: a round is skipped, never
    /// queued in front of them), else what the budget grants, each ping expected to bill
    /// [`PING_ESTIMATE`] at `memory_mb`.
    pub fn grant_round(
        &mut self,
        now: Time,
        count: u32,
        memory_mb: u32,
        clients_first: bool,
    ) -> u32 {
        if clients_first {
            return 0;
        }
        let each = cost::gb_s(PING_ESTIMATE, memory_mb);
        match &mut self.budget {
            Some(budget) => budget.grant(now, count, each),
            None => count,
        }
    }

    /// A keep-alive round of `count` pings to `target` that another replica, the function's
    /// keeper, sends at `now` in this replica's stead: the estimate counts it as sent
    /// ([`Pool::refreshed_elsewhere`]).
    pub fn kept_elsewhere(&mut self, now: Time, target: TargetId, count: u32) {
        if let Some(pool) = self.pools.get_mut(target) {
            pool.refreshed_elsewhere(now, count);
        }
    }

    /// Pings left this hour and GB-s left today, if the function has a budget.
    pub fn budget_left(&mut self, now: Time) -> Option<(u32, f64)> {
        self.budget.as_mut().map(|b| b.remaining(now))
    }

    /// A ping to `target` goes at `now` (one of a granted round, or a probe).
    pub fn start_ping(&mut self, now: Time, target: TargetId) -> Attempt {
        self.start(target, now, true)
    }

    /// The probes due at `now`, one ping per routable target whose pool asks for one; none
    /// while clients hold every admission permit.
    pub fn probes_due(&mut self, now: Time, clients_first: bool) -> Vec<ProbeOrder> {
        if clients_first || !self.settings.probe.enabled {
            return Vec::new();
        }
        let mut due = Vec::new();
        for i in 0..self.routable.len() {
            let target = self.routable[i];
            let pool = &mut self.pools[target];
            let Some(probe) = pool.probe_due(now, &self.settings.probe) else {
                continue;
            };
            pool.probe_sent(now);
            due.push(ProbeOrder {
                attempt: self.start(target, now, true),
                probe,
            });
        }
        due
    }

    /// The router's choice over the routable targets' pools, as a target of the function;
    /// the views it chose over stay in `self.views`, the chosen one at `self.views[i]`.
    /// The router's choice among the routable targets whose breakers admit a request;
    /// `None` when every one is open.
    fn choose(&mut self, now: Time) -> Option<(router::Route, usize)> {
        assert!(!self.routable.is_empty(), "no routable target");
        let breakers = &self.breakers;
        self.candidates.clear();
        self.candidates.extend(
            self.routable
                .iter()
                .copied()
                .filter(|&t| breakers[t].admits(now)),
        );
        if self.candidates.is_empty() {
            return None;
        }
        self.views.clear();
        self.views
            .extend(self.candidates.iter().map(|&t| self.pools[t].view(now)));
        let chosen = router::choose(&self.views);
        let route = router::Route {
            target: self.candidates[chosen.target],
            expect: chosen.expect,
        };
        Some((route, chosen.target))
    }

    fn start(&mut self, target: TargetId, now: Time, ping: bool) -> Attempt {
        if !ping {
            self.breakers[target].sent(now);
            self.running += 1;
        }
        let pool = &mut self.pools[target];
        let started = if !self.estimate {
            Started {
                id: 0,
                at: now,
                provisioned: false,
                expected: None,
                ping,
            }
        } else if ping {
            pool.start_ping(now)
        } else {
            pool.start(now)
        };
        Attempt { target, started }
    }
}

#[cfg(test)]
mod tests;
