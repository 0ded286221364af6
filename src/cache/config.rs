//! What the cache is configured with: the shared Redis tier (`[cache]`) and, per function,
//! whether its answers are cached (`[function.cache]`) and whether identical requests in
//! flight share one invocation (`[function] coalesce`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The gateway-wide part: where the shared tier lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// The shared tier; without it each replica caches on its own.
    pub redis: Option<RedisConfig>,
}

/// The Redis (ElastiCache) tier shared by every replica.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://` for TLS.
    pub url: String,
    /// The AUTH password (ElastiCache's AUTH token), kept out of the URL so that it can come
    /// from a secret: `WARMGATE_CACHE__REDIS__PASSWORD`.
    #[serde(default)]
    pub password: Option<String>,
    /// A PEM file of the CA to trust for `rediss://` instead of the public roots (a private
    /// CA); relative to the configuration file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A lookup or a store slower than this counts as failed and the request goes on
    /// without Redis: the shared tier must never cost a request more than a few
    /// milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Each (re)connection attempt's bound.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// After a failure Redis is left alone this long before it is tried again, so an
    /// outage does not add `timeout_ms` to every request.
    #[serde(default = "default_retry_after_ms")]
    pub retry_after_ms: u64,
    /// Keys are `<prefix>:cache:v1:<function>:<digest>`, the provisioning lease
    /// `<prefix>:provisioning:lease`, the warmer's daily rises `<prefix>:warmer:rises:<day>`.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Values larger than this are compressed (LZ4) when that makes them smaller.
    #[serde(default = "default_compress_above")]
    pub compress_above_bytes: usize,
}

fn default_timeout_ms() -> u64 {
    5
}
fn default_connect_timeout_ms() -> u64 {
    250
}
fn default_retry_after_ms() -> u64 {
    1_000
}
fn default_prefix() -> String {
    "warmgate".into()
}
fn default_compress_above() -> usize {
    1_024
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The bound of a command no request waits on (the replicas' beats and shared calls, the
    /// provisioning lease): how long Redis may take to answer at all, `connect_timeout_ms`.
    /// A request's few milliseconds would take a busy moment for an outage, and a failure
    /// rests the whole tier (`warmgate_cache_redis_up` at 0, the cache skipped).
    pub fn background_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The client for `url`, with the password if one is set apart.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(self.url.as_str())?;
        if let Some(password) = &self.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        match &self.ca_file {
            None => redis::Client::open(info),
            Some(file) => {
                let root_cert = std::fs::read(file).map_err(|error| {
                    redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "cannot read ca_file",
                        format!("{}: {error}", file.display()),
                    ))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(info, certificates)
            }
        }
    }
}

/// A function's cache. Only for deterministic inference: an answer is served again to
/// anyone who sends the same payload to the same code within `ttl_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCacheConfig {
    /// How long an answer is served again.
    #[serde(default = "default_ttl_s")]
    pub ttl_s: u64,
    /// Answers larger than this are not stored.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: usize,
    /// The local tier's bound for this function, in bytes of keys and answers.
    #[serde(default = "default_local_max_bytes")]
    pub local_max_bytes: u64,
    /// JSON pointers (RFC 6901) to members left out of the key: a request id, a timestamp.
    #[serde(default)]
    pub ignore: Vec<String>,
}

fn default_ttl_s() -> u64 {
    3_600
}
fn default_max_entry_bytes() -> usize {
    256 * 1024
}
fn default_local_max_bytes() -> u64 {
    32 * 1024 * 1024
}

impl FunctionCacheConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_s)
    }

    /// The first problem, as (key suffix, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.ttl_s == 0 {
            return Some(("ttl_s", "must be at least 1".into()));
        }
        if self.max_entry_bytes == 0 {
            return Some(("max_entry_bytes", "must be at least 1".into()));
        }
        if self.local_max_bytes < self.max_entry_bytes as u64 {
            return Some((
                "local_max_bytes",
                "must be at least max_entry_bytes (else nothing fits)".into(),
            ));
        }
        for pointer in &self.ignore {
            if !pointer.starts_with('/') {
                return Some((
                    "ignore",
                    format!("{pointer:?} is not a JSON pointer to a member (\"/request_id\")"),
                ));
            }
        }
        None
    }
}

impl RedisConfig {
    /// The first problem, as (key suffix, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let url = redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
            .and_then(redis::Client::open);
        if let Err(error) = url {
            return Some(("url", format!("{:?} is not a Redis URL: {error}", self.url)));
        }
        if self.timeout_ms == 0 {
            return Some(("timeout_ms", "must be at least 1".into()));
        }
        if self.connect_timeout_ms == 0 {
            return Some(("connect_timeout_ms", "must be at least 1".into()));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return Some(("key_prefix", "must be a non-empty word".into()));
        }
        None
    }
}
