//! The planner's replica of one function's execution environments: which it thinks idle
//! (in Lambda's most-recently-idle-first reuse order) or busy, and when each was created.
//! Fed by every real observation, by the planner's own pings and, where the driver sees calls
//! leave (the gateway), by each call's start.

use std::time::Duration;

use crate::clock::Time;
use crate::policy::{round_hold, ROUND_HOLD};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Idle {
    pub(super) since: Time,
    /// When it was created (its init began), as far as the planner saw.
    pub(super) born: Time,
    /// When real traffic last left it (`None`: a ping made it and no call has used it).
    pub(super) used: Option<Time>,
}

/// An environment the replica thinks busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Busy {
    pub(super) until: Time,
    /// With a real execution rather than a ping.
    pub(super) real: bool,
    pub(super) born: Time,
    /// When real traffic last left it before (see [`Idle::used`]).
    pub(super) used: Option<Time>,
    /// An open call: the driver saw it start at this time and its end is not reported yet
    /// (`until` is then [`Time::MAX`]).
    pub(super) open: Option<Time>,
}

/// The planner's replica of one function's environments.
#[derive(Debug, Clone, Default)]
pub(super) struct Envs {
    /// Environments thought idle, by idle-since time ascending (the last is reused first).
    pub(super) idle: Vec<Idle>,
    pub(super) busy: Vec<Busy>,
    /// Pings of the latest round sent to start new environments, whose cold starts are not
    /// yet seen.
    pub(super) expected_cold_pings: u32,
    /// Calls that found an environment only pings had kept ([`Envs::kept_only_by_pings`]),
    /// by the real executions running then, themselves included: what the rounds bought,
    /// drained by the planner.
    pub(super) saves: Vec<u32>,
}

/// Traffic alone keeps an environment at least this long (Lambda's shortest idle time, as
/// `WarmerConfig::min_lifetime` assumes by default); a call that finds one idle longer since
/// traffic left it, or one a ping made, was spared a cold start by the pings.
const TRAFFIC_KEEPS: Duration = Duration::from_secs(300);

/// How far apart the replica's start of an environment and the one an end report gives may
/// be: the replica dates an environment by the call or ping that started it, the report by
/// the environment's own start (ARCHITECTURE.md, "Environment ends"), a few milliseconds
/// later, less what the report's age lost in transit.
const BORN_WITHIN: Duration = Duration::from_secs(1);

impl Envs {
    /// Environments whose work ended by `t` are idle from then.
    pub(super) fn release(&mut self, t: Time) {
        let mut freed = false;
        self.busy.retain(|b| {
            let done = b.until <= t;
            if done {
                self.idle.push(Idle {
                    since: b.until,
                    born: b.born,
                    used: if b.real { Some(b.until) } else { b.used },
                });
                freed = true;
            }
            !done
        });
        if freed {
            self.idle.sort_unstable_by_key(|e| e.since);
        }
    }

    pub(super) fn forget(&mut self, now: Time, max_idle: Duration) {
        self.idle.retain(|e| e.since + max_idle > now);
    }

    /// A real execution from `at` to `until`; returns the real executions running at `at`,
    /// itself included (pings are not demand).
    fn start(&mut self, at: Time, until: Time, cold: bool) -> u32 {
        self.release(at);
        let (born, spared) = if cold {
            // Lambda reuses any idle environment: none was left.
            self.idle.retain(|e| e.since > at);
            (at, false)
        } else {
            // One the replica never saw made (it predates the planner) counts as new.
            let (taken, spared) = self.take(at);
            (taken.map_or(at, |e| e.born), spared)
        };
        self.busy.push(Busy {
            until,
            real: true,
            born,
            used: None,
            open: None,
        });
        let running = self.running_at(at);
        if spared {
            self.saves.push(running);
        }
        running
    }

