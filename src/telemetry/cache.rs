//! The cache's metrics: per cached or coalescing function, handles registered once (no label
//! strings allocated per request); the Redis tier's latency, errors and state.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

/// Requests by function and what the cache did: `hit`, `miss`, `coalesced`, `bypass`.
pub const CACHE_REQUESTS: &str = "warmgate_cache_requests_total";
/// Hits by function and the tier that answered: `local` or `redis`.
pub const CACHE_HITS: &str = "warmgate_cache_hits_total";
/// Answers stored, by function and tier.
pub const CACHE_STORES: &str = "warmgate_cache_stores_total";
/// Answers not stored though cacheable in kind, by function and reason (`too_large`,
/// `version_changed`).
pub const CACHE_NOT_STORED: &str = "warmgate_cache_not_stored_total";
/// Bytes held by the local tier, by function.
pub const CACHE_BYTES: &str = "warmgate_cache_bytes";
/// Local entries evicted, by function and reason (`size`, `expired`).
pub const CACHE_EVICTIONS: &str = "warmgate_cache_evictions_total";
/// Dollars of invocations the cache and coalescing spared since start, by function (a gauge
/// that only rises: Prometheus counters are integers here).
pub const CACHE_SAVED_DOLLARS: &str = "warmgate_cache_saved_dollars";
/// Cold starts spared: a hit or a coalesced request when the pool had no idle warm
/// environment to serve it, by function.
pub const CACHE_SAVED_COLD_STARTS: &str = "warmgate_cache_saved_cold_starts_total";
/// Redis round trips, by operation (`get`, `set`).
pub const CACHE_REDIS_DURATION: &str = "warmgate_cache_redis_duration_seconds";
/// Redis operations that failed, by operation and kind (`timeout`, `error`, `decode`).
pub const CACHE_REDIS_ERRORS: &str = "warmgate_cache_redis_errors_total";
/// 1 while the Redis tier answers, 0 while requests go on without it.
pub const CACHE_REDIS_UP: &str = "warmgate_cache_redis_up";

/// What the cache did for one request, as `x-warmgate-cache` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
    Coalesced,
    Bypass,
}

impl CacheResult {
    pub const ALL: [CacheResult; 4] = [Self::Hit, Self::Miss, Self::Coalesced, Self::Bypass];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
            Self::Bypass => "bypass",
        }
    }
}

/// The tiers, as label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Local,
    Redis,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Redis => "redis",
        }
    }
}

/// One function's cache series, created at zero.
pub struct CacheSeries {
    requests: [Counter; 4],
    hits: [Counter; 2],
    stores: [Counter; 2],
    pub too_large: Counter,
    pub version_changed: Counter,
    pub bytes: Gauge,
    pub evicted_size: Counter,
    pub evicted_expired: Counter,
    pub saved_dollars: Gauge,
    pub saved_cold_starts: Counter,
}

impl CacheSeries {
    pub fn new(function: &str) -> Self {
        let f = || function.to_string();
        let requests = CacheResult::ALL
            .map(|r| counter!(CACHE_REQUESTS, "function" => f(), "result" => r.as_str()));
        let tiers = [Tier::Local, Tier::Redis];
        let series = Self {
            requests,
            hits: tiers.map(|t| counter!(CACHE_HITS, "function" => f(), "tier" => t.as_str())),
            stores: tiers.map(|t| counter!(CACHE_STORES, "function" => f(), "tier" => t.as_str())),
            too_large: counter!(CACHE_NOT_STORED, "function" => f(), "reason" => "too_large"),
            version_changed: counter!(CACHE_NOT_STORED, "function" => f(), "reason" => "version_changed"),
            bytes: gauge!(CACHE_BYTES, "function" => f()),
            evicted_size: counter!(CACHE_EVICTIONS, "function" => f(), "reason" => "size"),
            evicted_expired: counter!(CACHE_EVICTIONS, "function" => f(), "reason" => "expired"),
            saved_dollars: gauge!(CACHE_SAVED_DOLLARS, "function" => f()),
            saved_cold_starts: counter!(CACHE_SAVED_COLD_STARTS, "function" => f()),
        };
        for c in series
            .requests
            .iter()
            .chain(&series.hits)
            .chain(&series.stores)
        {
            c.increment(0);
        }
        for c in [
            &series.too_large,
            &series.version_changed,
            &series.evicted_size,
            &series.evicted_expired,
            &series.saved_cold_starts,
        ] {
            c.increment(0);
        }
        series.saved_dollars.increment(0.0);
        series.bytes.set(0.0);
        series
    }

