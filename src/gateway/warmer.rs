//! The warmer's executor: runs a keep-alive policy in real time and carries out its pings.
//!
//! The policy (pure, under `src/policy/`) sees every invocation the gateway makes, real or
//! ping, and says when to ping which target how many times; this module wakes it when it
//! asked, sends each round of pings together (a ping holds its environment briefly, so N
//! concurrent pings reach N distinct environments), after a random jitter, within each
//! function's budget of pings per hour and billed GB-s per day. Real traffic comes first: a
//! round that the shedding limit cannot admit is skipped, never queued in front of clients.
//!
//! The same pings carry the probes that teach the warm-pool estimate its reclaim curve: the
//! pool decides when one is due (`Pool::probe_due`); `Gateway::run_prober` looks every few
//! seconds and sends it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::future::join_all;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{watch, Notify};

use super::{Finish, FunctionState, Gateway};
use crate::clock::Time;
use crate::lambda::{Execution, InvocationType, InvokeRequest};
use crate::policy::budget::{Budget, PING_ESTIMATE};
use crate::policy::pool::Met;
use crate::policy::{Action, FunctionInfo, Observation, Policy, StartSeen, ROUND_HOLD};
use crate::telemetry;

/// The client context of a ping, base64 as Lambda takes it: `custom.warmgate-ping` tells a
/// handler (and the emulator) that this is a keep-alive, to answer at once, or after
/// `custom.warmgate-hold-ms` when one of a round asks it to hold (the convention README gives
/// handlers, and the emulated one follows: `platform::PING_HOLD_KEY`).
fn ping_client_context(hold: Option<Duration>) -> String {
    let mut custom = serde_json::json!({"warmgate-ping": "1"});
    if let Some(hold) = hold {
        custom["warmgate-hold-ms"] = hold.as_millis().to_string().into();
    }
    base64::engine::general_purpose::STANDARD
        .encode(serde_json::json!({ "custom": custom }).to_string())
}

/// How often the gateway looks for a target to probe: well within the narrowest stretch a
/// probe bisects (`PROBE_RESOLUTION`), so that a probe meets its environment near the middle.
const PROBE_CHECK: Duration = Duration::from_secs(5);

/// The warmer of a gateway.
pub(super) struct Warmer {
    policy: Mutex<Box<dyn Policy>>,
    /// Rung when an observation may change the policy's plans.
    replan: Notify,
    budgets: Mutex<Vec<Budget>>,
    jitter: Duration,
}

impl Warmer {
    pub(super) fn new(policy: Box<dyn Policy>, budgets: Vec<Budget>, jitter: Duration) -> Self {
        Self {
            policy: Mutex::new(policy),
            replan: Notify::new(),
            budgets: Mutex::new(budgets),
            jitter,
        }
    }

    /// Tells the policy of one finished invocation.
    pub(super) fn observe(&self, observation: Observation) {
        self.policy.lock().observe(&observation);
        self.replan.notify_one();
    }
}

/// What the policy learns of an invocation the gateway made.
pub(super) fn observation(
    function: &FunctionState,
    target: &str,
    arrived: Time,
    finish: &Finish,
    ping: bool,
) -> Option<Observation> {
    let target = function.config.targets.iter().position(|t| t == target)?;
    let (start, duration, init, throttled) = match finish {
        Finish::Ran {
            met,
            duration,
            init,
        } => {
            let start = match met {
                Met::Warm => StartSeen::Warm,
                Met::Cold => StartSeen::Cold,
                Met::Unknown => StartSeen::Unknown,
            };
            (start, *duration, *init, false)
        }
        Finish::NotRun => (StartSeen::Unknown, Duration::ZERO, None, true),
    };
    Some(Observation {
        function: function.index,
        target,
        arrived,
        duration,
        init,
        start,
        ping,
        throttled,
    })
}

