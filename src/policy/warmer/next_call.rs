//! Whether a lone environment's refresh, due the refresh age after the last call's end,
//! most likely meets the next call running (docs/warmer/history.md, "A refresh before the next
//! call").
//!
//! Where calls are heard only as they end (clients calling Lambda directly), the planner
//! cannot tell that the next call has started. A ping sent while it runs finds the
//! environment busy and starts a second one, paying its init for nothing: a timer called
//! every 5 minutes, whose calls run longer than the refresh margin, met one at every other
//! refresh. The reports tell afterwards: a call that arrived before the refresh age (after
//! the last call's end) and ended after it was running then.

use std::time::Duration;

use crate::clock::Time;
use crate::policy::forecast::FunctionForecast;

/// Each new idle time counts this much more than the one before: the share follows about
/// the last ten.
const DECAY: f64 = 0.9;
/// Idle times to see before the share is trusted.
const MIN_SAMPLES: u32 = 3;
/// A refresh sent before the next call goes before the first idle-time bin in which an
/// arrival is at least this likely.
const EARLY_LIKELIHOOD: f64 = 0.1;

/// Of the idle times after which no call had ended by the refresh age, the (decayed) share
/// whose next call was running then.
#[derive(Debug, Clone, Default)]
pub(super) struct NextCallAtRefresh {
    /// Decayed count of idle times with no call ended by the refresh age.
    unended: f64,
    /// Of them, those whose next call had arrived by then.
    running: f64,
    samples: u32,
}

impl NextCallAtRefresh {
    /// A call from `arrived` to `end`, the first after the busy period that ended at
    /// `last_end`.
    pub(super) fn record(
        &mut self,
        last_end: Time,
        arrived: Time,
        end: Time,
        refresh_age: Duration,
    ) {
        let refresh = last_end + refresh_age;
        if end <= refresh {
            // Its end was heard before the refresh was due, which it made needless.
            return;
        }
        self.unended = self.unended * DECAY + 1.0;
        self.running = self.running * DECAY + f64::from(u8::from(arrived < refresh));
        self.samples = self.samples.saturating_add(1);
    }

    /// How likely a refresh due now, with no call heard since, meets the next call running;
    /// `None` until enough idle times were seen.
    pub(super) fn share(&self) -> Option<f64> {
        (self.samples >= MIN_SAMPLES).then(|| self.running / self.unended)
    }

    /// When to refresh a lone environment idle `since` the last call's end, rather than the
    /// refresh age after it, if earlier: just before the next call's arrival becomes likely
    /// (by the idle times of `forecast`, in bins of `bin`). Meeting the call costs an init;
    /// going early, at most the ping the call's end would have made needless. So it goes
    /// early where the share of refreshes that met a call is above a ping's price in inits,
    /// one in `hold_rounds`. Only from the last call's end: after a ping, the next call is
    /// no longer due.
    pub(super) fn refresh_before(
        &self,
        since: Time,
        forecast: &FunctionForecast,
        hold_rounds: f64,
        bin: Duration,
    ) -> Option<Time> {
        let share = self.share()?;
        if share * hold_rounds < 1.0 || forecast.last_end() != Some(since) {
            return None;
        }
        let likely = forecast.likely_from(since, bin, EARLY_LIKELIHOOD)?;
        Some(likely.saturating_sub(Duration::from_secs(1))).filter(|&t| t > since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_call_that_spans_the_refresh_age_counts_as_running_then() {
        let age = 298 * S;
        let mut seen = NextCallAtRefresh::default();
        let last_end = 100 * S;
        // Arrived 270 s after the last end, ran 30 s: running at 298 s.
        for _ in 0..3 {
            seen.record(last_end, last_end + 270 * S, last_end + 300 * S, age);
        }
        assert_eq!(seen.share(), Some(1.0));
        // Ended before the refresh was due: not counted at all.
        seen.record(last_end, last_end + 200 * S, last_end + 230 * S, age);
        assert_eq!(seen.share(), Some(1.0));
        // Arrived after it: the refresh met no call.
        seen.record(last_end, last_end + 400 * S, last_end + 401 * S, age);
        let share = seen.share().unwrap();
        assert!(share > 0.5 && share < 1.0, "{share}");
    }

    #[test]
    fn the_share_waits_for_a_few_idle_times() {
        let mut seen = NextCallAtRefresh::default();
        for _ in 0..MIN_SAMPLES - 1 {
            seen.record(Time::ZERO, 290 * S, 310 * S, 298 * S);
        }
        assert_eq!(seen.share(), None);
    }
}
