//! Holding a depth the forecast stops asking for.
//!
//! A function's target moves as its recent windows slide: one called once a minute whose
//! calls now and then overlap is sized for two environments, then one, then two again. Letting
//! the second go at each fall and starting it again at the next rise pays an init each time,
//! where a ping to keep it costs a request. So a depth the target falls below is held, on
//! the environments the planner knows, for as many refreshes as the pings that keep one
//! environment cost less than the init that would start it again (ski rental: the held
//! environments never cost more than one start each), and at most
//! [`WarmerConfig::depth_hold_rounds`](super::WarmerConfig::depth_hold_rounds). A held depth
//! never starts an environment: one that ended is not replaced until the target asks for it.

use std::time::Duration;

use crate::clock::Time;

/// One function's held depth: the largest target seen since the hold began, and when the
/// hold ends.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct DepthHold {
    depth: u32,
    until: Time,
}

impl DepthHold {
    /// The depth to keep at `now` for the forecast's `target`: the held depth while its hold
    /// (`hold` from the last time the target reached it) lasts, but no more than the
    /// `existing` environments; else the target.
    pub(super) fn depth(&mut self, target: u32, existing: u32, now: Time, hold: Duration) -> u32 {
        if target >= self.depth {
            self.depth = target;
            self.until = now + hold;
        } else if now >= self.until {
            self.depth = target;
        }
        target.max(self.depth.min(existing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_fall_is_held_then_followed() {
        let mut h = DepthHold::default();
        let hold = 20 * MIN;
        assert_eq!(h.depth(3, 3, Duration::ZERO, hold), 3);
        assert_eq!(h.depth(1, 3, 5 * MIN, hold), 3, "held");
        // A rise back to the held depth starts the hold again.
        assert_eq!(h.depth(3, 3, 15 * MIN, hold), 3);
        assert_eq!(h.depth(1, 3, 30 * MIN, hold), 3, "20 minutes from the rise");
        assert_eq!(h.depth(1, 3, 35 * MIN, hold), 1, "the hold is over");
        assert_eq!(h.depth(2, 3, 36 * MIN, hold), 2);
    }

    #[test]
    fn a_held_depth_never_starts_an_environment() {
        let mut h = DepthHold::default();
        let hold = 20 * MIN;
        h.depth(4, 4, Duration::ZERO, hold);
        // Two of the four ended (their lifetime): the hold keeps the two left, no more.
        assert_eq!(h.depth(1, 2, MIN, hold), 2);
        // A target above the held depth is the target, whatever exists.
        assert_eq!(h.depth(6, 2, 2 * MIN, hold), 6);
        // No hold: the target.
        let mut none = DepthHold::default();
        none.depth(4, 4, Duration::ZERO, Duration::ZERO);
        assert_eq!(none.depth(1, 4, Duration::ZERO, Duration::ZERO), 1);
    }
}
