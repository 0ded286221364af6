//! The gateway's configuration: a TOML file plus `WARMGATE_*` environment overrides.
//!
//! Fargate passes settings as environment variables, so any key can be overridden:
//! `WARMGATE_<SECTION>__<KEY>` sets `[section] key` (`WARMGATE_GATEWAY__LISTEN=0.0.0.0:8080`,
//! `WARMGATE_BACKEND__KIND=aws`). Values are read as TOML scalars (numbers, booleans) and
//! otherwise as strings. Every error names the key (or variable) and the problem.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cache::{CacheSection, FunctionCacheConfig};
use crate::platform::spec::valid_function_name;
use crate::policy::breaker::{BreakerPolicy, RetryBudgetPolicy};
pub use crate::policy::budget::PingBudget;
use crate::policy::pool::ProbePolicy;
use crate::policy::router::WaitPolicy;

mod validate;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "WARMGATE_";

/// The longest round hold a configuration may ask for: each ping of a round is billed for
/// its hold, and a hold of seconds keeps environments from real traffic.
pub const MAX_ROUND_HOLD_MS: u64 = 5_000;

/// Lambda's synchronous payload limit, the default per-function limit.
pub use crate::lambda::wire::SYNC_PAYLOAD_LIMIT as LAMBDA_PAYLOAD_LIMIT;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gateway: GatewaySection,
    pub backend: Backend,
    #[serde(default)]
    pub warmer: WarmerSection,
    #[serde(default)]
    pub provisioning: ProvisioningSection,
    #[serde(default)]
    pub access: AccessSection,
    /// The cache's shared tier (Redis); what each function caches is in its own section.
    #[serde(default)]
    pub cache: CacheSection,
    /// The record of the calls made, for `warmgate advise`.
    #[serde(default)]
    pub history: HistorySection,
    /// The allow-list: only these functions can be invoked (ARCHITECTURE.md invariant 5).
    #[serde(rename = "function")]
    pub functions: Vec<FunctionConfig>,
}

/// Listeners and limits of the HTTP front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    pub listen: SocketAddr,
    /// The admin listener, away from client traffic: `/metrics` and `/v1/pools`.
    pub metrics_listen: SocketAddr,
    /// Requests in flight across all functions beyond which new ones are shed with 503.
    pub max_in_flight: usize,
    /// Client connections served at once; past it a connection is answered 503 and closed.
    pub max_connections: usize,
    /// A request's head must arrive within this of its first byte (or of the connection's
    /// accept), as nginx's `client_header_timeout`: slow clients are cut off.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this of its head (else 408).
    pub body_read_timeout_ms: u64,
    /// A kept-alive connection without a request is closed after this. Keep it longer than
    /// the load balancer's own idle timeout (60 s on an ALB), or the ALB may reuse a
    /// connection as it closes and answer 502.
    pub idle_timeout_ms: u64,
    /// On shutdown, how long in-flight requests get to finish.
    pub shutdown_grace_ms: u64,
    /// How often targets are re-resolved and re-checked for equal code.
    pub refresh_interval_s: u64,
}

impl GatewaySection {
    pub fn connection_limits(&self) -> crate::gateway::ConnectionLimits {
        crate::gateway::ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            metrics_listen: "127.0.0.1:9090".parse().expect("valid address"),
            max_in_flight: 1024,
            max_connections: 4096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_ms: 75_000,
            shutdown_grace_ms: 30_000,
            refresh_interval_s: 300,
        }
    }
}

