//! The replay itself: the arrivals queue and the loop that drives each function's
//! `FunctionDriver`, the platform and the policy in time order; attempts in flight wait in
//! `completions`, a policy's actions are carried out in `actions`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use rand::Rng;

use crate::clock::Time;
use crate::platform::ProvisionedStatus;
use crate::platform::{Invocation, Platform, Rejection, Request, Snapshot};
use crate::policy::cost::{self};
use crate::policy::driver::{
    Admission, Attempt, Failure, FunctionDriver, FunctionSettings, Outcome, PingReason, Send,
    PROBE_CHECK,
};
use crate::policy::pool::{ProbePolicy, Started};
use crate::policy::router::WaitPolicy;
use crate::policy::FunctionId;
use crate::sim::trace::{Arrival, Trace};

use super::settings::*;
use super::tally::*;

mod actions;
mod arrivals;
mod candidate;
mod completions;
mod shared;

pub(in crate::sim::engine) use arrivals::Arrivals;
pub use candidate::Candidate;
use candidate::{replica_ids, Replica};
use completions::{Completions, Pending, Sent};

// ---------------------------------------------------------------------------------------------
// Event queues
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// The replay
// ---------------------------------------------------------------------------------------------

/// An attempt by the replica that sent it, its function, target and id there.
type AttemptKey = (usize, FunctionId, usize, u64);

/// When a held request's wait ends: (time, the order it was held in, its replica, function
/// and waiter).
type WaitEnd = (Time, u64, usize, FunctionId, u64);

/// One minute: the period of the tick that refreshes provisioned capacity into the pools and
/// measures the estimator.
const TICK: Duration = Duration::from_secs(60);

/// One replay in progress.
struct Replay<'t> {
    trace: &'t Trace,
    /// Every function's ping budget, which its driver enforces; the policy plans within it.
    ping_budget: Option<crate::policy::budget::PingBudget>,
    warmup: Duration,
    platform: Platform,
    /// The gateway replicas (one but for `--replicas`); the first applies provisioned
    /// concurrency (it holds the lease) and its estimates are the ones measured.
    replicas: Vec<Replica>,
    /// The replicas' ids, as the gateway's would be named in Redis.
    replica_ids: Vec<String>,
    /// Per function, the replica that sends its keep-alive rounds, when they share them.
    keepers: Option<Vec<usize>>,
    /// Per function, the replica its next call goes to: a load balancer's turn.
    balance: Vec<usize>,
    /// Each attempt in flight as the other replicas' estimates hold it, by the replica that
    /// sent it, its function, target and id there: (replica, what its pool started).
    elsewhere: HashMap<AttemptKey, Vec<(usize, Started)>>,
    /// Attempt starts and ends on their way to the other replicas, when they share.
    in_transit: shared::InTransit,
    names: Vec<String>,
    /// The K targets' aliases, and the version each names.
    targets: Vec<String>,
    versions: Vec<String>,
    traffic: Traffic,
    /// Replayed directly, the extension reports each call's start and end to the replica
    /// the load balancer sends the report to ([`SimSettings::call_reports`]).
    call_reports: bool,
    /// Spread traffic: one stream per function (empty otherwise); in deterministic mode,
    /// each function's next target in turn.
    spread: Vec<ChaCha8Rng>,
    turn: Vec<usize>,
    /// Targets the policy ever gave provisioned concurrency: read into their pools each tick.
    provisioned: Vec<(FunctionId, usize)>,
    /// When a level not yet READY was asked for, per target: the policy hears how long its
    /// allocation took.
    allocating: HashMap<(FunctionId, usize), Time>,
    /// The handler duration of each held request, by replica, function and waiter.
    held: HashMap<(usize, FunctionId, u64), Duration>,
    /// When each held request's wait ends. A request sent sooner leaves its entry behind,
    /// skipped when it comes up.
    wait_ends: BinaryHeap<Reverse<WaitEnd>>,
    /// Orders wait ends of the same time by when the requests were held.
    next_held: u64,
    /// Pools are kept (routing, or the estimator measured): the tick reads provisioned
    /// capacity into them.
    keep_pools: bool,
    /// The next minute tick (with pools, or while an allocation is awaited), and the next look
    /// for probes.
    next_tick: Option<Time>,
    next_probe_check: Option<Time>,
    /// Real requests in flight, against the gateway's admission limit: while clients hold
    /// every permit, keep-alive rounds and probes are skipped (`None`: no limit).
    in_flight: usize,
    max_in_flight: Option<usize>,
    ping_payload: Vec<u8>,
    /// The client context of a ping of a round, by the hold it asks for.
    round_contexts: HashMap<Duration, serde_json::Value>,
    durations: Vec<HandlerDurations>,
    completions: Completions,
    /// When real traffic last left each environment it used, for the pings that reach one
    /// it had left less than `traffic_kept` before (`ReasonFigures::fresh_pings`): the
    /// predictive warmer's default refresh age.
    traffic_left: HashMap<crate::platform::EnvId, Time>,
    traffic_kept: Duration,
    tally: Tally,
    /// The engine's time: the time of the event being handled. Never goes back.
    now: Time,
    boundary: Option<Snapshot>,
    /// The functions carry warmgate's extension ([`SimSettings::extension`]): each function's
    /// index by its platform name, to tell the policies of its environments' ends.
    extension: Option<HashMap<String, FunctionId>>,
}

