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
//! function's driver decides when one is due; `Gateway::run_prober` looks every few seconds
//! and sends it. What to grant and when to skip are the driver's decisions
//! (`policy::driver`), which the simulator replays.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::future::join_all;
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{Notify, Semaphore};

use super::dispatch::InFlight;
use super::{FunctionState, Gateway};
use crate::lambda::{InvocationType, TraceContext};
use crate::policy::driver::{Attempt, Outcome, PingReason, PROBE_CHECK};
use crate::policy::provisioning::{Provisioning, ProvisioningConfig, WithKeepAlive};
use crate::policy::registry::WarmerTuning;
use crate::policy::round::{HoldChange, Reached, RoundCheck, RoundHold};
use crate::policy::{Action, FunctionInfo, Observation, Policy, Start};
use crate::telemetry;

/// How long a gateway that could not read the daily rises kept in Redis waits to try again.
const RISES_RETRY: Duration = Duration::from_secs(60);

/// How long a warmer whose policy panicked pauses before it starts again.
const WARMER_RESTART: Duration = Duration::from_secs(1);

/// The client context of a ping, base64 as Lambda takes it: `custom.warmgate-ping` tells a
/// handler (and the emulator) that this is a keep-alive, to answer at once, or after
/// `custom.warmgate-hold-ms` when one of a round asks it to hold (the convention README gives
/// handlers, and the emulated one follows: `platform::PING_HOLD_KEY`).
pub fn ping_client_context(hold: Option<Duration>) -> String {
    let mut custom = serde_json::json!({"warmgate-ping": "1"});
    if let Some(hold) = hold {
        custom["warmgate-hold-ms"] = hold.as_millis().to_string().into();
    }
    base64::engine::general_purpose::STANDARD
        .encode(serde_json::json!({ "custom": custom }).to_string())
}

/// What a ping's answer said.
pub(super) struct PingAnswer {
    /// How it met its environment: warm, cold, provisioned, unknown, or refused (not run).
    pub met: &'static str,
    pub ran: bool,
    /// The environment its handler named, if it named one (read for a round's pings only).
    pub environment: Option<String>,
}

impl PingAnswer {
    fn reached(&self) -> Reached<'_> {
        match (&self.environment, self.ran) {
            (_, false) => Reached::NotRun,
            (None, true) => Reached::Unnamed,
            (Some(environment), true) => Reached::Environment(environment),
        }
    }
}

/// The warmer's executor state: its keep-alive policy (kept by name, so that it can start
/// afresh), the signal to replan, the jitter of rounds.
pub(super) struct Executor {
    name: String,
    /// The provisioned-concurrency planner rides along, to advise, set so.
    planner: Option<PlannerSetup>,
    /// Take it with [`Executor::policy`], which hands it the counts queued first.
    policy: Mutex<Box<dyn Policy>>,
    /// Counts of calls in flight (function, count, when) not yet given to the policy: a
    /// request on its way to Lambda queues its count here rather than wait for the policy's
    /// lock, which a plan may hold.
    counts: Mutex<Vec<(crate::policy::FunctionId, u32, crate::clock::Time)>>,
    /// Rung when an observation may change the policy's plans.
    replan: Notify,
    jitter: Duration,
    /// Room for pings in flight (`warmer.max_pings_in_flight`); a round takes its size's worth.
    room: Arc<Semaphore>,
    room_size: u32,
    /// Each function's round hold (`policy::round`), by the function's index.
    holds: Vec<Mutex<RoundHold>>,
    /// What a warmer policy is told beyond its name.
    tuning: WarmerTuning,
}

/// How the provisioned-concurrency planner is set up in the gateway.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PlannerSetup {
    /// Where its minutes start on the gateway's clock (`fleet::MinuteAlign`).
    pub phase: Duration,
    /// Whether it hands out its finished minutes to share with the other replicas.
    pub sharing: bool,
}

impl Executor {
    /// The warmer for the policy `name` (validated with the configuration), with the
    /// planner if it is to advise.
    pub(super) fn new(
        name: &str,
        planner: Option<PlannerSetup>,
        jitter: Duration,
        max_pings_in_flight: u32,
        hold: RoundHold,
        functions: usize,
        tuning: WarmerTuning,
    ) -> Self {
        Self {
            name: name.to_string(),
            planner,
            policy: Mutex::new(Self::fresh(name, planner, tuning)),
            counts: Mutex::new(Vec::new()),
            replan: Notify::new(),
            jitter,
            room: Arc::new(Semaphore::new(max_pings_in_flight as usize)),
            room_size: max_pings_in_flight,
            holds: (0..functions).map(|_| Mutex::new(hold)).collect(),
            tuning,
        }
    }

