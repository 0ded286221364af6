//! The provisioning lease: with several replicas sharing Redis, only the replica holding
//! `<prefix>:provisioning:lease` applies provisioned concurrency (the others advise), so
//! that two replicas never set levels against each other.
//!
//! The key holds the holder's id and expires after the TTL: taken with `SET NX PX`, renewed
//! every TTL/3 with a compare-and-set (only the holder extends it), released on shutdown
//! (only by the holder). Whether this replica holds it is decided here without Redis, from
//! what the last commands answered and when ([`LeaseState`]), so a holder that cannot reach
//! Redis stops applying before Redis can give the lease to another.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::cache::redis::{LeaseAnswer, RedisTier};

/// What this replica knows of the lease: pure (times are arguments), so it is unit-tested.
///
/// Two margins keep two replicas from ever applying at once:
/// - a holder counts its lease as ending a fifth of the TTL before Redis expires it,
///   measured from when it *sent* the command (Redis starts the TTL later): room for clocks
///   that run at slightly different rates and for a control-plane call under way;
/// - a replica that takes the lease uses it only a TTL after it was granted: had Redis lost
///   the key (a restart without persistence, a failover to a lagging replica), the previous
///   holder's own count has run out by then.
#[derive(Debug, Clone)]
pub struct LeaseState {
    ttl: Duration,
    /// Until when the lease is ours, as far as we can tell without Redis.
    valid_until: Option<Instant>,
    /// From when it may be used: a TTL after it was taken.
    usable_from: Option<Instant>,
}

/// The command a lease tick sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Take,
    Renew,
}

impl LeaseState {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            valid_until: None,
            usable_from: None,
        }
    }

    fn guard(&self) -> Duration {
        self.ttl / 5
    }

    /// How often the holder renews: a renewal may fail once and the lease still holds.
    pub fn renew_every(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(1))
    }

    /// Whether this replica holds the lease at `now` and may apply.
    pub fn holds(&self, now: Instant) -> bool {
        match (self.valid_until, self.usable_from) {
            (Some(until), Some(from)) => from <= now && now < until,
            _ => false,
        }
    }

    /// What to send next: a renewal while the lease was ours when last heard of, else a take.
    pub fn step(&self) -> Step {
        if self.usable_from.is_some() {
            Step::Renew
        } else {
            Step::Take
        }
    }

    /// Redis's answer to the command sent at `sent`, received at `answered`.
    pub fn answered(&mut self, step: Step, answer: LeaseAnswer, sent: Instant, answered: Instant) {
        match answer {
            LeaseAnswer::Ours => {
                self.valid_until = Some(sent + self.ttl - self.guard());
                if step == Step::Take {
                    self.usable_from = Some(answered + self.ttl);
                }
            }
            LeaseAnswer::NotOurs => {
                self.valid_until = None;
                self.usable_from = None;
            }
            // Unknown: the lease runs out on its own count.
            LeaseAnswer::Unavailable => {}
        }
    }

    /// When the next tick is due after `now`: a renewal's time, or sooner if the lease
    /// becomes usable or runs out before (so the change shows when it happens).
    pub fn next_tick(&self, now: Instant) -> Instant {
        let mut next = now + self.renew_every();
        for at in [self.usable_from, self.valid_until].into_iter().flatten() {
            if at > now && at < next {
                next = at;
            }
        }
        next
    }
}

/// This replica's lease: its id, its state, the Redis tier it goes through.
pub struct Lease {
    id: String,
    state: Mutex<LeaseState>,
    redis: Arc<RedisTier>,
    /// Each command's bound: the tier's background timeout, never past a renewal's interval.
    bound: Duration,
}