/// The keep-alive warmer: which policy plans the pings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmerSection {
    pub enabled: bool,
    /// A policy name: `warmer` (predictive), `none`, `fixed-<N>min`, `fixed-<N>min-x<C>`,
    /// `hybrid-histogram`.
    pub policy: String,
    /// Each round of pings starts after a random delay up to this, so that replicas and
    /// functions do not ping in lockstep. Below `refresh_margin_ms`.
    pub jitter_ms: u64,
    /// Pings in flight at once, across functions: a round waits for room rather than open
    /// a connection per function (a thousand functions pinged at start would otherwise hold
    /// a thousand connections and their buffers). A round larger than this still goes whole.
    pub max_pings_in_flight: u32,
    /// How long each ping of a round of several asks its handler to hold its environment, so
    /// that the round's pings overlap and reach distinct environments: the least base hold, to
    /// which each ping of the round adds `policy::ROUND_HOLD_PER_PING` (0.25 ms). When a
    /// round's answers name an environment twice (its pings arrived further apart than the
    /// hold), the function's hold doubles, up to `max_round_hold_ms`, and comes back down
    /// after a run of rounds that reached their environments (`policy::round`).
    pub round_hold_ms: u64,
    /// The longest hold a round may ask for; equal to `round_hold_ms`, the hold never changes.
    pub max_round_hold_ms: u64,
    /// How long the predictive warmer assumes Lambda keeps an idle environment: it refreshes
    /// what it keeps 2 s before. AWS publishes no figure (measurements saw 5 to 7 minutes,
    /// about 10 in 2019); where the learnt reclaim curve (`GET /v1/pools`, `idle_reclaim_s`)
    /// shows environments surviving longer, a longer lifetime saves pings in proportion.
    pub idle_lifetime_s: u64,
    /// How long before `idle_lifetime_s` of idle the predictive warmer refreshes an
    /// environment: the delay a round may meet between its plan and Lambda (the jitter, the
    /// send). Each second more costs every refresh about a 300th more pings (at 5 minutes); a
    /// round later than the margin finds the environment reclaimed.
    pub refresh_margin_ms: u64,
    /// Whether the predictive warmer pre-warms a rise seen two days running at the same
    /// minute (a timer's daily fan-out) there the next day. `false` where daily jobs move
    /// from day to day: the rounds sent for a rise that does not come start environments for
    /// nobody.
    pub daily_rises: bool,
    /// Every function carries warmgate's Lambda extension, which reports each environment's
    /// end (`POST /v1/functions/{name}/environments/ended`): the predictive warmer replaces a
    /// kept environment when it ends rather than rotating it before (a rotation spends an
    /// init every few hours). Without it, a function's first report tells the same; set it
    /// only where the extension is installed, or the ends of kept environments meet calls.
    pub ends_reported: bool,
    /// With `[cache.redis]`: each function's keep-alive rounds are sent by one replica, its
    /// keeper, agreed through Redis (`<key_prefix>:warmer:replicas`), rather than by every
    /// replica for the calls it serves. Probes and the burst pings of a wait stay each
    /// replica's own. `false`: every replica keeps every function, as it would alone.
    pub share_keep_alive: bool,
    /// How long a replica counts as alive after it last said so (it says so every third of
    /// this): how long the functions of a replica that stopped without leaving go unkept.
    pub replica_ttl_ms: u64,
}

impl Default for WarmerSection {
    fn default() -> Self {
        Self {
            enabled: false,
            policy: "fixed-5min".into(),
            jitter_ms: 250,
            max_pings_in_flight: 64,
            round_hold_ms: crate::policy::ROUND_HOLD.as_millis() as u64,
            max_round_hold_ms: 400,
            idle_lifetime_s: 300,
            refresh_margin_ms: crate::policy::warmer::WarmerConfig::default()
                .refresh_margin
                .as_millis() as u64,
            daily_rises: true,
            ends_reported: false,
            share_keep_alive: true,
            replica_ttl_ms: 6_000,
        }
    }
}

/// warmgate's history: one CSV record per invocation it made for a client, with its REPORT
/// line's figures (`sim::trace::HISTORY_COLUMNS`), appended to `path`. `warmgate advise`
/// and `warmgate simulate --trace` read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// The file, named `warmgate-history*.csv` (relative to the working directory, as a log
    /// file is); none: no history is kept.
    pub path: Option<PathBuf>,
    /// Past this size the file is left as it is and further records are dropped (counted in
    /// `warmgate_history_records_dropped_total`): a history is for a representative day or
    /// week, not for ever. About 100 bytes a record.
    pub max_bytes: u64,
}

impl Default for HistorySection {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: 1 << 30,
        }
    }
}

/// Provisioned concurrency: what the planner (`policy::provisioning`) would set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisioningSection {
    pub mode: ProvisioningMode,
    /// Apply mode: the most the applied levels may cost a day together, in dollars of
    /// allocation (x86 prices); a level that would pass it is lowered to what fits.
    pub daily_budget_usd: Option<f64>,
    /// Apply mode with `[cache.redis]`: how long the lease among replicas lasts unrenewed
    /// (`gateway::lease`). A holder that cannot reach Redis stops applying within it; a
    /// replica that takes the lease applies a TTL later.
    pub lease_ttl_ms: u64,
}

