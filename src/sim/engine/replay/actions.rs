//! Carrying out a policy's actions in the replay: rounds of pings through the function's
//! driver, provisioned concurrency on the platform.

use std::time::Duration;

use crate::platform::ControlError;
use crate::policy::driver::PingReason;
use crate::policy::{Action, FunctionId, KeptBy};

use super::completions::Sent;
use super::Replay;

impl Replay<'_> {
    /// Carries out replica `r`'s actions.
    pub(super) fn carry_out(&mut self, r: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Ping {
                    function,
                    target,
                    count,
                    kept_by,
                } => self.ping(r, function, target, count, kept_by),
                // Only the replica holding the provisioning lease applies.
                Action::SetProvisioned {
                    function,
                    target,
                    concurrency,
                } if r == 0 => self.set_provisioned(function, target, concurrency),
                Action::SetProvisioned { .. } => {}
            }
        }
    }

    /// Checks an action's function and target: a policy that names neither is a bug in it.
    fn check_target(&self, function: FunctionId, target: usize) {
        let known = function < self.names.len() && target < self.targets.len();
        assert!(
            known,
            "policy {} acted on function {function} target {target}; the trace has {} functions \
             with {} targets each",
            self.replicas[0].policy.name(),
            self.names.len(),
            self.targets.len()
        );
    }

    /// A round of `count` concurrent pings, as many as the driver grants, so that as many
    /// distinct environments are busy at once; a round of several asks each handler to hold
    /// its environment, as the gateway's do.
    fn ping(&mut self, r: usize, f: FunctionId, target: usize, count: u32, kept_by: KeptBy) {
        self.check_target(f, target);
        // Another replica keeps the function: it sends the round, which this replica's
        // estimate sees as the gateway's does, through the calls shared (`send`).
        if self.keepers.as_ref().is_some_and(|keepers| keepers[f] != r) {
            return;
        }
        let memory_mb = self.trace.functions[f].memory_mb;
        let clients_first = self.clients_first();
        let driver = &mut self.replicas[r].drivers[f];
        let granted = driver.grant_round(self.now, count, memory_mb, clients_first);
        if self.counted(self.now) {
            self.tally.pings_refused += u64::from(count - granted);
        }
        let hold =
            (granted > 1).then(|| crate::policy::round_hold(crate::policy::ROUND_HOLD, granted));
        for _ in 0..granted {
            let attempt = self.replicas[r].drivers[f].start_ping(self.now, target);
            let sent = Sent::Ping {
                hold,
                reason: PingReason::KeepAlive(kept_by),
            };
            let _ = self.send(r, f, attempt, sent, true, None);
        }
    }

    fn set_provisioned(&mut self, f: FunctionId, target: usize, concurrency: u32) {
        self.check_target(f, target);
        let name = &self.names[f];
        let qualifier = &self.targets[target];
        let result = if concurrency == 0 {
            match self.platform.delete_provisioned(self.now, name, qualifier) {
                Err(ControlError::ProvisionedConfigNotFound(_)) => Ok(()),
                other => other,
            }
        } else {
            self.platform
                .put_provisioned(self.now, name, qualifier, concurrency)
                .map(|_| ())
        };
        self.tally.provisioning_refused += u64::from(result.is_err());
        if result.is_ok() && concurrency > 0 {
            self.allocating.insert((f, target), self.now);
            if self.next_tick.is_none() {
                let minutes = self.now.as_secs() / 60 + 1;
                self.next_tick = Some(Duration::from_secs(minutes * 60));
            }
        } else {
            self.allocating.remove(&(f, target));
        }
        if !self.provisioned.contains(&(f, target)) {
            self.provisioned.push((f, target));
        }
    }
}