impl<'t> Replay<'t> {
    fn new(trace: &'t Trace, settings: &SimSettings, candidate: Candidate) -> Self {
        let mut platform = Platform::new(platform_spec(trace, settings, candidate.reclaim));
        if settings.ends_reported() {
            platform.record_ends();
        }
        let ping_payload = platform.settings().ping.payload.trim().as_bytes().to_vec();
        let k = settings.targets.max(1);
        let n = trace.functions.len();
        let deterministic = settings.mode == Mode::Deterministic;
        let gateway = candidate.traffic.through_gateway();
        let keep_pools = gateway || settings.measure_estimator;
        let spread = if candidate.traffic == Traffic::Spread && !deterministic {
            (0..n)
                .map(|f| {
                    // Its own seed, apart from the handler durations' streams.
                    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0x5350_5245_4144);
                    rng.set_stream(f as u64);
                    rng
                })
                .collect()
        } else {
            Vec::new()
        };
        let function_settings = FunctionSettings {
            wait: WaitPolicy {
                enabled: candidate.traffic == Traffic::Waiting,
                waiters_per_burst_ping: settings.waiters_per_burst_ping,
                ..WaitPolicy::default()
            },
            probe: ProbePolicy {
                enabled: gateway && settings.probes,
                ..ProbePolicy::default()
            },
            ping_budget: settings.ping_budget,
            idempotent: false,
            ..FunctionSettings::default()
        };
        let drivers = || {
            (0..n)
                .map(|f| {
                    if keep_pools {
                        FunctionDriver::new(f, k, function_settings)
                    } else {
                        FunctionDriver::without_estimate(f, k, function_settings)
                    }
                })
                .collect()
        };
        let replicas: Vec<Replica> = std::iter::once(candidate.policy)
            .chain(candidate.more_replicas)
            .map(|policy| Replica {
                policy,
                drivers: drivers(),
                wake: None,
                wake_stale: false,
            })
            .collect();
        let names: Vec<String> = (0..n).map(platform_name).collect();
        let replica_count = replicas.len();
        let keepers = (replicas.len() > 1 && candidate.share_keep_alive).then(|| {
            let ids = replica_ids(replica_count);
            names
                .iter()
                .map(|name| {
                    let keeper = crate::policy::keepers::keeper_of(name, &ids).expect("replicas");
                    ids.iter().position(|id| id == keeper).expect("one of them")
                })
                .collect()
        });
        Replay {
            trace,
            ping_budget: settings.ping_budget,
            warmup: settings.warmup,
            platform,
            replicas,
            replica_ids: replica_ids(replica_count),
            keepers,
            balance: vec![0; n],
            elsewhere: HashMap::new(),
            in_transit: shared::InTransit::new(replica_count, n),
            names,
            targets: (0..k).map(target_name).collect(),
            versions: (0..k).map(|t| (t + 1).to_string()).collect(),
            traffic: candidate.traffic,
            call_reports: settings.call_reports,
            spread,
            turn: vec![0; n],
            provisioned: Vec::new(),
            allocating: HashMap::new(),
            held: HashMap::new(),
            wait_ends: BinaryHeap::new(),
            next_held: 0,
            keep_pools,
            next_tick: keep_pools.then_some(TICK),
            next_probe_check: (gateway && settings.probes).then_some(PROBE_CHECK),
            in_flight: 0,
            max_in_flight: settings.max_in_flight,
            ping_payload,
            round_contexts: HashMap::new(),
            durations: trace
                .functions
                .iter()
                .enumerate()
                .map(|(f, tf)| HandlerDurations::new(tf, f, settings))
                .collect(),
            completions: Completions::default(),
            traffic_left: HashMap::new(),
            traffic_kept: crate::policy::warmer::WarmerConfig::default().refresh_age(),
            tally: Tally::new(n),
            now: Duration::ZERO,
            boundary: None,
            extension: settings
                .ends_reported()
                .then(|| (0..n).map(|f| (platform_name(f), f)).collect()),
        }
    }

    fn counted(&self, at: Time) -> bool {
        at >= self.warmup
    }

    /// Whether clients hold every admission permit of the gateway: pings wait for them.
    fn clients_first(&self) -> bool {
        self.max_in_flight.is_some_and(|max| self.in_flight >= max)
    }

    /// Runs the replay to the end of the trace; `progress` hears of arrivals replayed.
    fn run(mut self, label: String, progress: &dyn Fn(u64)) -> Figures {
        let end = self.trace.duration;
        let infos = function_infos(self.trace, self.targets.len(), self.ping_budget);
        for r in 0..self.replicas.len() {
            let actions = self.replicas[r].policy.start(&infos, Duration::ZERO);
            self.carry_out(r, actions);
            self.replicas[r].refresh_wake();
        }
        let mut arrivals = Arrivals::new(&self.trace.functions);
        let mut replayed = 0u64;
        loop {
            let next_done = self.completions.peek();
            let next_heard = self.in_transit.peek().filter(|&t| t < end);
            let next_tick = self.next_tick.filter(|&t| t < end);
            // The trace spans [0, end): a wake-up at the end is past it.
            let (waking, next_wake) = self.due_wake();
            let next_wake = next_wake.filter(|&w| w < end);
            let next_probe_check = self.next_probe_check.filter(|&t| t < end);
            let next_wait_end = self.wait_ends.peek().map(|Reverse((at, ..))| *at);
            let next_arrival = arrivals.peek();
            // With the extension, the platform's own events too: an environment's end is
            // heard as it ends, not at the next call.
            let next_platform = self
                .extension
                .as_ref()
                .and_then(|_| self.platform.next_event_at())
                .filter(|&t| t < end);
            let replay_events = [
                next_done,
                next_heard,
                next_tick,
                next_wake,
                next_probe_check,
                next_wait_end,
                next_arrival,
            ];
            let Some(t) = replay_events
                .into_iter()
                .chain([next_platform])
                .flatten()
                .min()
            else {
                break;
            };
            self.now = self.now.max(t);
            self.mark_warmup_boundary(t);
            if next_platform == Some(t) {
                self.platform.advance(t);
            }
            self.report_ends();
            if !replay_events.contains(&Some(t)) {
                // The platform's own event: its ends are told; nothing else is due.
                continue;
            } else if next_done == Some(t) {
                let done = self.completions.pop().expect("peeked");
                self.finish(done);
            } else if next_heard == Some(t) {
                self.hear_next();
            } else if next_tick == Some(t) {
                self.tick(t);
                self.next_tick =
                    (self.keep_pools || !self.allocating.is_empty()).then_some(t + TICK);
            } else if next_wake == Some(t) {
                let now = self.now;
                let actions = self.replicas[waking].policy.act(now);
                self.carry_out(waking, actions);
                let replica = &mut self.replicas[waking];
                replica.refresh_wake();
                replica.wake_stale = replica.wake.is_some_and(|w| w <= now);
            } else if next_probe_check == Some(t) {
                self.send_probes(t);
                self.next_probe_check = Some(t + PROBE_CHECK);
            } else if next_wait_end == Some(t) {
                let Reverse((_, _, r, f, waiter)) = self.wait_ends.pop().expect("peeked");
                if let Some(send) = self.replicas[r].drivers[f].expire(t, waiter) {
                    let duration = self.held.remove(&(r, f, waiter)).expect("held");
                    self.dispatch(r, f, send, duration);
                }
                self.something_happened();
            } else {
                let (f, arrival) = arrivals.pop().expect("peeked");
                self.invoke(f, arrival);
                self.something_happened();
                replayed += 1;
                if replayed.is_multiple_of(PROGRESS_EVERY) {
                    progress(PROGRESS_EVERY);
                }
            }
        }
        progress(replayed % PROGRESS_EVERY);
        self.mark_warmup_boundary(end.max(self.warmup));
        let boundary = self.boundary.take().expect("marked");
        let last = self.platform.snapshot(end.max(self.platform.now()));
        Figures::new(
            label,
            self.trace,
            (self.targets.len(), self.traffic),
            &self.tally,
            &boundary,
            &last,
        )
    }

    /// The extension's reports: each on-demand environment that ended since the last look,
    /// told to the keeper of its function's rounds (every replica where each sends its own).
    /// The report's own latency, milliseconds, is not modelled.
    fn report_ends(&mut self) {
        let Some(index) = &self.extension else {
            return;
        };
        for ended in self.platform.take_ended() {
            let f = index[&ended.function];
            let replicas = match &self.keepers {
                Some(keepers) => keepers[f]..keepers[f] + 1,
                None => 0..self.replicas.len(),
            };
            for r in replicas {
                let replica = &mut self.replicas[r];
                replica.policy.environment_ended(f, ended.created, self.now);
                replica.refresh_wake();
            }
        }
    }

    /// An attempt ends: its driver learns how (and releases a held request onto the freed
    /// environment), then the policy hears of it.
    fn finish(&mut self, done: Pending) {
        let Pending {
            at,
            replica: r,
            function: f,
            attempt,
            outcome,
            ..
        } = done;
        if !attempt.started.ping && matches!(outcome, Outcome::Ran { .. }) {
            self.in_flight -= 1;
        }
        let finished = self.replicas[r].drivers[f].finish(at, &attempt, outcome);
        if !attempt.started.ping {
            self.tell_in_flight(r, f);
        }
        let replica = &mut self.replicas[r];
        replica.policy.observe(&finished.observation);
        replica.refresh_wake();
        self.something_happened();
        if let Some((waiter, send)) = finished.released {
            let duration = self.held.remove(&(r, f, waiter)).expect("held");
            self.dispatch(r, f, send, duration);
        }
        // Shared, the others hear of the end after the next batch.
        if self.keepers.is_some() {
            let end = shared::Shared::End {
                from: r,
                function: f,
                attempt,
                outcome,
                observation: finished.observation,
                released: finished.released.is_some(),
            };
            self.in_transit.send(at, end);
        }
    }

    /// The minute tick at `t`: provisioned capacity read into the pools (as the gateway's
    /// refresh does, here every minute), then, after the warm-up, each pool's estimate of
    /// warm idle environments against the platform's ground truth. Completions at `t` are
    /// already in both.
    fn tick(&mut self, t: Time) {
        self.platform.advance(t);
        // Allocations that became READY: the policy hears how long each took.
        let mut ready = Vec::new();
        for (&(f, target), &asked) in &self.allocating {
            if let Ok(view) =
                self.platform
                    .get_provisioned(t, &self.names[f], &self.targets[target])
            {
                if view.status == ProvisionedStatus::Ready {
                    ready.push((f, target, view.last_modified.saturating_sub(asked)));
                }
            }
        }
        // In a stable order: the map's is not.
        ready.sort_unstable();
        for (f, target, after) in ready {
            self.allocating.remove(&(f, target));
            // The replica that applies (it holds the lease) hears of it.
            self.replicas[0].policy.provisioned_ready(f, after);
        }
        if !self.keep_pools {
            return;
        }
        for &(f, target) in &self.provisioned {
            let allocated = self
                .platform
                .get_provisioned(t, &self.names[f], &self.targets[target])
                .map_or(0, |view| view.allocated);
            for replica in &mut self.replicas {
                replica.drivers[f].set_provisioned(target, allocated);
            }
        }
        if !self.counted(t) {
            return;
        }
        for (f, driver) in self.replicas[0].drivers.iter().enumerate() {
            for (target, version) in self.versions.iter().enumerate() {
                let truth = self.platform.idle_environments(&self.names[f], version);
                let estimate = driver.pool(target).view(t).warm_idle.round() as u32;
                if truth > 0 || estimate > 0 {
                    self.tally.estimator.record(estimate, truth);
                }
            }
        }
    }

    /// Sends the probes the pools ask for at `t`, as the gateway's prober does.
    fn send_probes(&mut self, t: Time) {
        let clients_first = self.clients_first();
        for (r, f) in self.each_replica_function() {
            for order in self.replicas[r].drivers[f].probes_due(t, clients_first) {
                let _ = self.send(
                    r,
                    f,
                    order.attempt,
                    Sent::Ping {
                        hold: None,
                        reason: PingReason::Probe,
                    },
                    true,
                    None,
                );
            }
        }
    }

    /// The wake-up to honour now, the earliest of the replicas', and whose it is.
    fn due_wake(&self) -> (usize, Option<Time>) {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(r, replica)| replica.due_wake(self.now).map(|w| (r, Some(w))))
            .min_by_key(|&(r, w)| (w, r))
            .unwrap_or((0, None))
    }

    /// An event other than a wake-up: every replica's policy may be woken again.
    fn something_happened(&mut self) {
        for replica in &mut self.replicas {
            replica.wake_stale = false;
        }
    }

    /// Every (replica, function) pair, in order.
    fn each_replica_function(&self) -> Vec<(usize, FunctionId)> {
        let n = self.names.len();
        (0..self.replicas.len())
            .flat_map(|r| (0..n).map(move |f| (r, f)))
            .collect()
    }

    /// Settles the platform's GB-s at the end of the warm-up, once, before the first event at
    /// or after it (or at the end, for a trace no longer than its warm-up).
    fn mark_warmup_boundary(&mut self, t: Time) {
        if self.boundary.is_none() && t >= self.warmup {
            let at = self
                .warmup
                .min(self.trace.duration)
                .max(self.platform.now());
            self.boundary = Some(self.platform.snapshot(at));
        }
    }

    /// A real invocation arrives: it goes to a target by the traffic rule. Routed, it is
    /// admitted by its driver as the gateway admits it: sent where the router chooses, or
    /// held for a busy environment while a burst ping starts one.
    fn invoke(&mut self, f: FunctionId, arrival: &Arrival) {
        let duration = self.durations[f].next(arrival);
        let at = arrival.at;
        let k = self.targets.len();
        // The load balancer's turn: each replica serves every N-th call of the function.
        let r = self.balance[f];
        self.balance[f] = (r + 1) % self.replicas.len();
        // Clients that call Lambda directly choose the target and never fail over.
        let direct = |replay: &mut Self, target| {
            let send = replay.replicas[r].drivers[f].pinned(at, target);
            let _ = replay.send(r, f, send.attempt, Sent::Real(duration), true, None);
        };
        let send = match self.traffic {
            Traffic::First => return direct(self, 0),
            Traffic::Spread => {
                let target = match self.spread.get_mut(f) {
                    Some(rng) => rng.random_range(0..k),
                    None => {
                        let turn = self.turn[f];
                        self.turn[f] = (turn + 1) % k;
                        turn
                    }
                };
                return direct(self, target);
            }
            Traffic::Routed | Traffic::Waiting => match self.replicas[r].drivers[f].arrive(at) {
                Admission::Send(send) => send,
                // Every breaker open: the gateway answers 503 at once; nothing reaches Lambda.
                Admission::Unavailable { .. } => {
                    if self.counted(at) {
                        self.tally.unavailable += 1;
                    }
                    return;
                }
                Admission::Hold {
                    waiter,
                    until,
                    burst,
                } => {
                    if let Some(burst) = burst {
                        let _ = self.send(
                            r,
                            f,
                            burst,
                            Sent::Ping {
                                hold: None,
                                reason: PingReason::Burst,
                            },
                            true,
                            None,
                        );
                    }
                    self.held.insert((r, f, waiter), duration);
                    self.next_held += 1;
                    self.wait_ends
                        .push(Reverse((until, self.next_held, r, f, waiter)));
                    return;
                }
            },
        };
        self.dispatch(r, f, send, duration);
    }

    /// Sends a real request as the gateway's dispatch does: to its first target, then, on a
    /// throttle (refused before running), to the next the driver fails over to. It counts
    /// once, by its last attempt.
    fn dispatch(&mut self, r: usize, f: FunctionId, send: Send, duration: Duration) {
        let waited = send.waited;
        let mut tried = vec![];
        let mut attempt = send.attempt;
        loop {
            tried.push(attempt.target);
            let last = tried.len() >= self.replicas[r].drivers[f].routable().len();
            let refused = match self.send(r, f, attempt, Sent::Real(duration), last, waited) {
                Ok(_) => {
                    let _ = self.replicas[r].drivers[f].answered(attempt.target);
                    return;
                }
                Err(refused) => refused,
            };
            let throttled = Failure::NotRun { elsewhere: true };
            match self.replicas[r].drivers[f].failover(attempt.started.at, throttled, &tried) {
                Some(next) => attempt = next.attempt,
                None => {
                    // Refused, and no failover allowed (an open breaker, a spent retry budget)
                    // before the last target: the request ends here, and counts so.
                    let at = attempt.started.at;
                    if !last && self.counted(at - waited.unwrap_or_default()) {
                        self.tally.record(f, false, waited, &Err(refused));
                    }
                    return;
                }
            }
        }
    }

    /// Sends one attempt of function `f` to the platform, a real request (with its handler
    /// duration) or a ping; its driver took the pool's environment when it decided. It is
    /// counted (when `count`, or whenever it ran; by its arrival, `waited` before it) and its
    /// end is queued for [`Replay::finish`]. Returns when it completes if it ran, else why the
    /// platform refused it.
    fn send(
        &mut self,
        r: usize,
        f: FunctionId,
        attempt: Attempt,
        sent: Sent,
        count: bool,
        waited: Option<Duration>,
    ) -> Result<Time, Rejection> {
        let at = attempt.started.at;
        // A ping of a round asks its handler to hold, as the gateway's do; holds are whole
        // milliseconds, so a context is built once per hold rather than once per ping.
        let round_context = match sent {
            Sent::Ping {
                hold: Some(hold), ..
            } => Some(&*self.round_contexts.entry(hold).or_insert_with(|| {
                serde_json::json!({"custom": {
                    crate::platform::PING_HOLD_KEY: hold.as_millis().to_string(),
                }})
            })),
            _ => None,
        };
        let request = Request {
            function: &self.names[f],
            qualifier: Some(&self.targets[attempt.target]),
            payload: match sent {
                Sent::Real(_) => REAL_PAYLOAD,
                Sent::Ping { .. } => &self.ping_payload,
            },
            client_context: round_context,
        };
        let result = match sent {
            Sent::Real(d) => self.platform.invoke_replayed(at, &request, d),
            Sent::Ping { .. } => self.platform.invoke(at, &request),
        };
        let ping = matches!(sent, Sent::Ping { .. });
        if !ping {
            self.tell_in_flight(r, f);
        }
        let ran = result.is_ok();
        if self.counted(at - waited.unwrap_or_default()) && (count || ran) {
            self.tally.record(f, ping, waited, &result);
            if let Sent::Ping { reason, .. } = sent {
                let fresh = result.as_ref().is_ok_and(|i| {
                    self.traffic_left
                        .get(&i.environment)
                        .is_some_and(|&left| at.saturating_sub(left) < self.traffic_kept)
                });
                self.tally.record_ping_reason(reason, &result, fresh);
            }
        }
        let (done, outcome) = match &result {
            Ok(invocation) => {
                // Replicas sharing their attempts hear of its start after the next batch
                // (`shared`), as the gateway's do.
                if self.keepers.is_some() {
                    let start = shared::Shared::Start {
                        from: r,
                        function: f,
                        attempt,
                    };
                    self.in_transit.send(at, start);
                }
                if !ping {
                    self.in_flight += 1;
                    self.tally.record_call_environment(invocation.environment);
                    self.traffic_left
                        .insert(invocation.environment, invocation.completes_at);
                }
                (invocation.completes_at, outcome(invocation))
            }
            Err(Rejection::NotFound { message }) => {
                panic!("the replay's own function is not found: {message}")
            }
            Err(_) => (at, Outcome::NotRun),
        };
        self.completions.push(done, r, f, attempt, outcome);
        result.map(|_| done)
    }

    /// Tells the policy how many real requests of `f` its driver has in flight, as the
    /// gateway does; clients calling Lambda directly are seen only where the extension
    /// reports their calls. The policy may plan at once on a start, so its wake-up is read
    /// again, as the gateway's warmer wakes for each count.
    fn tell_in_flight(&mut self, r: usize, f: FunctionId) {
        let running = if self.traffic.through_gateway() {
            // Shared, the others' calls count as last heard.
            self.fleet_in_flight(r, f)
        } else if self.call_reports {
            // The replica a report reached counts it; the replicas do not share them.
            self.replicas[r].drivers[f].running()
        } else {
            return;
        };
        let replica = &mut self.replicas[r];
        replica.policy.in_flight(f, running, self.now);
        replica.refresh_wake();
    }
}

