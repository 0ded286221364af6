//! The inference cache and request coalescing (opt-in per function).
//!
//! A cached function's answers are kept under a [`Key`] made of the function, the code that
//! serves it (CodeSha256: a new deployment never serves an old answer) and the payload in
//! canonical JSON. Two tiers: local (moka, bounded in bytes per function) and Redis, shared
//! by every replica and surviving their restarts. Only successful synchronous answers are
//! stored: function errors, throttles and timeouts never. A coalescing function's identical
//! requests in flight at once share one invocation ([`flight`]).
//!
//! Decisions are pure ([`plan`], [`Key::new`], [`cacheable`]); the gateway's `serve` carries
//! them out.

pub mod config;
pub mod entry;
pub mod flight;
pub mod key;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;

use crate::clock::Time;
use crate::config::FunctionConfig;
use crate::lambda::{InvocationType, InvokeResponse};
use crate::telemetry::cache::{CacheResult, CacheSeries, Tier};
pub use config::{CacheSection, FunctionCacheConfig, RedisConfig};
pub use entry::Entry;
pub use key::Key;

/// What a request's `Cache-Control` asks of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-cache`: a fresh answer (which may then be stored).
    pub no_cache: bool,
    /// `no-store`: neither read nor keep.
    pub no_store: bool,
}

impl Directives {
    /// From a `Cache-Control` header value (directives are case-insensitive; unknown ones and
    /// arguments are ignored).
    pub fn parse(value: Option<&str>) -> Self {
        let mut directives = Self::default();
        for part in value.unwrap_or("").split(',') {
            let name = part.split('=').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("no-cache") {
                directives.no_cache = true;
            } else if name.eq_ignore_ascii_case("no-store") {
                directives.no_store = true;
            }
        }
        directives
    }
}

/// What the cache does for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub lookup: bool,
    pub store: bool,
    pub coalesce: bool,
}

impl Plan {
    /// What the answer's `x-warmgate-cache` says when nothing was found or shared.
    pub fn unshared_result(&self) -> CacheResult {
        if self.lookup || self.coalesce {
            CacheResult::Miss
        } else {
            CacheResult::Bypass
        }
    }
}

/// The plan for a request to a function with `caching` and `coalescing` on as configured.
/// Only synchronous calls are cached or shared (an Event or a DryRun has no answer to
/// share); `no-store` bypasses everything, `no-cache` the lookup and the sharing.
pub fn plan(
    caching: bool,
    coalescing: bool,
    invocation: InvocationType,
    directives: Directives,
) -> Plan {
    let sync = invocation == InvocationType::RequestResponse && !directives.no_store;
    Plan {
        lookup: sync && caching && !directives.no_cache,
        store: sync && caching,
        coalesce: sync && coalescing && !directives.no_cache,
    }
}

