//! The shared tier: Redis (ElastiCache on AWS) through the `redis` crate's connection
//! manager, which reconnects by itself. Every operation is bounded by `timeout_ms`; after a
//! failure the tier is skipped for `retry_after_ms`, so that an outage costs requests
//! nothing, then tried again. Going down and coming back are logged once each and shown in
//! `warmgate_cache_redis_up`.
//!
//! The same connection carries the provisioning lease's commands, the planner's shared
//! per-minute loads, the keep-alive membership and the warmer's daily rises
//! (`gateway::lease`, `gateway::fleet`, `gateway::keepers`, `gateway::rises`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::config::RedisConfig;
use super::entry::{self, Entry};
use super::key::Key;
use crate::telemetry::cache::RedisSeries;

/// What a lease command found (`gateway::lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The lease is ours: taken, renewed or released.
    Ours,
    /// Another replica holds it (or, on a renewal or release, it is not ours any more).
    NotOurs,
    /// Redis did not answer in time, or failed.
    Unavailable,
}

/// Renews the lease only if `id` still holds it: a replica never extends another's.
const RENEW: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Keeps the larger of a field's peak and `ARGV[2]`, and the key for `ARGV[3]` ms.
const KEEP_LARGER: &str = r"local v = redis.call('HGET', KEYS[1], ARGV[1]) if (not v) or tonumber(v) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return redis.call('PEXPIRE', KEYS[1], ARGV[3])";
/// Releases the lease only if `id` still holds it.
const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Wall-clock minutes in a day: the daily rises are kept by day.
pub const MINUTES_A_DAY: u64 = 24 * 60;

/// What a lookup found.
pub enum Fetched {
    /// The entry and how long Redis keeps it still.
    Found(Entry, Duration),
    Absent,
    /// Redis did not answer in time, failed, or is being left alone after a failure.
    Unavailable,
}

pub struct RedisTier {
    connection: ConnectionManager,
    /// For the subscriptions, which take a connection of their own.
    client: redis::Client,
    config: RedisConfig,
    /// Until when Redis is left alone after a failure.
    resting_until: Mutex<Option<Instant>>,
    up: AtomicBool,
    series: RedisSeries,
}

