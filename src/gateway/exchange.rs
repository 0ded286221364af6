//! The attempts replicas share for keep-alive and for their estimates. A function's keeper
//! sends its rounds (`keepers`), but behind a load balancer every replica serves only a
//! share of the function's calls: alone, its policy would see a fraction of each peak and
//! keep pools that small, and its warm-pool estimate would miss the environments the other
//! replicas' calls and pings take and leave idle (replayed with two replicas each on its
//! own, `simulate --replicas 2 --keep-alive-per-replica`, the warmer met up to nine times
//! one gateway's cold starts through the gateway). So every replica publishes each attempt
//! it sends (call, ping or probe) as it starts and as it ends; every replica's policy hears
//! each end, and every replica's estimate takes an environment for each start and gives it
//! back idle at the end (which may release a request held for a busy environment). Each
//! plans and routes on the whole traffic, and a replica that becomes a keeper has the
//! history already.
//!
//! Every [`FLUSH_EVERY`] (20 ms) a replica publishes what it has gathered, one JSON batch on the
//! channel `<prefix>:warmer:calls`, in order; an end carries the call's age at publishing
//! rather than a time, since each gateway's clock has its own origin, and is applied when
//! heard (a batch late). The attempts of a replica that leaves the
//! membership are dropped from the estimates, and so are those whose end was lost. Lost
//! batches (Redis away, a subscription being remade) cost accuracy only: each replica still
//! plans and routes on its own attempts, and while it hears nothing it counts a round left
//! to the keeper as sent (`kept_elsewhere`). See ARCHITECTURE.md, "Several replicas".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Gateway;
use crate::clock::Time;
use crate::policy::driver::{Attempt, Outcome};
use crate::policy::pool::Started;
use crate::policy::{FunctionId, Observation, Start, TargetId};
use crate::telemetry;

/// How often a replica publishes the attempts it started and ended since it last did.
const FLUSH_EVERY: Duration = crate::policy::keepers::SHARE_EVERY;
/// The most events gathered between two batches; beyond it they are not shared (counted).
const OUTBOX_BOUND: usize = 200_000;
/// How long a lost subscription waits before it is made again.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// One replica's batch: its attempts' starts and ends, in the order they happened.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Batch {
    from: String,
    events: Vec<Event>,
}

/// An attempt started or ended; `id` names it among the sender's attempts on the target.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Start {
        function: String,
        target: String,
        id: u64,
        ping: bool,
    },
    End {
        function: String,
        target: String,
        id: u64,
        /// Whether the environment it freed took a request the sender held.
        released: bool,
        /// Whether the sender's policy observed it (an attempt whose client went away is not).
        observed: bool,
        ran: bool,
        /// How long before the batch was published the attempt arrived.
        age_ms: f64,
        duration_ms: f64,
        init_ms: Option<f64>,
        start: Option<Start>,
        ping: bool,
        throttled: bool,
    },
    /// The extension reported one of `function`'s environments ended (`gateway::ends`): it
    /// reaches one replica, and the function's keeper may be another.
    EnvironmentEnded {
        function: String,
        /// How long before the batch was published the environment started.
        born_ms: f64,
    },
    /// An event a later version sends: skipped, so that its batches still count.
    #[serde(other)]
    Unknown,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn from_ms(ms: f64) -> Duration {
    Duration::from_secs_f64((ms / 1e3).max(0.0))
}

/// An event as gathered, with this replica's indices and times; named when published.
#[derive(Debug)]
enum Gathered {
    Start {
        function: FunctionId,
        attempt: Attempt,
    },
    End {
        attempt: Attempt,
        observation: Observation,
        ran: bool,
        released: bool,
        observed: bool,
    },
    EnvironmentEnded {
        function: FunctionId,
        born: Time,
    },
}

/// The other replicas' attempts as this replica's estimate holds them: pure, unit-tested.
#[derive(Debug, Default)]
struct Mirror {
    attempts: HashMap<(String, FunctionId, TargetId, u64), (Started, bool)>,
    /// Their real calls in flight, per function.
    running: HashMap<FunctionId, u32>,
}

