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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{Config, FunctionConfig};
use crate::lambda::{InvocationType, InvokeRequest, InvokeResponse, Invoker, LambdaClient};
use crate::telemetry;
use error::{ErrorKind, GatewayError};
use targets::{check_equivalence, ResolvedTarget, TargetSet};

/// A configured function and what is known of its targets.
pub struct FunctionState {
    pub config: FunctionConfig,
    targets: RwLock<TargetSet>,
}

impl FunctionState {
    /// The targets as last resolved.
    pub fn targets(&self) -> TargetSet {
        self.targets.read().clone()
    }
}

/// Shared by every request.
pub struct Gateway {
    functions: HashMap<String, Arc<FunctionState>>,
    invoker: Arc<dyn Invoker>,
    lambda: LambdaClient,
    /// Bounds requests in flight: a request that finds no permit is shed with 503.
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    draining: AtomicBool,
    config: Config,
}

/// What one invocation through the gateway produced.
pub struct Dispatched {
    pub target: String,
    pub response: InvokeResponse,
    /// Time spent waiting for Lambda.
    pub upstream: Duration,
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
            .map(|f| {
                let state = FunctionState {
                    config: f.clone(),
                    targets: RwLock::new(TargetSet::default()),
                };
                (f.name.clone(), Arc::new(state))
            })
            .collect();
        Arc::new(Self {
            functions,
            invoker: Arc::new(lambda.clone()),
            lambda,
            in_flight: Arc::new(Semaphore::new(config.gateway.max_in_flight)),
            max_in_flight: config.gateway.max_in_flight,
            draining: AtomicBool::new(false),
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn function(&self, name: &str) -> Option<&Arc<FunctionState>> {
        self.functions.get(name)
    }

    /// Ready to serve: every function's primary target resolved, and not draining.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(vec!["draining for shutdown".into()]);
        }
        let problems: Vec<String> = self
            .functions
            .values()
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
        for function in self.functions.values() {
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
            *function.targets.write() = set;
        }
    }

    /// Takes a permit for one request, or sheds it.
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            telemetry::request_shed("max_in_flight");
            GatewayError::overloaded(self.max_in_flight)
        })
    }

    /// Invokes `function` for a request: the first routable target (or the pinned one); a
    /// throttle returned before execution fails over to the next equivalent target, and
    /// anything that may have run only for an idempotent function (DESIGN invariant 4).
    pub async fn dispatch(
        &self,
        function: &FunctionState,
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
        let candidates: Vec<&ResolvedTarget> = match &request.pinned {
            Some(pinned) => match set.routable.iter().find(|t| &t.qualifier == pinned) {
                Some(t) => vec![t],
                None => {
                    return Err((
                        GatewayError::new(
                            ErrorKind::UnknownTarget,
                            format!("function {:?} has no usable target {pinned:?}", config.name),
                        ),
                        None,
                    ))
                }
            },
            None => set.routable.iter().collect(),
        };
        let _permit = self.admit().map_err(|e| (e, None))?;
        telemetry::in_flight(&config.name, 1.0);
        let _gauge = scopeguard(|| telemetry::in_flight(&config.name, -1.0));

        let mut last_error = None;
        for target in candidates {
            let started = Instant::now();
            let result = self
                .invoker
                .invoke(InvokeRequest {
                    function_name: config.lambda_name().to_string(),
                    qualifier: Some(target.qualifier.clone()),
                    payload: request.payload.clone(),
                    client_context: request.client_context.clone(),
                    invocation_type: request.invocation_type,
                    timeout: config.timeout(),
                })
                .await;
            match result {
                Ok(response) => {
                    return Ok(Dispatched {
                        target: target.qualifier.clone(),
                        response,
                        upstream: started.elapsed(),
                    })
                }
                Err(e) => {
                    let failover = e.may_retry_elsewhere(config.idempotent);
                    tracing::warn!(function = %config.name, target = %target.qualifier, error = %e, failover, "invoke failed");
                    let mapped = GatewayError::from_invoke(&config.name, &e);
                    last_error = Some((mapped, Some(target.qualifier.clone())));
                    if !failover {
                        break;
                    }
                }
            }
        }
        Err(last_error.expect("at least one candidate"))
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