impl Lease {
    pub fn new(redis: Arc<RedisTier>, ttl: Duration, timeout: Duration) -> Self {
        let state = LeaseState::new(ttl);
        Self {
            id: replica_id(),
            bound: timeout.min(state.renew_every()),
            state: Mutex::new(state),
            redis,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this replica holds the lease now.
    pub fn holds(&self) -> bool {
        self.state.lock().holds(Instant::now())
    }

    /// One round: takes or renews (a renewal that finds the lease gone tries to take it
    /// again at once). Returns when the next round is due.
    pub async fn tick(&self) -> Instant {
        let mut step = self.state.lock().step();
        loop {
            let ttl = self.state.lock().ttl;
            let sent = Instant::now();
            let answer = match step {
                Step::Take => self.redis.lease_take(&self.id, ttl, self.bound).await,
                Step::Renew => self.redis.lease_renew(&self.id, ttl, self.bound).await,
            };
            let mut state = self.state.lock();
            state.answered(step, answer, sent, Instant::now());
            if step == Step::Renew && answer == LeaseAnswer::NotOurs {
                step = Step::Take;
                continue;
            }
            return state.next_tick(Instant::now());
        }
    }

    /// Lets the lease go (on shutdown, once nothing applies any more).
    pub async fn release(&self) {
        {
            let mut state = self.state.lock();
            *state = LeaseState::new(state.ttl);
        }
        if self.redis.lease_release(&self.id, self.bound).await == LeaseAnswer::Ours {
            tracing::info!(id = %self.id, "provisioning lease released");
        }
    }
}

/// Hostname, pid and a random suffix: unique among replicas, readable in Redis.
pub(super) fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    let suffix: u32 = rand::random();
    format!("{host}:{}:{suffix:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(300);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_taken_lease_is_used_a_ttl_later_and_renewals_keep_it() {
        let t0 = Instant::now();
        let mut lease = LeaseState::new(TTL);
        assert_eq!(lease.step(), Step::Take);
        assert!(!lease.holds(t0));
        lease.answered(Step::Take, LeaseAnswer::Ours, t0, t0 + ms(2));
        assert_eq!(lease.step(), Step::Renew);
        assert!(
            !lease.holds(t0 + ms(100)),
            "not before a TTL: a previous holder may still count on it"
        );
        assert_eq!(
            lease.next_tick(t0 + ms(2)),
            t0 + ms(102),
            "renewed at TTL/3"
        );
        lease.answered(Step::Renew, LeaseAnswer::Ours, t0 + ms(100), t0 + ms(101));
        lease.answered(Step::Renew, LeaseAnswer::Ours, t0 + ms(200), t0 + ms(201));
        assert!(!lease.holds(t0 + ms(301)));
        assert!(lease.holds(t0 + ms(302)), "usable a TTL after the grant");
        lease.answered(Step::Renew, LeaseAnswer::Ours, t0 + ms(300), t0 + ms(301));
        assert!(lease.holds(t0 + ms(500)));
    }

    #[test]
    fn a_holder_that_cannot_renew_lets_go_before_redis_expires_the_key() {
        let t0 = Instant::now();
        let mut lease = LeaseState::new(TTL);
        lease.answered(Step::Take, LeaseAnswer::Ours, t0, t0);
        lease.answered(Step::Renew, LeaseAnswer::Ours, t0 + ms(300), t0 + ms(301));
        assert!(lease.holds(t0 + ms(310)));
        // Redis gone: the renewals go unanswered.
        lease.answered(
            Step::Renew,
            LeaseAnswer::Unavailable,
            t0 + ms(400),
            t0 + ms(405),
        );
        assert!(lease.holds(t0 + ms(500)), "one missed renewal is survived");
        lease.answered(
            Step::Renew,
            LeaseAnswer::Unavailable,
            t0 + ms(500),
            t0 + ms(505),
        );
        // Redis expires the key no sooner than 300 ms after it got the last renewal (sent
        // at 300): the holder has stopped before, by a fifth of the TTL.
        assert!(lease.holds(t0 + ms(539)));
        assert!(!lease.holds(t0 + ms(540)));
        assert_eq!(
            lease.next_tick(t0 + ms(505)),
            t0 + ms(540),
            "woken when it runs out, so the change shows then"
        );
        assert_eq!(lease.step(), Step::Renew, "the key may still be ours");
    }

    #[test]
    fn a_lease_found_taken_or_lost_is_not_held() {
        let t0 = Instant::now();
        let mut other = LeaseState::new(TTL);
        other.answered(Step::Take, LeaseAnswer::NotOurs, t0, t0);
        assert!(!other.holds(t0 + ms(400)));
        assert_eq!(other.step(), Step::Take);

        let mut lease = LeaseState::new(TTL);
        lease.answered(Step::Take, LeaseAnswer::Ours, t0, t0);
        lease.answered(Step::Renew, LeaseAnswer::Ours, t0 + ms(300), t0 + ms(300));
        assert!(lease.holds(t0 + ms(310)));
        // Expired in Redis, or taken by another: gone at once, and taken anew if free.
        lease.answered(
            Step::Renew,
            LeaseAnswer::NotOurs,
            t0 + ms(320),
            t0 + ms(321),
        );
        assert!(!lease.holds(t0 + ms(322)));
        assert_eq!(lease.step(), Step::Take);
        lease.answered(Step::Take, LeaseAnswer::Ours, t0 + ms(322), t0 + ms(323));
        assert!(!lease.holds(t0 + ms(400)), "taken anew: waits a TTL again");
        lease.answered(Step::Renew, LeaseAnswer::Ours, t0 + ms(600), t0 + ms(600));
        assert!(lease.holds(t0 + ms(623)));
    }
}