impl Mirror {
    fn started(
        &mut self,
        from: &str,
        (function, target, id): (FunctionId, TargetId, u64),
        started: Started,
        ping: bool,
    ) {
        let key = (from.to_string(), function, target, id);
        if self.attempts.insert(key, (started, ping)).is_none() && !ping {
            *self.running.entry(function).or_default() += 1;
        }
    }

    /// What the estimate started for that attempt, if it heard of its start.
    fn ended(
        &mut self,
        from: &str,
        (function, target, id): (FunctionId, TargetId, u64),
    ) -> Option<Started> {
        let (started, ping) = self
            .attempts
            .remove(&(from.to_string(), function, target, id))?;
        if !ping {
            if let Some(n) = self.running.get_mut(&function) {
                *n = n.saturating_sub(1);
            }
        }
        Some(started)
    }

    fn running(&self, function: FunctionId) -> u32 {
        self.running.get(&function).copied().unwrap_or(0)
    }

    /// Drops the attempts of replicas not `live`, and those heard starting more than
    /// `outlived(function)` before `now` (their end was lost): (function, target, what was
    /// started).
    fn forget(
        &mut self,
        live: &[String],
        now: Time,
        outlived: impl Fn(FunctionId) -> Duration,
    ) -> Vec<(FunctionId, TargetId, Started)> {
        let gone: Vec<_> = self
            .attempts
            .iter()
            .filter(|((from, function, ..), (started, _))| {
                !live.contains(from) || now.saturating_sub(started.at) > outlived(*function)
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut dropped = Vec::new();
        for key in gone {
            let (from, function, target, id) = key;
            if let Some(started) = self.ended(&from, (function, target, id)) {
                dropped.push((function, target, started));
            }
        }
        dropped.sort_by_key(|&(f, t, s)| (f, t, s.id));
        dropped
    }
}

/// This replica's side of the exchange.
pub(super) struct Exchange {
    id: String,
    outbox: Mutex<Vec<Gathered>>,
    mirror: Mutex<Mirror>,
    /// Subscribed: the other replicas' attempts (the keeper's rounds among them) reach the
    /// estimate.
    hearing: AtomicBool,
    /// Attempt ends heard from the other replicas, for tests and the log.
    heard: AtomicU64,
}

impl Exchange {
    pub(super) fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            outbox: Mutex::new(Vec::new()),
            mirror: Mutex::new(Mirror::default()),
            hearing: AtomicBool::new(false),
            heard: AtomicU64::new(0),
        }
    }

    fn gather(&self, event: Gathered) {
        let mut outbox = self.outbox.lock();
        if outbox.len() < OUTBOX_BOUND {
            outbox.push(event);
        } else {
            telemetry::calls_not_shared(1);
        }
    }
}

impl Gateway {
    /// Gathers an attempt of `function` starting, to share with the others.
    pub(super) fn share_start(&self, function: FunctionId, attempt: Attempt) {
        if let Some(exchange) = &self.exchange {
            exchange.gather(Gathered::Start { function, attempt });
        }
    }

    /// Gathers an attempt ending (`observation`, as the driver made it), to share.
    pub(super) fn share_end(
        &self,
        attempt: Attempt,
        observation: Observation,
        outcome: &Outcome,
        released: bool,
        observed: bool,
    ) {
        if let Some(exchange) = &self.exchange {
            exchange.gather(Gathered::End {
                attempt,
                observation,
                ran: matches!(outcome, Outcome::Ran { .. }),
                released,
                observed,
            });
        }
    }

    /// Gathers an environment end the extension reported here, for the function's keeper.
    pub(super) fn share_environment_end(&self, function: FunctionId, born: Time) {
        if let Some(exchange) = &self.exchange {
            exchange.gather(Gathered::EnvironmentEnded { function, born });
        }
    }

    /// Whether the other replicas' attempts reach this one now (else a round left to the
    /// keeper is counted as sent).
    pub(super) fn hears_replicas(&self) -> bool {
        self.exchange
            .as_ref()
            .is_some_and(|e| e.hearing.load(Ordering::Relaxed))
    }

