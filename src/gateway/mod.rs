//! The gateway: HTTP routes and the layers around them.
//!
//! A request names a configured function; the gateway picks one of the function's equivalent
//! targets, invokes it through the shared Lambda client, and answers with the function's
//! payload and the facts of the call (target, cold start, Server-Timing). The gateway holds
//! no business logic of its own beyond that path: decisions live in `policy`, errors are
//! mapped to HTTP in [`error`], telemetry in `telemetry`.

pub mod error;
mod routes;
pub mod targets;
pub mod warmer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, TokioClock};
use crate::config::{Config, FunctionConfig};
use crate::lambda::{
    Execution, InvocationType, InvokeRequest, InvokeResponse, Invoker, LambdaClient,
};
use crate::policy::budget::Budget;
use crate::policy::pool::{Met, Pool, PoolView, Probe, Started};
use crate::policy::router::{self, Expectation, WaitDecision};
use crate::telemetry;
use error::{ErrorKind, GatewayError};
use targets::{check_equivalence, TargetSet};

/// A configured function and what is known of its targets.
pub struct FunctionState {
    pub config: FunctionConfig,
    /// Position in the configuration: the policy's `FunctionId`.
    index: usize,
    targets: RwLock<TargetSet>,
    /// Warm-pool estimates, by target qualifier.
    pools: Mutex<HashMap<String, Pool>>,
    /// Signalled when a request of this function frees its environment.
    freed: Notify,
    /// Requests waiting for an environment to free up.
    waiting: AtomicUsize,
    /// A background ping is starting an environment.
    pinging: AtomicBool,
}

impl FunctionState {
    /// The targets as last resolved.
    pub fn targets(&self) -> TargetSet {
        self.targets.read().clone()
    }

    /// The pool estimate of each configured target at `now`.
    pub fn pool_views(&self, now: crate::clock::Time) -> Vec<(String, PoolView)> {
        let pools = self.pools.lock();
        self.config
            .targets
            .iter()
            .filter_map(|q| pools.get(q).map(|p| (q.clone(), p.view(now))))
            .collect()
    }

    /// Memory of a target as Lambda reported it (128 MB, Lambda's least, until resolved).
    pub fn memory_mb(&self, target: &str) -> u32 {
        let set = self.targets.read();
        set.routable
            .iter()
            .find(|t| t.qualifier == target)
            .map_or(128, |t| t.memory_mb)
    }

    /// The idle age by which an environment of `target` is gone with probability `p`.
    pub fn reclaim_quantile(&self, target: &str, p: f64) -> Option<Duration> {
        self.pools
            .lock()
            .get(target)
            .map(|pool| pool.reclaim().quantile(p))
    }

    fn start(&self, target: &str, now: crate::clock::Time) -> Started {
        self.start_as(target, now, false)
    }

    /// A keep-alive ping to `target` starts at `now`.
    fn start_ping(&self, target: &str, now: crate::clock::Time) -> Started {
        self.start_as(target, now, true)
    }

    fn start_as(&self, target: &str, now: crate::clock::Time, ping: bool) -> Started {
        let mut pools = self.pools.lock();
        let pool = pools.entry(target.to_string()).or_default();
        let started = if ping {
            pool.start_ping(now)
        } else {
            pool.start(now)
        };
        telemetry::pool_estimate(&self.config.name, target, &pool.view(now));
        started
    }

    /// Takes the probe due on `target` at `now`, if any (`Pool::probe_due`), counting it sent.
    fn take_probe(&self, target: &str, now: crate::clock::Time) -> Option<Probe> {
        let mut pools = self.pools.lock();
        let pool = pools.get_mut(target)?;
        let probe = pool.probe_due(now, &self.config.probe)?;
        pool.probe_sent(now);
        Some(probe)
    }