/// What the gateway would learn of an invocation the platform made.
fn outcome(invocation: &Invocation) -> Outcome {
    Outcome::Ran {
        start: Some(invocation.start),
        duration: invocation.duration,
        init: invocation.start_delay(),
        billed_gb_s: Some(cost::gb_s(invocation.billed_total(), invocation.memory_mb)),
    }
}

/// Replays `trace` under one candidate. `progress` hears, now and then, how many arrivals
/// were replayed since it last heard.
pub fn replay(
    trace: &Trace,
    settings: &SimSettings,
    candidate: Candidate,
    progress: &dyn Fn(u64),
) -> Figures {
    let started = Instant::now();
    let label = candidate.label.clone();
    let mut figures = Replay::new(trace, settings, candidate).run(label, progress);
    figures.replay_s = started.elapsed().as_secs_f64();
    figures
}

/// Replays `trace` under every candidate, on as many threads as the machine has cores (each
/// replay is independent), and returns the figures in the candidates' order. `progress` hears
/// the candidate's index and the arrivals it replayed since last time.
pub fn compare(
    trace: &Trace,
    settings: &SimSettings,
    candidates: Vec<Candidate>,
    progress: &(dyn Fn(usize, u64) + Sync),
) -> Vec<Figures> {
    let count = candidates.len();
    let queue: Vec<Mutex<Option<Candidate>>> = candidates
        .into_iter()
        .map(|c| Mutex::new(Some(c)))
        .collect();
    let results: Vec<Mutex<Option<Figures>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                if i >= count {
                    break;
                }
                let candidate = queue[i].lock().unwrap().take().expect("taken once");
                let figures = replay(trace, settings, candidate, &|n| progress(i, n));
                *results[i].lock().unwrap() = Some(figures);
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every candidate replayed"))
        .collect()
}