    /// A call at `at` takes the most recently idle environment; with it, whether only pings
    /// had kept every idle one, so that the call would have met a cold start without them.
    /// (A ping makes the environment it refreshes the most recently idle, so the one taken
    /// says nothing alone.)
    fn take(&mut self, at: Time) -> (Option<Idle>, bool) {
        // From the most recently idle, the likeliest kept by traffic: a busy function's
        // calls stop at the first.
        let spared = self
            .idle
            .iter()
            .rev()
            .all(|e| Self::kept_only_by_pings(e, at));
        let taken = self.idle.pop();
        let spared = spared && taken.is_some();
        (taken, spared)
    }

    /// Whether pings, not traffic, kept `e` warm until `at`: a ping made it, or traffic left
    /// it longer ago than Lambda surely keeps an idle environment.
    fn kept_only_by_pings(e: &Idle, at: Time) -> bool {
        e.used.is_none_or(|u| u + TRAFFIC_KEEPS <= at)
    }

    /// Real executions running at `at`.
    fn running_at(&self, at: Time) -> u32 {
        self.busy
            .iter()
            .filter(|b| b.real && b.until > at && b.open.is_none_or(|s| s <= at))
            .count() as u32
    }

    /// The calls seen starting whose end is not reported yet.
    pub(super) fn open_calls(&self) -> u32 {
        self.busy.iter().filter(|b| b.open.is_some()).count() as u32
    }

    fn earliest_open(&self) -> Option<usize> {
        (0..self.busy.len())
            .filter(|&i| self.busy[i].open.is_some())
            .min_by_key(|&i| self.busy[i].open)
    }

    /// The driver saw a call start at `at`: Lambda gives it the most recently idle
    /// environment (or starts one), busy until the call's end is reported. Without this, a
    /// call longer than a refresh interval left its environment listed idle with an old
    /// idle time, and rounds every minute pinged it.
    pub(super) fn call_started(&mut self, at: Time) {
        self.release(at);
        let (taken, spared) = self.take(at);
        self.busy.push(Busy {
            until: Time::MAX,
            real: true,
            born: taken.map_or(at, |e| e.born),
            used: None,
            open: Some(at),
        });
        if spared {
            let running = self.busy.iter().filter(|b| b.real).count() as u32;
            self.saves.push(running);
        }
    }

    /// A call that started at `at` ended at `until` (`cold`: it met a cold start); returns
    /// the real executions running at `at`. It closes the earliest open call (which
    /// environment each call holds is not known, only how many), or, with none open (a
    /// driver that does not see calls leave), applies the whole call as [`Envs::start`].
    pub(super) fn call_ended(&mut self, at: Time, until: Time, cold: bool) -> u32 {
        let Some(i) = self.earliest_open() else {
            return self.start(at, until, cold);
        };
        if cold {
            // As in `start`: no environment was idle then.
            self.idle.retain(|e| e.since > at);
            self.busy[i].born = at;
        }
        self.busy[i].until = until;
        self.busy[i].open = None;
        self.running_at(at)
    }

    /// Open calls beyond the `running` the driver counts ended without a report that reached
    /// the replica (a throttle, a failed attempt): their environments are idle from `now`.
    pub(super) fn close_unreported(&mut self, running: u32, now: Time) {
        for _ in running..self.open_calls() {
            let Some(i) = self.earliest_open() else {
                break;
            };
            self.busy[i].until = now;
            self.busy[i].open = None;
        }
        self.release(now);
    }

    /// The idle environments a round of `count` pings reaches while about `in_flight` real
    /// executions the replica did not see start run. It learns of those only as they
    /// complete, so they hold the most recently used environments, which it lists as idle:
    /// the pings pass them by and reach the ones below.
    fn reached(&self, count: u32, in_flight: u32) -> std::ops::Range<usize> {
        let below = self.idle.len().saturating_sub(in_flight as usize);
        below - (count as usize).min(below)..below
    }