    fn fresh(name: &str, planner: Option<PlannerSetup>, tuning: WarmerTuning) -> Box<dyn Policy> {
        let keep_alive = crate::policy::registry::live_policy_tuned(name, tuning)
            .expect("validated with the configuration");
        let Some(setup) = planner else {
            return keep_alive;
        };
        let mut planner =
            Provisioning::new(ProvisioningConfig::default()).with_minute_phase(setup.phase);
        if setup.sharing {
            planner = planner.sharing();
        }
        Box::new(WithKeepAlive {
            planner,
            keep_alive,
        })
    }

    /// The policy, told first the counts of calls in flight queued since it was last taken,
    /// in their order.
    fn policy(&self) -> parking_lot::MutexGuard<'_, Box<dyn Policy>> {
        let mut policy = self.policy.lock();
        for (function, requests, at) in self.counts.lock().drain(..) {
            policy.in_flight(function, requests, at);
        }
        policy
    }

    /// The fleet's total load of `function` in the planner's `minute` (`fleet`).
    pub(super) fn fleet_minute(
        &self,
        function: crate::policy::FunctionId,
        minute: u64,
        total: crate::policy::provisioning::MinuteLoad,
    ) {
        self.policy().fleet_minute(function, minute, total);
    }

    /// A daily rise kept in Redis, at `minute` of the policy clock (`rises`); the policy
    /// plans the function again.
    pub(super) fn kept_rise(&self, function: crate::policy::FunctionId, minute: i64, peak: u32) {
        self.policy().kept_rise(function, minute, peak);
        self.replan.notify_one();
    }

    /// The rises the policy remembers for `function` (`GET /v1/pools`).
    pub(super) fn daily_rises(
        &self,
        function: crate::policy::FunctionId,
    ) -> Vec<crate::policy::RiseSeen> {
        self.policy().daily_rises(function)
    }

    /// Tells the policy that provisioned concurrency it asked for became READY `after`.
    pub(super) fn provisioned_ready(&self, function: crate::policy::FunctionId, after: Duration) {
        self.policy().provisioned_ready(function, after);
    }

    /// Queues for the policy how many real requests of `function` are in flight at `now`.
    pub(super) fn in_flight(
        &self,
        function: crate::policy::FunctionId,
        requests: u32,
        now: crate::clock::Time,
    ) {
        self.counts.lock().push((function, requests, now));
        // The policy may plan at once on a start (a pool filled, a round due soon).
        self.replan.notify_one();
    }

    /// Tells the policy that a round of `function`'s pings missed `missed` environments
    /// and will be held longer (`Policy::round_missed`); the policy may plan at once.
    pub(super) fn round_missed(
        &self,
        function: crate::policy::FunctionId,
        missed: u32,
        now: crate::clock::Time,
    ) {
        self.policy().round_missed(function, missed, now);
        self.replan.notify_one();
    }

    /// Tells the policy that an environment of `function` started at `born` ended
    /// (`Policy::environment_ended`); the policy may plan at once.
    pub(super) fn environment_ended(
        &self,
        function: crate::policy::FunctionId,
        born: crate::clock::Time,
        now: crate::clock::Time,
    ) {
        self.policy().environment_ended(function, born, now);
        self.replan.notify_one();
    }

    /// Tells the policy of one finished invocation.
    pub(super) fn observe(&self, observation: Observation) {
        self.policy().observe(&observation);
        self.replan.notify_one();
    }
}

impl Gateway {
    /// Sends one ping, an attempt its driver started: through the same client and the same
    /// driver as real traffic, so the estimate and the policy both see it. A ping of a round
    /// of several asks its handler to hold the environment for `hold`.
    pub(super) async fn ping(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        attempt: Attempt,
        reason: PingReason,
        hold: Option<Duration>,
    ) -> PingAnswer {
        let config = &function.config;
        let qualifier = function.qualifier(attempt.target).to_string();
        let in_flight = InFlight::new(self, function, attempt);
        let (result, _, outcome) = self
            .send_attempt(
                function,
                &qualifier,
                Bytes::from(config.ping_payload.clone()),
                Some(ping_client_context(hold)),
                InvocationType::RequestResponse,
                &TraceContext::default(),
            )
            .await;
        let met = match outcome {
            Outcome::Ran { start, .. } => Start::label(start),
            Outcome::NotRun => "refused",
        };
        if let Outcome::Ran {
            billed_gb_s: Some(gb_s),
            ..
        } = outcome
        {
            telemetry::ping_cost(&config.name, &qualifier, gb_s);
        }
        // Only a round's answers are read: a lone ping has nothing to check.
        let ran = !matches!(outcome, Outcome::NotRun);
        let environment = match &result {
            Ok(response) if ran && hold.is_some() => {
                crate::policy::round::environment_named(&response.payload)
            }
            _ => None,
        };
        in_flight.finish(outcome, true);
        telemetry::ping_sent(&config.name, &qualifier, reason, met);
        PingAnswer {
            met,
            ran,
            environment,
        }
    }

