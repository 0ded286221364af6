//! Clocks: where "now" comes from.
//!
//! Policy and platform code never read the wall clock (ARCHITECTURE.md invariant 1): they take a
//! [`Time`] as an argument. The async shells that drive them (the emulator, the warmer) get
//! `now` from a [`Clock`], which is either tokio's clock, optionally sped up, or a
//! [`ManualClock`] that a test or the simulator moves by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// A point in time, as the time elapsed since its clock's origin.
///
/// A plain `Duration` keeps arithmetic simple and lets the simulator start every replay at
/// zero; the clock that produced it gives it meaning.
pub type Time = Duration;

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of `now` that can also wait.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Time;
    /// Resolves once `duration` of this clock's time has passed.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;

/// tokio's clock, optionally sped up by a time scale.
///
/// Built on `tokio::time`, so tests with paused time (`start_paused = true`,
/// `tokio::time::advance`) move it without sleeping. With `scale` = 60 one real second counts
/// as one minute: demos and load tests see idle reclaim in seconds.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    scale: f64,
}

impl TokioClock {
    /// A clock at real speed whose origin is now.
    pub fn new() -> Self {
        Self::scaled(1.0)
    }

    /// A clock that runs `scale` times faster than real time.
    ///
    /// # Panics
    /// If `scale` is not a positive finite number; configuration validates it first.
    pub fn scaled(scale: f64) -> Self {
        assert!(
            scale.is_finite() && scale > 0.0,
            "time scale must be positive"
        );
        Self {
            origin: tokio::time::Instant::now(),
            scale,
        }
    }

    /// The time scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Time {
        let real = self.origin.elapsed();
        if self.scale == 1.0 {
            real
        } else {
            real.mul_f64(self.scale)
        }
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let real = if self.scale == 1.0 {
            duration
        } else {
            duration.div_f64(self.scale)
        };
        Box::pin(tokio::time::sleep(real))
    }
}

/// A clock that moves only when told to: for the simulator and for tests of policy shells.
///
/// `sleep` resolves when [`ManualClock::advance`] or [`ManualClock::set`] moves time past
/// its deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: Mutex<Time>,
    moved: watch::Sender<Time>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Time) -> Self {
        let (moved, _) = watch::channel(start);
        Self {
            inner: Arc::new(ManualInner {
                now: Mutex::new(start),
                moved,
            }),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.inner.now.lock();
        *now += by;
        self.inner.moved.send_replace(*now);
    }

    /// Moves time to `to`; time never goes back, so an earlier `to` is ignored.
    pub fn set(&self, to: Time) {
        let mut now = self.inner.now.lock();
        if to > *now {
            *now = to;
            self.inner.moved.send_replace(to);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        *self.inner.now.lock()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now() + duration;
        let mut moved = self.inner.moved.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone nobody can move time, so
            // resolving is the only answer that does not hang forever.
            let _ = moved.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_scales_paused_time() {
        let clock = TokioClock::scaled(60.0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.now().as_secs(), 120);
        let before = tokio::time::Instant::now();
        clock.sleep(Duration::from_secs(60)).await;
        assert_eq!(before.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn manual_clock_sleep_resolves_when_advanced_past_deadline() {
        let clock = ManualClock::new(Duration::ZERO);
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(10)));
        clock.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleep resolves once the deadline passes")
            .unwrap();
        clock.set(Duration::from_secs(3));
        assert_eq!(clock.now(), Duration::from_secs(10), "time never goes back");
    }
}
