//! The ground truth: environments by state, the counters, and the GB-s of idle and
//! provisioned environments settled up to a moment (`Snapshot`, in `stats`).

use super::*;

impl Platform {
    /// Ground truth at `now`: environments by state and the counters, with the GB-s of idle
    /// and provisioned environments settled up to `now`.
    pub fn snapshot(&mut self, now: Time) -> Snapshot {
        let now = self.advance(now);
        let mut functions: Vec<_> = self
            .functions
            .iter()
            .map(|f| stats::FunctionSnapshot {
                name: f.spec.name.clone(),
                memory_mb: f.spec.memory_mb,
                in_flight: f.in_flight_on_demand
                    + f.provisioned.iter().map(|c| c.busy).sum::<u32>(),
                versions: f
                    .versions
                    .iter()
                    .map(|v| stats::VersionSnapshot {
                        version: v.name.clone(),
                        code_sha256: v.code_sha256.clone(),
                        environments: EnvironmentCounts::default(),
                        stats: v.stats.clone(),
                    })
                    .collect(),
                provisioned: (0..f.provisioned.len())
                    .filter(|&c| f.provisioned[c].active)
                    .map(|c| {
                        let config = &f.provisioned[c];
                        stats::ProvisionedSnapshot {
                            qualifier: config.qualifier.clone(),
                            requested: config.requested,
                            allocated: config.members,
                            available: config.idle.len() as u32,
                            status: config.status,
                        }
                    })
                    .collect(),
            })
            .collect();
        for env in self.envs.values() {
            let gb = stats::gigabytes(self.functions[env.function].spec.memory_mb);
            let version = &mut functions[env.function].versions[env.version];
            let counts = &mut version.environments;
            if env.busy && now < env.ready_at {
                counts.initializing += 1;
            } else if env.busy {
                counts.busy += 1;
            } else {
                counts.idle += 1;
            }
            if env.pool.is_some() {
                counts.provisioned += 1;
                counts.provisioned_busy += u32::from(env.busy);
                version.stats.provisioned_gb_s += (now - env.pooled_since).as_secs_f64() * gb;
            } else {
                // Busy time is committed when a request is admitted, so a busy environment's
                // life so far runs to the end of its current invocation.
                let end = if env.busy { env.busy_until } else { now };
                version.stats.environment_gb_s += (end - env.created).as_secs_f64() * gb;
                if !env.busy {
                    version.stats.idle_gb_s +=
                        now.saturating_sub(env.busy_until).as_secs_f64() * gb;
                }
            }
        }
        Snapshot {
            now_s: now.as_secs_f64(),
            functions,
            not_found: self.not_found,
        }
    }
}