impl Default for ProvisioningSection {
    fn default() -> Self {
        Self {
            mode: ProvisioningMode::Off,
            daily_budget_usd: None,
            lease_ttl_ms: 30_000,
        }
    }
}

/// What the gateway does with the planner's levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisioningMode {
    /// No planner.
    #[default]
    Off,
    /// The planner runs on the gateway's traffic; each function's level is reported
    /// (`warmgate_provisioned_recommended_environments` and a log line), never applied.
    Advise,
    /// Reported and applied to each function's first target, within its
    /// `provisioning = { min, max }` and the daily budget.
    Apply,
}

/// The levels the gateway may apply to a function (apply mode); `max = 0` leaves it alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisioningBounds {
    pub min: u32,
    pub max: u32,
}

/// Who may invoke which function. Closed by default, except with the embedded emulator (a
/// developer's machine): a gateway in front of paid inference must not serve anyone who
/// reaches its port.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSection {
    /// Serve callers without credentials. Unset: true with the embedded backend, else false.
    pub open: Option<bool>,
    /// API keys, by the SHA-256 of the key (`warmgate keygen` makes one). On Fargate, pass them
    /// as a secret in `WARMGATE_ACCESS__KEYS`, a TOML array of inline tables.
    pub keys: Vec<ApiKeyConfig>,
    /// JSON Web Tokens, checked against a key set.
    pub jwt: Option<JwtConfig>,
}

/// One API key: who holds it, and what it may call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key: in logs and metrics, never the key itself.
    pub id: String,
    /// The SHA-256 of the key, in hex. Keys are high-entropy, so a fast hash suffices.
    pub sha256: String,
    /// The functions it may invoke, by public name; `"*"` for every one.
    pub functions: Vec<String>,
    /// Requests per second allowed, with `burst` at once; unset: no limit of its own.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    #[serde(default)]
    pub burst: Option<u32>,
}

/// JSON Web Tokens: who may sign them, for whom, and what each subject may call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry.
    pub audience: String,
    /// Signature algorithms accepted (`RS256`, `ES256`, `EdDSA`, ...). Never `none`.
    pub algorithms: Vec<String>,
    /// The key set, a JWKS document: a file (relative to this configuration) or a URL.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the key set is read again.
    #[serde(default = "default_jwks_refresh_s")]
    pub jwks_refresh_s: u64,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// Each subject (`sub`) allowed, and its functions.
    pub subjects: Vec<JwtSubject>,
}

fn default_jwks_refresh_s() -> u64 {
    300
}
fn default_leeway_s() -> u64 {
    30
}

/// A token subject and what it may call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSubject {
    pub subject: String,
    /// Public function names; `"*"` for every one.
    pub functions: Vec<String>,
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl AccessSection {
    /// Whether callers are served without credentials.
    pub fn is_open(&self, backend: &Backend) -> bool {
        self.open
            .unwrap_or(matches!(backend, Backend::Embedded { .. }))
    }
}

/// Where Lambda is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum Backend {
    /// AWS itself: the default credentials chain (the Fargate task role) and region chain.
    Aws {
        #[serde(default)]
        region: Option<String>,
    },
    /// A Lambda-compatible endpoint (a separately run emulator), with static test
    /// credentials.
    Endpoint {
        url: String,
        #[serde(default = "default_region")]
        region: String,
        /// How much faster than real time the endpoint's clock runs: an emulator started with
        /// `--time-scale N` for a replay. The gateway's clock runs at the same speed, so its
        /// pool estimates and pings agree with the emulator's time. 1 for anything real.
        #[serde(default = "one")]
        time_scale: f64,
    },
    /// The emulator, started in-process from its own file.
    Embedded {
        /// The emulator's TOML file, relative to this configuration file.
        config: PathBuf,
        /// How much faster than real time the emulated clock runs.
        #[serde(default = "one")]
        time_scale: f64,
    },
}

