//! Probes: a ping timed so that its outcome places the idle reclaim where nothing observed
//! does yet ([`Pool::probe_due`]).

use std::time::Duration;

use super::Pool;
use crate::clock::Time;

/// An unobserved stretch of the reclaim curve this narrow is sharp enough not to probe: two
/// bins (ages are taught to the nearest bin). Narrower costs more probes for no better
/// estimate; wider leaves a worse one.
pub const PROBE_RESOLUTION: Duration = Duration::from_secs(20);
/// Least time between two probes of a target: a probe refused (or unanswered) leaves the
/// pool as it was, and would otherwise be due again at once.
pub const PROBE_SPACING: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// When the gateway may probe a target: ping it to learn whether its next idle environment
/// is alive at an idle age where the reclaim curve is uncertain (see [`Pool::probe_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbePolicy {
    /// On by default: a few pings per target while the curve is uncertain, none once it is
    /// sharp, and the estimate they sharpen decides every routed request (warm or cold,
    /// wait or not). The gateway's burst pings already assume a handler that answers pings.
    pub enabled: bool,
    /// At most this many probes of a target within any hour: a probe that meets no
    /// environment costs an init.
    pub max_per_hour: u32,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_per_hour: 4,
        }
    }
}

/// A probe due now: the environment it will meet is `idle_age` idle, inside the stretch
/// from `alive` (the oldest idle age seen alive) to `gone` (the next seen gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub idle_age: Duration,
    pub alive: Duration,
    pub gone: Duration,
}

impl Pool {
    /// Whether to probe this target at `now`: one ping, whose outcome says whether an
    /// environment is alive at an idle age where nothing yet places the reclaim.
    ///
    /// Due when the curve has an unobserved stretch ([`ReclaimModel::unobserved`]) wider
    /// than [`PROBE_RESOLUTION`] and the environment the ping would take (the most recently
    /// idle: Lambda reuses it first) has idled past the stretch's midpoint. Each probe halves
    /// the stretch; probing stops once the curve is sharp, and starts again if observations
    /// reopen it. Where only the prior places the fall, it is trusted. The outcome is taught
    /// as any request's (`complete`): warm, alive at that age; cold, it and every other idle
    /// environment and ghost gone. Never with a request or ping in flight here (real traffic
    /// first, one probe at a time), nor on provisioned capacity (the ping would land there
    /// and say nothing of reclaim), nor within [`PROBE_SPACING`] of the last probe or beyond
    /// the policy's probes per hour.
    ///
    /// [`ReclaimModel::unobserved`]: super::ReclaimModel::unobserved
    pub fn probe_due(&self, now: Time, policy: &ProbePolicy) -> Option<Probe> {
        if !policy.enabled || !self.in_flight.is_empty() || self.provisioned > 0 {
            return None;
        }
        let recent = self.probes.iter().filter(|&&t| t + HOUR > now);
        if recent.count() >= policy.max_per_hour as usize
            || self.probes.last().is_some_and(|&t| now < t + PROBE_SPACING)
        {
            return None;
        }
        let (alive, gone) = self.reclaim.unobserved()?;
        if gone - alive <= PROBE_RESOLUTION {
            return None;
        }
        let idle_age = now.saturating_sub(self.next_taken(now)?.idle_since);
        // Past the stretch the environment is counted gone (`next_taken` skips it).
        let midpoint = alive + (gone - alive) / 2;
        (midpoint <= idle_age).then_some(Probe {
            idle_age,
            alive,
            gone,
        })
    }

