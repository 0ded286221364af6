//! The expected wait for a busy environment: when the requests in flight are expected to free
//! theirs, from the tail of recent handler durations and the inits in flight, and which waiter
//! each one then serves ([`queue_wait`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::{Pool, Started};
use crate::clock::Time;

/// Handler durations kept for the expected wait.
pub(super) const RECENT_DURATIONS: usize = 32;

/// When the `position`-th waiter (0: the first) gets an environment, first come first
/// served, if environments free up after `frees` and each waiter then holds its own for
/// `duration`: the (position + 1)-th smallest of `free + j * duration` over every free time
/// and j >= 0. `None` when nothing is expected to free up. (One slow environment, such as a
/// cold start in flight, does not hold up the waiters that the quick ones serve in turn.)
pub fn queue_wait(frees: &[Duration], duration: Duration, position: usize) -> Option<Duration> {
    let mut next: BinaryHeap<Reverse<Duration>> = frees.iter().copied().map(Reverse).collect();
    for _ in 0..position {
        let Reverse(free) = next.pop()?;
        next.push(Reverse(free + duration));
    }
    next.peek().map(|Reverse(free)| *free)
}

/// An exponentially weighted moving average with a starting guess.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ewma {
    pub(super) value: f64,
}

impl Ewma {
    const ALPHA: f64 = 0.2;
    pub(super) fn update(&mut self, sample: Duration) {
        self.value += Self::ALPHA * (sample.as_secs_f64() - self.value);
    }
    pub(super) fn get(self) -> Duration {
        Duration::from_secs_f64(self.value.max(0.0))
    }
}

impl Pool {
    /// How much longer `started`, in flight at `now`, is expected to hold its environment:
    /// the mean excess over its elapsed time of the recent handler durations that exceed it
    /// (durations are heavy-tailed: a request that has run long will likely run longer),
    /// after the init if it was expected to start cold; a ping, its smoothed duration. `None`
    /// when it has outrun every recent duration: nothing says it will end soon.
    fn expected_remaining(&self, started: &Started, now: Time) -> Option<Duration> {
        let init = if started.expected.is_none() && !started.provisioned {
            self.init.get()
        } else {
            Duration::ZERO
        };
        let elapsed = now.saturating_sub(started.at);
        if started.ping {
            let total = init + self.ping_duration.get();
            return (total > elapsed).then(|| total - elapsed);
        }
        // Before any request ended here, the starting guess.
        let guess = self.recent.is_empty().then(|| self.duration.get());
        let (sum, count) = self
            .recent
            .iter()
            .copied()
            .chain(guess)
            .map(|d| init + d)
            .filter(|&total| total > elapsed)
            .fold((Duration::ZERO, 0u32), |(sum, n), total| {
                (sum + (total - elapsed), n + 1)
            });
        (count > 0).then(|| sum / count)
    }

