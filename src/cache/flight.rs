//! Coalescing: identical requests in flight at once share one invocation. The first starts
//! it as a task of its own, so that no waiter, the first included, cancels it by going away;
//! every waiter gets a clone of its one result, a failure included.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;

/// The invocations in flight, by key.
pub struct Flights<K, T: Clone> {
    flying: Mutex<HashMap<K, Shared<BoxFuture<'static, T>>>>,
}

/// A request's part in a flight.
pub enum Joined<T: Clone> {
    /// It started the invocation.
    Led(Shared<BoxFuture<'static, T>>),
    /// It shares one already in flight.
    Followed(Shared<BoxFuture<'static, T>>),
}

impl<T: Clone> Joined<T> {
    pub fn led(&self) -> bool {
        matches!(self, Joined::Led(_))
    }

    /// The flight's result.
    pub async fn result(self) -> T {
        match self {
            Joined::Led(flight) | Joined::Followed(flight) => flight.await,
        }
    }
}

impl<K, T> Flights<K, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            flying: Mutex::new(HashMap::new()),
        })
    }

    /// Joins the flight for `key`, or starts one: `spawn` is given the work (which lands the
    /// flight when it ends) and must run it as a task, returning a future of its result.
    pub fn join<W, S, F>(self: &Arc<Self>, key: K, work: W, spawn: S) -> Joined<T>
    where
        W: Future<Output = T> + Send + 'static,
        S: FnOnce(BoxFuture<'static, T>) -> F,
        F: Future<Output = T> + Send + 'static,
    {
        let mut flying = self.flying.lock();
        if let Some(flight) = flying.get(&key) {
            return Joined::Followed(flight.clone());
        }
        let flights = self.clone();
        let landing = key.clone();
        let task = spawn(
            async move {
                let result = work.await;
                flights.flying.lock().remove(&landing);
                result
            }
            .boxed(),
        );
        let flight = task.boxed().shared();
        flying.insert(key, flight.clone());
        Joined::Led(flight)
    }

    /// Flights under way.
    pub fn len(&self) -> usize {
        self.flying.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn spawn(
        work: BoxFuture<'static, Result<u32, String>>,
    ) -> BoxFuture<'static, Result<u32, String>> {
        let handle = tokio::spawn(work);
        async move { handle.await.unwrap_or_else(|e| Err(e.to_string())) }.boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_identical_requests_run_once() {
        let flights = Flights::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let joined: Vec<_> = (0..100)
            .map(|_| {
                let runs = runs.clone();
                let work = async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(7)
                };
                flights.join("k", work, spawn)
            })
            .collect();
        assert_eq!(joined.iter().filter(|j| j.led()).count(), 1);
        for j in joined {
            assert_eq!(j.result().await, Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty(), "a landed flight is gone");
        // The next request starts a new one.
        assert!(flights.join("k", async { Ok(8) }, spawn).led());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_reaches_every_waiter() {
        let flights = Flights::new();
        let work = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err::<u32, _>("throttled".to_string())
        };
        let a = flights.join(1, work, spawn);
        let b = flights.join(1, async { Ok(0) }, spawn);
        assert!(!b.led(), "the second work is never started");
        assert_eq!(a.result().await, Err("throttled".into()));
        assert_eq!(b.result().await, Err("throttled".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_cancels_no_one() {
        let flights = Flights::new();
        let work = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(1)
        };
        let leader = flights.join("k", work, spawn);
        let follower = flights.join("k", async { Ok(0) }, spawn);
        // The leader's client leaves mid-way: its wait is dropped, the work goes on.
        let gone = tokio::time::timeout(Duration::from_millis(10), leader.result()).await;
        assert!(gone.is_err());
        assert_eq!(follower.result().await, Ok(1));
    }
}