    /// Checks a round's answers for an environment named twice, and sets the function's
    /// next hold by what they showed (`policy::round`).
    fn round_answered(
        &self,
        state: &FunctionState,
        target: crate::policy::TargetId,
        function: crate::policy::FunctionId,
        held: Duration,
        answers: &[PingAnswer],
    ) {
        let Some(warmer) = &self.warmer else { return };
        let check = RoundCheck::of(answers.iter().map(PingAnswer::reached));
        let (change, next) = {
            let mut hold = warmer.holds[function].lock();
            (hold.after(&check), hold.hold())
        };
        // Only when the next round holds longer: at the longest hold, a handler that does not
        // hold as asked would have every round sent again at once.
        if change == HoldChange::Lengthened {
            warmer.round_missed(function, check.repeated(), self.now());
        }
        telemetry::RoundChecked {
            function: &state.config.name,
            target: state.qualifier(target),
            check,
            held,
            next,
            change,
        }
        .emit();
    }

    /// Sends the probes due now, one ping per target, each in the background; none while
    /// the gateway drains or sheds (real traffic first).
    fn send_probes(self: &Arc<Self>) {
        let now = self.now();
        let clients_first = self.clients_first();
        for function in self.functions() {
            let due = function
                .orchestration
                .lock()
                .driver
                .probes_due(now, clients_first);
            for order in due {
                let (gateway, function) = (self.clone(), function.clone());
                self.spawn(async move {
                    let outcome = gateway
                        .ping(&function, order.attempt, PingReason::Probe, None)
                        .await
                        .met;
                    telemetry::ProbeSent {
                        function: &function.config.name,
                        target: function.qualifier(order.attempt.target),
                        idle_age: order.probe.idle_age,
                        stretch: (order.probe.alive, order.probe.gone),
                        outcome,
                    }
                    .emit();
                });
            }
        }
    }

    /// Looks for probes due every [`PROBE_CHECK`] of the gateway's clock, until stopped.
    pub(super) async fn run_prober(self: Arc<Self>) {
        if !self.functions().any(|f| f.config.probe.enabled) {
            return;
        }
        loop {
            self.clock.sleep(PROBE_CHECK).await;
            self.send_probes();
        }
    }

