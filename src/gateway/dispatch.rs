//! One request's way through the gateway: admitted by its function's driver (sent, or held
//! for a busy environment), invoked, failed over as the driver allows, and its end taught
//! back. The decisions are the driver's; this is the async shell that carries them out.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::{ErrorKind, GatewayError};
use super::{FunctionState, Gateway};
use crate::lambda::{
    Execution, InvocationType, InvokeError, InvokeRequest, InvokeResponse, TraceContext,
};
use crate::policy::breaker::BreakerState;
use crate::policy::cost;
use crate::policy::driver::{Admission, Attempt, Failure, Outcome, Route, Send};
use crate::policy::TargetId;
use crate::telemetry;

/// A request for a function, whichever ingress it came by.
pub struct Dispatch {
    pub payload: Bytes,
    pub client_context: Option<String>,
    pub invocation_type: InvocationType,
    /// A target the client pinned (Lambda API `Qualifier`), if any.
    pub pinned: Option<String>,
    pub trace: TraceContext,
}

/// What one invocation through the gateway produced.
#[derive(Debug, Clone)]
pub struct Dispatched {
    pub target: String,
    pub response: InvokeResponse,
    /// Time spent waiting for Lambda.
    pub upstream: Duration,
    /// Why the request went to its target.
    pub route: Route,
    /// Time held waiting for a busy environment, if the request waited.
    pub waited: Option<Duration>,
}

/// How the driver should read an invocation failure (invariant 4 is the driver's).
pub(super) fn failure(error: &InvokeError) -> Failure {
    match error.executed {
        Execution::MayHaveExecuted => Failure::MayHaveRun,
        // For a call that did not run, `idempotent` does not matter.
        Execution::NotExecuted => Failure::NotRun {
            elsewhere: error.may_retry_elsewhere(false),
        },
    }
}

/// What the pool and the policy learn of an answer: how it met its environment (unknown
/// without a log tail), its durations, and its bill at `memory_mb`.
pub(super) fn outcome_of(response: &InvokeResponse, upstream: Duration, memory_mb: u32) -> Outcome {
    let report = response.report.as_ref();
    Outcome::Ran {
        start: response.start(),
        duration: report.map_or(upstream, |r| r.duration),
        // A SnapStart restore is what that function's cold start takes.
        init: report.and_then(|r| r.init_duration.or(r.restore_duration)),
        billed_gb_s: Some(cost::gb_s(
            report.map_or(crate::policy::budget::PING_ESTIMATE, |r| r.billed_total()),
            memory_mb,
        )),
    }
}

/// An attempt under way. If its request is dropped before it ends (the client went away, the
/// request timed out), the driver still hears of its end, so that no environment stays busy
/// in the estimate for ever.
pub(super) struct InFlight {
    function: Arc<FunctionState>,
    gateway: Arc<Gateway>,
    attempt: Option<Attempt>,
}

impl InFlight {
    pub(super) fn new(
        gateway: &Arc<Gateway>,
        function: &Arc<FunctionState>,
        attempt: Attempt,
    ) -> Self {
        gateway.share_start(function.index, attempt);
        Self {
            function: function.clone(),
            gateway: gateway.clone(),
            attempt: Some(attempt),
        }
    }

    /// The attempt ended with `outcome`: the driver learns it, and the policy.
    pub(super) fn finish(mut self, outcome: Outcome, observe: bool) {
        let attempt = self.attempt.take().expect("finished once");
        self.gateway
            .finish(&self.function, &attempt, outcome, observe);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            // It may still run at Lambda; the estimate counts its environment idle from now.
            let elapsed = self.gateway.now().saturating_sub(attempt.started.at);
            let outcome = Outcome::Ran {
                start: None,
                duration: elapsed,
                init: None,
                billed_gb_s: None,
            };
            self.gateway
                .finish(&self.function, &attempt, outcome, false);
        }
    }
}

/// A request held for a busy environment. Dropped while still held (the client went away),
/// it leaves the queue; if it was released in that instant, its attempt is given back.
struct Waiter {
    function: Arc<FunctionState>,
    gateway: Arc<Gateway>,
    id: u64,
    released: Option<oneshot::Receiver<Send>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Some(mut released) = self.released.take() else {
            return;
        };
        let cancelled = {
            let mut orchestration = self.function.orchestration.lock();
            orchestration.waiters.remove(&self.id);
            orchestration.driver.cancel(self.id)
        };
        if !cancelled {
            if let Ok(send) = released.try_recv() {
                self.gateway
                    .finish(&self.function, &send.attempt, Outcome::NotRun, false);
            }
        }
    }
}