    /// A probe went to this target at `now`.
    pub fn probe_sent(&mut self, now: Time) {
        self.probes.retain(|&t| t + HOUR > now);
        self.probes.push(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::pool::reclaim::BIN;
    use crate::policy::pool::{ReclaimModel, Started};
    use crate::policy::Start;

    const S: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);

    /// A pool whose curve was seen alive at `alive` and gone at `gone`, nothing between, with
    /// `n` environments idle from zero.
    fn uncertain(alive: Duration, gone: Duration, n: usize) -> Pool {
        let mut m = ReclaimModel::default();
        m.observe(alive, true);
        m.observe(gone, false);
        let mut pool = Pool::new(m);
        idle_from(&mut pool, Duration::ZERO, n);
        pool
    }

    /// `n` more environments idle from `at` (how they started teaches nothing).
    fn idle_from(pool: &mut Pool, at: Duration, n: usize) {
        let burst: Vec<Started> = (0..n).map(|_| pool.start(at)).collect();
        for s in &burst {
            pool.complete(at, s, None, S, None);
        }
    }

    const PROBES: ProbePolicy = ProbePolicy {
        enabled: true,
        max_per_hour: 4,
    };

    #[test]
    fn a_probe_is_due_at_the_middle_of_the_stretch_nothing_places_the_reclaim_in() {
        let pool = uncertain(6 * MIN, 10 * MIN, 1);
        assert_eq!(pool.reclaim().unobserved(), Some((6 * MIN, 10 * MIN)));
        assert_eq!(pool.probe_due(7 * MIN + 50 * S, &PROBES), None, "too young");
        let due = Probe {
            idle_age: 8 * MIN,
            alive: 6 * MIN,
            gone: 10 * MIN,
        };
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), Some(due));
        assert!(pool.probe_due(9 * MIN + 50 * S, &PROBES).is_some());
        assert_eq!(pool.probe_due(10 * MIN, &PROBES), None, "known gone there");
        let off = ProbePolicy {
            enabled: false,
            ..PROBES
        };
        assert_eq!(pool.probe_due(8 * MIN, &off), None);
    }

    #[test]
    fn no_probe_where_the_curve_is_sharp() {
        let never = |pool: &Pool| (0..120).all(|i| pool.probe_due(10 * S * i, &PROBES).is_none());
        // The prior alone: warm for 5 minutes and no longer.
        let mut prior = Pool::default();
        idle_from(&mut prior, Duration::ZERO, 1);
        assert!(never(&prior));
        // Seen alive past the prior, nothing beyond: the prior's "gone" counts right after.
        let mut beyond = Pool::default();
        beyond.reclaim.observe(7 * MIN, true);
        idle_from(&mut beyond, Duration::ZERO, 1);
        assert!(never(&beyond));
        // A stretch no wider than the resolution.
        assert!(never(&uncertain(6 * MIN, 6 * MIN + PROBE_RESOLUTION, 1)));
        assert!(!never(&uncertain(
            6 * MIN,
            6 * MIN + PROBE_RESOLUTION + BIN,
            1
        )));
    }

    #[test]
    fn no_probe_with_a_request_in_flight_or_on_provisioned_capacity() {
        let mut pool = uncertain(6 * MIN, 10 * MIN, 2);
        let s = pool.start(8 * MIN);
        assert_eq!(
            pool.view(8 * MIN).warm_idle,
            0.5,
            "one left, at the midpoint"
        );
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), None);
        pool.abandon(&s);
        assert!(pool.probe_due(8 * MIN, &PROBES).is_some());
        pool.set_provisioned(1);
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), None);
    }

    #[test]
    fn no_probe_again_too_soon_nor_beyond_the_hourly_bound() {
        let mut pool = uncertain(6 * MIN, 20 * MIN, 1);
        assert!(pool.probe_due(13 * MIN, &PROBES).is_some());
        // Refused, say: the pool is as it was.
        pool.probe_sent(13 * MIN);
        assert_eq!(pool.probe_due(13 * MIN + 59 * S, &PROBES), None);
        assert!(pool.probe_due(14 * MIN, &PROBES).is_some());
        pool.probe_sent(14 * MIN);
        let two = ProbePolicy {
            max_per_hour: 2,
            ..PROBES
        };
        assert_eq!(pool.probe_due(15 * MIN, &two), None);
        assert!(pool.probe_due(15 * MIN, &PROBES).is_some());
    }

    #[test]
    fn the_probe_waits_for_the_environment_it_will_meet() {
        // Two environments, idle from 0 and 2 minutes: a ping takes the younger.
        let mut pool = uncertain(6 * MIN, 10 * MIN, 2);
        idle_from(&mut pool, 2 * MIN, 1);
        assert_eq!(pool.view(2 * MIN).warm_idle, 2.0);
        assert_eq!(pool.probe_due(8 * MIN, &PROBES), None, "the older is due");
        let due = pool.probe_due(10 * MIN, &PROBES).expect("the younger is");
        assert_eq!(due.idle_age, 8 * MIN);
    }

    #[test]
    fn a_probe_halves_the_stretch_through_the_usual_completion() {
        for (met, stretch) in [
            (Some(Start::Cold), (6 * MIN, 8 * MIN)),
            (Some(Start::Warm), (8 * MIN, 10 * MIN)),
        ] {
            let mut pool = uncertain(6 * MIN, 10 * MIN, 3);
            assert!(pool.probe_due(8 * MIN, &PROBES).is_some());
            pool.probe_sent(8 * MIN);
            let s = pool.start(8 * MIN);
            pool.complete(8 * MIN + S, &s, met, S, None);
            assert_eq!(pool.reclaim().unobserved(), Some(stretch), "{met:?}");
        }
    }

    #[test]
    fn probing_stops_when_the_curve_is_sharp_and_resumes_if_it_reopens() {
        let mut pool = uncertain(6 * MIN, 10 * MIN, 1);
        pool.reclaim.observe(8 * MIN, true);
        pool.reclaim.observe(8 * MIN + 20 * S, false);
        assert!((0..120).all(|i| pool.probe_due(10 * S * i, &PROBES).is_none()));
        // A ghost met warm at 12 minutes, and gone ones at 16: nothing between.
        pool.reclaim.observe(12 * MIN, true);
        pool.reclaim.observe(16 * MIN, false);
        assert_eq!(pool.reclaim().unobserved(), Some((12 * MIN, 16 * MIN)));
        assert!(pool.probe_due(14 * MIN, &PROBES).is_some());
    }
}