    /// `count` concurrent pings at `now`, while about `in_flight` real executions run (see
    /// [`Envs::reached`]); pings beyond the environments reached start new ones.
    pub(super) fn ping(&mut self, now: Time, count: u32, in_flight: u32) {
        self.release(now);
        let reached = self.reached(count, in_flight);
        let fresh = count as usize - reached.len();
        // Rounds are minutes apart and a ping's cold start is seen within seconds: the count
        // is the latest round's, so that a miscount cannot outlive it.
        self.expected_cold_pings = fresh as u32;
        // Each is counted busy for a round's hold (a lone ping returns sooner; the replica
        // sees its environment idle 0.1 s late).
        let until = now + round_hold(ROUND_HOLD, count);
        self.busy.extend(self.idle.drain(reached).map(|e| Busy {
            until,
            real: false,
            born: e.born,
            used: e.used,
            open: None,
        }));
        self.busy.extend(std::iter::repeat_n(
            Busy {
                until,
                real: false,
                born: now,
                used: None,
                open: None,
            },
            fresh,
        ));
    }

    /// An environment that started at `born` ended by `now`: the idle one started nearest
    /// then, within [`BORN_WITHIN`], is forgotten. Whether one was.
    pub(super) fn ended(&mut self, born: Time, now: Time) -> bool {
        self.release(now);
        let apart = |e: &Idle| e.born.max(born) - e.born.min(born);
        let nearest = (0..self.idle.len())
            .filter(|&i| apart(&self.idle[i]) <= BORN_WITHIN)
            .min_by_key(|&i| apart(&self.idle[i]));
        nearest.map(|i| self.idle.remove(i)).is_some()
    }

    /// The creation time of the oldest of the `keep` most recently used environments (busy
    /// ones first).
    pub(super) fn oldest_kept(&self, keep: usize) -> Option<Time> {
        let idle = keep.saturating_sub(self.busy.len()).min(self.idle.len());
        self.busy
            .iter()
            .map(|b| b.born)
            .chain(self.idle[self.idle.len() - idle..].iter().map(|e| e.born))
            .min()
    }

    /// Forgets the oldest of the `keep` most recently used environments, once a round has
    /// started its successor. Busy, it ends at its lifetime cap when it next goes idle; idle,
    /// the successor (whose ping ends last, after its init) is reused before it, so it falls
    /// out of the environments the next rounds reach and idles out.
    pub(super) fn retire_oldest(&mut self, keep: usize) {
        let idle = keep.saturating_sub(self.busy.len()).min(self.idle.len());
        let from = self.idle.len() - idle;
        let oldest_busy = (0..self.busy.len()).min_by_key(|&i| self.busy[i].born);
        let oldest_idle = (from..self.idle.len()).min_by_key(|&i| self.idle[i].born);
        match (oldest_busy, oldest_idle) {
            (Some(b), Some(i)) if self.idle[i].born < self.busy[b].born => {
                self.idle.remove(i);
            }
            (Some(b), _) => {
                self.busy.swap_remove(b);
            }
            (None, Some(i)) => {
                self.idle.remove(i);
            }
            (None, None) => {}
        }
    }

    /// The latest round reached `missed` fewer environments than it had pings (two pings
    /// took the same one): forgets as many of those the pings were thought to reach, the
    /// newest first (a ping that would have started one found another free instead).
    pub(super) fn missed(&mut self, missed: u32) {
        for _ in 0..missed {
            let newest_busy = (0..self.busy.len())
                .filter(|&i| !self.busy[i].real)
                .max_by_key(|&i| self.busy[i].born);
            let newest_idle = (0..self.idle.len()).max_by_key(|&i| self.idle[i].born);
            match (newest_busy, newest_idle) {
                (Some(b), Some(i)) if self.idle[i].born > self.busy[b].born => {
                    self.idle.remove(i);
                }
                (Some(b), _) => {
                    self.busy.swap_remove(b);
                }
                (None, Some(i)) => {
                    self.idle.remove(i);
                }
                (None, None) => break,
            }
        }
        // The cold starts of pings it sent to start environments are seen by now.
        self.expected_cold_pings = self.expected_cold_pings.saturating_sub(missed);
    }