impl Gateway {
    /// Invokes `function` for a request: where its driver says (free provisioned capacity,
    /// then a warm pool, then the cheapest cold start, or held briefly for a busy environment
    /// while a ping starts a new one), failing over as the driver allows (a throttle to the
    /// next equivalent target; anything that may have run only for an idempotent function).
    pub async fn dispatch(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        request: Dispatch,
    ) -> Result<Dispatched, (GatewayError, Option<String>)> {
        let config = &function.config;
        let set = function.targets.load();
        if !set.is_ready() {
            let why = set
                .problems
                .first()
                .cloned()
                .unwrap_or_else(|| "targets not resolved yet".into());
            return Err((
                GatewayError::not_ready(format!("function {:?}: {why}", config.name)),
                None,
            ));
        }
        let pinned = match &request.pinned {
            None => None,
            Some(pinned) => match set.routable.iter().any(|t| &t.qualifier == pinned) {
                true => function.target_id(pinned),
                false => {
                    return Err((
                        GatewayError::new(
                            ErrorKind::UnknownTarget,
                            format!("function {:?} has no usable target {pinned:?}", config.name),
                        ),
                        None,
                    ))
                }
            },
        };
        telemetry::in_flight(&config.name, 1.0);
        let _gauge = scopeguard(|| telemetry::in_flight(&config.name, -1.0));

        let mut send = match self.admit(function, pinned).await {
            Ok(send) => send,
            Err(retry_after) => {
                return Err((
                    GatewayError::new(
                        ErrorKind::NotReady,
                        format!(
                            "function {:?}: every target is failing (circuit open); retry shortly",
                            config.name
                        ),
                    )
                    .retry_after(retry_after),
                    None,
                ))
            }
        };
        telemetry::routed(
            &config.name,
            function.qualifier(send.attempt.target),
            send.route.as_str(),
        );
        let (route, waited) = (send.route, send.waited);
        let mut tried: Vec<TargetId> = Vec::new();
        loop {
            let target = send.attempt.target;
            let sent_at = send.attempt.started.at;
            tried.push(target);
            let attempt = InFlight::new(self, function, send.attempt);
            self.tell_in_flight(function);
            let qualifier = function.qualifier(target).to_string();
            let (result, upstream, outcome) = self
                .send_attempt(
                    function,
                    &qualifier,
                    request.payload.clone(),
                    request.client_context.clone(),
                    request.invocation_type,
                    &request.trace,
                )
                .await;
            let error = match result {
                Ok(response) => {
                    if function.orchestration.lock().driver.answered(target) {
                        telemetry::breaker(
                            &config.name,
                            &qualifier,
                            BreakerState::Closed { failures: 0 },
                        );
                    }
                    if request.invocation_type == InvocationType::RequestResponse {
                        attempt.finish(outcome, true);
                        self.keep_history(function, target, sent_at, &response);
                    } else {
                        // A dry run runs nothing, and an event answers 202 while its
                        // environment still works: neither says which environment is idle,
                        // so the pool takes back its expectation and the policy learns nothing.
                        attempt.finish(Outcome::NotRun, false);
                    }
                    return Ok(Dispatched {
                        target: qualifier,
                        response,
                        upstream,
                        route,
                        waited,
                    });
                }
                Err(error) => error,
            };
            attempt.finish(outcome, true);
            let (next, breaker) = {
                let mut orchestration = function.orchestration.lock();
                let driver = &mut orchestration.driver;
                let next = driver.failover(self.now(), failure(&error), &tried);
                (next, driver.breaker(target))
            };
            telemetry::breaker(&config.name, &qualifier, breaker);
            tracing::warn!(
                function = %config.name, target = %qualifier, %error,
                payload_bytes = request.payload.len(), failover = next.is_some(), "invoke failed"
            );
            match next {
                Some(next) => send = next,
                None => {
                    return Err((
                        GatewayError::from_invoke(&config.name, &error),
                        Some(qualifier),
                    ))
                }
            }
        }
    }

    /// Sends one attempt to `qualifier` through the invoker: the answer, how long Lambda took,
    /// and what the driver should learn of it (a failure that may have run is an unknown end).
    pub(super) async fn send_attempt(
        &self,
        function: &FunctionState,
        qualifier: &str,
        payload: Bytes,
        client_context: Option<String>,
        invocation_type: InvocationType,
        trace: &TraceContext,
    ) -> (Result<InvokeResponse, InvokeError>, Duration, Outcome) {
        let config = &function.config;
        let began = self.now();
        let result = self
            .invoker
            .invoke(InvokeRequest {
                function_name: config.lambda_name().to_string(),
                qualifier: Some(qualifier.to_string()),
                payload,
                // Lambda passes a client context on to synchronous calls only.
                client_context: match invocation_type {
                    InvocationType::RequestResponse => {
                        Some(super::calls::sent_by_gateway(client_context))
                    }
                    _ => client_context,
                },
                invocation_type,
                timeout: config.timeout(),
                trace: trace.clone(),
            })
            .await;
        let upstream = self.now().saturating_sub(began);
        let outcome = match &result {
            Ok(response) => outcome_of(response, upstream, function.memory_mb(qualifier)),
            Err(e) if e.executed == Execution::NotExecuted => Outcome::NotRun,
            Err(_) => Outcome::Ran {
                start: None,
                duration: upstream,
                init: None,
                billed_gb_s: None,
            },
        };
        (result, upstream, outcome)
    }