    /// The expected wait until one of the requests in flight frees its environment, for the
    /// `position`-th waiter (0: the first), or `None` if none is expected to end soon.
    pub fn expected_wait(&self, now: Time, position: usize) -> Option<Duration> {
        let frees: Vec<Duration> = self
            .in_flight
            .iter()
            .filter_map(|s| self.expected_remaining(s, now))
            .collect();
        queue_wait(&frees, self.duration.get(), position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Start;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn expected_wait_is_the_next_completion() {
        let mut pool = Pool::default();
        let s = pool.start(Duration::ZERO);
        pool.complete(
            Duration::from_millis(100),
            &s,
            Some(Start::Cold),
            Duration::from_millis(100),
            Some(S),
        );
        // Duration estimate moves toward 100 ms from its 100 ms start.
        let _a = pool.start(Duration::from_secs(1));
        let wait = pool.expected_wait(Duration::from_millis(1040), 0).unwrap();
        assert_eq!(wait, Duration::from_millis(60));
        let second = pool.expected_wait(Duration::from_millis(1040), 1).unwrap();
        assert_eq!(second, Duration::from_millis(160));
    }

    const MS: Duration = Duration::from_millis(1);

    /// A pool that has seen `durations` end (each a warm request after the first, cold).
    fn pool_after(durations: &[Duration]) -> Pool {
        let mut pool = Pool::default();
        let mut now = Duration::ZERO;
        for &d in durations {
            let s = pool.start(now);
            now += d;
            let met = if s.expected.is_some() {
                Some(Start::Warm)
            } else {
                Some(Start::Cold)
            };
            pool.complete(now, &s, met, d, (met == Some(Start::Cold)).then_some(2 * S));
            now += S;
        }
        pool
    }

    #[test]
    fn waiters_are_served_in_turn_by_the_quick_environments_first() {
        let frees = [60 * MS, 2080 * MS];
        assert_eq!(queue_wait(&frees, 100 * MS, 0), Some(60 * MS));
        assert_eq!(queue_wait(&frees, 100 * MS, 2), Some(260 * MS));
        // Twenty-one waiters go through the quick one before the slow one frees.
        assert_eq!(queue_wait(&frees, 100 * MS, 20), Some(2060 * MS));
        assert_eq!(queue_wait(&frees, 100 * MS, 21), Some(2080 * MS));
        assert_eq!(queue_wait(&[], 100 * MS, 0), None);
    }

    #[test]
    fn a_request_that_outran_every_recent_duration_is_not_expected_to_end_soon() {
        let mut pool = pool_after(&[100 * MS; 8]);
        let now = 60 * S;
        let _long = pool.start(now);
        assert_eq!(pool.expected_wait(now + 50 * MS, 0), Some(50 * MS));
        // Past every duration seen, nothing says when it ends: better not to wait on it.
        assert_eq!(pool.expected_wait(now + 500 * MS, 0), None);
    }

    #[test]
    fn a_long_request_is_expected_to_run_on() {
        let mut durations = vec![100 * MS; 8];
        durations.extend([1000 * MS; 8]);
        let mut pool = pool_after(&durations);
        let now = 60 * S;
        let _r = pool.start(now);
        // At 50 ms: half the durations end in 50 ms, half in 950: 500 on average.
        assert_eq!(pool.expected_wait(now + 50 * MS, 0), Some(500 * MS));
        // At 200 ms it is one of the long ones: 800 ms to go, not "overdue, any moment".
        assert_eq!(pool.expected_wait(now + 200 * MS, 0), Some(800 * MS));
    }

    #[test]
    fn a_cold_start_in_flight_frees_after_its_init() {
        let mut pool = pool_after(&[100 * MS]);
        // The one environment is taken; the next request starts cold (init seen: 2 s).
        let now = 10 * S;
        let warm = pool.start(now);
        let cold = pool.start(now);
        assert!(warm.expected.is_some() && cold.expected.is_none());
        let init = pool.view(now).expected_init;
        assert!(init > S);
        // The warm one frees first and serves the next waiters in turn, well before the
        // cold one's init is over.
        assert_eq!(pool.expected_wait(now, 0), Some(100 * MS));
        assert_eq!(pool.expected_wait(now, 2), Some(300 * MS));
        // Alone, the cold one frees after its init and a duration.
        let mut fresh = Pool::default();
        let cold = fresh.start(now);
        assert!(cold.expected.is_none());
        let init = fresh.view(now).expected_init;
        assert_eq!(fresh.expected_wait(now, 0), Some(init + 100 * MS));
    }

    #[test]
    fn pings_do_not_teach_the_handlers_duration() {
        let mut pool = pool_after(&[S; 32]);
        let mut now = 120 * S;
        for _ in 0..40 {
            let ping = pool.start_ping(now);
            assert!(ping.ping);
            pool.complete(now + MS, &ping, Some(Start::Warm), MS, None);
            now += 10 * S;
        }
        let smoothed = pool.view(now).expected_duration;
        assert!(smoothed > 990 * MS, "{smoothed:?}");
        // A real request half-way through is expected to end in half a second, though the
        // last forty durations seen here were pings of 1 ms.
        let _real = pool.start(now);
        assert_eq!(pool.expected_wait(now + S / 2, 0), Some(S / 2));
        // A ping in flight frees its environment after a ping's time.
        let mut pinged = pool_after(&[S; 4]);
        let ping = pinged.start_ping(now);
        pinged.complete(now + MS, &ping, Some(Start::Warm), MS, None);
        let _ping = pinged.start_ping(now + S);
        let wait = pinged.expected_wait(now + S, 0).unwrap();
        assert!(wait < 100 * MS, "{wait:?}");
    }
}