    pub fn request(&self, result: CacheResult) -> &Counter {
        &self.requests[result as usize]
    }

    pub fn hit(&self, tier: Tier) -> &Counter {
        &self.hits[tier as usize]
    }

    pub fn stored(&self, tier: Tier) -> &Counter {
        &self.stores[tier as usize]
    }
}

/// The Redis tier's series.
pub struct RedisSeries {
    pub get: Histogram,
    pub set: Histogram,
    pub up: Gauge,
}

impl RedisSeries {
    pub fn new() -> Self {
        for op in ["get", "set"] {
            for kind in ["timeout", "error", "decode"] {
                counter!(CACHE_REDIS_ERRORS, "op" => op, "kind" => kind).increment(0);
            }
        }
        Self {
            get: histogram!(CACHE_REDIS_DURATION, "op" => "get"),
            set: histogram!(CACHE_REDIS_DURATION, "op" => "set"),
            up: gauge!(CACHE_REDIS_UP),
        }
    }

    pub fn error(&self, op: &'static str, kind: &'static str) {
        counter!(CACHE_REDIS_ERRORS, "op" => op, "kind" => kind).increment(1);
    }
}

impl Default for RedisSeries {
    fn default() -> Self {
        Self::new()
    }
}

pub(super) fn describe() {
    describe_counter!(
        CACHE_REQUESTS,
        Unit::Count,
        "Requests to cached or coalescing functions by what the cache did: hit, miss, coalesced (shared another request's invocation) or bypass."
    );
    describe_counter!(
        CACHE_HITS,
        Unit::Count,
        "Cache hits by function and the tier that answered (local or redis)."
    );
    describe_counter!(
        CACHE_STORES,
        Unit::Count,
        "Answers stored in the cache, by function and tier."
    );
    describe_counter!(
        CACHE_NOT_STORED,
        Unit::Count,
        "Successful answers not stored, by function and reason (too_large: above max_entry_bytes; version_changed: the alias moved since the targets were resolved)."
    );
    describe_gauge!(
        CACHE_BYTES,
        Unit::Bytes,
        "Bytes of answers held in the local tier, by function."
    );
    describe_counter!(
        CACHE_EVICTIONS,
        Unit::Count,
        "Local entries evicted, by function and reason (size: the byte bound; expired: past the TTL)."
    );
    describe_gauge!(
        CACHE_SAVED_DOLLARS,
        "Dollars of Lambda invocations spared by hits and coalescing (billed duration and memory of the invocation repeated, on-demand x86 prices) since start, by function."
    );
    describe_counter!(
        CACHE_SAVED_COLD_STARTS,
        Unit::Count,
        "Hits and coalesced requests that found no idle warm environment in the pool estimate: cold starts spared, by function."
    );
    describe_histogram!(
        CACHE_REDIS_DURATION,
        Unit::Seconds,
        "Redis round trips of the cache's shared tier, by operation."
    );
    describe_counter!(
        CACHE_REDIS_ERRORS,
        Unit::Count,
        "Redis operations that failed (timeout, error, or a value that would not decode), by operation."
    );
    describe_gauge!(
        CACHE_REDIS_UP,
        "1 while the cache's Redis tier answers; 0 while requests are served from the local tier and Lambda alone."
    );
}
