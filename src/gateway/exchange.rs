//! The calls replicas share for keep-alive. A function's keeper sends its rounds
//! (`keepers`), but behind a load balancer it serves only its share of the function's calls:
//! alone, its policy would see a fraction of each peak and keep pools that small (replayed
//! with two replicas, `simulate --replicas 2`, the warmer met ten times the cold starts of
//! one gateway). So every replica publishes the calls it served, and how many it has in
//! flight, and every replica's policy hears them all: each plans on the whole traffic, and
//! a replica that becomes a keeper has the history already.
//!
//! Every [`FLUSH_EVERY`] a replica publishes what it has gathered, one JSON batch on the
//! channel `<prefix>:warmer:calls`; each call carries its age at publishing rather than a
//! time, since each gateway's clock has its own origin. A replica's counts of calls in flight
//! are dropped when it leaves the membership. Lost batches (Redis away, a subscription being
//! remade) cost only forecast accuracy: each replica still plans on its own calls, as alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Gateway;
use crate::clock::Time;
use crate::policy::{FunctionId, Observation, Start};
use crate::telemetry;

/// How often a replica publishes the calls it served since it last did: well within the
/// warmer's recheck (60 s) and its refresh margin (10 s).
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The most calls gathered between two batches; beyond it calls are not shared (counted).
const OUTBOX_BOUND: usize = 100_000;
/// How long a lost subscription waits before it is made again.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// One replica's batch.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Batch {
    from: String,
    calls: Vec<Call>,
    /// Its calls in flight now, for the functions whose count changed since its last batch.
    in_flight: Vec<(String, u32)>,
}

/// One call a replica served (or one ping it sent), as its policy observed it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Call {
    function: String,
    target: String,
    /// How long before the batch was published the call arrived.
    age_ms: f64,
    duration_ms: f64,
    init_ms: Option<f64>,
    start: Option<Start>,
    ping: bool,
    throttled: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn from_ms(ms: f64) -> Duration {
    Duration::from_secs_f64((ms / 1e3).max(0.0))
}

impl Call {
    fn new(observation: &Observation, function: &str, target: &str, now: Time) -> Self {
        Self {
            function: function.to_string(),
            target: target.to_string(),
            age_ms: ms(now.saturating_sub(observation.arrived)),
            duration_ms: ms(observation.duration),
            init_ms: observation.init.map(ms),
            start: observation.start,
            ping: observation.ping,
            throttled: observation.throttled,
        }
    }

    /// The observation on this replica's clock, at `now` when the batch came; `None` for a
    /// function or target this replica does not serve.
    fn observation(&self, gateway: &Gateway, now: Time) -> Option<Observation> {
        let index = *gateway.by_name.get(&self.function)?;
        Some(Observation {
            function: index,
            target: gateway.functions[index].target_id(&self.target)?,
            arrived: now.saturating_sub(from_ms(self.age_ms)),
            duration: from_ms(self.duration_ms),
            init: self.init_ms.map(from_ms),
            start: self.start,
            ping: self.ping,
            throttled: self.throttled,
        })
    }
}

/// The other replicas' calls in flight, per function and replica: pure, unit-tested.
#[derive(Debug, Default)]
struct Elsewhere {
    counts: HashMap<FunctionId, HashMap<String, u32>>,
}

impl Elsewhere {
    fn set(&mut self, function: FunctionId, replica: &str, count: u32) {
        let counts = self.counts.entry(function).or_default();
        if count == 0 {
            counts.remove(replica);
        } else {
            counts.insert(replica.to_string(), count);
        }
    }

    fn total(&self, function: FunctionId) -> u32 {
        self.counts
            .get(&function)
            .map_or(0, |counts| counts.values().sum())
    }

    /// Keeps the counts of the `live` replicas only; the functions whose total changed.
    fn keep_only(&mut self, live: &[String]) -> Vec<FunctionId> {
        let mut changed = Vec::new();
        for (&function, counts) in &mut self.counts {
            let before = counts.len();
            counts.retain(|replica, _| live.contains(replica));
            if counts.len() != before {
                changed.push(function);
            }
        }
        changed.sort_unstable();
        changed
    }
}

