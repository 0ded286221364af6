//! The gateway: HTTP routes and the layers around them.
//!
//! A request names a configured function; the gateway asks the function's
//! [`FunctionDriver`] (the pure orchestration the simulator replays too) where to send it,
//! carries that out through the [`Invoker`], and answers with the function's payload and the
//! facts of the call (target, cold start, Server-Timing). Admission, shedding, the request
//! timeout and the panic guard are tower layers (`layers`); errors are mapped to HTTP in
//! [`error`]; telemetry in `telemetry`. Every background task (warmer, prober, refresher,
//! pings) is tracked, and [`RunningGateway::shutdown`] returns once they are done.

pub mod access;
mod calls;
pub use calls::SENT_BY_GATEWAY_KEY;
mod dispatch;
mod ends;
pub mod error;
mod exchange;
mod fleet;
pub mod history;
mod keepers;
mod layers;
mod lease;
mod listener;
pub mod openapi;
mod provisioner;
mod rises;
mod routes;
mod serve;
pub mod targets;
pub mod warmer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{SharedClock, Time, TokioClock};
use crate::config::{Config, FunctionConfig};
use crate::lambda::{ControlPlane, Invoker, LambdaClient};
use crate::policy::driver::{FunctionDriver, FunctionSettings, Send};
use crate::policy::pool::PoolView;
use crate::policy::TargetId;
use crate::telemetry;
pub use dispatch::{Dispatch, Dispatched};
pub use listener::ConnectionLimits;
pub use serve::{Invocation, Served};
use targets::{check_equivalence, TargetSet};

/// How often a Redis tier that is down is asked whether it answers again.
const REDIS_CHECK: Duration = Duration::from_secs(5);

/// A configured function and what is known of its targets.
pub struct FunctionState {
    /// Its position in the configuration: the policy's `FunctionId`.
    index: usize,
    pub config: FunctionConfig,
    /// Read on every request, written on a refresh: swapped whole, read without a lock.
    targets: ArcSwap<TargetSet>,
    orchestration: Mutex<Orchestration>,
    /// Its cache and coalescing, if it has either.
    cache: Option<crate::cache::FunctionCache>,
    /// A refresh of its targets out of turn is under way.
    refreshing: AtomicBool,
    /// A change of its provisioned concurrency is under way (apply mode).
    provisioning: AtomicBool,
    /// The planner's last level, applied when this replica takes the provisioning lease
    /// (the planner speaks only when its level changes).
    recommended: Mutex<Option<u32>>,
    /// Its calls in flight as its environments report them ([`calls`]).
    reported: Mutex<calls::ReportedCalls>,
}

/// The function's driver, and the requests it holds, each waiting on its channel for the
/// [`Send`] that releases it. One lock: a release and the waiter's own timeout cannot race.
struct Orchestration {
    driver: FunctionDriver,
    waiters: HashMap<u64, oneshot::Sender<Send>>,
}

impl Orchestration {
    /// Sends a request the driver released to its waiter. A released waiter whose client has
    /// gone gives its environment back, which may release the next.
    fn hand_over(&mut self, now: Time, mut released: Option<(u64, Send)>) {
        while let Some((waiter, send)) = released.take() {
            let send = match self.waiters.remove(&waiter) {
                Some(tx) => match tx.send(send) {
                    Ok(()) => return,
                    Err(send) => send,
                },
                None => send,
            };
            released = self
                .driver
                .finish(now, &send.attempt, crate::policy::driver::Outcome::NotRun)
                .released;
        }
    }
}

