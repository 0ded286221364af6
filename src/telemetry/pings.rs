//! Telemetry of the warmer's pings: each ping sent and what it cost, the budget, the
//! probes of the reclaim curve, and each round's check (`policy::round`).

use std::time::Duration;

use metrics::{counter, gauge};

use super::PINGS;

/// A ping was sent; `met` is how it met its environment (warm: an environment confirmed
/// warm; cold: a new one started). A keep-alive ping is also counted by its policy's rule.
pub fn ping_sent(
    function: &str,
    target: &str,
    reason: crate::policy::driver::PingReason,
    met: &'static str,
) {
    let (why, detail) = (reason.as_str(), reason.detail());
    counter!(PINGS, "function" => function.to_string(), "target" => target.to_string(), "reason" => why, "met" => met)
        .increment(1);
    if let crate::policy::driver::PingReason::KeepAlive(kept_by) = reason {
        counter!(KEEP_ALIVE_PINGS, "function" => function.to_string(), "kept_by" => kept_by.as_str())
            .increment(1);
    }
    tracing::debug!(function, target, reason = why, detail, met, "ping");
}

/// Keep-alive pings sent, by function and the rule of the policy that asked for them
/// ([`KeptBy`](crate::policy::KeptBy)); over the rules, `warmgate_pings_total{reason="keep_alive"}`.
pub const KEEP_ALIVE_PINGS: &str = "warmgate_keep_alive_pings_total";

/// Billed memory-time of pings, by function and target, in byte-seconds (a counter counts
/// whole numbers; Lambda's GB-s is 2^30 byte-seconds).
pub const PING_COST: &str = "warmgate_ping_billed_byte_seconds_total";
/// Pings a function's budget still allows this hour.
pub const PING_BUDGET_PINGS: &str = "warmgate_ping_budget_remaining_pings";
/// Billed memory-time a function's ping budget still allows today, in byte-seconds.
pub const PING_BUDGET_BYTE_SECONDS: &str = "warmgate_ping_budget_remaining_byte_seconds";
/// Pings a policy asked for that the budget refused.
pub const PINGS_REFUSED: &str = "warmgate_pings_refused_total";

/// Bytes in Lambda's billing gigabyte (memory is configured in MB of 2^20 bytes, 1024 to a GB).
const BYTES_PER_GB: f64 = 1_073_741_824.0;

/// Adds a ping's billed GB-s, counted in whole byte-seconds (rounding loses under one
/// byte-second a ping, a millionth of the smallest ping's bill).
pub fn ping_cost(function: &str, target: &str, gb_s: f64) {
    let byte_seconds = (gb_s.max(0.0) * BYTES_PER_GB).round() as u64;
    counter!(PING_COST, "function" => function.to_string(), "target" => target.to_string())
        .increment(byte_seconds);
}

/// What is left of a function's ping budget: pings this hour, GB-s today.
pub fn ping_budget(function: &str, pings_left: u32, gb_s_left: f64) {
    gauge!(PING_BUDGET_PINGS, "function" => function.to_string()).set(f64::from(pings_left));
    gauge!(PING_BUDGET_BYTE_SECONDS, "function" => function.to_string())
        .set(gb_s_left * BYTES_PER_GB);
}

pub fn pings_refused(function: &str, count: u32) {
    counter!(PINGS_REFUSED, "function" => function.to_string()).increment(u64::from(count));
    tracing::info!(function, count, "pings refused by the budget");
}

/// Probes of the reclaim curve, by function, target and outcome.
pub const PROBES: &str = "warmgate_probes_total";

/// A probe answered: one ping timed to learn whether an environment survives an idle age the
/// reclaim curve was unsure of. Logged once, counted once.
#[derive(Debug, Clone)]
pub struct ProbeSent<'a> {
    pub function: &'a str,
    pub target: &'a str,
    /// The idle age of the environment it was sent to meet.
    pub idle_age: Duration,
    /// The stretch of idle ages it bisects: the oldest seen alive, the next seen gone.
    pub stretch: (Duration, Duration),
    /// warm: that environment was alive; cold: none was left (an init paid); unknown or
    /// refused: nothing learnt.
    pub outcome: &'static str,
}

impl ProbeSent<'_> {
    pub fn emit(&self) {
        counter!(PROBES, "function" => self.function.to_string(), "target" => self.target.to_string(), "outcome" => self.outcome)
            .increment(1);
        tracing::info!(
            function = self.function,
            target = self.target,
            outcome = self.outcome,
            idle_age_s = self.idle_age.as_secs_f64(),
            alive_s = self.stretch.0.as_secs_f64(),
            gone_s = self.stretch.1.as_secs_f64(),
            "probe"
        );
    }
}

/// Rounds of several pings, by what their answers showed (`reached`: as many environments as
/// pings; `short`: an environment named twice; `unchecked`: a ping failed or its handler
/// named no environment).
pub const ROUNDS_CHECKED: &str = "warmgate_rounds_checked_total";
/// Environments rounds asked for and missed: pings that reached an environment another ping
/// of their round had already reached.
pub const ROUND_ENVIRONMENTS_MISSED: &str = "warmgate_round_environments_missed_total";
/// The base hold a function's next round asks each ping for, in seconds (each ping of the
/// round adds `policy::ROUND_HOLD_PER_PING`).
pub const ROUND_HOLD_SECONDS: &str = "warmgate_round_hold_seconds";

