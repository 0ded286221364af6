//! Rises that come back each day.
//!
//! A job run by a timer at the same minute each day fans out to hundreds of calls at once,
//! from nothing: no forecast of the last hours sees it coming, and the window peaks that size
//! pools leave a one-off out on purpose. So each function remembers, for a day, the minutes in
//! which calls met cold starts with several running, and the concurrency they reached. A rise
//! seen again the next day within a minute of the same time is a daily one: from then on the
//! warmer has that many environments warm from `lead` and a minute before its minute to the
//! minute's end. A rise that comes back is remembered again (its calls find the environments
//! kept for it), one that does not is forgotten. Waiting for the second day costs one day's
//! cold starts of each daily rise; expecting every rise seen once cost, on a day when none
//! came back, a model-loading init for each environment started (docs/warmer/history.md,
//! "Rises that come back each day").
//!
//! Minutes are counted on the planner's clock, so a day is 1,440 of them whatever the clock's
//! origin; a rise kept from before a restart has a minute before it, below zero.
//!
//! A day's memory is worth keeping past a restart: a gateway redeployed each day would
//! otherwise never see a rise twice. So each rise recorded or raised is handed out once
//! ([`DailyRises::take_unshared`]) for the gateway to keep in Redis, and a gateway that
//! starts merges the rises kept there ([`DailyRises::merge`]), in the order they came.

use std::time::Duration;

use crate::clock::Time;

/// Minutes in a day: a rise at minute `m` is expected again at `m + DAY`.
const DAY: i64 = 24 * 60;
/// The fewest calls running together, one of them cold, that make a rise: one call is what
/// the floor's lone environment is for.
const LEAST_RISE: u32 = 2;
/// Days running a rise must have been seen on before it is expected.
const DAYS_SEEN: u32 = 2;
/// A daily rise's environments are started this long before its minute, besides the lead:
/// a burst that spans two minutes is then started by one round, for the larger minute. A
/// second round, a minute later, must pass every environment the first started before it
/// starts one, and the two ran into the pings an hour.
const EARLY: Duration = Duration::from_secs(60);
/// The most rises a function remembers; beyond, the smallest is forgotten.
const MOST_RISES: usize = 48;

/// A minute in which calls rose: its clock minute, the most calls running in it, on how
/// many days running a rise came within a minute of it, and whether its peak was handed out
/// to be kept elsewhere (or came from there).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rise {
    minute: i64,
    peak: u32,
    days: u32,
    shared: bool,
}

impl Rise {
    /// When its minute begins a day later, in seconds of the planner's clock.
    fn begins_next_day(&self) -> i64 {
        (self.minute + DAY) * 60
    }
}

/// One function's rises of the last day.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct DailyRises {
    rises: Vec<Rise>,
}

fn minute(t: Time) -> i64 {
    secs(t) / 60
}

fn secs(t: Time) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

impl DailyRises {
    /// A real call that arrived at `at` with `concurrency` calls running (itself included):
    /// a rise when it met a cold start, or when it came in a minute a rise was expected (the
    /// rise came back, and its calls found the environments kept for it).
    pub(super) fn record(&mut self, at: Time, concurrency: u32, cold: bool, lead: Duration) {
        if concurrency < LEAST_RISE || !(cold || self.expected(at, lead) > 0) {
            return;
        }
        self.insert(minute(at), concurrency, false);
    }

    /// A rise recorded elsewhere: by this gateway before it restarted, or by another replica.
    /// Merged in the order they came, rises count their days as recorded ones do.
    pub(super) fn merge(&mut self, minute: i64, peak: u32) {
        if peak >= LEAST_RISE {
            self.insert(minute, peak, true);
        }
    }

    /// The rises remembered, oldest first.
    pub(super) fn seen(&self) -> Vec<crate::policy::RiseSeen> {
        let mut seen: Vec<_> = self
            .rises
            .iter()
            .map(|r| crate::policy::RiseSeen {
                minute: r.minute,
                peak: r.peak,
                days: r.days,
                expected: r.days >= DAYS_SEEN,
            })
            .collect();
        seen.sort_by_key(|r| r.minute);
        seen
    }

    /// Whether a rise recorded or raised here is yet to be handed out.
    pub(super) fn has_unshared(&self) -> bool {
        self.rises.iter().any(|r| !r.shared)
    }

