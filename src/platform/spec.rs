//! What the platform runs: settings and functions, as read from the emulator's TOML file
//! (`config/emulator.toml`) or built by the simulator from a trace.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dist::Dist;

/// Lambda's memory range, in MB.
pub const MEMORY_RANGE_MB: std::ops::RangeInclusive<u32> = 128..=10_240;

/// Everything the platform model needs to start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSpec {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default, rename = "function")]
    pub functions: Vec<FunctionSpec>,
}

/// Account-wide behaviour of the platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub region: String,
    pub account_id: String,
    /// Seed of every random draw, so that a run is reproducible.
    pub seed: u64,
    /// Account concurrency quota. Source: Lambda quotas, 1,000 by default.
    pub account_concurrency: u32,
    /// New environments per function per 10 s. Source: "Lambda scaling behavior", 1,000
    /// execution environment instances every 10 seconds per function.
    pub scaling_per_10s: u32,
    /// How long an idle on-demand environment lives before it is reclaimed, in seconds. AWS
    /// publishes no figure; measurements found about 10 min after the last request (2019)
    /// and 5 to 7 min in others, so the default spans 5 to 10 minutes.
    pub idle_reclaim_s: Dist,
    /// Environments end after a few hours whatever their use (published measurements), in s.
    pub max_lifetime_s: Dist,
    /// On-demand init is capped at 10 s; beyond it Lambda re-runs init inside the invoke
    /// (Lambda execution environment lifecycle docs), so the caller waits the cap plus init.
    pub on_demand_init_cap_s: f64,
    /// Time from a PutProvisionedConcurrencyConfig to READY, in seconds. AWS states "a few
    /// minutes"; the default is 1 to 2 minutes.
    pub provisioned_allocation_s: Dist,
    /// Share of provisioned-concurrency allocations that end FAILED.
    pub provisioned_failure_rate: f64,
    /// Provisioned-concurrency writes (Put, Delete) the account may make per second; more
    /// are refused with TooManyRequestsException. Source: Lambda quotas, "control plane API
    /// request rate: 15 requests per second" (the bucket holds one second's worth; reads
    /// are not limited here).
    pub control_plane_rate_per_s: f64,
    /// How a keep-alive ping is recognised and how long it holds its environment.
    pub ping: PingSpec,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            seed: 0,
            account_concurrency: 1_000,
            scaling_per_10s: 1_000,
            idle_reclaim_s: Dist::Uniform {
                min: 300.0,
                max: 600.0,
            },
            max_lifetime_s: Dist::Uniform {
                min: 2.0 * 3600.0,
                max: 4.0 * 3600.0,
            },
            on_demand_init_cap_s: 10.0,
            provisioned_allocation_s: Dist::Uniform {
                min: 60.0,
                max: 120.0,
            },
            provisioned_failure_rate: 0.0,
            control_plane_rate_per_s: 15.0,
            ping: PingSpec::default(),
        }
    }
}

/// A keep-alive ping is an invocation whose client context carries `client_context_key` in
/// its `custom` map, or whose payload is exactly `payload`. The function's ping handler
/// returns at once (after `hold_ms`), unless the client context's `custom` map asks it to
/// hold its environment for [`PING_HOLD_KEY`] ms: a round of concurrent pings asks, so that
/// each reaches a distinct environment; a lone ping need not pay for the hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PingSpec {
    pub client_context_key: String,
    pub payload: String,
    /// How long a ping runs when it asks for no hold: a handler that returns at once.
    pub hold_ms: f64,
    /// Whether the handler holds as a ping asks; `false` emulates a handler written without
    /// the convention (every ping runs `hold_ms`), whose rounds the gateway finds falling
    /// short.
    pub honour_hold: bool,
}

/// The client-context key (in `custom`) by which a ping asks the handler to hold its
/// environment for that many ms, as a number or a string.
pub const PING_HOLD_KEY: &str = "warmgate-hold-ms";

impl Default for PingSpec {
    fn default() -> Self {
        Self {
            client_context_key: "warmgate-ping".into(),
            payload: r#"{"warmgate":"ping"}"#.into(),
            hold_ms: 1.0,
            honour_hold: true,
        }
    }
}