    /// Records how a request on `target` ended, and wakes a waiter.
    fn finish(&self, target: &str, now: crate::clock::Time, started: &Started, outcome: Finish) {
        {
            let mut pools = self.pools.lock();
            let pool = pools.entry(target.to_string()).or_default();
            match outcome {
                Finish::Ran {
                    met,
                    duration,
                    init,
                } => pool.complete(now, started, met, duration, init),
                Finish::NotRun => pool.abandon(started),
            }
            telemetry::pool_estimate(&self.config.name, target, &pool.view(now));
        }
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.freed.notify_one();
        }
    }
}

/// How a request on a target ended, for its pool.
enum Finish {
    Ran {
        met: Met,
        duration: Duration,
        init: Option<Duration>,
    },
    NotRun,
}

impl Finish {
    fn of(response: &InvokeResponse, upstream: Duration) -> Self {
        let report = response.report.as_ref();
        Finish::Ran {
            met: match response.cold_start() {
                Some(true) => Met::Cold,
                Some(false) => Met::Warm,
                None => Met::Unknown,
            },
            duration: report.map_or(upstream, |r| r.duration),
            init: report.and_then(|r| r.init_duration),
        }
    }
}

/// Shared by every request.
pub struct Gateway {
    /// In configuration order: the index is the policy's `FunctionId`.
    functions: Vec<Arc<FunctionState>>,
    by_name: HashMap<String, usize>,
    invoker: Arc<dyn Invoker>,
    lambda: LambdaClient,
    /// Bounds requests in flight: a request that finds no permit is shed with 503.
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    draining: AtomicBool,
    config: Config,
    clock: SharedClock,
    warmer: Option<warmer::Warmer>,
}

/// What one invocation through the gateway produced.
pub struct Dispatched {
    pub target: String,
    pub response: InvokeResponse,
    /// Time spent waiting for Lambda.
    pub upstream: Duration,
    /// What the router expected of the target (`pinned` when the client chose it).
    pub route: &'static str,
    /// Time held waiting for a busy environment, if the request waited.
    pub waited: Option<Duration>,
}

/// A request for a function, whichever ingress it came by.
pub struct Dispatch {
    pub payload: Bytes,
    pub client_context: Option<String>,
    pub invocation_type: InvocationType,
    /// A target the client pinned (Lambda API `Qualifier`), if any.
    pub pinned: Option<String>,
}

impl Gateway {
    /// A gateway for `config`, invoking through `lambda`.
    pub fn new(config: Config, lambda: LambdaClient) -> Arc<Self> {
        let functions = config
            .functions
            .iter()
            .enumerate()
            .map(|(index, f)| {
                let pools = f
                    .targets
                    .iter()
                    .map(|t| (t.clone(), Pool::default()))
                    .collect();
                let state = FunctionState {
                    config: f.clone(),
                    index,
                    targets: RwLock::new(TargetSet::default()),
                    pools: Mutex::new(pools),
                    freed: Notify::new(),
                    waiting: AtomicUsize::new(0),
                    pinging: AtomicBool::new(false),
                };
                Arc::new(state)
            })
            .collect();
        let by_name = config
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let warmer = config.warmer.enabled.then(|| {
            let policy = crate::policy::registry::live_policy(&config.warmer.policy)
                .expect("validated with the configuration");
            let budgets = config
                .functions
                .iter()
                .map(|f| Budget::new(f.ping_budget))
                .collect();
            warmer::Warmer::new(
                policy,
                budgets,
                Duration::from_millis(config.warmer.jitter_ms),
            )
        });
        Arc::new(Self {
            functions,
            by_name,
            warmer,
            invoker: Arc::new(lambda.clone()),
            lambda,
            in_flight: Arc::new(Semaphore::new(config.gateway.max_in_flight)),
            max_in_flight: config.gateway.max_in_flight,
            draining: AtomicBool::new(false),
            config,
            clock: Arc::new(TokioClock::new()),
        })
    }

    /// The gateway's current time, as its policies see it.
    pub fn now(&self) -> crate::clock::Time {
        self.clock.now()
    }

    /// Every configured function, in configuration order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<FunctionState>> {
        self.functions.iter()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn function(&self, name: &str) -> Option<&Arc<FunctionState>> {
        self.by_name.get(name).map(|&i| &self.functions[i])
    }