    /// A ping met a cold start. Unless the planner sent it to start a new environment, the
    /// environment it expected had gone (most likely the oldest, at the end of its
    /// lifetime), and a new one stands in its place.
    pub(super) fn cold_ping(&mut self, at: Time) {
        if self.expected_cold_pings > 0 {
            self.expected_cold_pings -= 1;
            return;
        }
        let oldest = self
            .idle
            .iter_mut()
            .map(|e| &mut e.born)
            .chain(self.busy.iter_mut().map(|b| &mut b.born))
            .min_by_key(|born| **born);
        if let Some(born) = oldest {
            *born = (*born).max(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);
    #[test]
    fn pings_pass_the_environments_in_flight_and_refresh_the_ones_below() {
        let now = 10 * MIN;
        let idle = |since| Idle {
            since,
            born: Duration::ZERO,
            used: Some(since),
        };
        let mut envs = Envs {
            idle: vec![idle(now - 290 * S); 3]
                .into_iter()
                .chain([idle(now - 60 * S); 2])
                .chain([idle(now - S); 4])
                .collect(),
            ..Envs::default()
        };
        // Four executions in flight hold the four most recent; five pings reach the five
        // below them, the oldest three included.
        envs.ping(now, 5, 4);
        assert_eq!(envs.idle, vec![idle(now - S); 4]);
        assert_eq!(envs.busy.len(), 5);
        // More pings than idle environments below the busy ones start new environments.
        let mut fresh = Envs {
            idle: vec![idle(now - 60 * S); 2],
            ..Envs::default()
        };
        fresh.ping(now, 3, 1);
        assert_eq!(fresh.idle, vec![idle(now - 60 * S)]);
        assert_eq!(fresh.busy.len(), 3);
    }

    #[test]
    fn a_call_seen_starting_holds_its_environment_until_its_end_is_reported() {
        let now = 10 * MIN;
        let idle = |since, born| Idle {
            since,
            born,
            used: Some(since),
        };
        let mut envs = Envs {
            idle: vec![idle(now - 200 * S, MIN), idle(now - 100 * S, 2 * MIN)],
            ..Envs::default()
        };
        // The call takes the most recently idle environment; a round of one then reaches the
        // other, with no calls left to pass.
        envs.call_started(now);
        assert_eq!(envs.idle, vec![idle(now - 200 * S, MIN)]);
        assert_eq!(envs.open_calls(), 1);
        assert_eq!(envs.reached(1, 0), 0..1);
        // Its end, reported 10 minutes later, closes it: idle from then, born as before.
        let end = now + 10 * MIN;
        assert_eq!(envs.call_ended(now, end, false), 1);
        envs.release(end);
        assert_eq!(envs.open_calls(), 0);
        assert_eq!(envs.idle.last(), Some(&idle(end, 2 * MIN)));
        // A call that met a cold start was given a new environment: none was idle then.
        envs.call_started(end + S);
        envs.call_ended(end + S, end + 2 * S, true);
        envs.release(end + 2 * S);
        assert_eq!(envs.idle, vec![idle(end + 2 * S, end + S)]);
        // With no call seen starting (a driver that does not count them), the whole call
        // is applied at its end.
        assert_eq!(envs.call_ended(end + 3 * S, end + 4 * S, false), 1);
        assert!(envs.idle.is_empty());
    }

    #[test]
    fn a_call_that_finds_only_environments_pings_kept_was_spared_a_cold_start() {
        let now = 30 * MIN;
        let idle = |since, used| Idle {
            since,
            born: Duration::ZERO,
            used,
        };
        // Two environments traffic left 10 minutes ago, refreshed by a round a minute ago,
        // and one traffic left 2 minutes ago.
        let mut envs = Envs {
            idle: vec![
                idle(now - 2 * MIN, Some(now - 2 * MIN)),
                idle(now - MIN, Some(now - 10 * MIN)),
                idle(now - MIN, Some(now - 10 * MIN)),
            ],
            ..Envs::default()
        };
        // The first two calls take the refreshed ones (Lambda's order), but traffic alone
        // would have kept an environment for each: nothing spared.
        envs.call_started(now);
        envs.call_started(now);
        assert_eq!(envs.saves, Vec::<u32>::new());
        // A third finds the one traffic keeps: nothing spared either.
        envs.call_started(now);
        assert_eq!(envs.saves, Vec::<u32>::new());
        // A fourth finds only the environment a ping made: spared, with four running.
        envs.ping(now, 1, 0);
        envs.release(now + MIN);
        envs.call_started(now + MIN);
        assert_eq!(envs.saves, vec![4]);
        // Replayed from calls' ends (no start seen), the same.
        let mut direct = Envs::default();
        direct.ping(now, 1, 0);
        direct.release(now + MIN);
        assert_eq!(direct.call_ended(now + MIN, now + 2 * MIN, false), 1);
        assert_eq!(direct.saves, vec![1]);
    }

    #[test]
    fn open_calls_the_driver_no_longer_counts_are_closed() {
        let now = 10 * MIN;
        let mut envs = Envs::default();
        for _ in 0..3 {
            envs.call_started(now);
        }
        // Two ended without a report (say, throttled): their environments idle from now.
        envs.close_unreported(1, now + MIN);
        assert_eq!(envs.open_calls(), 1);
        assert_eq!(envs.idle.len(), 2);
        assert!(envs.idle.iter().all(|e| e.since == now + MIN));
    }

    #[test]
    fn a_ping_that_met_a_cold_start_renews_the_oldest_environment_unless_it_was_meant_to() {
        let now = 200 * MIN;
        let mut envs = Envs {
            idle: vec![
                Idle {
                    since: now - 60 * S,
                    born: Duration::ZERO,
                    used: None,
                },
                Idle {
                    since: now - S,
                    born: 100 * MIN,
                    used: None,
                },
            ],
            ..Envs::default()
        };
        // A round of three: two reach the idle environments, one is meant to start a new one.
        envs.ping(now, 3, 0);
        envs.cold_ping(now);
        let mut born: Vec<_> = envs.busy.iter().map(|b| b.born).collect();
        born.sort();
        assert_eq!(born, vec![Duration::ZERO, 100 * MIN, now]);
        // A second cold start was not meant: the oldest environment had ended.
        envs.cold_ping(now);
        let oldest = envs.busy.iter().map(|b| b.born).min();
        assert_eq!(oldest, Some(100 * MIN));
    }

    #[test]
    fn a_round_that_missed_environments_forgets_the_newest_it_meant_to_reach() {
        let now = 200 * MIN;
        let old = Idle {
            since: now - 60 * S,
            born: Duration::ZERO,
            used: Some(now - 60 * S),
        };
        let mut envs = Envs {
            idle: vec![old],
            ..Envs::default()
        };
        // A round of four meant to refresh the one and start three.
        envs.ping(now, 4, 0);
        assert_eq!(envs.expected_cold_pings, 3);
        envs.cold_ping(now);
        // Its answers named two environments: two of the new ones were never started.
        envs.missed(2);
        let mut kept: Vec<_> = envs.busy.iter().map(|b| b.born).collect();
        kept.sort();
        assert_eq!(kept, vec![Duration::ZERO, now]);
        assert_eq!(envs.expected_cold_pings, 0);
        // Missing more than it holds forgets the pings' environments, never a call's.
        envs.call_started(now);
        envs.missed(5);
        assert_eq!(envs.busy.len(), 1);
        assert!(envs.busy[0].real);
    }

    #[test]
    fn an_end_report_forgets_the_environment_started_nearest_then() {
        let idle = |since, born| Idle {
            since,
            born,
            used: Some(since),
        };
        let mut envs = Envs {
            idle: vec![
                idle(60 * S, 10 * S),
                idle(70 * S, 20 * S),
                idle(80 * S, 30 * S),
            ],
            ..Envs::default()
        };
        // Started 20.4 s in, as the report dates it: the one the replica dates at 20 s.
        assert!(envs.ended(Duration::from_millis(20_400), 90 * S));
        let borns: Vec<_> = envs.idle.iter().map(|e| e.born).collect();
        assert_eq!(borns, vec![10 * S, 30 * S]);
        // More than a second from any: none.
        assert!(!envs.ended(25 * S, 90 * S));
        assert_eq!(envs.idle.len(), 2);
    }
}