    /// The rises recorded or raised here since last asked, as (minute, peak), to be kept
    /// elsewhere; each is handed out once per change.
    pub(super) fn take_unshared(&mut self) -> Vec<(i64, u32)> {
        self.rises
            .iter_mut()
            .filter(|r| !r.shared)
            .map(|r| {
                r.shared = true;
                (r.minute, r.peak)
            })
            .collect()
    }

    fn insert(&mut self, m: i64, peak: u32, shared: bool) {
        // A day and a minute: yesterday's rise a minute before this one is still there.
        self.rises.retain(|r| r.minute + DAY + 1 >= m);
        if let Some(rise) = self.rises.iter_mut().find(|r| r.minute == m) {
            if peak > rise.peak {
                rise.peak = peak;
                rise.shared &= shared;
            }
            return;
        }
        let days = 1 + self
            .rises
            .iter()
            .filter(|r| r.minute + DAY + 1 >= m && r.minute + DAY <= m + 1)
            .map(|r| r.days)
            .max()
            .unwrap_or(0);
        if self.rises.len() >= MOST_RISES {
            let smallest = (0..self.rises.len())
                .min_by_key(|&i| self.rises[i].peak)
                .expect("full");
            if self.rises[smallest].peak >= peak {
                return;
            }
            self.rises.swap_remove(smallest);
        }
        self.rises.push(Rise {
            minute: m,
            peak,
            days,
            shared,
        });
    }

    /// The rises seen on enough days running to be expected the next.
    fn daily(&self) -> impl Iterator<Item = &Rise> {
        self.rises.iter().filter(|r| r.days >= DAYS_SEEN)
    }

    /// Environments to have warm at `now` for a daily rise: while one is due (its minute, a
    /// day later, begins within `lead` and [`EARLY`] of `now`, or has begun and not ended),
    /// the largest peak of it and of a rise in the minute after it, which is started with it.
    pub(super) fn expected(&self, now: Time, lead: Duration) -> u32 {
        let (now, ahead) = (secs(now), secs(lead + EARLY));
        let due = |r: &Rise, ahead| {
            let begins = r.begins_next_day();
            now + ahead >= begins && now < begins + 60
        };
        if !self.daily().any(|r| due(r, ahead)) {
            return 0;
        }
        self.daily()
            .filter(|r| due(r, ahead + 60))
            .map(|r| r.peak)
            .max()
            .unwrap_or(0)
    }