/// A round of pings answered and checked (`policy::round`). Counted always; logged when the
/// round fell short or the hold changed.
#[derive(Debug, Clone)]
pub struct RoundChecked<'a> {
    pub function: &'a str,
    pub target: &'a str,
    pub check: crate::policy::round::RoundCheck,
    /// The hold this round asked for.
    pub held: Duration,
    /// The hold the next round asks for.
    pub next: Duration,
    pub change: crate::policy::round::HoldChange,
}

impl RoundChecked<'_> {
    pub fn emit(&self) {
        use crate::policy::round::HoldChange;
        let result = match (self.check.judged(), self.check.repeated()) {
            (false, _) => "unchecked",
            (true, 0) => "reached",
            (true, _) => "short",
        };
        let function = self.function.to_string();
        counter!(ROUNDS_CHECKED, "function" => function.clone(), "result" => result).increment(1);
        counter!(ROUND_ENVIRONMENTS_MISSED, "function" => function.clone())
            .increment(u64::from(self.check.repeated()));
        gauge!(ROUND_HOLD_SECONDS, "function" => function).set(self.next.as_secs_f64());
        let (held_ms, next_ms) = (self.held.as_millis() as u64, self.next.as_millis() as u64);
        match self.change {
            HoldChange::Lengthened => tracing::warn!(
                function = self.function,
                target = self.target,
                pings = self.check.answered,
                environments = self.check.distinct,
                held_ms,
                next_ms,
                "a round of pings reached fewer environments than it asked for: the hold is lengthened"
            ),
            HoldChange::Kept if self.check.repeated() > 0 => tracing::warn!(
                function = self.function,
                target = self.target,
                pings = self.check.answered,
                environments = self.check.distinct,
                held_ms,
                "a round of pings reached fewer environments than it asked for at the longest hold: does the handler hold as asked?"
            ),
            HoldChange::Shortened => tracing::info!(
                function = self.function,
                held_ms,
                next_ms,
                "rounds of pings reached their environments: the hold is shortened"
            ),
            HoldChange::Kept => {}
        }
    }
}

/// Creates a configured function's round counters at zero.
pub(super) fn rounds_configured(function: &str) {
    for result in ["reached", "short", "unchecked"] {
        counter!(ROUNDS_CHECKED, "function" => function.to_string(), "result" => result)
            .increment(0);
    }
    counter!(ROUND_ENVIRONMENTS_MISSED, "function" => function.to_string()).increment(0);
}

/// The hold a function's rounds ask for, as the warmer starts.
pub fn round_hold(function: &str, hold: Duration) {
    gauge!(ROUND_HOLD_SECONDS, "function" => function.to_string()).set(hold.as_secs_f64());
}

/// Keep-alive rounds' pings this replica left to the function's keeper, another replica
/// (`[warmer] share_keep_alive`).
pub const PINGS_LEFT_TO_KEEPER: &str = "warmgate_pings_left_to_keeper_total";
/// The replicas this one shares keep-alive with, itself included (0: it cannot tell, and
/// keeps every function).
pub const KEEP_ALIVE_REPLICAS: &str = "warmgate_keep_alive_replicas";
/// The functions whose keep-alive rounds this replica sends.
pub const KEEP_ALIVE_FUNCTIONS_KEPT: &str = "warmgate_keep_alive_functions_kept";

/// A round's `count` pings left to another replica, the function's keeper.
pub fn pings_left_to_keeper(function: &str, count: u32) {
    counter!(PINGS_LEFT_TO_KEEPER, "function" => function.to_string()).increment(u64::from(count));
    tracing::debug!(function, count, "round left to the function's keeper");
}

/// The keep-alive membership as this replica sees it.
pub fn keep_alive_shared(replicas: usize, functions_kept: usize) {
    gauge!(KEEP_ALIVE_REPLICAS).set(replicas as f64);
    gauge!(KEEP_ALIVE_FUNCTIONS_KEPT).set(functions_kept as f64);
}

/// Calls (and pings) this replica served, shared with the others or not (Redis away, too
/// many gathered between two batches): `outcome` is `published` or `dropped`.
pub const KEEP_ALIVE_CALLS_SHARED: &str = "warmgate_keep_alive_calls_shared_total";
/// Calls the other replicas served that this replica's policy heard of.
pub const KEEP_ALIVE_CALLS_HEARD: &str = "warmgate_keep_alive_calls_heard_total";

/// Keep-alive shared among replicas: its series, at zero until something is shared or heard
/// (a lone replica hears nothing).
pub fn keep_alive_sharing() {
    counter!(KEEP_ALIVE_CALLS_SHARED, "outcome" => "published").increment(0);
    counter!(KEEP_ALIVE_CALLS_SHARED, "outcome" => "dropped").increment(0);
    counter!(KEEP_ALIVE_CALLS_HEARD).increment(0);
    gauge!(KEEP_ALIVE_REPLICAS).set(0.0);
}

pub fn calls_shared(n: u64) {
    counter!(KEEP_ALIVE_CALLS_SHARED, "outcome" => "published").increment(n);
}

pub fn calls_not_shared(n: u64) {
    counter!(KEEP_ALIVE_CALLS_SHARED, "outcome" => "dropped").increment(n);
}

pub fn calls_heard(n: u64) {
    counter!(KEEP_ALIVE_CALLS_HEARD).increment(n);
}
