//! What the platform counts: per-version outcomes and GB-s, and the ground-truth snapshot
//! the emulator serves and the simulator reads.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::ThrottleReason;

/// Gigabytes of `memory_mb`, as Lambda bills memory (1 GB = 1,024 MB).
pub fn gigabytes(memory_mb: u32) -> f64 {
    f64::from(memory_mb) / 1024.0
}

/// GB-s of `time` at `memory_mb`: the unit of Lambda's duration and provisioned charges. Every
/// GB-s figure (the platform's counters, the bill, the ping budget) is computed here.
pub fn gb_s(time: Duration, memory_mb: u32) -> f64 {
    time.as_secs_f64() * gigabytes(memory_mb)
}

/// Counts and resource use of one version, since the platform started.
///
/// Every admitted request is exactly one of `warm_starts`, `cold_starts`,
/// `provisioned_starts`; every refused one is a throttle. Pings are counted both here and in
/// `pings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionStats {
    /// Requests served by an idle on-demand environment.
    pub warm_starts: u64,
    /// Requests that started a new on-demand environment.
    pub cold_starts: u64,
    /// Requests served by a provisioned environment.
    pub provisioned_starts: u64,
    /// Of the cold starts, those restored from a SnapStart snapshot instead of initialised.
    pub restores: u64,
    /// Requests to a qualifier with provisioned concurrency that found none free and went to
    /// an on-demand environment (warm or cold).
    pub spillovers: u64,
    /// Refused requests, by reason.
    pub throttles: BTreeMap<ThrottleReason, u64>,
    /// Keep-alive pings among the admitted requests.
    pub pings: u64,
    /// Admitted requests that ended in a function error (timeouts included).
    pub function_errors: u64,
    pub timeouts: u64,
    pub environments_created: u64,
    pub environments_reclaimed: u64,
    /// Sum of billed durations, ms (init included for on-demand cold starts, as billed since
    /// 1 August 2025; a SnapStart restore's billed restore duration included).
    pub billed_ms: u64,
    /// Billed ms of pings alone.
    pub ping_billed_ms: u64,
    /// GB-s of on-demand init, or of SnapStart restore in its place.
    pub init_gb_s: f64,
    /// GB-s of handler time on on-demand environments.
    pub busy_gb_s: f64,
    /// GB-s of handler time on provisioned environments (billed at the provisioned duration
    /// price).
    pub provisioned_busy_gb_s: f64,
    /// GB-s of on-demand environments that were warm and idle: the provider's idle memory.
    pub idle_gb_s: f64,
    /// GB-s of allocated provisioned concurrency.
    pub provisioned_gb_s: f64,
    /// GB-s of on-demand environments from creation to reclaim. It equals init + busy + idle;
    /// it is settled separately so that the two can be checked against each other.
    pub environment_gb_s: f64,
}

impl VersionStats {
    /// Requests admitted, pings included.
    pub fn invocations(&self) -> u64 {
        self.warm_starts + self.cold_starts + self.provisioned_starts
    }

    pub fn throttled(&self) -> u64 {
        self.throttles.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn absorb(&mut self, other: &VersionStats) {
        self.warm_starts += other.warm_starts;
        self.cold_starts += other.cold_starts;
        self.provisioned_starts += other.provisioned_starts;
        self.restores += other.restores;
        self.spillovers += other.spillovers;
        for (reason, n) in &other.throttles {
            *self.throttles.entry(*reason).or_default() += n;
        }
        self.pings += other.pings;
        self.function_errors += other.function_errors;
        self.timeouts += other.timeouts;
        self.environments_created += other.environments_created;
        self.environments_reclaimed += other.environments_reclaimed;
        self.billed_ms += other.billed_ms;
        self.ping_billed_ms += other.ping_billed_ms;
        self.init_gb_s += other.init_gb_s;
        self.busy_gb_s += other.busy_gb_s;
        self.provisioned_busy_gb_s += other.provisioned_busy_gb_s;
        self.idle_gb_s += other.idle_gb_s;
        self.provisioned_gb_s += other.provisioned_gb_s;
        self.environment_gb_s += other.environment_gb_s;
    }
}

/// Environments of one version by state, at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnvironmentCounts {
    pub initializing: u32,
    pub busy: u32,
    pub idle: u32,
    /// Of the above, those that belong to a provisioned-concurrency pool.
    pub provisioned: u32,
    pub provisioned_busy: u32,
}

impl EnvironmentCounts {
    pub fn total(&self) -> u32 {
        self.initializing + self.busy + self.idle
    }
    /// Idle on-demand environments: what a request would find warm without provisioning.
    pub fn idle_on_demand(&self) -> u32 {
        self.idle - (self.provisioned - self.provisioned_busy).min(self.idle)
    }
}

/// Ground truth of one version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSnapshot {
    pub version: String,
    pub code_sha256: String,
    pub environments: EnvironmentCounts,
    pub stats: VersionStats,
}

/// Ground truth of one provisioned-concurrency configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionedSnapshot {
    pub qualifier: String,
    pub requested: u32,
    pub allocated: u32,
    pub available: u32,
    pub status: super::ProvisionedStatus,
}

/// Ground truth of one function.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSnapshot {
    pub name: String,
    pub memory_mb: u32,
    pub in_flight: u32,
    pub versions: Vec<VersionSnapshot>,
    pub provisioned: Vec<ProvisionedSnapshot>,
}

impl FunctionSnapshot {
    pub fn version(&self, version: &str) -> Option<&VersionSnapshot> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The function's stats summed over its versions.
    pub fn totals(&self) -> VersionStats {
        let mut total = VersionStats::default();
        for v in &self.versions {
            total.absorb(&v.stats);
        }
        total
    }
}

/// Ground truth of the whole platform at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Seconds since the platform's clock origin.
    pub now_s: f64,
    pub functions: Vec<FunctionSnapshot>,
    /// Requests refused before reaching a version: unknown function or qualifier.
    pub not_found: u64,
}

impl Snapshot {
    pub fn function(&self, name: &str) -> Option<&FunctionSnapshot> {
        self.functions.iter().find(|f| f.name == name)
    }
}