    /// The calls of `function` in flight across the replicas, this one's `here` among them,
    /// and those of clients that call Lambda directly that were reported to this one
    /// (`calls`).
    pub(super) fn fleet_in_flight(&self, function: FunctionId, here: u32) -> u32 {
        let elsewhere = self
            .exchange
            .as_ref()
            .map_or(0, |e| e.mirror.lock().running(function));
        let reported = self
            .function_by_id(function)
            .map_or(0, |f| f.reported.lock().running());
        here + elsewhere + reported
    }

    /// The other replicas' calls of `function` in flight, as last heard.
    pub fn in_flight_elsewhere(&self, function: &str) -> u32 {
        match (&self.exchange, self.by_name.get(function)) {
            (Some(exchange), Some(&index)) => exchange.mirror.lock().running(index),
            _ => 0,
        }
    }

    /// The attempt ends heard from the other replicas since start.
    pub fn calls_heard(&self) -> u64 {
        self.exchange
            .as_ref()
            .map_or(0, |e| e.heard.load(Ordering::Relaxed))
    }

    /// Drops from the estimates the attempts of replicas that left the membership (all of
    /// them while it is not known) and those whose end was lost (heard starting longer ago
    /// than the function's timeout and a minute), and tells the policy the totals in flight
    /// that changed.
    pub(super) fn forget_attempts(&self, live: &[String]) {
        let Some(exchange) = &self.exchange else {
            return;
        };
        let outlived = |function: FunctionId| {
            self.function_by_id(function).map_or(Duration::ZERO, |f| {
                Duration::from_millis(f.config.timeout_ms) + Duration::from_secs(60)
            })
        };
        let dropped = exchange.mirror.lock().forget(live, self.now(), outlived);
        for (function, target, started) in dropped {
            let Some(state) = self.function_by_id(function) else {
                continue;
            };
            state
                .orchestration
                .lock()
                .driver
                .abandon_elsewhere(target, &started);
            self.tell_fleet_in_flight(function);
        }
    }

    /// Tells the policy the fleet's calls of `function` in flight.
    fn tell_fleet_in_flight(&self, function: FunctionId) {
        let (Some(warmer), Some(state)) = (&self.warmer, self.function_by_id(function)) else {
            return;
        };
        let here = state.orchestration.lock().driver.running();
        warmer.in_flight(function, self.fleet_in_flight(function, here), self.now());
    }

    /// The batch gathered since the last, if there is anything to say.
    fn take_batch(&self, exchange: &Exchange) -> Option<Batch> {
        let gathered = std::mem::take(&mut *exchange.outbox.lock());
        if gathered.is_empty() {
            return None;
        }
        let now = self.now();
        let names = |function: FunctionId, target: TargetId| {
            let state = self.function_by_id(function)?;
            let target = state.config.targets.get(target)?;
            Some((state.config.name.clone(), target.clone()))
        };
        let events = gathered
            .into_iter()
            .filter_map(|event| match event {
                Gathered::Start { function, attempt } => {
                    let (function, target) = names(function, attempt.target)?;
                    Some(Event::Start {
                        function,
                        target,
                        id: attempt.started.id,
                        ping: attempt.started.ping,
                    })
                }
                Gathered::End {
                    attempt,
                    observation: o,
                    ran,
                    released,
                    observed,
                } => {
                    let (function, target) = names(o.function, attempt.target)?;
                    Some(Event::End {
                        function,
                        target,
                        id: attempt.started.id,
                        released,
                        observed,
                        ran,
                        age_ms: ms(now.saturating_sub(o.arrived)),
                        duration_ms: ms(o.duration),
                        init_ms: o.init.map(ms),
                        start: o.start,
                        ping: o.ping,
                        throttled: o.throttled,
                    })
                }
                Gathered::EnvironmentEnded { function, born } => Some(Event::EnvironmentEnded {
                    function: self.function_by_id(function)?.config.name.clone(),
                    born_ms: ms(now.saturating_sub(born)),
                }),
            })
            .collect();
        Some(Batch {
            from: exchange.id.clone(),
            events,
        })
    }