    /// A function by the policy's `FunctionId` (its position in the configuration).
    pub(crate) fn function_by_id(&self, id: usize) -> Option<&Arc<FunctionState>> {
        self.functions.get(id)
    }

    /// Ready to serve: every function's primary target resolved, and not draining.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(vec!["draining for shutdown".into()]);
        }
        let problems: Vec<String> = self
            .functions
            .iter()
            .filter_map(|f| {
                let set = f.targets.read();
                (!set.is_ready()).then(|| match set.problems.first() {
                    Some(p) => p.clone(),
                    None => format!("{}: targets not resolved yet", f.config.name),
                })
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Resolves every function's targets and checks they run the same code.
    pub async fn refresh_targets(&self) {
        for function in &self.functions {
            let config = &function.config;
            let mut resolved = Vec::new();
            for qualifier in &config.targets {
                let result = self
                    .lambda
                    .target_config(config.lambda_name(), Some(qualifier))
                    .await
                    .map_err(|e| e.to_string());
                resolved.push((qualifier.clone(), result));
            }
            let set = check_equivalence(&config.name, resolved);
            for problem in &set.problems {
                tracing::error!(function = %config.name, problem, "target not used");
            }
            for target in &set.routable {
                if let Some(allocated) = self
                    .provisioned(config.lambda_name(), &target.qualifier)
                    .await
                {
                    if let Some(pool) = function.pools.lock().get_mut(&target.qualifier) {
                        pool.set_provisioned(allocated);
                    }
                }
            }
            *function.targets.write() = set;
        }
    }

    /// Allocated provisioned concurrency of a target: 0 when none is configured, `None` when
    /// Lambda could not say.
    async fn provisioned(&self, function: &str, qualifier: &str) -> Option<u32> {
        let answer = self
            .lambda
            .sdk()
            .get_provisioned_concurrency_config()
            .function_name(function)
            .qualifier(qualifier)
            .send()
            .await;
        match answer {
            Ok(config) => Some(
                config
                    .allocated_provisioned_concurrent_executions()
                    .unwrap_or(0)
                    .max(0) as u32,
            ),
            Err(e) => match e.into_service_error() {
                e if e.is_provisioned_concurrency_config_not_found_exception() => Some(0),
                e if e.is_resource_not_found_exception() => Some(0),
                e => {
                    tracing::warn!(function, qualifier, error = %e, "cannot read provisioned concurrency");
                    None
                }
            },
        }
    }

    /// Takes a permit for one request, or sheds it.
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            telemetry::request_shed("max_in_flight");
            GatewayError::overloaded(self.max_in_flight)
        })
    }

    /// Invokes `function` for a request. The router picks the target (free provisioned
    /// capacity, then a warm pool, then the cheapest cold start); when every warm environment
    /// is busy, the request may wait briefly for one while a ping starts a new one. A throttle
    /// returned before execution fails over to the next equivalent target, and anything that
    /// may have run only for an idempotent function (DESIGN invariant 4).
    pub async fn dispatch(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        request: Dispatch,
    ) -> Result<Dispatched, (GatewayError, Option<String>)> {
        let config = &function.config;
        let set = function.targets.read().clone();
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
        let routable: Vec<String> = set.routable.iter().map(|t| t.qualifier.clone()).collect();
        if let Some(pinned) = &request.pinned {
            if !routable.contains(pinned) {
                return Err((
                    GatewayError::new(
                        ErrorKind::UnknownTarget,
                        format!("function {:?} has no usable target {pinned:?}", config.name),
                    ),
                    None,
                ));
            }
        }
        let _permit = self.admit().map_err(|e| (e, None))?;
        telemetry::in_flight(&config.name, 1.0);
        let _gauge = scopeguard(|| telemetry::in_flight(&config.name, -1.0));

        let (candidates, route, waited, first) = match &request.pinned {
            Some(pinned) => {
                let started = function.start(pinned, self.now());
                (vec![pinned.clone()], "pinned", None, started)
            }
            None => self.route(function, &routable).await,
        };

        let mut last_error = None;
        let mut first = Some(first);
        for target in candidates {
            // The chosen target's environment was taken when it was chosen; a failover
            // target's is taken now.
            let started = match first.take() {
                Some(started) => started,
                None => function.start(&target, self.now()),
            };
            let began = Instant::now();
            let result = self
                .invoker
                .invoke(InvokeRequest {
                    function_name: config.lambda_name().to_string(),
                    qualifier: Some(target.clone()),
                    payload: request.payload.clone(),
                    client_context: request.client_context.clone(),
                    invocation_type: request.invocation_type,
                    timeout: config.timeout(),
                })
                .await;
            let upstream = began.elapsed();
            match result {
                Ok(response) => {
                    if request.invocation_type == InvocationType::RequestResponse {
                        let finish = Finish::of(&response, upstream);
                        self.observe(function, &target, &started, &finish);
                        function.finish(&target, self.now(), &started, finish);
                    } else {
                        // A dry run runs nothing, and an event answers 202 while its
                        // environment still works: neither says which environment is idle,
                        // so the pool takes back its expectation and the policy learns nothing.
                        function.finish(&target, self.now(), &started, Finish::NotRun);
                    }
                    return Ok(Dispatched {
                        target,
                        response,
                        upstream,
                        route,
                        waited,
                    });
                }
                Err(e) => {
                    let outcome = match e.executed {
                        Execution::NotExecuted => Finish::NotRun,
                        Execution::MayHaveExecuted => Finish::Ran {
                            met: Met::Unknown,
                            duration: upstream,
                            init: None,
                        },
                    };
                    self.observe(function, &target, &started, &outcome);
                    function.finish(&target, self.now(), &started, outcome);
                    let failover = e.may_retry_elsewhere(config.idempotent);
                    tracing::warn!(function = %config.name, %target, error = %e, failover, "invoke failed");
                    last_error = Some((GatewayError::from_invoke(&config.name, &e), Some(target)));
                    if !failover {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one candidate"))
    }

    /// Chooses the target and takes its environment in one step (so that a burst does not
    /// all pick the same free one), waiting for a busy environment when that beats a cold
    /// start. Returns the targets to try in order (the chosen first, then the others for
    /// failover), what the router expected, how long the request waited, and the start on
    /// the chosen target.
    async fn route(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        routable: &[String],
    ) -> (Vec<String>, &'static str, Option<Duration>, Started) {
        let name = function.config.name.as_str();
        let mut waited = None;
        loop {
            let now = self.now();
            let (chosen, decision, started) = {
                let mut pools = function.pools.lock();
                let views: Vec<PoolView> = routable
                    .iter()
                    .map(|q| pools.entry(q.clone()).or_default().view(now))
                    .collect();
                let chosen = router::choose(&views);
                let decision = if chosen.expect == Expectation::Cold && waited.is_none() {
                    let position = function.waiting.load(Ordering::Acquire);
                    let soonest = routable
                        .iter()
                        .filter_map(|q| pools.get(q)?.expected_wait(now, position))
                        .min();
                    let init = views[chosen.target].expected_init;
                    router::wait_or_cold(&function.config.wait, soonest, init, position)
                } else {
                    WaitDecision::GoCold
                };
                let started = match decision {
                    WaitDecision::Wait(_) => None,
                    WaitDecision::GoCold => {
                        let pool = pools.entry(routable[chosen.target].clone()).or_default();
                        let started = pool.start(now);
                        telemetry::pool_estimate(name, &routable[chosen.target], &pool.view(now));
                        Some(started)
                    }
                };
                (chosen, decision, started)
            };
            let target = routable[chosen.target].clone();
            if let (WaitDecision::Wait(limit), None) = (decision, waited) {
                // Start an environment for the rest of the burst while this request waits.
                self.ping_in_background(function.clone(), target.clone());
                function.waiting.fetch_add(1, Ordering::AcqRel);
                let began = Instant::now();
                let freed = tokio::time::timeout(limit, function.freed.notified())
                    .await
                    .is_ok();
                function.waiting.fetch_sub(1, Ordering::AcqRel);
                waited = Some(began.elapsed());
                telemetry::waited(name, freed);
                continue;
            }
            telemetry::routed(name, &target, chosen.expect.as_str());
            let mut order = vec![target.clone()];
            order.extend(routable.iter().filter(|q| **q != target).cloned());
            let started = started.expect("a request that does not wait has started");
            return (order, chosen.expect.as_str(), waited, started);
        }
    }

    /// Tells the warmer's policy of a real request's end.
    fn observe(&self, function: &FunctionState, target: &str, started: &Started, finish: &Finish) {
        if let Some(warmer) = &self.warmer {
            if let Some(observation) =
                warmer::observation(function, target, started.at, finish, false)
            {
                warmer.observe(observation);
            }
        }
    }

    /// Sends one keep-alive ping to `target` unless one is already on its way, so that a new
    /// environment is initialising while requests wait for busy ones.
    fn ping_in_background(self: &Arc<Self>, function: Arc<FunctionState>, target: String) {
        if function.pinging.swap(true, Ordering::AcqRel) {
            return;
        }
        let gateway = self.clone();
        tokio::spawn(async move {
            gateway.ping(&function, &target, "burst").await;
            function.pinging.store(false, Ordering::Release);
        });
    }

    /// Serves the gateway on the configured listeners (or those given) until
    /// [`RunningGateway::shutdown`]: targets are resolved in the background, and re-checked
    /// every `refresh_interval_s`.
    pub async fn bind(
        self: &Arc<Self>,
        listen: Option<SocketAddr>,
        metrics_listen: Option<SocketAddr>,
    ) -> std::io::Result<RunningGateway> {
        let listener = TcpListener::bind(listen.unwrap_or(self.config.gateway.listen)).await?;
        let metrics_listener =
            TcpListener::bind(metrics_listen.unwrap_or(self.config.gateway.metrics_listen)).await?;
        let addr = listener.local_addr()?;
        let metrics_addr = metrics_listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let refresher = {
            let gateway = self.clone();
            let every = Duration::from_secs(self.config.gateway.refresh_interval_s);
            tokio::spawn(async move {
                loop {
                    gateway.refresh_targets().await;
                    tokio::time::sleep(every).await;
                }
            })
        };
        let warmer = tokio::spawn(self.clone().run_warmer(stopped.clone()));
        let prober = tokio::spawn(self.clone().run_prober(stopped.clone()));
        let metrics = tokio::spawn(telemetry::serve_metrics(
            metrics_listener,
            telemetry::prometheus(),
            wait(stopped.clone()),
        ));
        let app = routes::router(self.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(wait(stopped))
                .await
        });
        telemetry::metrics_ready(metrics_addr);
        Ok(RunningGateway {
            gateway: self.clone(),
            addr,
            metrics_addr,
            stop,
            server,
            metrics,
            refresher,
            warmer,
            prober,
        })
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

/// A gateway serving on its sockets.
pub struct RunningGateway {
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    metrics: JoinHandle<std::io::Result<()>>,
    refresher: JoinHandle<()>,
    warmer: JoinHandle<()>,
    prober: JoinHandle<()>,
}

impl RunningGateway {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Waits until every function's targets are resolved (or `limit` passes).
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), Vec<String>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.gateway.readiness() {
                Ok(()) => return Ok(()),
                Err(problems) if tokio::time::Instant::now() >= deadline => return Err(problems),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Drains: `/readyz` turns 503 so the load balancer stops sending, the listener stops
    /// accepting, in-flight requests finish (within `grace`), then everything stops.
    pub async fn shutdown(self, grace: Duration) -> std::io::Result<()> {
        self.gateway.draining.store(true, Ordering::Relaxed);
        self.refresher.abort();
        let _ = self.stop.send(true);
        let server = tokio::time::timeout(grace, self.server).await;
        let _ = self.metrics.await;
        let _ = self.warmer.await;
        let _ = self.prober.await;
        match server {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    "shutdown grace passed with requests still in flight"
                );
                Ok(())
            }
        }
    }
}