/// CPU architecture; it sets the price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[default]
    X86_64,
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// One Lambda function and how its handler behaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub name: String,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Lambda's default timeout is 3 s.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    #[serde(default = "default_runtime")]
    pub runtime: String,
    #[serde(default)]
    pub architecture: Architecture,
    /// The code of `$LATEST`; its SHA-256 is the CodeSha256 the API reports. Two versions run
    /// the same code exactly when their `code` is equal.
    #[serde(default = "default_code")]
    pub code: String,
    /// Init duration of an on-demand cold start, in ms.
    #[serde(default = "default_init")]
    pub init_ms: Dist,
    /// Lambda SnapStart, applied on published versions (ApplyOn = PublishedVersions): a new
    /// on-demand environment of a published version is restored from the snapshot taken at
    /// publish instead of running init. `$LATEST` and provisioned environments still init.
    /// Source: "Improving startup performance with Lambda SnapStart" (published versions and
    /// aliases only, not `$LATEST`).
    #[serde(default)]
    pub snap_start: bool,
    /// Restore duration of a SnapStart cold start, in ms; read only when `snap_start` is on.
    #[serde(default = "default_restore")]
    pub restore_ms: Dist,
    /// Handler duration, in ms.
    #[serde(default = "default_duration")]
    pub duration_ms: Dist,
    /// Share of invocations that end in an unhandled function error.
    #[serde(default)]
    pub error_rate: f64,
    /// Peak memory the handler reports using, in MB; half the memory size if unset.
    #[serde(default)]
    pub max_memory_used_mb: Option<u32>,
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// Overrides the account-wide ping payload for this function.
    #[serde(default)]
    pub ping_payload: Option<String>,
    /// Published versions 1, 2, ... in order.
    #[serde(default, rename = "version")]
    pub versions: Vec<VersionSpec>,
    #[serde(default, rename = "alias")]
    pub aliases: Vec<AliasSpec>,
    /// Provisioned concurrency that is READY from the start.
    #[serde(default)]
    pub provisioned: Vec<ProvisionedSpec>,
}

fn default_memory() -> u32 {
    128
}
fn default_timeout() -> f64 {
    3.0
}
fn default_runtime() -> String {
    "python3.12".into()
}
fn default_code() -> String {
    "v1".into()
}
fn default_init() -> Dist {
    Dist::LogNormal {
        median: 400.0,
        spread: 1.3,
    }
}
/// A restore skips the function's own init; sub-second restores are what AWS advertises.
fn default_restore() -> Dist {
    Dist::LogNormal {
        median: 200.0,
        spread: 1.3,
    }
}
fn default_duration() -> Dist {
    Dist::LogNormal {
        median: 50.0,
        spread: 1.3,
    }
}

impl FunctionSpec {
    /// A function with defaults for everything but its name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            memory_mb: default_memory(),
            timeout_s: default_timeout(),
            runtime: default_runtime(),
            architecture: Architecture::default(),
            code: default_code(),
            init_ms: default_init(),
            snap_start: false,
            restore_ms: default_restore(),
            duration_ms: default_duration(),
            error_rate: 0.0,
            max_memory_used_mb: None,
            reserved_concurrency: None,
            ping_payload: None,
            versions: Vec::new(),
            aliases: Vec::new(),
            provisioned: Vec::new(),
        }
    }

    /// Whether a new on-demand environment of `version` (`$LATEST` or a version number) is
    /// restored from a SnapStart snapshot rather than initialised: SnapStart is on and the
    /// version is published. One rule for the platform's invocations and the API's
    /// `SnapStart.OptimizationStatus`.
    pub fn restores(&self, version: &str) -> bool {
        self.snap_start && version != "$LATEST"
    }
}

/// A published version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// The version's code; the function's `code` if unset.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// An alias, optionally routing a weight of its traffic to a second version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    pub name: String,
    /// A published version number, or `$LATEST`.
    pub version: String,
    /// Additional version and the share of invocations it receives (0..1).
    #[serde(default)]
    pub routing: BTreeMap<String, f64>,
    #[serde(default)]
    pub description: String,
}

/// Provisioned concurrency configured at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionedSpec {
    pub qualifier: String,
    pub concurrency: u32,
}