    /// Carries out what the policy decided: each round as many pings as its function's driver
    /// grants, sent together after a jitter.
    pub(super) fn execute(self: &Arc<Self>, warmer: &Executor, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Ping {
                    function,
                    target,
                    count,
                    kept_by,
                } => {
                    let round = Action::Ping {
                        function,
                        target,
                        count,
                        kept_by,
                    };
                    let Some(state) = self.function_by_id(function).cloned() else {
                        continue;
                    };
                    let Some(qualifier) = state.config.targets.get(target).cloned() else {
                        continue;
                    };
                    let now = self.now();
                    // Another replica keeps the function: its round stands for this one.
                    if let Some(keepers) = self
                        .keepers
                        .as_ref()
                        .filter(|k| !k.keeps(&state.config.name))
                    {
                        // The estimate hears the keeper's pings; while it cannot, the
                        // round counts as sent.
                        if !self.hears_replicas() {
                            state
                                .orchestration
                                .lock()
                                .driver
                                .kept_elsewhere(now, target, count);
                        }
                        keepers.left_round(function, round);
                        telemetry::pings_left_to_keeper(&state.config.name, count);
                        continue;
                    }
                    let memory_mb = state.memory_mb(&qualifier);
                    let clients_first = self.clients_first();
                    let (granted, left) = {
                        let mut orchestration = state.orchestration.lock();
                        let driver = &mut orchestration.driver;
                        let granted = driver.grant_round(now, count, memory_mb, clients_first);
                        (granted, driver.budget_left(now))
                    };
                    if let Some((pings, gb_s)) = left {
                        telemetry::ping_budget(&state.config.name, pings, gb_s);
                    }
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
                    let room = warmer.room.clone();
                    let round_hold = &warmer.holds[function];
                    // Each ping of a round holds its environment, so that the round reaches
                    // `granted` distinct environments; a lone ping holds none.
                    let hold = (granted > 1).then(|| round_hold.lock().for_round(granted));
                    // A round larger than the whole room takes all of it.
                    let room_taken = granted.min(warmer.room_size);
                    self.spawn(async move {
                        gateway.clock.sleep(jitter).await;
                        let _room = room.acquire_many_owned(room_taken).await;
                        let now = gateway.now();
                        let round: Vec<_> = {
                            let mut orchestration = state.orchestration.lock();
                            (0..granted)
                                .map(|_| orchestration.driver.start_ping(now, target))
                                .collect()
                        };
                        let pings = round.into_iter().map(|attempt| {
                            gateway.ping(&state, attempt, PingReason::KeepAlive(kept_by), hold)
                        });
                        let answers = join_all(pings).await;
                        if let Some(held) = hold {
                            gateway.round_answered(&state, target, function, held, &answers);
                        }
                    });
                }
                Action::SetProvisioned {
                    function,
                    target,
                    concurrency,
                } => {
                    // Reported always; applied in apply mode (`provisioner`).
                    let Some(state) = self.function_by_id(function) else {
                        continue;
                    };
                    let Some(qualifier) = state.config.targets.get(target) else {
                        continue;
                    };
                    telemetry::provisioned_recommended(&state.config.name, qualifier, concurrency);
                    *state.recommended.lock() = Some(concurrency);
                    if self.may_apply() {
                        let state = state.clone();
                        self.provision(&state, concurrency);
                    } else if self.config().provisioning.mode
                        == crate::config::ProvisioningMode::Apply
                    {
                        tracing::info!(
                            function = %state.config.name,
                            target = %qualifier,
                            environments = concurrency,
                            "provisioned concurrency recommended (another replica holds the provisioning lease: not applied here)"
                        );
                    } else {
                        tracing::info!(
                            function = %state.config.name,
                            target = %qualifier,
                            environments = concurrency,
                            "provisioned concurrency recommended (advise mode: not applied)"
                        );
                    }
                }
            }
        }
    }

    /// Runs the warmer until stopped; a policy that panics is logged and counted, and the
    /// warmer starts again with a fresh policy after a pause, rather than die silently.
    pub(super) async fn supervise_warmer(self: Arc<Self>) {
        let Some(warmer) = &self.warmer else { return };
        loop {
            let run = tokio::spawn(self.clone().run_warmer());
            match run.await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    let message = telemetry::panic_message(e.into_panic().as_ref());
                    telemetry::task_panicked("warmer", &message);
                    *warmer.policy.lock() =
                        Executor::fresh(&warmer.name, warmer.planner, warmer.tuning);
                    self.clock.sleep(WARMER_RESTART).await;
                }
                Err(_) => return,
            }
        }
    }

    /// Runs the warmer: wakes the policy when it asked, or when an observation may have
    /// changed its plans.
    async fn run_warmer(self: Arc<Self>) {
        let Some(warmer) = &self.warmer else { return };
        let infos: Vec<FunctionInfo> = self
            .functions()
            .map(|f| FunctionInfo {
                name: f.config.name.clone(),
                app: f.config.name.clone(),
                memory_mb: f.memory_mb(&f.config.targets[0]),
                targets: f.config.targets.clone(),
                ping_budget: Some(f.config.ping_budget),
            })
            .collect();
        let actions = warmer.policy().start(&infos, self.now());
        self.execute(warmer, actions);
        if self.rises.is_some() {
            let gateway = self.clone();
            self.spawn(async move {
                // Until Redis answers: a rise due later today is still worth having.
                let mut said = false;
                loop {
                    if let Some(given) = gateway.clone().restore_rises().await {
                        tracing::info!(rises = given, "daily rises read from Redis");
                        return;
                    }
                    if !std::mem::replace(&mut said, true) {
                        tracing::warn!(
                            "daily rises not read from Redis yet: tried again every minute"
                        );
                    }
                    gateway.clock.sleep(RISES_RETRY).await;
                }
            });
        }
        // The wake-up last acted on: a policy that asks for it again without moving on is
        // woken 10 ms later rather than spun on.
        let mut acted_for = None;
        loop {
            let now = self.now();
            let next = warmer.policy().next_wake();
            let wait = match next {
                // Due: act now. Each call's start and end signals a replan, and a wait
                // restarted at each signal would put off a due round for as long as calls
                // keep coming.
                Some(at) if at <= now && acted_for != Some(at) => Box::pin(std::future::ready(())),
                Some(at) => self
                    .clock
                    .sleep(at.saturating_sub(now).max(Duration::from_millis(10))),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                biased;
                _ = wait => {
                    acted_for = next;
                    let (actions, finished, rises) = {
                        let mut policy = warmer.policy();
                        let actions = policy.act(self.now());
                        (actions, policy.finished_minutes(), policy.rises_to_keep())
                    };
                    self.execute(warmer, actions);
                    // Empty unless the planner shares (apply mode with Redis).
                    if !finished.is_empty() {
                        self.spawn(self.clone().share_minutes(finished));
                    }
                    if self
                        .rises
                        .as_ref()
                        .is_some_and(|kept| !rises.is_empty() || kept.pending())
                    {
                        self.spawn(self.clone().keep_rises(rises));
                    }
                }
                _ = warmer.replan.notified() => {}
            }
        }
    }
}
