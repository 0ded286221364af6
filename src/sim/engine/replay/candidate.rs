//! What a replay replays: a candidate policy (with its traffic rule, and the gateway
//! replicas that run it), and each replica's state.

use crate::clock::Time;
use crate::policy::driver::FunctionDriver;
use crate::policy::Policy;

use super::super::settings::{Reclaim, Traffic};

/// A policy to replay, what the platform does with idle environments under it, and how
/// requests reach the targets.
pub struct Candidate {
    /// The name its figures carry.
    pub label: String,
    pub policy: Box<dyn Policy>,
    pub reclaim: Reclaim,
    pub traffic: Traffic,
    /// The policies of the other gateway replicas, each a fresh copy of `policy`: traffic is
    /// spread over all of them (empty: one gateway).
    pub more_replicas: Vec<Box<dyn Policy>>,
    /// With several replicas, every replica's policy hears every replica's calls and each
    /// function's keep-alive rounds are sent by its keeper alone (`policy::keepers`), as
    /// gateways sharing Redis do; otherwise each plans on its own calls and sends its rounds.
    pub share_keep_alive: bool,
}

impl Candidate {
    /// A policy on the platform as Lambda behaves, its traffic to the first target.
    pub fn new(policy: Box<dyn Policy>) -> Self {
        Candidate {
            label: policy.name(),
            policy,
            reclaim: Reclaim::AsLambda,
            traffic: Traffic::First,
            more_replicas: Vec::new(),
            share_keep_alive: true,
        }
    }

    /// The reference bound: no policy, and environments never reclaimed once created.
    pub fn never_reclaim() -> Self {
        Candidate {
            label: "never-reclaim".into(),
            policy: Box::new(crate::policy::baselines::none::NoPolicy),
            reclaim: Reclaim::Never,
            traffic: Traffic::First,
            more_replicas: Vec::new(),
            share_keep_alive: true,
        }
    }

    /// The same candidate under `traffic`, labelled for it ([`Traffic::label`] of the label
    /// it had).
    pub fn with_traffic(mut self, traffic: Traffic) -> Self {
        self.label = traffic.label(&self.label);
        self.traffic = traffic;
        self
    }

    /// The same candidate run by `1 + more.len()` gateway replicas, the calls of each
    /// function spread over them in turn, keep-alive shared or not; labelled `<label>@N`
    /// (`@N-unshared`).
    pub fn with_replicas(mut self, more: Vec<Box<dyn Policy>>, share_keep_alive: bool) -> Self {
        if more.is_empty() {
            return self;
        }
        let n = 1 + more.len();
        let unshared = if share_keep_alive { "" } else { "-unshared" };
        self.label = format!("{}@{n}{unshared}", self.label);
        self.more_replicas = more;
        self.share_keep_alive = share_keep_alive;
        self
    }
}

/// One gateway replica of a replay: its keep-alive policy, its function drivers, its wake-up.
pub(super) struct Replica {
    pub(super) policy: Box<dyn Policy>,
    /// Per function, the gateway's orchestration: the very [`FunctionDriver`] the gateway
    /// runs, its pools fed what this replica would see (kept only when routing or measuring
    /// the estimator).
    pub(super) drivers: Vec<FunctionDriver>,
    /// The policy's wake-up, cached: it can only change when the policy is called.
    pub(super) wake: Option<Time>,
    /// The policy asked, after acting, to be woken no later than it just was: it is not woken
    /// again until something else happens, so that such a policy cannot stall the replay.
    pub(super) wake_stale: bool,
}

impl Replica {
    /// The wake-up to honour at `now`: never before it, none while stale.
    pub(super) fn due_wake(&self, now: Time) -> Option<Time> {
        if self.wake_stale {
            return None;
        }
        self.wake.map(|w| w.max(now))
    }

    pub(super) fn refresh_wake(&mut self) {
        self.wake = self.policy.next_wake();
    }
}

/// The replicas' ids, as the gateway's would be named in Redis.
pub(super) fn replica_ids(n: usize) -> Vec<String> {
    (0..n).map(|r| format!("replica-{r}")).collect()
}