impl FunctionState {
    fn new(index: usize, config: &FunctionConfig) -> Self {
        let settings = FunctionSettings {
            // A wait never outlasts the function's own timeout.
            wait: crate::policy::router::WaitPolicy {
                max_wait_ms: config.wait.max_wait_ms.min(config.timeout_ms),
                ..config.wait
            },
            probe: config.probe,
            ping_budget: Some(config.ping_budget),
            idempotent: config.idempotent,
            breaker: config.breaker,
            retry_budget: config.retry_budget,
        };
        Self {
            index,
            config: config.clone(),
            targets: ArcSwap::from_pointee(TargetSet::default()),
            orchestration: Mutex::new(Orchestration {
                driver: FunctionDriver::new(index, config.targets.len(), settings),
                waiters: HashMap::new(),
            }),
            cache: crate::cache::FunctionCache::new(config),
            refreshing: AtomicBool::new(false),
            provisioning: AtomicBool::new(false),
            recommended: Mutex::new(None),
            reported: Mutex::new(calls::ReportedCalls::default()),
        }
    }

    /// The targets as last resolved.
    pub fn targets(&self) -> Arc<TargetSet> {
        self.targets.load_full()
    }

    /// The position of a configured target: its `TargetId`.
    pub fn target_id(&self, qualifier: &str) -> Option<TargetId> {
        self.config.targets.iter().position(|t| t == qualifier)
    }

    /// The qualifier of a target.
    pub fn qualifier(&self, target: TargetId) -> &str {
        &self.config.targets[target]
    }

    /// The pool estimate of each configured target at `now`.
    pub fn pool_views(&self, now: Time) -> Vec<(String, PoolView)> {
        let orchestration = self.orchestration.lock();
        self.config
            .targets
            .iter()
            .enumerate()
            .map(|(t, q)| (q.clone(), orchestration.driver.pool(t).view(now)))
            .collect()
    }

    /// Memory of a target as Lambda reported it (128 MB, Lambda's least, until resolved).
    pub fn memory_mb(&self, target: &str) -> u32 {
        let set = self.targets.load();
        set.routable
            .iter()
            .find(|t| t.qualifier == target)
            .map_or(128, |t| t.memory_mb)
    }

    /// Whether a request now would likely find free provisioned capacity or a warm idle
    /// environment on one of the function's routable targets.
    pub fn warm_capacity_likely(&self, now: Time) -> bool {
        let orchestration = self.orchestration.lock();
        let driver = &orchestration.driver;
        driver.routable().iter().any(|&t| {
            let view = driver.pool(t).view(now);
            view.provisioned_free > 0 || view.warm_probability >= 0.5
        })
    }

    /// The idle age by which an environment of `target` is gone with probability `p`.
    pub fn reclaim_quantile(&self, target: &str, p: f64) -> Option<Duration> {
        let t = self.target_id(target)?;
        Some(
            self.orchestration
                .lock()
                .driver
                .pool(t)
                .reclaim()
                .quantile(p),
        )
    }

    fn publish_pool(&self, driver: &FunctionDriver, target: TargetId, now: Time) {
        telemetry::pool_estimate(
            &self.config.name,
            self.qualifier(target),
            &driver.pool(target).view(now),
        );
    }
}

