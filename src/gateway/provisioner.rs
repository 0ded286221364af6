//! The provisioned-concurrency controller, apply mode: carries the planner's level for a
//! function's first target to Lambda, within the function's bounds and the daily budget;
//! backs off when the control plane throttles; watches the configuration until READY or
//! FAILED and tells the pool what is allocated; leaves alone a level a person set outside
//! the bounds. The level itself is the planner's (`policy::provisioning`). With replicas
//! sharing `[cache.redis]`, only the holder of the provisioning lease applies (`lease`);
//! the others advise.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::lease::Lease;
use super::{FunctionState, Gateway};
use crate::cache::redis::RedisTier;
use crate::config::{Config, ProvisioningMode};
use crate::lambda::InvokeErrorKind;
use crate::policy::cost::Prices;
use crate::telemetry;

/// Backoff after a throttled control-plane call: doubling from 1 s up to a minute, this many
/// tries (about four minutes in all).
const THROTTLE_TRIES: u32 = 8;
const THROTTLE_WAIT_MAX: Duration = Duration::from_secs(60);
/// After a FAILED allocation, the level is asked for again this much later, this many times.
const FAILED_RETRY: Duration = Duration::from_secs(60);
const FAILED_TRIES: u32 = 3;
/// How often an allocation's status is read, and for how long.
const STATUS_EVERY: Duration = Duration::from_secs(10);
const STATUS_FOR: Duration = Duration::from_secs(15 * 60);

/// What the controller has applied, per function, for the budget.
#[derive(Default)]
pub(super) struct AppliedLevels {
    levels: parking_lot::Mutex<HashMap<String, (u32, u32)>>,
}

impl AppliedLevels {
    /// The daily dollars of the levels applied, but `function`'s.
    fn others_daily(&self, function: &str) -> f64 {
        self.levels
            .lock()
            .iter()
            .filter(|(name, _)| name.as_str() != function)
            .map(|(_, &(level, memory_mb))| daily_dollars(level, memory_mb))
            .sum()
    }
}

/// How an application ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// READY (or nothing to change, or left alone).
    Done,
    /// The allocation ended FAILED: to be asked for again.
    Failed,
    /// Not set (an error other than a throttle, or throttled throughout): logged.
    NotSet,
}

/// A day of `level` provisioned environments of `memory_mb`, allocation only (x86 prices).
fn daily_dollars(level: u32, memory_mb: u32) -> f64 {
    let prices = Prices::us_east_1(crate::platform::spec::Architecture::X86_64);
    f64::from(level) * f64::from(memory_mb) / 1024.0 * 86_400.0 * prices.provisioned_gb_s
}

/// The level to apply: the planner's within the bounds, lowered to what the budget leaves.
pub(super) fn bounded_level(
    planned: u32,
    min: u32,
    max: u32,
    memory_mb: u32,
    budget_left: Option<f64>,
) -> u32 {
    let mut level = planned.clamp(min, max);
    if let Some(left) = budget_left {
        while level > min && daily_dollars(level, memory_mb) > left {
            level -= 1;
        }
    }
    level
}

/// The provisioning lease apply mode needs with Redis; none in the other modes, or without
/// Redis (one replica applies alone: said once, here).
pub(super) fn lease_for(config: &Config, redis: Option<&Arc<RedisTier>>) -> Option<Lease> {
    if config.provisioning.mode != ProvisioningMode::Apply {
        return None;
    }
    let Some(redis) = redis else {
        tracing::info!(
            "provisioning.mode = apply without [cache.redis]: this replica applies provisioned concurrency on its own; with several replicas, configure [cache.redis] so that they hold a lease and only one applies"
        );
        telemetry::provisioning_lease_held(true);
        return None;
    };
    let timeout = config
        .cache
        .redis
        .as_ref()
        .map_or(Duration::ZERO, |r| r.background_timeout());
    let lease = Lease::new(
        redis.clone(),
        Duration::from_millis(config.provisioning.lease_ttl_ms),
        timeout,
    );
    tracing::info!(id = lease.id(), "provisioning.mode = apply: this replica applies provisioned concurrency while it holds the lease in Redis");
    telemetry::provisioning_lease_held(false);
    Some(lease)
}

