//! Attempts in flight in the replay, waiting for their completion time.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::clock::Time;
use crate::policy::driver::{Attempt, Outcome, PingReason};
use crate::policy::FunctionId;

/// What the engine sends: a real request with its handler duration, or a keep-alive ping,
/// with the hold it asks for (one of a round) or none.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sent {
    Real(Duration),
    /// A ping: the hold it asks for (one of a round of several), and why it was sent.
    Ping {
        hold: Option<Duration>,
        reason: PingReason,
    },
}

/// An attempt waiting for its completion time, with how it ended.
pub(super) struct Pending {
    pub(super) at: Time,
    seq: u64,
    /// The gateway replica that sent it.
    pub(super) replica: usize,
    pub(super) function: FunctionId,
    pub(super) attempt: Attempt,
    pub(super) outcome: Outcome,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Attempts in completion order (ties in the order they were made).
#[derive(Default)]
pub(super) struct Completions {
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
}

impl Completions {
    pub(super) fn push(
        &mut self,
        at: Time,
        replica: usize,
        function: FunctionId,
        attempt: Attempt,
        outcome: Outcome,
    ) {
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            at,
            seq: self.seq,
            replica,
            function,
            attempt,
            outcome,
        }));
    }

    pub(super) fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(p)| p.at)
    }

    pub(super) fn pop(&mut self) -> Option<Pending> {
        self.heap.pop().map(|Reverse(p)| p)
    }
}