/// Shared by every request.
pub struct Gateway {
    /// In configuration order: the index is the policy's `FunctionId`.
    functions: Vec<Arc<FunctionState>>,
    by_name: HashMap<String, usize>,
    invoker: Arc<dyn Invoker>,
    control: Arc<dyn ControlPlane>,
    /// Admission: a request that finds no permit is shed with 503 before its body is read
    /// ([`layers`]); background pings skip their round while clients hold every permit.
    admission: Arc<Semaphore>,
    draining: AtomicBool,
    /// Who may call which function ([`access`]).
    access: access::Access,
    config: Config,
    clock: SharedClock,
    warmer: Option<warmer::Executor>,
    /// The cache's shared tier, if configured.
    redis: Option<Arc<crate::cache::redis::RedisTier>>,
    /// Provisioned concurrency applied (apply mode), for the daily budget.
    applied: provisioner::AppliedLevels,
    /// Apply mode with Redis: only the lease's holder applies.
    lease: Option<lease::Lease>,
    /// Apply mode with Redis: the planner's loads shared among replicas.
    fleet: Option<fleet::Fleet>,
    /// A warmer with Redis: which replica sends each function's keep-alive rounds.
    keepers: Option<keepers::Keepers>,
    /// A warmer with Redis: the attempts shared with the other replicas.
    exchange: Option<exchange::Exchange>,
    /// A warmer with Redis: its daily rises kept beyond this process.
    rises: Option<rises::KeptRises>,
    /// Where the gateway's clock falls on the wall clock, for what replicas and restarts
    /// share by wall-clock minute (`fleet`, `rises`).
    wall: fleet::MinuteAlign,
    /// Invocations in flight that identical requests share.
    flights: Arc<crate::cache::flight::Flights<crate::cache::Key, serve::Flight>>,
    /// The record of the calls made (`[history]`), if kept.
    history: Option<history::History>,
    /// Every background task, and the signal that stops them.
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Gateway {
    /// A gateway for `config`, invoking through `invoker`, reading targets through `control`,
    /// its time (waits, the warmer, probes) from `clock`.
    pub fn new(
        config: Config,
        invoker: Arc<dyn Invoker>,
        control: Arc<dyn ControlPlane>,
        clock: SharedClock,
    ) -> Arc<Self> {
        telemetry::functions_configured(&config.functions);
        let functions = config
            .functions
            .iter()
            .enumerate()
            .map(|(index, f)| Arc::new(FunctionState::new(index, f)))
            .collect();
        let by_name = config
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let advise = config.provisioning.mode != crate::config::ProvisioningMode::Off;
        let redis = config.cache.redis.as_ref().and_then(|redis| {
            match crate::cache::redis::RedisTier::new(redis) {
                Ok(tier) => Some(Arc::new(tier)),
                // The URL was checked with the configuration; this is not expected.
                Err(error) => {
                    tracing::error!(%error, "Redis cache tier not started");
                    None
                }
            }
        });
        let lease = provisioner::lease_for(&config, redis.as_ref());
        // Replicas that may apply share their loads, so that the holder plans from the
        // whole load (`fleet`).
        let scale = config.backend.time_scale();
        let wall = fleet::MinuteAlign::now(clock.now(), scale);
        let fleet = lease.is_some().then(|| fleet::Fleet::new(scale));
        // The planner rides with the keep-alive policy, seeing the same observations; without
        // a warmer it rides alone (keep-alive `none`).
        let planner = advise.then(|| warmer::PlannerSetup {
            phase: fleet.as_ref().map_or(Duration::ZERO, |_| wall.phase),
            sharing: fleet.is_some(),
        });
        let warmer = (config.warmer.enabled || advise).then(|| {
            let keep_alive = if config.warmer.enabled {
                config.warmer.policy.as_str()
            } else {
                "none"
            };
            warmer::Executor::new(
                keep_alive,
                planner,
                Duration::from_millis(config.warmer.jitter_ms),
                config.warmer.max_pings_in_flight,
                crate::policy::round::RoundHold::new(
                    Duration::from_millis(config.warmer.round_hold_ms),
                    Duration::from_millis(config.warmer.max_round_hold_ms),
                ),
                config.functions.len(),
                crate::policy::registry::WarmerTuning {
                    idle_lifetime: Some(Duration::from_secs(config.warmer.idle_lifetime_s)),
                    refresh_margin: Some(Duration::from_millis(config.warmer.refresh_margin_ms)),
                    daily_rises: config.warmer.daily_rises,
                    ends_reported: config.warmer.ends_reported,
                },
            )
        });
        if warmer.is_some() {
            for f in &config.functions {
                telemetry::round_hold(&f.name, Duration::from_millis(config.warmer.round_hold_ms));
            }
        }
        if advise {
            for f in &config.functions {
                telemetry::provisioned_recommended(&f.name, &f.targets[0], 0);
            }
        }
        let keepers = keepers::keepers_for(&config, redis.as_ref());
        let exchange = keepers.as_ref().map(|k| exchange::Exchange::new(k.id()));
        let rises = keepers.is_some().then(|| rises::KeptRises::new(scale));
        Arc::new(Self {
            functions,
            by_name,
            warmer,
            redis,
            lease,
            fleet,
            keepers,
            exchange,
            rises,
            wall,
            flights: crate::cache::flight::Flights::new(),
            applied: provisioner::AppliedLevels::default(),
            history: history::History::new(&config.history, clock.now()),
            invoker,
            control,
            admission: Arc::new(Semaphore::new(config.gateway.max_in_flight)),
            draining: AtomicBool::new(false),
            access: access::Access::new(&config.access, &config.backend, None),
            config,
            clock,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        })
    }

    /// A gateway in front of Lambda (or the emulator) through aws-sdk-lambda, on tokio's clock
    /// at the backend's time scale.
    pub fn over_lambda(config: Config, lambda: LambdaClient) -> Arc<Self> {
        let clock = TokioClock::scaled(config.backend.time_scale());
        Self::new(
            config,
            Arc::new(lambda.clone()),
            Arc::new(lambda),
            Arc::new(clock),
        )
    }

    /// The HTTP application (routes and layers) without a listener: what [`Gateway::bind`]
    /// serves, for tests that call it in process.
    pub fn app(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }

    /// Reads the JWT key set again (at start, then every `access.jwt.jwks_refresh_s`); a
    /// failed read keeps the set in use.
    pub async fn reload_jwks(&self) {
        let Some(jwt) = &self.config.access.jwt else {
            return;
        };
        match access::read_jwks(jwt).await {
            Ok(set) => {
                tracing::info!(keys = set.keys.len(), "JWT key set read");
                self.access.set_jwks(set);
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "JWT key set not read"),
        }
    }

    /// The gateway's current time, as its policies see it.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Every configured function, in configuration order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<FunctionState>> {
        self.functions.iter()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.gateway.body_read_timeout_ms)
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
                let set = f.targets.load();
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