impl Gateway {
    /// Whether this replica sets provisioned concurrency now: apply mode, and the lease held
    /// (or no Redis, hence no other replica to agree with).
    pub(super) fn may_apply(&self) -> bool {
        self.config.provisioning.mode == ProvisioningMode::Apply
            && self.lease.as_ref().is_none_or(Lease::holds)
    }

    /// Whether this replica applies provisioned concurrency now, as
    /// `warmgate_provisioning_lease_held` says (that gauge is the process's; this is the
    /// gateway's own, for tests that run several in one process).
    pub fn provisioning_lease_held(&self) -> bool {
        self.may_apply()
    }

    /// Takes, renews and watches the lease until stopped; a change is logged once and shown
    /// in the gauge; taking it applies each function's last recommended level.
    pub(super) async fn run_lease(self: Arc<Self>) {
        let Some(lease) = &self.lease else { return };
        let mut held = false;
        loop {
            let next = lease.tick().await;
            self.lease_changed(lease, &mut held);
            tokio::time::sleep_until(next).await;
            self.lease_changed(lease, &mut held);
        }
    }

    fn lease_changed(self: &Arc<Self>, lease: &Lease, held: &mut bool) {
        let now = lease.holds();
        if now == *held {
            return;
        }
        *held = now;
        telemetry::provisioning_lease_held(now);
        if now {
            tracing::info!(
                id = lease.id(),
                "provisioning lease held: this replica applies provisioned concurrency"
            );
            for function in &self.functions {
                let recommended = *function.recommended.lock();
                if let Some(level) = recommended {
                    self.provision(function, level);
                }
            }
        } else if self.redis.as_ref().is_some_and(|r| !r.is_up()) {
            tracing::warn!(id = lease.id(), "provisioning lease lost: Redis does not answer, so it cannot be renewed; advising only until it is taken again");
        } else {
            tracing::info!(
                id = lease.id(),
                "provisioning lease lost to another replica: advising only"
            );
        }
    }

    /// Applies the planner's `planned` level to `function`'s first target, in the background;
    /// one change at a time per function (a newer plan waits for it to end).
    pub(super) fn provision(self: &Arc<Self>, function: &Arc<FunctionState>, planned: u32) {
        let bounds = function.config.provisioning;
        if bounds.max == 0 || function.provisioning.swap(true, Ordering::AcqRel) {
            return;
        }
        let gateway = self.clone();
        let function = function.clone();
        self.spawn(async move {
            for _ in 0..FAILED_TRIES {
                if gateway.apply_level(&function, planned).await != Applied::Failed {
                    break;
                }
                gateway.clock.sleep(FAILED_RETRY).await;
            }
            function.provisioning.store(false, Ordering::Release);
            // A level planned meanwhile found this change under way, and the planner says a
            // level only when it changes: applied now. (Read after the flag is down: a later
            // plan starts its own change.)
            let latest = *function.recommended.lock();
            if let Some(latest) = latest.filter(|&l| l != planned) {
                gateway.provision(&function, latest);
            }
        });
    }