    /// Publishes what was gathered every [`FLUSH_EVERY`], until stopped.
    pub(super) async fn run_exchange_publisher(self: Arc<Self>) {
        let (Some(exchange), Some(redis)) = (&self.exchange, &self.redis) else {
            return;
        };
        let channel = redis.calls_channel();
        let bound = redis.background_timeout();
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(batch) = self.take_batch(exchange) else {
                continue;
            };
            let events = batch.events.len() as u64;
            let message = serde_json::to_vec(&batch).expect("a batch serialises");
            if redis.publish(&channel, &message, bound).await {
                telemetry::calls_shared(events);
            } else {
                telemetry::calls_not_shared(events);
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
                        tracing::warn!(%error, "cannot hear the other replicas' attempts: planning and routing on this replica's own until Redis answers");
                        failing = true;
                    }
                    tokio::time::sleep(RESUBSCRIBE).await;
                    continue;
                }
            };
            if failing {
                tracing::info!("hearing the other replicas' attempts again");
                failing = false;
            }
            exchange.hearing.store(true, Ordering::Relaxed);
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match serde_json::from_slice::<Batch>(message.get_payload_bytes()) {
                    Ok(batch) if batch.from != exchange.id => self.hear(exchange, batch),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "a batch of shared attempts that does not parse: skipped")
                    }
                }
            }
            exchange.hearing.store(false, Ordering::Relaxed);
            tokio::time::sleep(RESUBSCRIBE).await;
        }
    }

    /// Another replica's batch, in order: starts to the estimates, ends to the estimates and
    /// the policy.
    fn hear(&self, exchange: &Exchange, batch: Batch) {
        let now = self.now();
        let mut heard = 0;
        for event in batch.events {
            match event {
                Event::Start {
                    function,
                    target,
                    id,
                    ping,
                } => {
                    let Some((f, t)) = self.indices(&function, &target) else {
                        continue;
                    };
                    let started = self.functions[f]
                        .orchestration
                        .lock()
                        .driver
                        .start_elsewhere(now, t, ping);
                    if let Some(started) = started {
                        exchange
                            .mirror
                            .lock()
                            .started(&batch.from, (f, t, id), started, ping);
                    }
                    if !ping {
                        self.tell_fleet_in_flight(f);
                    }
                }
                Event::End {
                    function,
                    target,
                    id,
                    released,
                    observed,
                    ran,
                    age_ms,
                    duration_ms,
                    init_ms,
                    start,
                    ping,
                    throttled,
                } => {
                    let Some((f, t)) = self.indices(&function, &target) else {
                        continue;
                    };
                    let (duration, init) = (from_ms(duration_ms), init_ms.map(from_ms));
                    let started = exchange.mirror.lock().ended(&batch.from, (f, t, id));
                    if let Some(started) = started {
                        let outcome = if ran {
                            Outcome::Ran {
                                start,
                                duration,
                                init,
                                billed_gb_s: None,
                            }
                        } else {
                            Outcome::NotRun
                        };
                        let release = !released && self.takes_freed(&batch.from, id);
                        self.release_elsewhere(f, t, &started, outcome, release, now);
                    }
                    if observed {
                        if let Some(warmer) = &self.warmer {
                            warmer.observe(Observation {
                                function: f,
                                target: t,
                                arrived: now.saturating_sub(from_ms(age_ms)),
                                duration,
                                init,
                                start,
                                ping,
                                throttled,
                            });
                        }
                        heard += 1;
                    }
                    if !ping {
                        self.tell_fleet_in_flight(f);
                    }
                }
                Event::EnvironmentEnded { function, born_ms } => {
                    if let (Some(state), Some(warmer)) = (self.function(&function), &self.warmer) {
                        let born = now.saturating_sub(from_ms(born_ms));
                        warmer.environment_ended(state.index, born, now);
                    }
                }
                Event::Unknown => {}
            }
        }
        exchange.heard.fetch_add(heard, Ordering::Relaxed);
        telemetry::calls_heard(heard);
    }

    /// Whether the environment `sender`'s attempt `id` freed (its own held request did not
    /// take it) goes to a request held here: one replica is chosen among the others
    /// (`taker_of`), every replica choosing alike; any may take it while the membership is
    /// not known.
    fn takes_freed(&self, sender: &str, id: u64) -> bool {
        self.keepers.as_ref().is_none_or(|k| k.takes(sender, id))
    }

    fn indices(&self, function: &str, target: &str) -> Option<(FunctionId, TargetId)> {
        let f = *self.by_name.get(function)?;
        Some((f, self.functions[f].target_id(target)?))
    }

    /// Another replica's attempt ended: its environment is idle in this estimate, and, when
    /// `release`, takes the request held longest here, which is sent now.
    fn release_elsewhere(
        &self,
        f: FunctionId,
        target: TargetId,
        started: &Started,
        outcome: Outcome,
        release: bool,
        now: Time,
    ) {
        let state = &self.functions[f];
        let mut orchestration = state.orchestration.lock();
        let released = orchestration
            .driver
            .finish_elsewhere(now, target, started, outcome, release);
        orchestration.hand_over(now, released);
        state.publish_pool(&orchestration.driver, target, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: u64) -> Started {
        Started {
            id,
            at: Duration::ZERO,
            provisioned: false,
            expected: None,
            ping: false,
        }
    }

    #[test]
    fn the_mirror_counts_calls_in_flight_by_replica_and_drops_a_replica_gone() {
        let mut mirror = Mirror::default();
        mirror.started("a", (0, 0, 1), started(7), false);
        mirror.started("a", (0, 0, 2), started(8), false);
        mirror.started("b", (0, 0, 1), started(9), false);
        mirror.started("b", (0, 0, 3), started(10), true);
        assert_eq!(mirror.running(0), 3, "pings are not calls in flight");
        assert_eq!(mirror.ended("a", (0, 0, 1)).map(|s| s.id), Some(7));
        assert_eq!(mirror.ended("a", (0, 0, 1)), None, "ended once");
        assert_eq!(mirror.ended("c", (0, 0, 5)), None, "a start not heard");
        assert_eq!(mirror.running(0), 2);
        let live = ["a".to_string()];
        let forever = |_| Duration::MAX;
        let dropped = mirror.forget(&live, Duration::ZERO, forever);
        let ids: Vec<u64> = dropped.iter().map(|(_, _, s)| s.id).collect();
        assert_eq!(ids, [9, 10]);
        assert_eq!(mirror.running(0), 1);
        // An end lost: dropped once the attempt outlived what the function allows.
        let minute = |_| Duration::from_secs(60);
        assert!(mirror
            .forget(&live, Duration::from_secs(60), minute)
            .is_empty());
        let dropped = mirror.forget(&live, Duration::from_secs(61), minute);
        assert_eq!(
            dropped.iter().map(|(_, _, s)| s.id).collect::<Vec<_>>(),
            [8]
        );
        assert_eq!(mirror.running(0), 0);
    }

    #[test]
    fn a_batch_travels_as_json_and_an_end_by_its_age() {
        let batch = Batch {
            from: "a".into(),
            events: vec![
                Event::Start {
                    function: "embed".into(),
                    target: "live".into(),
                    id: 4,
                    ping: false,
                },
                Event::End {
                    function: "embed".into(),
                    target: "live".into(),
                    id: 4,
                    released: false,
                    observed: true,
                    ran: true,
                    age_ms: 3000.0,
                    duration_ms: 250.0,
                    init_ms: Some(1200.0),
                    start: Some(Start::Cold),
                    ping: false,
                    throttled: false,
                },
            ],
        };
        let wire = serde_json::to_vec(&batch).unwrap();
        assert!(String::from_utf8_lossy(&wire).contains(r#""event":"start""#));
        let back: Batch = serde_json::from_slice(&wire).unwrap();
        assert_eq!(back, batch);
        assert_eq!(from_ms(3000.0), Duration::from_secs(3));
    }

    #[test]
    fn an_environment_end_travels_and_an_event_not_known_is_skipped() {
        let end = Event::EnvironmentEnded {
            function: "embed".into(),
            born_ms: 9_000_000.0,
        };
        let wire = serde_json::to_string(&end).unwrap();
        assert!(wire.contains(r#""event":"environment_ended""#), "{wire}");
        assert_eq!(serde_json::from_str::<Event>(&wire).unwrap(), end);
        // A later version's event does not lose the batch it came in.
        let later = r#"{"from":"b","events":[{"event":"rebalanced","function":"embed"}]}"#;
        let batch: Batch = serde_json::from_str(later).unwrap();
        assert_eq!(batch.events, vec![Event::Unknown]);
    }
}
