//! Provisioned concurrency on the platform: its control-plane calls (Put, Get, List, Delete)
//! and the configuration's status as Lambda reports it. Allocation and spillover run in the
//! platform's event loop (`super`).

use serde::Serialize;

use super::*;

/// Status of a provisioned-concurrency configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProvisionedStatus {
    InProgress,
    Ready,
    Failed,
}

impl ProvisionedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Ready => "READY",
            Self::Failed => "FAILED",
        }
    }
}

/// A provisioned-concurrency configuration as the control plane reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionedView {
    pub qualifier: String,
    pub requested: u32,
    pub allocated: u32,
    pub available: u32,
    pub status: ProvisionedStatus,
    pub status_reason: Option<String>,
    pub last_modified: Time,
}

impl Platform {
    /// PutProvisionedConcurrencyConfig: asks for `concurrency` environments on an alias or
    /// published version. The configuration is IN_PROGRESS until its allocation delay passes.
    pub fn put_provisioned(
        &mut self,
        now: Time,
        name: &str,
        qualifier: &str,
        concurrency: u32,
    ) -> Result<ProvisionedView, ControlError> {
        let now = self.advance(now);
        self.take_control_token(now)?;
        let f = self
            .function_index(name)
            .ok_or_else(|| ControlError::NotFound(self.not_found_message(name, None)))?;
        if concurrency == 0 {
            return Err(ControlError::InvalidParameter(
                "ProvisionedConcurrentExecutions must be at least 1".into(),
            ));
        }
        let function = &self.functions[f];
        if qualifier == "$LATEST" {
            return Err(ControlError::InvalidParameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                    .into(),
            ));
        }
        let version = match function.version_index(qualifier) {
            Some(v) => v,
            None => {
                let alias = function
                    .aliases
                    .iter()
                    .find(|a| a.name == qualifier)
                    .ok_or_else(|| {
                        ControlError::NotFound(self.not_found_message(name, Some(qualifier)))
                    })?;
                if !alias.routing.is_empty() {
                    return Err(ControlError::InvalidParameter(
                        "Alias with weights can not be used with Provisioned Concurrency".into(),
                    ));
                }
                function
                    .version_index(&alias.version)
                    .expect("validated alias")
            }
        };
        let others: u32 = function
            .provisioned
            .iter()
            .filter(|c| c.active && c.qualifier != qualifier)
            .map(|c| c.requested.max(c.members))
            .sum();
        match function.spec.reserved_concurrency {
            Some(reserved) if others + concurrency > reserved => {
                return Err(ControlError::InvalidParameter(format!(
                    "Requested Provisioned Concurrency should not be greater than the \
                     reservedConcurrentExecution for function: {reserved}"
                )));
            }
            None => {
                let provisioned_elsewhere: u32 = self
                    .functions
                    .iter()
                    .filter(|g| g.spec.reserved_concurrency.is_none())
                    .map(|g| g.provisioned_allocated)
                    .sum::<u32>()
                    - function.provisioned_allocated;
                if provisioned_elsewhere + others + concurrency + 100 > self.unreserved_limit {
                    return Err(ControlError::InvalidParameter(
                        "Specified ConcurrentExecutions for function decreases account's \
                         UnreservedConcurrentExecution below its minimum value of [100]."
                            .into(),
                    ));
                }
            }
            _ => {}
        }
        let delay =
            Duration::from_secs_f64(self.settings.provisioned_allocation_s.sample(&mut self.rng));
        let function = &mut self.functions[f];
        let c = match function
            .provisioned
            .iter()
            .position(|c| c.qualifier == qualifier)
        {
            Some(c) => c,
            None => {
                function.provisioned.push(ProvisionedConfig {
                    qualifier: qualifier.to_string(),
                    version,
                    active: false,
                    requested: 0,
                    status: ProvisionedStatus::InProgress,
                    status_reason: None,
                    last_modified: now,
                    generation: 0,
                    idle: Vec::new(),
                    members: 0,
                    busy: 0,
                });
                function.provisioned.len() - 1
            }
        };
        let config = &mut function.provisioned[c];
        config.active = true;
        config.version = version;
        config.requested = concurrency;
        config.status = ProvisionedStatus::InProgress;
        config.status_reason = None;
        config.last_modified = now;
        config.generation += 1;
        let generation = config.generation;
        self.schedule(
            now + delay,
            Event::ProvisionReady {
                function: f,
                config: c,
                generation,
            },
        );
        Ok(self.provisioned_view(f, c))
    }

    /// One write of the account's control-plane rate, or `Throttled` (a token bucket of one
    /// second's worth, refilled continuously).
    fn take_control_token(&mut self, now: Time) -> Result<(), ControlError> {
        let rate = self.settings.control_plane_rate_per_s;
        let elapsed = now.saturating_sub(self.control_refilled).as_secs_f64();
        self.control_tokens = (self.control_tokens + elapsed * rate).min(rate.max(1.0));
        self.control_refilled = now;
        if self.control_tokens < 1.0 {
            return Err(ControlError::Throttled);
        }
        self.control_tokens -= 1.0;
        Ok(())
    }

    /// The allocation of configuration `c` completes at `at`.
    pub(super) fn provision_ready(
        &mut self,
        at: Time,
        f: usize,
        c: usize,
        generation: u64,
        certain: bool,
    ) {
        let config = &self.functions[f].provisioned[c];
        if !config.active || config.generation != generation {
            return;
        }
        if !certain && self.rng.random::<f64>() < self.settings.provisioned_failure_rate {
            let config = &mut self.functions[f].provisioned[c];
            config.status = ProvisionedStatus::Failed;
            config.status_reason =
                Some("FUNCTION_ERROR_INIT_FAILURE: the emulated init failed".into());
            config.last_modified = at;
            return;
        }
        let (requested, members, version) = (config.requested, config.members, config.version);
        let unreserved = self.functions[f].spec.reserved_concurrency.is_none();
        for _ in members..requested {
            let id = self.new_env(at, f, version, Some(c));
            let function = &mut self.functions[f];
            function.provisioned[c].idle.push(id);
            function.provisioned[c].members += 1;
            function.provisioned_allocated += 1;
            if unreserved {
                self.unreserved_usage += 1;
            }
        }
        // Shrinking: idle members leave now, busy ones when they finish.
        while self.functions[f].provisioned[c].members > requested {
            let Some(id) = self.functions[f].provisioned[c].idle.pop() else {
                break;
            };
            self.remove_env(at, id);
        }
        let config = &mut self.functions[f].provisioned[c];
        config.status = ProvisionedStatus::Ready;
        config.last_modified = at;
    }

    /// GetProvisionedConcurrencyConfig.
    pub fn get_provisioned(
        &mut self,
        now: Time,
        name: &str,
        qualifier: &str,
    ) -> Result<ProvisionedView, ControlError> {
        self.advance(now);
        let f = self
            .function_index(name)
            .ok_or_else(|| ControlError::NotFound(self.not_found_message(name, None)))?;
        let c = self.functions[f]
            .provisioned_index(qualifier)
            .ok_or_else(|| {
                ControlError::ProvisionedConfigNotFound(format!(
                    "No Provisioned Concurrency Config found for this function: {}",
                    self.functions[f].qualified_arn(Some(qualifier))
                ))
            })?;
        Ok(self.provisioned_view(f, c))
    }

    /// ListProvisionedConcurrencyConfigs.
    pub fn list_provisioned(
        &mut self,
        now: Time,
        name: &str,
    ) -> Result<Vec<ProvisionedView>, ControlError> {
        self.advance(now);
        let f = self
            .function_index(name)
            .ok_or_else(|| ControlError::NotFound(self.not_found_message(name, None)))?;
        Ok((0..self.functions[f].provisioned.len())
            .filter(|&c| self.functions[f].provisioned[c].active)
            .map(|c| self.provisioned_view(f, c))
            .collect())
    }

    /// DeleteProvisionedConcurrencyConfig: idle members go now, busy ones when they finish.
    pub fn delete_provisioned(
        &mut self,
        now: Time,
        name: &str,
        qualifier: &str,
    ) -> Result<(), ControlError> {
        let now = self.advance(now);
        self.take_control_token(now)?;
        self.get_provisioned(now, name, qualifier)?;
        let f = self.function_index(name).expect("checked");
        let c = self.functions[f]
            .provisioned_index(qualifier)
            .expect("checked");
        let config = &mut self.functions[f].provisioned[c];
        config.active = false;
        config.requested = 0;
        config.generation += 1;
        for id in std::mem::take(&mut config.idle) {
            self.remove_env(now, id);
        }
        Ok(())
    }

    fn provisioned_view(&self, f: usize, c: usize) -> ProvisionedView {
        let config = &self.functions[f].provisioned[c];
        ProvisionedView {
            qualifier: config.qualifier.clone(),
            requested: config.requested,
            allocated: config.members,
            available: config.idle.len() as u32,
            status: config.status,
            status_reason: config.status_reason.clone(),
            last_modified: config.last_modified,
        }
    }
}