    async fn apply_level(&self, function: &FunctionState, planned: u32) -> Applied {
        let config = &function.config;
        if !self.may_apply() {
            tracing::debug!(function = %config.name, planned, "provisioning lease not held: not applied");
            return Applied::NotSet;
        }
        let (name, qualifier) = (config.lambda_name(), config.targets[0].as_str());
        let bounds = config.provisioning;
        let memory_mb = function.memory_mb(qualifier);
        let budget_left = self
            .config
            .provisioning
            .daily_budget_usd
            .map(|budget| budget - self.applied.others_daily(&config.name));
        let level = bounded_level(planned, bounds.min, bounds.max, memory_mb, budget_left);
        let current = match self.control.provisioned(name, qualifier).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(function = %config.name, %error, "provisioned concurrency not read; not changed");
                return Applied::NotSet;
            }
        };
        let requested = current.as_ref().map_or(0, |c| c.requested);
        let ours = self
            .applied
            .levels
            .lock()
            .get(&config.name)
            .map(|&(l, _)| l);
        if requested != 0
            && (requested < bounds.min || requested > bounds.max)
            && ours != Some(requested)
        {
            // Set by someone else, outside what we may set: theirs to keep.
            tracing::info!(function = %config.name, target = qualifier, requested, "provisioned concurrency set outside the bounds by someone else: left alone");
            return Applied::Done;
        }
        if requested == level && current.as_ref().is_none_or(|c| c.status != "FAILED") {
            return Applied::Done;
        }
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=THROTTLE_TRIES {
            // The lease may have gone during the read or a backoff: the new holder sets it.
            if !self.may_apply() {
                tracing::info!(function = %config.name, target = qualifier, level, "provisioning lease lost before setting: left to its holder");
                return Applied::NotSet;
            }
            match self.control.set_provisioned(name, qualifier, level).await {
                Ok(()) => break,
                Err(error)
                    if matches!(error.kind, InvokeErrorKind::Throttled { .. })
                        && attempt < THROTTLE_TRIES =>
                {
                    telemetry::provisioning_throttled(&config.name);
                    self.clock.sleep(wait).await;
                    wait = (wait * 2).min(THROTTLE_WAIT_MAX);
                }
                Err(error) => {
                    tracing::warn!(function = %config.name, target = qualifier, level, %error, "provisioned concurrency not set");
                    return Applied::NotSet;
                }
            }
        }
        self.applied
            .levels
            .lock()
            .insert(config.name.clone(), (level, memory_mb));
        telemetry::provisioned_applied(&config.name, qualifier, level);
        tracing::info!(function = %config.name, target = qualifier, level, planned, "provisioned concurrency set");
        if level == 0 {
            self.set_pool_provisioned(function, qualifier, 0);
            return Applied::Done;
        }
        let mut waited = Duration::ZERO;
        while waited < STATUS_FOR {
            self.clock.sleep(STATUS_EVERY).await;
            waited += STATUS_EVERY;
            match self.control.provisioned(name, qualifier).await {
                Ok(Some(state)) if state.status == "READY" => {
                    self.set_pool_provisioned(function, qualifier, state.allocated);
                    // The planner plans daily rises ahead by the allocation times it sees
                    // (to the status check's resolution).
                    if let (Some(warmer), Some(&index)) =
                        (&self.warmer, self.by_name.get(&config.name))
                    {
                        warmer.provisioned_ready(index, waited);
                    }
                    return Applied::Done;
                }
                Ok(Some(state)) if state.status == "FAILED" => {
                    tracing::warn!(function = %config.name, target = qualifier, reason = state.reason.as_deref(), "provisioned concurrency FAILED");
                    telemetry::provisioning_failed(&config.name);
                    // Nothing is allocated; asked for again a little later.
                    self.applied.levels.lock().remove(&config.name);
                    return Applied::Failed;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(function = %config.name, %error, "provisioned status not read");
                }
            }
        }
        Applied::Done
    }

    /// Tells the pool of `qualifier` how many provisioned environments are allocated.
    fn set_pool_provisioned(&self, function: &FunctionState, qualifier: &str, allocated: u32) {
        if let Some(t) = function.target_id(qualifier) {
            function
                .orchestration
                .lock()
                .driver
                .set_provisioned(t, allocated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_keeps_to_the_bounds_and_the_budget() {
        assert_eq!(bounded_level(7, 1, 5, 1024, None), 5);
        assert_eq!(bounded_level(0, 1, 5, 1024, None), 1);
        // A 1 GB environment's allocation costs about $0.36 a day.
        let one = daily_dollars(1, 1024);
        assert!((one - 0.36).abs() < 0.001, "{one}");
        assert_eq!(bounded_level(5, 0, 10, 1024, Some(one * 3.5)), 3);
        assert_eq!(
            bounded_level(5, 2, 10, 1024, Some(0.0)),
            2,
            "never below min"
        );
    }
}