    /// Resolves every function's targets, checks they run the same code, and reads their
    /// provisioned concurrency into the pools.
    pub async fn refresh_targets(&self) {
        for function in &self.functions {
            self.refresh_function(function).await;
        }
    }

    /// Resolves one function's targets (see [`Gateway::refresh_targets`]).
    pub async fn refresh_function(&self, function: &FunctionState) {
        let config = &function.config;
        let mut resolved = Vec::new();
        for qualifier in &config.targets {
            let result = self
                .control
                .target_config(config.lambda_name(), Some(qualifier))
                .await
                .map_err(|e| e.to_string());
            resolved.push((qualifier.clone(), result));
        }
        let set = check_equivalence(&config.name, resolved);
        for problem in &set.problems {
            tracing::error!(function = %config.name, problem, "target not used");
        }
        let mut provisioned = Vec::new();
        for target in &set.routable {
            match self
                .control
                .allocated_provisioned(config.lambda_name(), &target.qualifier)
                .await
            {
                Ok(allocated) => provisioned.push((target.qualifier.clone(), allocated)),
                Err(error) => tracing::warn!(
                    function = %config.name, target = %target.qualifier, %error,
                    "cannot read provisioned concurrency"
                ),
            }
        }
        {
            let mut orchestration = function.orchestration.lock();
            let driver = &mut orchestration.driver;
            let routable = set
                .routable
                .iter()
                .filter_map(|t| function.target_id(&t.qualifier))
                .collect();
            driver.set_routable(routable);
            for (qualifier, allocated) in provisioned {
                if let Some(t) = function.target_id(&qualifier) {
                    driver.set_provisioned(t, allocated);
                }
            }
        }
        telemetry::function_ready(&config.name, set.is_ready());
        function.targets.store(Arc::new(set));
    }