/// What a replica gathered since its last batch.
#[derive(Debug, Default)]
struct Outbox {
    calls: Vec<(Observation, Time)>,
    in_flight: HashMap<FunctionId, u32>,
}

/// This replica's side of the exchange.
pub(super) struct Exchange {
    id: String,
    outbox: Mutex<Outbox>,
    elsewhere: Mutex<Elsewhere>,
    /// Calls heard from the other replicas, for tests and the log.
    heard: AtomicU64,
}

impl Exchange {
    pub(super) fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            outbox: Mutex::new(Outbox::default()),
            elsewhere: Mutex::new(Elsewhere::default()),
            heard: AtomicU64::new(0),
        }
    }
}

impl Gateway {
    /// Gathers a call this replica's policy observed, to share with the others.
    pub(super) fn share_call(&self, observation: &Observation) {
        let Some(exchange) = &self.exchange else {
            return;
        };
        let mut outbox = exchange.outbox.lock();
        if outbox.calls.len() < OUTBOX_BOUND {
            outbox.calls.push((*observation, self.now()));
        } else {
            telemetry::calls_not_shared(1);
        }
    }

    /// The calls of `function` in flight across the replicas, this one's `here` among them;
    /// the change of this one's count is gathered to share.
    pub(super) fn fleet_in_flight(&self, function: FunctionId, here: u32) -> u32 {
        let Some(exchange) = &self.exchange else {
            return here;
        };
        exchange.outbox.lock().in_flight.insert(function, here);
        here + exchange.elsewhere.lock().total(function)
    }

    /// The other replicas' calls of `function` in flight, as last heard.
    pub fn in_flight_elsewhere(&self, function: &str) -> u32 {
        let (Some(exchange), Some(&index)) = (&self.exchange, self.by_name.get(function)) else {
            return 0;
        };
        exchange.elsewhere.lock().total(index)
    }

    /// The calls heard from the other replicas since start.
    pub fn calls_heard(&self) -> u64 {
        self.exchange
            .as_ref()
            .map_or(0, |e| e.heard.load(Ordering::Relaxed))
    }

    /// Drops the counts of replicas that left the membership (all of them while it is not
    /// known), and tells the policy the totals that changed.
    pub(super) fn forget_replicas_gone(&self, live: &[String]) {
        let Some(exchange) = &self.exchange else {
            return;
        };
        let changed = exchange.elsewhere.lock().keep_only(live);
        for function in changed {
            self.tell_fleet_in_flight(function);
        }
    }

    /// Tells the policy the fleet's calls of `function` in flight, after another replica's
    /// count changed (this one's is not shared again for it).
    fn tell_fleet_in_flight(&self, function: FunctionId) {
        let (Some(warmer), Some(exchange), Some(state)) =
            (&self.warmer, &self.exchange, self.function_by_id(function))
        else {
            return;
        };
        let here = state.orchestration.lock().driver.running();
        let total = here + exchange.elsewhere.lock().total(function);
        warmer.in_flight(function, total, self.now());
    }

    /// The batch gathered since the last, if there is anything to say.
    fn take_batch(&self, exchange: &Exchange) -> Option<Batch> {
        let outbox = std::mem::take(&mut *exchange.outbox.lock());
        if outbox.calls.is_empty() && outbox.in_flight.is_empty() {
            return None;
        }
        let now = self.now();
        let calls = outbox
            .calls
            .iter()
            .filter_map(|(observation, _)| {
                let function = self.function_by_id(observation.function)?;
                let target = function.config.targets.get(observation.target)?;
                Some(Call::new(observation, &function.config.name, target, now))
            })
            .collect();
        let in_flight = outbox
            .in_flight
            .into_iter()
            .filter_map(|(f, count)| Some((self.function_by_id(f)?.config.name.clone(), count)))
            .collect();
        Some(Batch {
            from: exchange.id.clone(),
            calls,
            in_flight,
        })
    }