    /// When a daily rise's environments are next due (`lead` and [`EARLY`] before its minute
    /// a day later), if after `now`.
    pub(super) fn next_due(&self, now: Time, lead: Duration) -> Option<Time> {
        self.daily()
            .map(|r| r.begins_next_day() - secs(lead + EARLY))
            .filter(|&due| due > secs(now))
            .map(|due| Duration::from_secs(due as u64))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAD: Duration = Duration::from_secs(60);
    const MINUTE: Duration = Duration::from_secs(60);
    const S: Duration = Duration::from_secs(1);
    const HOUR: Duration = Duration::from_secs(3600);
    const A_DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_burst_seen_two_days_running_is_expected_at_its_minute_the_third() {
        let mut daily = DailyRises::default();
        let at = 4 * HOUR + Duration::from_secs(30);
        daily.record(at, 800, true, LEAD);
        daily.record(at + MINUTE, 961, true, LEAD);
        // Seen once: not expected the next day.
        assert_eq!(daily.expected(A_DAY + 4 * HOUR, LEAD), 0);
        assert_eq!(daily.next_due(A_DAY, LEAD), None);
        // The next day it comes again, a minute later than the day before.
        daily.record(A_DAY + at + MINUTE, 790, true, LEAD);
        daily.record(A_DAY + at + 2 * MINUTE, 950, true, LEAD);
        let begins = 2 * A_DAY + 4 * HOUR + MINUTE;
        let early = EARLY;
        // Due a lead and a minute before its minute, for both minutes at once.
        assert_eq!(
            daily.next_due(begins - LEAD - 2 * early, LEAD),
            Some(begins - LEAD - early)
        );
        assert_eq!(daily.expected(begins - LEAD - early, LEAD), 950);
        // Nothing before it is due, nor after the second minute.
        assert_eq!(daily.expected(begins - LEAD - early - S, LEAD), 0);
        assert_eq!(
            daily.expected(begins + MINUTE + Duration::from_secs(30), LEAD),
            950
        );
        assert_eq!(daily.expected(begins + 2 * MINUTE, LEAD), 0);
        assert_eq!(daily.next_due(begins + 2 * MINUTE, LEAD), None);
    }

    #[test]
    fn lone_or_warm_calls_are_no_rise() {
        let mut daily = DailyRises::default();
        daily.record(HOUR, 1, true, LEAD);
        daily.record(2 * HOUR, 30, false, LEAD);
        assert_eq!(daily, DailyRises::default());
    }

    #[test]
    fn a_rise_at_another_minute_the_next_day_is_not_daily() {
        let mut daily = DailyRises::default();
        daily.record(HOUR, 10, true, LEAD);
        daily.record(A_DAY + HOUR + 2 * MINUTE, 10, true, LEAD);
        assert_eq!(daily.next_due(A_DAY, LEAD), None);
    }

    #[test]
    fn a_rise_that_comes_back_is_expected_again_and_one_that_does_not_is_forgotten() {
        let mut daily = DailyRises::default();
        for day in 0..2 {
            daily.record(day * A_DAY + HOUR, 10, true, LEAD);
            daily.record(day * A_DAY + 2 * HOUR, 20, true, LEAD);
        }
        // The third day the first comes back, warm: expected the fourth; the second does not.
        assert_eq!(daily.expected(2 * A_DAY + 2 * HOUR, LEAD), 20);
        daily.record(2 * A_DAY + HOUR, 12, false, LEAD);
        assert_eq!(daily.expected(3 * A_DAY + HOUR, LEAD), 12);
        assert_eq!(daily.expected(3 * A_DAY + 2 * HOUR, LEAD), 0);
    }

    #[test]
    fn a_rise_is_handed_out_once_each_time_it_is_recorded_or_raised() {
        let mut daily = DailyRises::default();
        let at = HOUR + Duration::from_secs(5);
        daily.record(at, 3, true, LEAD);
        daily.record(at + S, 5, true, LEAD);
        assert_eq!(daily.take_unshared(), vec![(60, 5)]);
        assert_eq!(daily.take_unshared(), vec![]);
        // A lower peak in the same minute changes nothing; a higher one is handed out again.
        daily.record(at + 2 * S, 4, true, LEAD);
        assert_eq!(daily.take_unshared(), vec![]);
        daily.record(at + 3 * S, 7, true, LEAD);
        daily.record(at + 2 * HOUR, 2, true, LEAD);
        assert_eq!(daily.take_unshared(), vec![(60, 7), (180, 2)]);
    }

    #[test]
    fn rises_merged_in_their_order_are_expected_as_where_they_were_recorded() {
        // One gateway sees a burst two days running and keeps what it hands out; another,
        // started on the third day, merges that and expects the burst as the first would.
        let mut first = DailyRises::default();
        let mut kept = Vec::new();
        for day in 0..2 {
            first.record(day * A_DAY + 4 * HOUR, 40, true, LEAD);
            first.record(day * A_DAY + 9 * HOUR, 6, true, LEAD);
            kept.extend(first.take_unshared());
        }
        let mut second = DailyRises::default();
        second.merge(5, 1);
        for &(minute, peak) in &kept {
            second.merge(minute, peak);
        }
        let burst = 2 * A_DAY + 4 * HOUR;
        assert_eq!(second.expected(burst, LEAD), 40);
        assert_eq!(second.expected(burst, LEAD), first.expected(burst, LEAD));
        assert_eq!(
            second.next_due(2 * A_DAY, LEAD),
            first.next_due(2 * A_DAY, LEAD)
        );
        // A lone call is no rise, and what was merged is not handed out again.
        assert!(second.rises.iter().all(|r| r.peak >= 6));
        assert_eq!(second.take_unshared(), vec![]);
    }

    #[test]
    fn at_most_the_largest_rises_are_remembered() {
        let mut daily = DailyRises::default();
        for k in 0..(MOST_RISES as u32 + 10) {
            daily.record(k * 2 * MINUTE, 2 + k, true, LEAD);
        }
        assert_eq!(daily.rises.len(), MOST_RISES);
        assert!(daily.rises.iter().all(|r| r.peak >= 12));
    }
}
