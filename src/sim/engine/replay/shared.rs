//! Replicas sharing their attempts, replayed as the gateway shares them
//! (`gateway::exchange`): each replica's attempt starts and ends reach the others at the next
//! batch ([`SHARE_EVERY`]) and a millisecond of Redis later; then every other replica's
//! estimate takes an environment at a start and gives it back idle at an end (which may
//! release a request held there, on the one replica `taker_of` names), and every other
//! policy observes each end and counts the calls the others have in flight.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clock::Time;
use crate::policy::driver::{Attempt, Outcome};
use crate::policy::keepers::{taker_of, SHARE_EVERY};
use crate::policy::{FunctionId, Observation};

use super::Replay;

/// Redis's part of the way from one replica to another.
const TRANSIT: Duration = Duration::from_millis(1);

/// An attempt's start or end on its way to the other replicas.
pub(super) enum Shared {
    Start {
        from: usize,
        function: FunctionId,
        attempt: Attempt,
    },
    End {
        from: usize,
        function: FunctionId,
        attempt: Attempt,
        outcome: Outcome,
        observation: Observation,
        /// Whether the environment it freed took a request its own replica held.
        released: bool,
    },
}

/// The events on their way, by when they are heard (ties in the order they were sent).
#[derive(Default)]
pub(super) struct InTransit {
    events: BTreeMap<(Time, u64), Shared>,
    seq: u64,
    /// Per sender and function, its real calls in flight as the others last heard.
    pub(super) running: Vec<Vec<u32>>,
}

impl InTransit {
    /// For `replicas` replicas and `functions` functions, nothing on its way.
    pub(super) fn new(replicas: usize, functions: usize) -> Self {
        Self {
            running: vec![vec![0; functions]; replicas],
            ..Self::default()
        }
    }

    /// An event sent at `at`: heard after the next batch and the transit.
    pub(super) fn send(&mut self, at: Time, event: Shared) {
        let every = SHARE_EVERY.as_nanos();
        let batch = Duration::from_nanos(((at.as_nanos() / every + 1) * every) as u64);
        self.seq += 1;
        self.events.insert((batch + TRANSIT, self.seq), event);
    }

    pub(super) fn peek(&self) -> Option<Time> {
        self.events.keys().next().map(|&(at, _)| at)
    }

    fn pop(&mut self) -> Option<Shared> {
        self.events.pop_first().map(|(_, event)| event)
    }
}

impl Replay<'_> {
    /// The next event on its way is heard by the other replicas, now.
    pub(super) fn hear_next(&mut self) {
        let Some(event) = self.in_transit.pop() else {
            return;
        };
        let now = self.now;
        match event {
            Shared::Start {
                from,
                function: f,
                attempt,
            } => {
                let key = (from, f, attempt.target, attempt.started.id);
                let ping = attempt.started.ping;
                let others: Vec<_> = (0..self.replicas.len())
                    .filter(|&q| q != from)
                    .filter_map(|q| {
                        self.replicas[q].drivers[f]
                            .start_elsewhere(now, attempt.target, ping)
                            .map(|started| (q, started))
                    })
                    .collect();
                if !others.is_empty() {
                    self.elsewhere.insert(key, others);
                }
                if !ping {
                    self.in_transit.running[from][f] += 1;
                    self.tell_others_in_flight(from, f);
                }
            }
            Shared::End {
                from,
                function: f,
                attempt,
                outcome,
                observation,
                released,
            } => {
                // The environment freed goes to a request held on one other replica, if its
                // own held none.
                let taker = (!released)
                    .then(|| {
                        let ids = &self.replica_ids;
                        let names = ids.iter().map(String::as_str);
                        taker_of(&ids[from], attempt.started.id, names)
                            .and_then(|t| ids.iter().position(|id| id == t))
                    })
                    .flatten();
                let key = (from, f, attempt.target, attempt.started.id);
                for (q, started) in self.elsewhere.remove(&key).unwrap_or_default() {
                    let driver = &mut self.replicas[q].drivers[f];
                    let release = taker == Some(q);
                    if let Some((waiter, send)) =
                        driver.finish_elsewhere(now, attempt.target, &started, outcome, release)
                    {
                        let duration = self.held.remove(&(q, f, waiter)).expect("held");
                        self.dispatch(q, f, send, duration);
                    }
                }
                for q in (0..self.replicas.len()).filter(|&q| q != from) {
                    let replica = &mut self.replicas[q];
                    replica.policy.observe(&observation);
                    replica.refresh_wake();
                }
                if !attempt.started.ping {
                    let running = &mut self.in_transit.running[from][f];
                    *running = running.saturating_sub(1);
                    self.tell_others_in_flight(from, f);
                }
            }
        }
        self.something_happened();
    }

    /// The calls of `f` in flight across the replicas as replica `q` knows them: its own,
    /// and the others' as last heard.
    pub(super) fn fleet_in_flight(&self, q: usize, f: FunctionId) -> u32 {
        let here = self.replicas[q].drivers[f].running();
        let heard: u32 = (0..self.replicas.len())
            .filter(|&r| r != q)
            .map(|r| self.in_transit.running[r][f])
            .sum();
        here + heard
    }

    /// Every replica but `from` hears its count of `f` in flight change. Clients that call
    /// Lambda directly are counted by no replica, so neither is told.
    fn tell_others_in_flight(&mut self, from: usize, f: FunctionId) {
        if !self.traffic.through_gateway() {
            return;
        }
        for q in (0..self.replicas.len()).filter(|&q| q != from) {
            let total = self.fleet_in_flight(q, f);
            let replica = &mut self.replicas[q];
            replica.policy.in_flight(f, total, self.now);
            replica.refresh_wake();
        }
    }
}