/// Whether an answer may be stored: a successful synchronous answer within the size bound.
/// Errors, throttles and timeouts never reach here as answers; a function error does, and is
/// refused.
pub fn cacheable(response: &InvokeResponse, max_entry_bytes: usize) -> Result<(), NotStored> {
    if response.status != 200 || response.function_error.is_some() {
        return Err(NotStored::NotSuccess);
    }
    if response.payload.len() > max_entry_bytes {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    NotSuccess,
    TooLarge,
}

/// A local entry and when, on the gateway's clock, it stops being served.
struct Stored {
    entry: Entry,
    expires_at: Time,
}

/// One function's part of the cache.
pub struct FunctionCache {
    /// The stored answers, if the function is cached.
    local: Option<(FunctionCacheConfig, moka::sync::Cache<Key, Arc<Stored>>)>,
    coalesce: bool,
    pub series: CacheSeries,
}

impl FunctionCache {
    /// The function's cache, if it caches or coalesces.
    pub fn new(config: &FunctionConfig) -> Option<Self> {
        let coalesce = config.coalesces();
        if config.cache.is_none() && !coalesce {
            return None;
        }
        let series = CacheSeries::new(&config.name);
        let local = config.cache.clone().map(|cache| {
            let evicted_size = series.evicted_size.clone();
            let evicted_expired = series.evicted_expired.clone();
            let local = moka::sync::Cache::builder()
                .max_capacity(cache.local_max_bytes)
                .weigher(|_key: &Key, stored: &Arc<Stored>| stored.entry.weight())
                // The TTL is checked on the gateway's clock at each lookup; this bound only
                // frees the memory of entries nobody asks for again.
                .time_to_live(cache.ttl())
                .eviction_listener(move |_key, _stored, cause| match cause {
                    RemovalCause::Size => evicted_size.increment(1),
                    RemovalCause::Expired => evicted_expired.increment(1),
                    RemovalCause::Explicit | RemovalCause::Replaced => {}
                })
                .build();
            (cache, local)
        });
        Some(Self {
            local,
            coalesce,
            series,
        })
    }

    pub fn plan(&self, invocation: InvocationType, directives: Directives) -> Plan {
        plan(self.local.is_some(), self.coalesce, invocation, directives)
    }

    pub fn config(&self) -> Option<&FunctionCacheConfig> {
        self.local.as_ref().map(|(config, _)| config)
    }

    /// The local entry for `key`, if there and not expired at `now`.
    pub fn local_get(&self, key: &Key, now: Time) -> Option<Entry> {
        let (_, local) = self.local.as_ref()?;
        let stored = local.get(key)?;
        if now >= stored.expires_at {
            local.invalidate(key);
            self.series.evicted_expired.increment(1);
            return None;
        }
        Some(stored.entry.clone())
    }

    /// Keeps `entry` locally until `now + ttl`.
    pub fn local_put(&self, key: Key, entry: Entry, now: Time, ttl: Duration) {
        let Some((_, local)) = self.local.as_ref() else {
            return;
        };
        local.insert(
            key,
            Arc::new(Stored {
                entry,
                expires_at: now + ttl,
            }),
        );
        self.series.stored(Tier::Local).increment(1);
        self.series.bytes.set(local.weighted_size() as f64);
    }

    /// Entries and bytes held locally (after moka's pending upkeep), for the admin view.
    pub fn local_usage(&self) -> Option<(u64, u64)> {
        let (_, local) = self.local.as_ref()?;
        local.run_pending_tasks();
        Some((local.entry_count(), local.weighted_size()))
    }

    pub fn coalesces(&self) -> bool {
        self.coalesce
    }

    /// Counts what a hit or a shared invocation spared: the invocation's dollars, and a cold
    /// start when no warm environment was likely idle.
    pub fn spared(&self, dollars: f64, cold_start: bool) {
        self.series.saved_dollars.increment(dollars);
        if cold_start {
            self.series.saved_cold_starts.increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives() {
        assert_eq!(Directives::parse(None), Directives::default());
        let d = Directives::parse(Some("max-age=0, No-Cache"));
        assert!(d.no_cache && !d.no_store);
        let d = Directives::parse(Some("no-store"));
        assert!(d.no_store && !d.no_cache);
    }

    #[test]
    fn plans() {
        use InvocationType::*;
        let none = Directives::default();
        let all = plan(true, true, RequestResponse, none);
        assert_eq!(
            all,
            Plan {
                lookup: true,
                store: true,
                coalesce: true
            }
        );
        assert_eq!(all.unshared_result(), CacheResult::Miss);
        // Only synchronous calls.
        for other in [Event, DryRun] {
            let p = plan(true, true, other, none);
            assert_eq!(
                p,
                Plan {
                    lookup: false,
                    store: false,
                    coalesce: false
                }
            );
            assert_eq!(p.unshared_result(), CacheResult::Bypass);
        }
        let no_store = Directives {
            no_store: true,
            ..none
        };
        assert_eq!(
            plan(true, true, RequestResponse, no_store).unshared_result(),
            CacheResult::Bypass
        );
        // no-cache: a fresh answer of its own, stored for the next caller.
        let no_cache = Directives {
            no_cache: true,
            ..none
        };
        let p = plan(true, true, RequestResponse, no_cache);
        assert_eq!(
            p,
            Plan {
                lookup: false,
                store: true,
                coalesce: false
            }
        );
        assert_eq!(p.unshared_result(), CacheResult::Bypass);
        // Coalescing without caching.
        let p = plan(false, true, RequestResponse, none);
        assert_eq!(
            p,
            Plan {
                lookup: false,
                store: false,
                coalesce: true
            }
        );
        assert_eq!(p.unshared_result(), CacheResult::Miss);
    }

    fn response(status: u16, error: Option<&str>, bytes: usize) -> InvokeResponse {
        InvokeResponse {
            status,
            payload: vec![b'x'; bytes].into(),
            executed_version: None,
            function_error: error.map(str::to_string),
            report: None,
            log_tail: None,
        }
    }

    #[test]
    fn only_successes_within_the_bound_are_stored() {
        assert_eq!(cacheable(&response(200, None, 10), 10), Ok(()));
        assert_eq!(
            cacheable(&response(200, None, 11), 10),
            Err(NotStored::TooLarge)
        );
        assert_eq!(
            cacheable(&response(200, Some("Unhandled"), 1), 10),
            Err(NotStored::NotSuccess)
        );
        assert_eq!(
            cacheable(&response(202, None, 0), 10),
            Err(NotStored::NotSuccess)
        );
    }
}
