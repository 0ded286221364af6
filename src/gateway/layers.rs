//! The tower layers around the invoke routes, as linkerd composes its proxy: admission and
//! load shedding before the body is read, a bound on the whole request, and, around every
//! route, a panic guard and a request span. Their failures become precise answers here, in
//! the shape of the ingress they guard.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::BoxError;
use tower::ServiceBuilder;

use super::error::GatewayError;
use super::Gateway;
use crate::telemetry::{self, RequestCompleted};

/// The shape an ingress answers errors in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `{"error": {"code", "message"}}`.
    V1,
    /// Lambda's own error shape, for AWS SDKs.
    LambdaApi,
}

impl Shape {
    fn answer(self, error: GatewayError) -> Response {
        match self {
            Shape::V1 => error.into_response(),
            Shape::LambdaApi => error.into_lambda_response(),
        }
    }
}

/// The bound on a whole request through the gateway: every target tried for as long as the
/// function's timeout, after the longest wait for a busy environment, plus a margin for
/// reading the body and answering. A request past it is answered 504; its invocations, which
/// may still run, are accounted as unknown ends.
pub(super) fn request_timeout(gateway: &Gateway) -> Duration {
    gateway
        .config()
        .functions
        .iter()
        .map(|f| f.timeout() * f.targets.len() as u32 + Duration::from_millis(f.wait.max_wait_ms))
        .max()
        .unwrap_or_default()
        + Duration::from_secs(5)
}

/// Guards an invoke route: a request that finds every admission permit taken is shed at
/// once with 503 and `Retry-After`, before its body is read (so an overload buffers nothing);
/// an admitted one holds its permit until answered, and is answered 504 past
/// [`request_timeout`].
pub(super) fn invoke_route<S>(
    route: MethodRouter<S>,
    gateway: &Arc<Gateway>,
    shape: Shape,
) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limit = gateway.config().gateway.max_in_flight;
    let timeout = request_timeout(gateway);
    let known = gateway.clone();
    let fail = move |Path(name): Path<String>, error: BoxError| {
        let known = known.clone();
        async move {
            let (answer, elapsed) = if error.is::<tower::load_shed::error::Overloaded>() {
                telemetry::request_shed("max_in_flight");
                (GatewayError::overloaded(limit), Duration::ZERO)
            } else if error.is::<tower::timeout::error::Elapsed>() {
                (GatewayError::request_timeout(timeout), timeout)
            } else {
                tracing::error!(%error, "unexpected error from the invoke layers");
                (GatewayError::internal(), Duration::ZERO)
            };
            // The handler never ran (shed) or was dropped (timed out).
            unserved(&known, &name, shape, answer, elapsed)
        }
    };
    let gate = gateway.clone();
    let authorize = move |Path(name): Path<String>, mut request: Request, next: Next| {
        let gateway = gate.clone();
        async move {
            match gateway.access.check(request.headers(), &name) {
                Ok(caller) => {
                    if let Some(caller) = caller {
                        request.extensions_mut().insert(caller);
                    }
                    next.run(request).await
                }
                Err(refused) => {
                    telemetry::access_refused(refused.code());
                    unserved(&gateway, &name, shape, refused, Duration::ZERO)
                }
            }
        }
    };
    // Open access (local use) checks nothing: no layer, nothing on the hot path.
    let route = if gateway.access.is_open() {
        route
    } else {
        route.route_layer(middleware::from_fn(authorize))
    };
    route.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(fail))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(
                gateway.admission.clone(),
            ))
            .timeout(timeout),
    )
}

/// Answers a request the handler did not serve, counted so that `warmgate_requests_total`
/// holds every request.
fn unserved(
    gateway: &Gateway,
    name: &str,
    shape: Shape,
    answer: GatewayError,
    elapsed: Duration,
) -> Response {
    let function = gateway.function(name).map(|f| f.config.name.as_str());
    RequestCompleted {
        function: function.unwrap_or(telemetry::UNKNOWN_FUNCTION),
        target: "",
        outcome: answer.outcome(),
        elapsed,
        lambda: None,
        cold_start: None,
        restore: None,
        added: None,
        shared: false,
    }
    .emit();
    shape.answer(answer)
}

/// The answer to a handler that panicked: 500, counted and logged (invariant 7: every request
/// gets an answer, this one too).
pub(super) fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    telemetry::request_panicked(&telemetry::panic_message(panic.as_ref()));
    GatewayError::internal().into_response()
}
