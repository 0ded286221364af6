//! A request's way through the cache: looked up (local tier, then Redis), shared with an
//! identical request in flight, or dispatched; a successful answer stored. The decisions are
//! `cache`'s ([`crate::cache::plan`], [`Key`], [`crate::cache::cacheable`]); this carries
//! them out around [`Gateway::dispatch`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{ErrorKind, GatewayError};
use super::{Dispatch, Dispatched, FunctionState, Gateway};
use crate::cache::{self, Directives, Entry, FunctionCache, Key, NotStored};
use crate::lambda::InvokeResponse;
use crate::policy::driver::Route;
use crate::telemetry::cache::{CacheResult, Tier};

/// The result of a dispatch, shared by every request of a flight.
pub(super) type Flight = Arc<Result<Dispatched, (GatewayError, Option<String>)>>;

/// This request's own invocation: where it went and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    pub route: Route,
    /// Time spent waiting for Lambda.
    pub upstream: Duration,
    /// Time held for a busy environment, if the request waited.
    pub waited: Option<Duration>,
}

/// A request's answer, and how the cache came by it.
pub struct Served {
    /// The target that computed the answer.
    pub target: String,
    pub response: InvokeResponse,
    /// `None` when the answer was stored or another request's (no environment of its own).
    pub invocation: Option<Invocation>,
    /// What the cache did (`None` for a function that neither caches nor coalesces).
    pub cache: Option<CacheResult>,
    /// The tier of a hit.
    pub tier: Option<Tier>,
    /// Time spent looking the answer up, when it was.
    pub lookup: Option<Duration>,
}

impl Served {
    fn invoked(dispatched: Dispatched, cache: Option<CacheResult>) -> Self {
        Self {
            invocation: Some(Invocation {
                route: dispatched.route,
                upstream: dispatched.upstream,
                waited: dispatched.waited,
            }),
            target: dispatched.target,
            response: dispatched.response,
            cache,
            tier: None,
            lookup: None,
        }
    }

    fn stored(entry: Entry, tier: Tier, lookup: Duration) -> Self {
        Self {
            response: InvokeResponse {
                status: 200,
                payload: entry.payload,
                executed_version: entry.executed_version,
                function_error: None,
                report: None,
                log_tail: None,
            },
            target: entry.target,
            invocation: None,
            cache: Some(CacheResult::Hit),
            tier: Some(tier),
            lookup: Some(lookup),
        }
    }
}

impl Gateway {
    /// Answers a request for `function`: from the cache, from an identical request's
    /// invocation in flight, or by dispatching it; stores what may be stored.
    pub async fn serve(
        self: &Arc<Self>,
        function: &Arc<FunctionState>,
        request: Dispatch,
        directives: Directives,
    ) -> Result<Served, (GatewayError, Option<String>)> {
        let Some(cache) = function.cache.as_ref() else {
            return Ok(Served::invoked(
                self.dispatch(function, request).await?,
                None,
            ));
        };
        let plan = cache.plan(request.invocation_type, directives);
        let key = (plan.lookup || plan.store || plan.coalesce)
            .then(|| cache_key(function, cache, &request))
            .flatten();
        let Some(key) = key else {
            // Nothing to look up or share (or the targets are unresolved, which dispatch
            // answers).
            cache.series.request(CacheResult::Bypass).increment(1);
            let dispatched = self.dispatch(function, request).await?;
            return Ok(Served::invoked(dispatched, Some(CacheResult::Bypass)));
        };

        let mut lookup = None;
        if plan.lookup {
            let started = Instant::now();
            let found = self.lookup(function, cache, &key).await;
            let took = started.elapsed();
            if let Some((entry, tier)) = found {
                cache.series.request(CacheResult::Hit).increment(1);
                cache.series.hit(tier).increment(1);
                cache.spared(entry.dollars(), !function.warm_capacity_likely(self.now()));
                return Ok(Served::stored(entry, tier, took));
            }
            lookup = Some(took);
        }

        let unshared = plan.unshared_result();
        let (dispatched, result) = if plan.coalesce {
            let gateway = self.clone();
            let owner = function.clone();
            let work = async move {
                let result = gateway.dispatch(&owner, request).await;
                if let (true, Ok(dispatched)) = (plan.store, &result) {
                    gateway.store(&owner, key, dispatched);
                }
                Arc::new(result)
            };
            let joined = self.flights.join(key, work, |work| {
                // A task of its own: no waiter's going away cancels the others'
                // invocation. Tracked, so a shutdown waits for it.
                let task = self.tasks.spawn(work);
                async move {
                    task.await.unwrap_or_else(|error| {
                        Arc::new(Err((
                            GatewayError::new(
                                ErrorKind::Internal,
                                format!("the shared invocation failed: {error}"),
                            ),
                            None,
                        )))
                    })
                }
            });
            let led = joined.led();
            let flight = joined.result().await;
            let dispatched = match &*flight {
                Ok(dispatched) => dispatched.clone(),
                Err(error) => {
                    let result = if led {
                        unshared
                    } else {
                        CacheResult::Coalesced
                    };
                    cache.series.request(result).increment(1);
                    return Err(error.clone());
                }
            };
            if led {
                (dispatched, unshared)
            } else {
                cache.spared(
                    entry_of(function, &dispatched).dollars(),
                    shared_cold(&dispatched),
                );
                (dispatched, CacheResult::Coalesced)
            }
        } else {
            let dispatched = self
                .dispatch(function, request)
                .await
                .inspect_err(|_| cache.series.request(unshared).increment(1))?;
            if plan.store {
                self.store(function, key, &dispatched);
            }
            (dispatched, unshared)
        };
        // Failed requests were counted as they failed.
        cache.series.request(result).increment(1);
        let mut served = Served::invoked(dispatched, Some(result));
        if result == CacheResult::Coalesced {
            served.invocation = None;
        }
        served.lookup = lookup;
        Ok(served)
    }