    /// Publishes what was gathered every [`FLUSH_EVERY`], until stopped.
    pub(super) async fn run_exchange_publisher(self: Arc<Self>) {
        let (Some(exchange), Some(redis)) = (&self.exchange, &self.redis) else {
            return;
        };
        let channel = redis.calls_channel();
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(batch) = self.take_batch(exchange) else {
                continue;
            };
            let calls = batch.calls.len() as u64;
            let message = serde_json::to_vec(&batch).expect("a batch serialises");
            if redis.publish(&channel, &message).await {
                telemetry::calls_shared(calls);
            } else {
                telemetry::calls_not_shared(calls);
            }
        }
    }

    /// Hears the other replicas' batches until stopped, subscribing again when the
    /// subscription is lost.
    pub(super) async fn run_exchange_subscriber(self: Arc<Self>) {
        let (Some(exchange), Some(redis)) = (&self.exchange, &self.redis) else {
            return;
        };
        let channel = redis.calls_channel();
        let mut failing = false;
        loop {
            let pubsub = match redis.subscribe(&channel).await {
                Ok(pubsub) => pubsub,
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot hear the other replicas' calls: planning keep-alive on this replica's own until Redis answers");
                        failing = true;
                    }
                    tokio::time::sleep(RESUBSCRIBE).await;
                    continue;
                }
            };
            if failing {
                tracing::info!("hearing the other replicas' calls again");
                failing = false;
            }
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match serde_json::from_slice::<Batch>(message.get_payload_bytes()) {
                    Ok(batch) if batch.from != exchange.id => self.hear(exchange, batch),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "a batch of shared calls that does not parse: skipped")
                    }
                }
            }
            tokio::time::sleep(RESUBSCRIBE).await;
        }
    }

    /// Another replica's batch: its calls to the policy, its counts in flight to the totals.
    fn hear(&self, exchange: &Exchange, batch: Batch) {
        let Some(warmer) = &self.warmer else { return };
        let now = self.now();
        let mut heard = 0;
        for call in &batch.calls {
            if let Some(observation) = call.observation(self, now) {
                warmer.observe(observation);
                heard += 1;
            }
        }
        exchange.heard.fetch_add(heard, Ordering::Relaxed);
        telemetry::calls_heard(heard);
        for (function, count) in &batch.in_flight {
            let Some(&index) = self.by_name.get(function) else {
                continue;
            };
            exchange.elsewhere.lock().set(index, &batch.from, *count);
            self.tell_fleet_in_flight(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_flight_add_up_over_replicas_and_leave_with_them() {
        let mut elsewhere = Elsewhere::default();
        elsewhere.set(0, "a", 3);
        elsewhere.set(0, "b", 2);
        elsewhere.set(1, "b", 1);
        assert_eq!(elsewhere.total(0), 5);
        elsewhere.set(0, "a", 1);
        assert_eq!(elsewhere.total(0), 3, "a count replaces the last");
        elsewhere.set(0, "a", 0);
        assert_eq!(elsewhere.total(0), 2);
        assert_eq!(elsewhere.keep_only(&["a".to_string()]), [0, 1]);
        assert_eq!((elsewhere.total(0), elsewhere.total(1)), (0, 0));
        assert!(elsewhere.keep_only(&[]).is_empty(), "nothing left to drop");
    }

    #[test]
    fn a_call_travels_by_its_age_and_keeps_what_the_policy_reads() {
        let observation = Observation {
            function: 0,
            target: 0,
            arrived: Duration::from_secs(100),
            duration: Duration::from_millis(250),
            init: Some(Duration::from_millis(1200)),
            start: Some(Start::Cold),
            ping: false,
            throttled: false,
        };
        let call = Call::new(&observation, "embed", "live", Duration::from_secs(103));
        assert_eq!(call.age_ms, 3000.0);
        let batch = Batch {
            from: "a".into(),
            calls: vec![call],
            in_flight: vec![("embed".into(), 2)],
        };
        let wire = serde_json::to_vec(&batch).unwrap();
        let back: Batch = serde_json::from_slice(&wire).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.calls[0].start, Some(Start::Cold));
    }
}