    /// Resolves `function`'s targets again in the background, once at a time.
    fn refresh_soon(self: &Arc<Self>, function: &Arc<FunctionState>) {
        if function.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let gateway = self.clone();
        let function = function.clone();
        self.spawn(async move {
            gateway.refresh_function(&function).await;
            function.refreshing.store(false, Ordering::Release);
        });
    }

    /// Whether background pings (rounds, probes) must wait for clients: while draining, or
    /// while clients hold every admission permit. Pings take no permit, so they are skipped
    /// rather than queued in front of real traffic.
    fn clients_first(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.admission.available_permits() == 0
    }

    /// Runs `task` in the background, tracked: [`RunningGateway::shutdown`] cancels it and
    /// waits for it.
    fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + std::marker::Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            stop.run_until_cancelled(task).await;
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
        let stop_accepting = CancellationToken::new();

        let gateway = self.clone();
        let every = Duration::from_secs(self.config.gateway.refresh_interval_s);
        self.spawn(async move {
            loop {
                gateway.refresh_targets().await;
                gateway.clock.sleep(every).await;
            }
        });
        if let Some(jwt) = &self.config.access.jwt {
            let gateway = self.clone();
            let every = Duration::from_secs(jwt.jwks_refresh_s.max(1));
            self.spawn(async move {
                loop {
                    gateway.reload_jwks().await;
                    tokio::time::sleep(every).await;
                }
            });
        }
        if let Some(redis) = self.redis.clone() {
            // Redis's return shows even without traffic (the alert on its absence clears).
            self.spawn(async move {
                loop {
                    tokio::time::sleep(REDIS_CHECK).await;
                    redis.check().await;
                }
            });
        }
        if self.lease.is_some() {
            self.spawn(self.clone().run_lease());
        }
        if self.keepers.is_some() {
            self.spawn(self.clone().run_keepers());
            self.spawn(self.clone().run_exchange_publisher());
            self.spawn(self.clone().run_exchange_subscriber());
        }
        self.spawn(self.clone().supervise_warmer());
        self.spawn(self.clone().run_prober());
        if let Some(writer) = self.history.as_ref().and_then(|h| h.writer()) {
            self.spawn(writer);
        }
        let metrics = {
            let stopped = stop_accepting.clone().cancelled_owned();
            let admin = routes::admin_router(self.clone())
                .merge(telemetry::metrics_router(telemetry::prometheus()));
            tokio::spawn(async move {
                axum::serve(metrics_listener, admin)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        };
        let app = routes::router(self.clone());
        let server = tokio::spawn(listener::serve(
            listener,
            app,
            self.config.gateway.connection_limits(),
            stop_accepting.clone(),
        ));
        telemetry::metrics_ready(metrics_addr);
        Ok(RunningGateway {
            gateway: self.clone(),
            addr,
            metrics_addr,
            stop_accepting,
            server,
            metrics,
        })
    }
}

/// A gateway serving on its sockets.
pub struct RunningGateway {
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    stop_accepting: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    metrics: JoinHandle<std::io::Result<()>>,
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

    /// Drains: `/readyz` turns 503 so the load balancer stops sending, the background tasks
    /// (warmer, prober, refresher, pings) stop, the listener stops accepting, in-flight
    /// requests finish (within `grace`); returns once every task is done.
    pub async fn shutdown(self, grace: Duration) -> std::io::Result<()> {
        let gateway = &self.gateway;
        gateway.draining.store(true, Ordering::Relaxed);
        gateway.stop.cancel();
        self.stop_accepting.cancel();
        let server = tokio::time::timeout(grace, self.server).await;
        let _ = self.metrics.await;
        gateway.tasks.close();
        gateway.tasks.wait().await;
        // Nothing applies any more: another replica may take over without waiting for the
        // lease to expire.
        if let Some(lease) = &gateway.lease {
            lease.release().await;
        }
        // No round is sent any more: the others keep this replica's functions from their
        // next beat.
        if let Some(keepers) = &gateway.keepers {
            keepers.leave().await;
        }
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