impl Gateway {
    /// Sends one keep-alive ping to `target`: through the same client and the same pool
    /// accounting as real traffic, so the estimate and the policy both see it. Returns how it
    /// met its environment (warm, cold, unknown, refused).
    pub(super) async fn ping(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        target: &str,
        reason: &'static str,
    ) -> &'static str {
        self.ping_holding(function, target, reason, None).await
    }

    /// A ping that asks its handler to hold the environment for `hold` (one of a round).
    async fn ping_holding(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        target: &str,
        reason: &'static str,
        hold: Option<Duration>,
    ) -> &'static str {
        let config = &function.config;
        let arrived = self.now();
        let started = function.start_ping(target, arrived);
        let began = std::time::Instant::now();
        let context = ping_client_context(hold);
        let result = self
            .invoker
            .invoke(InvokeRequest {
                function_name: config.lambda_name().to_string(),
                qualifier: Some(target.to_string()),
                payload: Bytes::from(config.ping_payload.clone()),
                client_context: Some(context),
                invocation_type: InvocationType::RequestResponse,
                timeout: config.timeout(),
            })
            .await;
        let finish = match &result {
            Ok(response) => Finish::of(response, began.elapsed()),
            Err(e) if e.executed == Execution::NotExecuted => Finish::NotRun,
            Err(_) => Finish::Ran {
                met: Met::Unknown,
                duration: began.elapsed(),
                init: None,
            },
        };
        let now = self.now();
        if let Some(warmer) = &self.warmer {
            if let Some(observation) = observation(function, target, arrived, &finish, true) {
                warmer.observe(observation);
            }
            if let Ok(response) = &result {
                let memory_mb = function.memory_mb(target);
                let billed = response
                    .report
                    .as_ref()
                    .map_or(PING_ESTIMATE, |r| r.billed_duration);
                let gb_s = billed.as_secs_f64() * f64::from(memory_mb) / 1024.0;
                warmer.budgets.lock()[function.index].spend(now, gb_s);
                telemetry::ping_cost(&config.name, target, gb_s);
            }
        }
        let met = match &finish {
            Finish::Ran { met: Met::Warm, .. } => "warm",
            Finish::Ran { met: Met::Cold, .. } => "cold",
            Finish::Ran {
                met: Met::Unknown, ..
            } => "unknown",
            Finish::NotRun => "refused",
        };
        function.finish(target, now, &started, finish);
        telemetry::ping_sent(&config.name, target, reason, met);
        met
    }

    /// Whether background pings (rounds, probes) must wait for clients: while draining, or
    /// while clients hold every admission permit. Pings take no permit, so they are skipped
    /// rather than queued in front of real traffic.
    fn clients_first(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.in_flight.available_permits() == 0
    }

    /// Sends the probes due now, one ping per target, each in the background; none while
    /// the gateway drains or sheds (real traffic first).
    fn send_probes(self: &Arc<Self>) {
        if self.clients_first() {
            return;
        }
        let now = self.now();
        for function in self.functions() {
            for target in function.targets().routable {
                let Some(probe) = function.take_probe(&target.qualifier, now) else {
                    continue;
                };
                let (gateway, function) = (self.clone(), function.clone());
                tokio::spawn(async move {
                    let outcome = gateway.ping(&function, &target.qualifier, "probe").await;
                    telemetry::ProbeSent {
                        function: &function.config.name,
                        target: &target.qualifier,
                        idle_age: probe.idle_age,
                        stretch: (probe.alive, probe.gone),
                        outcome,
                    }
                    .emit();
                });
            }
        }
    }

    /// Looks for probes due every [`PROBE_CHECK`] of the gateway's clock until `stop`.
    pub(super) async fn run_prober(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.functions().any(|f| f.config.probe.enabled) {
            return;
        }
        loop {
            tokio::select! {
                _ = self.clock.sleep(PROBE_CHECK) => self.send_probes(),
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Carries out what the policy decided.
    fn execute(self: &Arc<Self>, warmer: &Warmer, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Ping {
                    function,
                    target,
                    count,
                } => {
                    let Some(state) = self.function_by_id(function).cloned() else {
                        continue;
                    };
                    let Some(qualifier) = state.config.targets.get(target).cloned() else {
                        continue;
                    };
                    // Real traffic first: with every admission permit taken by clients (or
                    // while draining), the round is skipped, not queued in front of them.
                    if self.clients_first() {
                        telemetry::pings_refused(&state.config.name, count);
                        continue;
                    }
                    let now = self.now();
                    let each = PING_ESTIMATE.as_secs_f64() * f64::from(state.memory_mb(&qualifier))
                        / 1024.0;
                    let (granted, left) = {
                        let mut budgets = warmer.budgets.lock();
                        let granted = budgets[function].grant(now, count, each);
                        (granted, budgets[function].remaining(now))
                    };
                    telemetry::ping_budget(&state.config.name, left.0, left.1);
                    if granted < count {
                        telemetry::pings_refused(&state.config.name, count - granted);
                    }
                    if granted == 0 {
                        continue;
                    }
                    let jitter = if warmer.jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        rand::rng().random_range(Duration::ZERO..warmer.jitter)
                    };
                    let gateway = self.clone();
                    tokio::spawn(async move {
                        gateway.clock.sleep(jitter).await;
                        // One round, all at once: each ping holds its environment, so the
                        // round reaches `granted` distinct environments.
                        let hold = (granted > 1).then_some(ROUND_HOLD);
                        let round = (0..granted)
                            .map(|_| gateway.ping_holding(&state, &qualifier, "keep_alive", hold));
                        join_all(round).await;
                    });
                }
                Action::SetProvisioned { .. } => {
                    tracing::warn!(
                        ?action,
                        "the gateway does not set provisioned concurrency yet; action ignored"
                    );
                }
            }
        }
    }

    /// Runs the warmer until `stop`: wakes the policy when it asked, or when an observation
    /// may have changed its plans.
    pub(super) async fn run_warmer(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(warmer) = &self.warmer else { return };
        let infos: Vec<FunctionInfo> = self
            .functions()
            .map(|f| FunctionInfo {
                name: f.config.name.clone(),
                app: f.config.name.clone(),
                memory_mb: f.memory_mb(&f.config.targets[0]),
                targets: f.config.targets.clone(),
            })
            .collect();
        let actions = warmer.policy.lock().start(&infos, self.now());
        self.execute(warmer, actions);
        loop {
            let now = self.now();
            let next = warmer.policy.lock().next_wake();
            let wait = match next {
                // Never spin on a policy that asks for the past without moving on.
                Some(at) => self
                    .clock
                    .sleep(at.saturating_sub(now).max(Duration::from_millis(10))),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                _ = wait => {
                    let actions = warmer.policy.lock().act(self.now());
                    self.execute(warmer, actions);
                }
                _ = warmer.replan.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