impl RedisTier {
    /// A tier that connects on first use (a gateway starts whether Redis is up or not).
    pub fn new(config: &RedisConfig) -> Result<Self, redis::RedisError> {
        // rustls needs one process-wide crypto provider for `rediss://`, and more than one is
        // compiled in (the AWS SDK's aws-lc-rs, reqwest's ring): choose aws-lc-rs. An error
        // means one was chosen already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = config.client()?;
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(config.retry_after_ms.max(1)));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), settings)?;
        let series = RedisSeries::new();
        series.up.set(1.0);
        Ok(Self {
            connection,
            client,
            config: config.clone(),
            resting_until: Mutex::new(None),
            up: AtomicBool::new(true),
            series,
        })
    }

    /// Whether the last operation succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn key(&self, function: &str, key: &Key) -> String {
        format!(
            "{}:cache:v1:{function}:{}",
            self.config.key_prefix,
            key.hex()
        )
    }

    /// The provisioning lease's key, beside the cache's keys.
    fn lease_key(&self) -> String {
        format!("{}:provisioning:lease", self.config.key_prefix)
    }

    /// The provisioning planner's loads for one wall-clock minute, every replica's added up:
    /// fields `<function>:busy` (busy seconds) and `<function>:peak`.
    fn load_key(&self, minute: u64) -> String {
        format!("{}:provisioning:load:{minute}", self.config.key_prefix)
    }

    /// Adds this replica's `loads` (function, busy seconds, peak) to `minute`'s totals, kept
    /// for `keep` (the planner looks back a day). One transaction: a replica's minute is
    /// counted whole or not at all. Returns whether Redis took it.
    pub async fn load_add(&self, minute: u64, loads: &[(&str, f64, u32)], keep: Duration) -> bool {
        if !self.available() {
            return false;
        }
        let key = self.load_key(minute);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for &(function, busy_s, peak) in loads {
            pipe.cmd("HINCRBYFLOAT")
                .arg(&key)
                .arg(format!("{function}:busy"))
                .arg(busy_s)
                .ignore();
            pipe.cmd("HINCRBY")
                .arg(&key)
                .arg(format!("{function}:peak"))
                .arg(peak)
                .ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(keep.as_millis().max(1) as u64)
            .ignore();
        let mut connection = self.connection.clone();
        let command = pipe.exec_async(&mut connection);
        self.bounded("load_add", self.config.background_timeout(), command)
            .await
            .is_some()
    }

    /// Each of `minutes`' totals so far: function → (busy seconds, peak); `None` when Redis
    /// did not answer. A field that does not read as a number is left out.
    pub async fn load_totals(&self, minutes: &[u64]) -> Option<Vec<HashMap<String, (f64, u32)>>> {
        if !self.available() {
            return None;
        }
        let mut pipe = redis::pipe();
        for &minute in minutes {
            pipe.cmd("HGETALL").arg(self.load_key(minute));
        }
        let mut connection = self.connection.clone();
        let query = pipe.query_async::<Vec<HashMap<String, String>>>(&mut connection);
        let hashes = self
            .bounded("load_totals", self.config.background_timeout(), query)
            .await?;
        let totals = hashes
            .into_iter()
            .map(|hash| {
                let mut totals: HashMap<String, (f64, u32)> = HashMap::new();
                for (field, value) in hash {
                    let Some((function, what)) = field.rsplit_once(':') else {
                        continue;
                    };
                    match what {
                        "busy" => {
                            if let Ok(busy_s) = value.parse::<f64>() {
                                totals.entry(function.to_string()).or_default().0 = busy_s;
                            }
                        }
                        "peak" => {
                            if let Ok(peak) = value.parse::<u32>() {
                                totals.entry(function.to_string()).or_default().1 = peak;
                            }
                        }
                        _ => {}
                    }
                }
                totals
            })
            .collect();
        Some(totals)
    }

    /// The warmer's daily rises of one wall-clock day: fields `<minute>:<function>`, each
    /// the largest peak any replica recorded in that wall-clock minute.
    fn rises_key(&self, day: u64) -> String {
        format!("{}:warmer:rises:{day}", self.config.key_prefix)
    }

    /// Keeps `rises` (function, wall-clock minute, peak), the larger peak where one is kept
    /// already, each day's for `keep` after its last change. Returns whether Redis took them.
    pub async fn rises_keep(&self, rises: &[(&str, u64, u32)], keep: Duration) -> bool {
        if !self.available() {
            return false;
        }
        let mut pipe = redis::pipe();
        for &(function, minute, peak) in rises {
            pipe.cmd("EVAL")
                .arg(KEEP_LARGER)
                .arg(1)
                .arg(self.rises_key(minute / MINUTES_A_DAY))
                .arg(format!("{minute}:{function}"))
                .arg(peak)
                .arg(keep.as_millis().max(1) as u64)
                .ignore();
        }
        let mut connection = self.connection.clone();
        let command = pipe.exec_async(&mut connection);
        self.bounded("rises_keep", self.config.background_timeout(), command)
            .await
            .is_some()
    }

    /// The rises kept for wall-clock `days`, as (function, wall-clock minute, peak) in the
    /// order of their minutes; `None` when Redis did not answer. A field that does not read
    /// as a rise is left out.
    pub async fn rises_read(&self, days: std::ops::Range<u64>) -> Option<Vec<(String, u64, u32)>> {
        if !self.available() {
            return None;
        }
        let mut pipe = redis::pipe();
        for day in days {
            pipe.cmd("HGETALL").arg(self.rises_key(day));
        }
        let mut connection = self.connection.clone();
        let query = pipe.query_async::<Vec<HashMap<String, String>>>(&mut connection);
        let hashes = self
            .bounded("rises_read", self.config.background_timeout(), query)
            .await?;
        let mut rises: Vec<(String, u64, u32)> = hashes
            .into_iter()
            .flatten()
            .filter_map(|(field, peak)| {
                let (minute, function) = field.split_once(':')?;
                Some((
                    function.to_string(),
                    minute.parse().ok()?,
                    peak.parse().ok()?,
                ))
            })
            .collect();
        rises.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Some(rises)
    }

    /// Takes the provisioning lease for `id` if nobody holds it (`SET NX PX`).
    pub async fn lease_take(&self, id: &str, ttl: Duration, bound: Duration) -> LeaseAnswer {
        let mut set = redis::cmd("SET");
        set.arg(self.lease_key())
            .arg(id)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        // `OK` when set, nil when the key exists.
        self.lease_command("lease_take", set, bound).await
    }

    /// Extends the lease to `ttl` from now if `id` holds it.
    pub async fn lease_renew(&self, id: &str, ttl: Duration, bound: Duration) -> LeaseAnswer {
        let mut script = redis::cmd("EVAL");
        script
            .arg(RENEW)
            .arg(1)
            .arg(self.lease_key())
            .arg(id)
            .arg(ttl.as_millis().max(1) as u64);
        self.lease_command("lease_renew", script, bound).await
    }

    /// Lets the lease go if `id` holds it, so another replica need not wait for it to expire.
    pub async fn lease_release(&self, id: &str, bound: Duration) -> LeaseAnswer {
        let mut script = redis::cmd("EVAL");
        script.arg(RELEASE).arg(1).arg(self.lease_key()).arg(id);
        self.lease_command("lease_release", script, bound).await
    }

    /// The replicas' membership for keep-alive (`gateway::keepers`): a sorted set of replica
    /// ids scored by when each expires (Unix ms).
    fn replicas_key(&self) -> String {
        format!("{}:warmer:replicas", self.config.key_prefix)
    }

    /// Says `id` is alive until `until_unix_ms`, drops the members whose time has passed at
    /// `now_unix_ms`, and reads the rest, in one transaction; `None` when Redis did not
    /// answer within `bound`. Not skipped while the tier rests after a failure (as the
    /// lease's commands): a replica that cannot say it is alive loses its functions.
    pub async fn replicas_beat(
        &self,
        id: &str,
        now_unix_ms: u64,
        until_unix_ms: u64,
        bound: Duration,
    ) -> Option<Vec<String>> {
        let key = self.replicas_key();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(&key)
            .arg(until_unix_ms)
            .arg(id)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({now_unix_ms}"))
            .ignore()
            // The set goes when the last replica has been gone a while.
            .cmd("PEXPIRE")
            .arg(&key)
            .arg((until_unix_ms.saturating_sub(now_unix_ms)).max(1) * 4)
            .ignore()
            .cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1);
        let mut connection = self.connection.clone();
        let query = pipe.query_async::<(Vec<String>,)>(&mut connection);
        self.bounded("replicas_beat", bound, query)
            .await
            .map(|(replicas,)| replicas)
    }

    /// Takes `id` out of the membership (on shutdown), so that its functions pass to the
    /// others at their next beat rather than when its entry expires. Whether Redis took it.
    pub async fn replicas_leave(&self, id: &str, bound: Duration) -> bool {
        let mut command = redis::cmd("ZREM");
        command.arg(self.replicas_key()).arg(id);
        let mut connection = self.connection.clone();
        let query = command.exec_async(&mut connection);
        self.bounded("replicas_leave", bound, query).await.is_some()
    }

    /// Publishes `message` on `channel` (the replicas' shared calls, `gateway::exchange`);
    /// whether Redis took it within `bound`. Skipped while the tier rests after a failure.
    pub async fn publish(&self, channel: &str, message: &[u8], bound: Duration) -> bool {
        if !self.available() {
            return false;
        }
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(message);
        let mut connection = self.connection.clone();
        let query = command.exec_async(&mut connection);
        self.bounded("publish", bound, query).await.is_some()
    }

    /// Awaits `command` within `bound`; its outcome counts for the tier's state (a failure
    /// rests it and is counted by `op`). `None` when Redis failed or did not answer in time.
    async fn bounded<T>(
        &self,
        op: &'static str,
        bound: Duration,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(bound, command).await {
            Err(_) => {
                self.failed(op, "timeout", &"no answer within timeout_ms");
                None
            }
            Ok(Err(error)) => {
                self.failed(op, "error", &error);
                None
            }
            Ok(Ok(value)) => {
                self.succeeded();
                Some(value)
            }
        }
    }

    /// A connection subscribed to `channel`, within the connect timeout.
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub, String> {
        let bound = Duration::from_millis(self.config.connect_timeout_ms);
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(bound, subscribe).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("no answer within connect_timeout_ms".into()),
        }
    }

    /// The bound of a command no request waits on ([`RedisConfig::background_timeout`]).
    pub fn background_timeout(&self) -> Duration {
        self.config.background_timeout()
    }

    /// The channel of the replicas' shared calls.
    pub fn calls_channel(&self) -> String {
        format!("{}:warmer:calls", self.config.key_prefix)
    }

    /// Runs a lease command within `bound`. Not skipped while the tier rests after a
    /// failure: a missed renewal costs the lease, a skipped lookup only a hit. Its outcome
    /// still counts for the tier's state (it is the same Redis).
    async fn lease_command(
        &self,
        op: &'static str,
        command: redis::Cmd,
        bound: Duration,
    ) -> LeaseAnswer {
        let mut connection = self.connection.clone();
        let query = command.query_async::<redis::Value>(&mut connection);
        match tokio::time::timeout(bound, query).await {
            Err(_) => {
                self.failed(op, "timeout", &"no answer within timeout_ms");
                LeaseAnswer::Unavailable
            }
            Ok(Err(error)) => {
                self.failed(op, "error", &error);
                LeaseAnswer::Unavailable
            }
            Ok(Ok(redis::Value::ServerError(error))) => {
                self.failed(op, "error", &format!("{error:?}"));
                LeaseAnswer::Unavailable
            }
            Ok(Ok(value)) => {
                self.succeeded();
                // SET NX answers OK when set and nil when held; the scripts 1 or 0.
                match value {
                    redis::Value::Okay | redis::Value::Int(1) => LeaseAnswer::Ours,
                    _ => LeaseAnswer::NotOurs,
                }
            }
        }
    }

    /// Whether Redis may be asked now (it is not resting after a failure).
    fn available(&self) -> bool {
        let mut resting = self.resting_until.lock();
        match *resting {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *resting = None;
                true
            }
            None => true,
        }
    }

    fn failed(&self, op: &'static str, kind: &'static str, error: &dyn std::fmt::Display) {
        self.series.error(op, kind);
        *self.resting_until.lock() =
            Some(Instant::now() + Duration::from_millis(self.config.retry_after_ms));
        if self.up.swap(false, Ordering::Relaxed) {
            self.series.up.set(0.0);
            tracing::warn!(
                op,
                kind,
                error = %error,
                "Redis cache tier unavailable: serving from the local tier and Lambda"
            );
        }
    }

    fn succeeded(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            self.series.up.set(1.0);
            tracing::info!("Redis cache tier reachable again");
        }
    }

    /// While down, asks Redis whether it answers again (a PING), so that recovery shows
    /// without waiting for a request (`warmgate_cache_redis_up`, the log, the rest ended).
    pub async fn check(&self) {
        if self.is_up() {
            return;
        }
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.exec_async(&mut connection);
        let answered =
            tokio::time::timeout(Duration::from_millis(self.config.connect_timeout_ms), ping).await;
        if let Ok(Ok(())) = answered {
            *self.resting_until.lock() = None;
            self.succeeded();
        }
    }

    /// Looks `key` up, within the timeout.
    pub async fn get(&self, function: &str, key: &Key) -> Fetched {
        if !self.available() {
            return Fetched::Unavailable;
        }
        let redis_key = self.key(function, key);
        let mut connection = self.connection.clone();
        let started = Instant::now();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&redis_key).cmd("PTTL").arg(&redis_key);
        let query = pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut connection);
        let answer = tokio::time::timeout(self.config.timeout(), query).await;
        self.series.get.record(started.elapsed().as_secs_f64());
        match answer {
            Err(_) => {
                self.failed("get", "timeout", &"no answer within timeout_ms");
                Fetched::Unavailable
            }
            Ok(Err(error)) => {
                self.failed("get", "error", &error);
                Fetched::Unavailable
            }
            Ok(Ok((None, _))) => {
                self.succeeded();
                Fetched::Absent
            }
            Ok(Ok((Some(bytes), ttl_ms))) => {
                self.succeeded();
                match entry::decode(&bytes) {
                    // PTTL is -1 without an expiry (never set so here) or -2 once gone.
                    Ok(entry) if ttl_ms > 0 => {
                        Fetched::Found(entry, Duration::from_millis(ttl_ms as u64))
                    }
                    Ok(_) => Fetched::Absent,
                    Err(error) => {
                        self.series.error("get", "decode");
                        tracing::warn!(%error, key = %redis_key, "cached value unreadable: ignored");
                        Fetched::Absent
                    }
                }
            }
        }
    }

    /// Stores `entry` under `key` for `ttl`. Returns whether Redis took it.
    pub async fn set(&self, function: &str, key: &Key, entry: &Entry, ttl: Duration) -> bool {
        if !self.available() {
            return false;
        }
        let value = entry::encode(entry, self.config.compress_above_bytes);
        let mut connection = self.connection.clone();
        let started = Instant::now();
        let mut set = redis::cmd("SET");
        set.arg(self.key(function, key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        let command = set.exec_async(&mut connection);
        let answer = tokio::time::timeout(self.config.timeout(), command).await;
        self.series.set.record(started.elapsed().as_secs_f64());
        match answer {
            Err(_) => {
                self.failed("set", "timeout", &"no answer within timeout_ms");
                false
            }
            Ok(Err(error)) => {
                self.failed("set", "error", &error);
                false
            }
            Ok(Ok(())) => {
                self.succeeded();
                true
            }
        }
    }
}