impl Backend {
    /// How much faster than real time the backend's clock runs, and so the gateway's.
    pub fn time_scale(&self) -> f64 {
        match self {
            Backend::Aws { .. } => 1.0,
            Backend::Endpoint { time_scale, .. } | Backend::Embedded { time_scale, .. } => {
                *time_scale
            }
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn one() -> f64 {
    1.0
}

/// One function clients may invoke.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The name clients use.
    pub name: String,
    /// The Lambda function's name; `name` if unset.
    #[serde(default)]
    pub lambda_name: Option<String>,
    /// Aliases or versions declared equivalent (checked: equal CodeSha256), in order of
    /// preference. The first is the primary: the others must run its code.
    #[serde(default = "default_targets")]
    pub targets: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_payload_limit")]
    pub max_payload_bytes: usize,
    /// Safe to run twice: only then may an invocation that may have run be retried
    /// (ARCHITECTURE.md invariant 4).
    #[serde(default)]
    pub idempotent: bool,
    /// When every warm environment is busy: wait briefly for one rather than start cold.
    #[serde(default)]
    pub wait: WaitPolicy,
    /// The payload of keep-alive pings; the function should answer it at once.
    #[serde(default = "default_ping_payload")]
    pub ping_payload: String,
    #[serde(default)]
    pub ping_budget: PingBudget,
    /// Pings that teach the warm-pool estimate how long idle environments survive, where
    /// what it saw cannot place the reclaim (on by default; see `ProbePolicy`).
    #[serde(default)]
    pub probe: ProbePolicy,
    /// A breaker per target: skipped after consecutive failures, tried again later.
    #[serde(default)]
    pub breaker: BreakerPolicy,
    /// How much failover may add to the function's load.
    #[serde(default)]
    pub retry_budget: RetryBudgetPolicy,
    /// Cache the function's answers: only for deterministic inference (off without it).
    #[serde(default)]
    pub cache: Option<FunctionCacheConfig>,
    /// Identical requests in flight at once share one invocation and its answer. On with a
    /// cache, off without (a function whose answers differ call to call must not share them).
    #[serde(default)]
    pub coalesce: Option<bool>,
    /// Provisioned concurrency the gateway may set on the first target (apply mode).
    #[serde(default)]
    pub provisioning: ProvisioningBounds,
}

fn default_ping_payload() -> String {
    r#"{"warmgate":"ping"}"#.into()
}

fn default_targets() -> Vec<String> {
    vec!["$LATEST".into()]
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_payload_limit() -> usize {
    LAMBDA_PAYLOAD_LIMIT
}

impl FunctionConfig {
    pub fn lambda_name(&self) -> &str {
        self.lambda_name.as_deref().unwrap_or(&self.name)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Whether identical requests in flight share one invocation.
    pub fn coalesces(&self) -> bool {
        self.coalesce.unwrap_or(self.cache.is_some())
    }
}

/// A configuration problem, naming the key and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Syntax { path: String, message: String },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    })
}

impl Config {
    /// Reads `path`, applies the process's `WARMGATE_*` variables, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text, std::env::vars(), &path.display().to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Backend::Embedded { config: file, .. } = &mut config.backend {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        if let Some(file) = config
            .cache
            .redis
            .as_mut()
            .and_then(|redis| redis.ca_file.as_mut())
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
            if let Err(error) = std::fs::metadata(&*file) {
                return invalid(
                    "cache.redis.ca_file",
                    format!("cannot read {}: {error}", file.display()),
                );
            }
        }
        if let Some(file) = config
            .access
            .jwt
            .as_mut()
            .and_then(|jwt| jwt.jwks_file.as_mut())
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        Ok(config)
    }

    /// Parses TOML text with the given environment, and validates.
    pub fn parse(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        for (name, value) in env {
            apply_override(&mut table, &name, &value)?;
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    message: e.into_inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// A function by its public name.
    pub fn function(&self, name: &str) -> Option<&FunctionConfig> {
        self.functions.iter().find(|f| f.name == name)
    }
}

/// Applies one `WARMGATE_SECTION__KEY=value` variable; other variables are ignored.
fn apply_override(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let Some(path) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
    if keys.len() < 2 || keys.iter().any(String::is_empty) {
        // Only `[section] key` pairs (or `[section.sub] key`) can be overridden; other
        // WARMGATE_ variables belong to the CLI (e.g. WARMGATE_CONFIG).
        return Ok(());
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, sections) = keys.split_last().expect("two keys or more");
    let mut section = table;
    for (depth, key) in sections.iter().enumerate() {
        let entry = section
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        section = match entry {
            toml::Value::Table(table) => table,
            _ => {
                return invalid(
                    name,
                    format!("`{}` is not a section", keys[..=depth].join(".")),
                )
            }
        };
    }
    section.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests;