/// A problem with a specification, naming where it is.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl PlatformSpec {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            SpecError::Parse { message, .. } => SpecError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let spec: PlatformSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            path: "<toml>".into(),
            message: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what serde cannot: ranges, references between versions and aliases, limits.
    pub fn validate(&self) -> Result<(), SpecError> {
        let invalid = |key: String, message: String| Err(SpecError::Invalid { key, message });
        let s = &self.settings;
        for (key, dist) in [
            ("settings.idle_reclaim_s", &s.idle_reclaim_s),
            ("settings.max_lifetime_s", &s.max_lifetime_s),
            (
                "settings.provisioned_allocation_s",
                &s.provisioned_allocation_s,
            ),
        ] {
            if let Err(m) = dist.validate() {
                return invalid(key.into(), m);
            }
        }
        if s.account_concurrency == 0 {
            return invalid(
                "settings.account_concurrency".into(),
                "must be at least 1".into(),
            );
        }
        if s.scaling_per_10s == 0 {
            return invalid(
                "settings.scaling_per_10s".into(),
                "must be at least 1".into(),
            );
        }
        if !(s.control_plane_rate_per_s.is_finite() && s.control_plane_rate_per_s > 0.0) {
            return invalid(
                "settings.control_plane_rate_per_s".into(),
                "must be a positive number".into(),
            );
        }
        if !(0.0..=1.0).contains(&s.provisioned_failure_rate) {
            return invalid(
                "settings.provisioned_failure_rate".into(),
                "must be between 0 and 1".into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        let mut reserved_total = 0u64;
        for (i, f) in self.functions.iter().enumerate() {
            let key = |field: &str| format!("function[{i}] ({}).{field}", f.name);
            if !valid_function_name(&f.name) {
                return invalid(
                    key("name"),
                    "must be 1 to 64 letters, digits, hyphens or underscores".into(),
                );
            }
            if !names.insert(f.name.as_str()) {
                return invalid(key("name"), "is declared twice".into());
            }
            if !MEMORY_RANGE_MB.contains(&f.memory_mb) {
                return invalid(
                    key("memory_mb"),
                    format!("must be within 128..=10240, got {}", f.memory_mb),
                );
            }
            if !(f.timeout_s > 0.0 && f.timeout_s <= 900.0) {
                return invalid(key("timeout_s"), "must be within (0, 900] seconds".into());
            }
            for (field, dist) in [
                ("init_ms", &f.init_ms),
                ("restore_ms", &f.restore_ms),
                ("duration_ms", &f.duration_ms),
            ] {
                if let Err(m) = dist.validate() {
                    return invalid(key(field), m);
                }
            }
            if !(0.0..=1.0).contains(&f.error_rate) {
                return invalid(key("error_rate"), "must be between 0 and 1".into());
            }
            reserved_total += u64::from(f.reserved_concurrency.unwrap_or(0));
            let version_exists = |v: &str| {
                v == "$LATEST"
                    || v.parse::<usize>()
                        .is_ok_and(|n| n >= 1 && n <= f.versions.len())
            };
            for (j, a) in f.aliases.iter().enumerate() {
                let akey = |field: &str| key(&format!("alias[{j}] ({}).{field}", a.name));
                if a.name.is_empty() || a.name.parse::<u64>().is_ok() || a.name == "$LATEST" {
                    return invalid(akey("name"), "must be a name, not a version".into());
                }
                if !version_exists(&a.version) {
                    return invalid(akey("version"), format!("no version {:?}", a.version));
                }
                let mut weight = 0.0;
                for (v, w) in &a.routing {
                    if !version_exists(v) || v == "$LATEST" {
                        return invalid(akey("routing"), format!("no published version {v:?}"));
                    }
                    weight += w;
                }
                if a.routing.len() > 1 || !(0.0..1.0).contains(&weight) {
                    return invalid(
                        akey("routing"),
                        "takes one additional version with a weight in [0, 1)".into(),
                    );
                }
            }
            for (j, p) in f.provisioned.iter().enumerate() {
                let is_alias = f.aliases.iter().any(|a| a.name == p.qualifier);
                if p.qualifier == "$LATEST" || !(is_alias || version_exists(&p.qualifier)) {
                    return invalid(
                        key(&format!("provisioned[{j}].qualifier")),
                        format!("{:?} is not an alias or published version", p.qualifier),
                    );
                }
            }
        }
        if reserved_total + 100 > u64::from(s.account_concurrency) && reserved_total > 0 {
            // Lambda keeps at least 100 of the account's concurrency unreserved.
            return invalid(
                "function.reserved_concurrency".into(),
                format!(
                    "reservations total {reserved_total}, which leaves less than 100 of the \
                     account's {} unreserved",
                    s.account_concurrency
                ),
            );
        }
        Ok(())
    }
}

/// Lambda function names: letters, digits, hyphens and underscores, 1 to 64 characters.
pub fn valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_takes_defaults() {
        let spec = PlatformSpec::from_toml("[[function]]\nname = \"f\"\n").unwrap();
        assert_eq!(spec.settings.account_concurrency, 1000);
        assert_eq!(spec.functions[0].memory_mb, 128);
        assert!(!spec.functions[0].snap_start);
    }

    #[test]
    fn snap_start_applies_to_published_versions_only() {
        let text = "[[function]]\nname = \"f\"\nsnap_start = true\nrestore_ms = 150\n";
        let f = &PlatformSpec::from_toml(text).unwrap().functions[0];
        assert_eq!(f.restore_ms, Dist::Fixed(150.0));
        assert!(f.restores("1") && !f.restores("$LATEST"));
        assert!(!FunctionSpec::named("g").restores("1"), "off by default");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[[function]]\nname = \"f\"\nmemory_mb = 64\n", "memory_mb"),
            (
                "[[function]]\nname = \"f\"\n[[function.alias]]\nname = \"live\"\nversion = \"3\"\n",
                "alias[0] (live).version",
            ),
            ("[settings]\nidle_reclaim_s = { min = 5, max = 1 }\n", "settings.idle_reclaim_s"),
            ("[[function]]\nname = \"f\"\n[[function]]\nname = \"f\"\n", "declared twice"),
            ("[[function]]\nname = \"f\"\nbogus = 1\n", "bogus"),
            (
                "[[function]]\nname = \"f\"\nsnap_start = true\nrestore_ms = -1\n",
                "restore_ms",
            ),
        ];
        for (text, needle) in cases {
            let err = PlatformSpec::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
    }
}