    /// Asks the function's driver where the request goes; when it holds the request, waits
    /// for a freed environment or the end of the wait, while the burst ping it asked for
    /// starts an environment. `Err(retry_after)` when every target's breaker is open.
    async fn admit(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        pinned: Option<TargetId>,
    ) -> Result<Send, Duration> {
        let now = self.now();
        let (waiter, until, burst, released) = {
            let mut orchestration = function.orchestration.lock();
            let admission = match pinned {
                Some(target) => Admission::Send(orchestration.driver.pinned(now, target)),
                None => orchestration.driver.arrive(now),
            };
            match admission {
                Admission::Send(send) => {
                    function.publish_pool(&orchestration.driver, send.attempt.target, now);
                    return Ok(send);
                }
                Admission::Unavailable { retry_after } => return Err(retry_after),
                Admission::Hold {
                    waiter,
                    until,
                    burst,
                } => {
                    let (tx, rx) = oneshot::channel();
                    orchestration.waiters.insert(waiter, tx);
                    (waiter, until, burst, rx)
                }
            }
        };
        if let Some(burst) = burst {
            let (gateway, function) = (self.clone(), function.clone());
            self.spawn(async move {
                gateway
                    .ping(
                        &function,
                        burst,
                        crate::policy::driver::PingReason::Burst,
                        None,
                    )
                    .await;
            });
        }
        let mut waiter = Waiter {
            function: function.clone(),
            gateway: self.clone(),
            id: waiter,
            released: Some(released),
        };
        let wait = until.saturating_sub(now);
        let freed = {
            let released = waiter.released.as_mut().expect("set above");
            tokio::select! {
                send = released => send.ok(),
                _ = self.clock.sleep(wait) => None,
            }
        };
        telemetry::waited(&function.config.name, freed.is_some());
        let send = match freed {
            Some(send) => send,
            None => {
                let mut orchestration = function.orchestration.lock();
                orchestration.waiters.remove(&waiter.id);
                match orchestration.driver.expire(self.now(), waiter.id) {
                    Some(send) => send,
                    // Released in the same instant: the send is on the channel, put there
                    // under this lock.
                    None => waiter
                        .released
                        .as_mut()
                        .expect("set above")
                        .try_recv()
                        .expect("a waiter no longer held was released"),
                }
            }
        };
        waiter.released = None;
        Ok(send)
    }

    /// Queues the invocation for the history file, when one is kept and Lambda reported it.
    fn keep_history(
        &self,
        function: &FunctionState,
        target: TargetId,
        sent_at: crate::clock::Time,
        response: &InvokeResponse,
    ) {
        let (Some(history), Some(report)) = (&self.history, &response.report) else {
            return;
        };
        let qualifier = function.qualifier(target);
        let architecture = function
            .targets
            .load()
            .routable
            .iter()
            .find(|t| t.qualifier == qualifier)
            .map(|t| t.architecture)
            .unwrap_or_default();
        history.record(super::history::Record {
            function: function.config.name.clone(),
            target: qualifier.to_string(),
            at: sent_at,
            report: report.clone(),
            architecture,
        });
    }

    /// An attempt ended at the gateway's now: its driver learns it (and may release a held
    /// request onto the environment it freed), then the warmer's policy, if `observe`.
    pub(super) fn finish(
        &self,
        function: &FunctionState,
        attempt: &Attempt,
        outcome: Outcome,
        observe: bool,
    ) {
        let now = self.now();
        let (observation, released, running) = {
            let mut orchestration = function.orchestration.lock();
            let finished = orchestration.driver.finish(now, attempt, outcome);
            let released = finished.released.is_some();
            orchestration.hand_over(now, finished.released);
            function.publish_pool(&orchestration.driver, attempt.target, now);
            (
                finished.observation,
                released,
                orchestration.driver.running(),
            )
        };
        self.share_end(*attempt, observation, &outcome, released, observe);
        let Some(warmer) = &self.warmer else {
            return;
        };
        if !attempt.started.ping {
            let fleet = self.fleet_in_flight(observation.function, running);
            warmer.in_flight(observation.function, fleet, now);
        }
        if observe {
            warmer.observe(observation);
        }
    }

    /// Tells the warmer's policy how many real requests of `function` are in flight now: it
    /// hears of each call as it ends, and of the ones still running only so.
    pub(super) fn tell_in_flight(&self, function: &FunctionState) {
        let Some(warmer) = &self.warmer else {
            return;
        };
        let (id, running) = {
            let orchestration = function.orchestration.lock();
            (orchestration.driver.id(), orchestration.driver.running())
        };
        let fleet = self.fleet_in_flight(id, running);
        warmer.in_flight(id, fleet, self.now());
    }
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