    /// The stored answer for `key`: local first, then Redis (whose hit is kept locally for
    /// what remains of its TTL).
    async fn lookup(
        &self,
        function: &FunctionState,
        cache: &FunctionCache,
        key: &Key,
    ) -> Option<(Entry, Tier)> {
        let now = self.now();
        if let Some(entry) = cache.local_get(key, now) {
            return Some((entry, Tier::Local));
        }
        let redis = self.redis.as_ref()?;
        match redis.get(&function.config.name, key).await {
            cache::redis::Fetched::Found(entry, remaining) => {
                let ttl = cache.config().map_or(remaining, |c| remaining.min(c.ttl()));
                cache.local_put(*key, entry.clone(), now, ttl);
                Some((entry, Tier::Redis))
            }
            cache::redis::Fetched::Absent | cache::redis::Fetched::Unavailable => None,
        }
    }

    /// Stores a successful answer locally at once and in Redis in the background (the
    /// client does not wait for the shared tier).
    fn store(self: &Arc<Self>, function: &Arc<FunctionState>, key: Key, dispatched: &Dispatched) {
        let Some(cache) = function.cache.as_ref() else {
            return;
        };
        let Some(config) = cache.config() else {
            return;
        };
        match cache::cacheable(&dispatched.response, config.max_entry_bytes) {
            Err(NotStored::NotSuccess) => return,
            Err(NotStored::TooLarge) => {
                cache.series.too_large.increment(1);
                return;
            }
            Ok(()) => {}
        }
        if let Some(ran) = moved_version(function, dispatched) {
            // The alias moved since the targets were last resolved: the key's code identity
            // may be the old code's. Keep nothing, and resolve again now rather than at the
            // next refresh.
            cache.series.version_changed.increment(1);
            tracing::info!(
                function = %function.config.name,
                target = %dispatched.target,
                executed_version = ran,
                "target now runs another version: answer not cached, targets resolved again"
            );
            self.refresh_soon(function);
            return;
        }
        let ttl = config.ttl();
        let entry = entry_of(function, dispatched);
        cache.local_put(key, entry.clone(), self.now(), ttl);
        if let Some(redis) = self.redis.clone() {
            let function = function.clone();
            self.tasks.spawn(async move {
                if redis.set(&function.config.name, &key, &entry, ttl).await {
                    if let Some(cache) = &function.cache {
                        cache.series.stored(Tier::Redis).increment(1);
                    }
                }
            });
        }
    }
}

/// The version that ran, when it is not the one the target resolved to at the last refresh.
fn moved_version<'a>(function: &FunctionState, dispatched: &'a Dispatched) -> Option<&'a str> {
    let ran = dispatched.response.executed_version.as_deref()?;
    let targets = function.targets();
    let resolved = targets
        .routable
        .iter()
        .find(|t| t.qualifier == dispatched.target)?;
    (resolved.version != ran).then_some(ran)
}

/// The key of a request, if the function's code is known (its primary target resolved).
fn cache_key(function: &FunctionState, cache: &FunctionCache, request: &Dispatch) -> Option<Key> {
    let targets = function.targets();
    let code = &targets.routable.first()?.code_sha256;
    let ignore = cache.config().map_or(&[][..], |c| &c.ignore[..]);
    // The payload was checked to be JSON as it was read.
    Key::new(
        &function.config.name,
        code,
        &request.payload,
        request.client_context.as_deref(),
        ignore,
    )
    .ok()
}

/// What storing a dispatched answer keeps, its cost included.
fn entry_of(function: &FunctionState, dispatched: &Dispatched) -> Entry {
    let billed = dispatched
        .response
        .report
        .as_ref()
        .map_or(dispatched.upstream, |r| r.billed_total());
    Entry {
        payload: dispatched.response.payload.clone(),
        target: dispatched.target.clone(),
        executed_version: dispatched.response.executed_version.clone(),
        billed_ms: billed.as_millis() as u64,
        memory_mb: function.memory_mb(&dispatched.target),
    }
}

/// Whether the invocation a coalesced request shared met a cold start: each request that
/// shared it spared one of its own.
fn shared_cold(dispatched: &Dispatched) -> bool {
    dispatched.response.cold_start() == Some(true)
}
