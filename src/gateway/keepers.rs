//! One keeper per function among replicas. Behind a load balancer every replica serves a
//! share of each function's calls and runs the warmer on it; alone, each would send its own
//! keep-alive rounds: a lone ping per replica where one keeps the environment, and rounds
//! that land on the same environments (Lambda gives a round the most recently used idle
//! ones), so N replicas paid N times for one pool. With `[cache.redis]`, each function's
//! rounds are sent by one replica, its keeper; the others leave them to it.
//!
//! Membership: every `ttl / 3` each replica adds itself to the sorted set
//! `<prefix>:warmer:replicas`, scored by when it expires (Unix ms, a TTL on), drops the
//! members whose time has passed and reads the rest, in one transaction. A function's keeper
//! is the live replica of highest rendezvous weight (`policy::keepers`): every replica reads
//! the same keeper off the same set, and a replica that joins or leaves moves only its share
//! of the functions. Scores are wall-clock milliseconds: the replicas' clocks must agree to
//! well within a TTL, as NTP keeps them on Fargate.
//!
//! Failing safe: a view is trusted until a TTL after its beat was sent, less a fifth (the
//! others drop this replica no sooner than a TTL after the beat reached Redis). Without a
//! trusted view (Redis does not answer, or not yet) a replica keeps every function, as it
//! would alone: more pings, never fewer. See ARCHITECTURE.md, "Several replicas".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::time::Instant;

use super::Gateway;
use crate::cache::redis::RedisTier;
use crate::config::Config;
use crate::policy::keepers::{keeper_of, taker_of};
use crate::policy::{Action, FunctionId};
use crate::telemetry;

/// What this replica knows of the membership: pure (times are arguments), so it is
/// unit-tested.
#[derive(Debug, Clone)]
pub struct KeeperView {
    /// This replica's member of the set: `<id>@<configuration fingerprint>`.
    me: String,
    ttl: Duration,
    /// The live replicas' members as Redis last said, this one among them.
    replicas: Vec<String>,
    /// Those with this replica's configuration (its functions and policy): the keepers are
    /// chosen among them, so that a replica never keeps for another a function it does not
    /// serve (while a deployment rolls out, each configuration keeps its own).
    peers: Vec<String>,
    /// Until when they may be taken as the membership.
    trusted_until: Option<Instant>,
}

impl KeeperView {
    pub fn new(me: impl Into<String>, ttl: Duration) -> Self {
        Self {
            me: me.into(),
            ttl,
            replicas: Vec::new(),
            peers: Vec::new(),
            trusted_until: None,
        }
    }

    /// How often a replica says it is alive: a beat may fail twice and its entry still holds.
    pub fn beat_every(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(1))
    }

    /// The TTL in whole milliseconds, at least 1.
    pub fn ttl_ms(&self) -> u64 {
        (self.ttl.as_millis() as u64).max(1)
    }

    /// Redis answered the beat sent at `sent` with the live `replicas` (`None`: no answer,
    /// and the view runs out on its own count).
    pub fn answered(&mut self, replicas: Option<Vec<String>>, sent: Instant) {
        let Some(mut replicas) = replicas else { return };
        // Our own beat was in the transaction; a set without us is not one we can act on.
        if !replicas.contains(&self.me) {
            replicas.push(self.me.clone());
        }
        replicas.sort();
        let mine = configuration(&self.me);
        self.peers = replicas
            .iter()
            .filter(|member| configuration(member) == mine)
            .cloned()
            .collect();
        self.replicas = replicas;
        self.trusted_until = Some(sent + self.ttl - self.ttl / 5);
    }

    fn trusted(&self, now: Instant) -> bool {
        self.trusted_until.is_some_and(|until| now < until)
    }

    /// Whether this replica sends `function`'s keep-alive rounds at `now`: it is the keeper,
    /// or it cannot tell who is.
    pub fn keeps(&self, function: &str, now: Instant) -> bool {
        !self.trusted(now) || keeper_of(function, &self.peers) == Some(self.me.as_str())
    }

    /// Whether the environment freed by `sender`'s attempt `attempt` goes to this replica
    /// among the others it counts with at `now` (`taker_of`); while it cannot tell, any may
    /// take it.
    pub fn takes(&self, sender: &str, attempt: u64, now: Instant) -> bool {
        let me = id_of(&self.me);
        !self.trusted(now)
            || taker_of(sender, attempt, self.replicas.iter().map(|m| id_of(m))) == Some(me)
    }

    /// The ids of the replicas it counts with at `now`, itself among them, whatever their
    /// configuration; none while it cannot tell.
    pub fn live(&self, now: Instant) -> Vec<String> {
        if !self.trusted(now) {
            return Vec::new();
        }
        self.replicas
            .iter()
            .map(|member| id_of(member).to_string())
            .collect()
    }

    /// The replicas it counts with at `now`; 0 while it cannot tell (and keeps every function).
    pub fn replicas(&self, now: Instant) -> usize {
        if self.trusted(now) {
            self.replicas.len()
        } else {
            0
        }
    }

    /// When the next beat is due after `now`: a beat's interval, or sooner if the view runs
    /// out before (so that the change shows when it happens).
    pub fn next_beat(&self, now: Instant) -> Instant {
        let next = now + self.beat_every();
        match self.trusted_until {
            Some(until) if until > now && until < next => until,
            _ => next,
        }
    }
}

/// The rounds this replica left to other keepers, so that it can send the latest itself if it
/// takes a function over: a keeper that stopped may not have sent the rounds due between its
/// last beat and the moment the others saw it gone. Pure (times are arguments).
#[derive(Debug, Default)]
pub struct Handover {
    /// Per function, the time and the round last left to its keeper.
    left: HashMap<FunctionId, (Instant, Action)>,
    /// Per function, whether this replica kept it at the last look.
    kept: Vec<bool>,
}

impl Handover {
    /// `round` of `function` was left to its keeper at `at`.
    pub fn left(&mut self, function: FunctionId, round: Action, at: Instant) {
        self.left.insert(function, (at, round));
    }

    /// Which functions this replica keeps now (`kept`, by index): the rounds to send for
    /// those it did not keep at the last look, left within `within` of `now`.
    pub fn taken_over(&mut self, kept: Vec<bool>, now: Instant, within: Duration) -> Vec<Action> {
        let mut rounds = Vec::new();
        for (function, &keeps) in kept.iter().enumerate() {
            let before = self.kept.get(function).copied().unwrap_or(true);
            if keeps && !before {
                if let Some((at, round)) = self.left.remove(&function) {
                    if now.saturating_duration_since(at) <= within {
                        rounds.push(round);
                    }
                }
            }
        }
        self.kept = kept;
        rounds
    }
}

/// A member's replica id: what precedes its last `@`.
fn id_of(member: &str) -> &str {
    member.rsplit_once('@').map_or(member, |(id, _)| id)
}

/// A member's configuration fingerprint: what follows its last `@`.
fn configuration(member: &str) -> &str {
    member
        .rsplit_once('@')
        .map_or("", |(_, fingerprint)| fingerprint)
}

/// The fingerprint of what a replica keeps: its keep-alive policy and each function's public
/// name, Lambda function and targets (16 hex digits of SHA-256).
pub(super) fn fingerprint(config: &Config) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(config.warmer.policy.as_bytes());
    for f in &config.functions {
        hash.update([0]);
        hash.update(f.name.as_bytes());
        hash.update([1]);
        hash.update(f.lambda_name().as_bytes());
        for target in &f.targets {
            hash.update([2]);
            hash.update(target.as_bytes());
        }
    }
    super::access::hex(&hash.finalize()[..8])
}

/// This replica's part in the membership: its view and the Redis tier it beats through.
pub struct Keepers {
    id: String,
    /// Its member of the set: the id and the configuration's fingerprint.
    member: String,
    view: Mutex<KeeperView>,
    handover: Mutex<Handover>,
    redis: Arc<RedisTier>,
    /// Each command's bound: the tier's background timeout, never past a beat's interval.
    bound: Duration,
}

impl Keepers {
    pub fn new(redis: Arc<RedisTier>, ttl: Duration, timeout: Duration, config: &str) -> Self {
        let id = super::lease::replica_id();
        let member = format!("{id}@{config}");
        let view = KeeperView::new(member.clone(), ttl);
        Self {
            id,
            member,
            bound: timeout.min(view.beat_every()),
            view: Mutex::new(view),
            handover: Mutex::new(Handover::default()),
            redis,
        }
    }

    /// A round of `function` left to its keeper now.
    pub fn left_round(&self, function: FunctionId, round: Action) {
        self.handover.lock().left(function, round, Instant::now());
    }

    /// The rounds to send for the functions taken over since the last look (`kept` says
    /// which this replica keeps now): the last left to a keeper within two TTLs.
    fn taken_over(&self, kept: Vec<bool>) -> Vec<Action> {
        let within = 2 * self.view.lock().ttl;
        self.handover
            .lock()
            .taken_over(kept, Instant::now(), within)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this replica sends `function`'s keep-alive rounds now.
    pub fn keeps(&self, function: &str) -> bool {
        self.view.lock().keeps(function, Instant::now())
    }

    /// The replicas it counts with now; 0 while it cannot tell.
    pub fn replicas(&self) -> usize {
        self.view.lock().replicas(Instant::now())
    }

    /// Whether the environment freed by `sender`'s attempt `attempt` goes to this replica.
    pub fn takes(&self, sender: &str, attempt: u64) -> bool {
        self.view.lock().takes(sender, attempt, Instant::now())
    }

    /// The replicas it counts with now, itself among them; none while it cannot tell.
    pub fn live(&self) -> Vec<String> {
        self.view.lock().live(Instant::now())
    }

    /// One beat; returns when the next is due.
    pub async fn beat(&self) -> Instant {
        let ttl_ms = self.view.lock().ttl_ms();
        let now_ms = unix_ms();
        let sent = Instant::now();
        let replicas = self
            .redis
            .replicas_beat(&self.member, now_ms, now_ms + ttl_ms, self.bound)
            .await;
        let mut view = self.view.lock();
        view.answered(replicas, sent);
        view.next_beat(Instant::now())
    }

    /// Leaves the membership (on shutdown, once no round is sent any more), so that the
    /// others take this replica's functions at their next beat.
    pub async fn leave(&self) {
        if self.redis.replicas_leave(&self.member, self.bound).await {
            tracing::info!(id = %self.id, "left the keep-alive membership");
        }
    }
}

/// The membership a gateway takes part in: a warmer sharing its keep-alive (the default) and
/// `[cache.redis]`; none otherwise (every function kept here, as alone).
pub(super) fn keepers_for(config: &Config, redis: Option<&Arc<RedisTier>>) -> Option<Keepers> {
    let warmer = &config.warmer;
    if !warmer.enabled || !warmer.share_keep_alive {
        return None;
    }
    let redis = redis?;
    let timeout = config
        .cache
        .redis
        .as_ref()
        .map(|r| r.background_timeout())?;
    let keepers = Keepers::new(
        redis.clone(),
        Duration::from_millis(warmer.replica_ttl_ms),
        timeout,
        &fingerprint(config),
    );
    tracing::info!(
        id = keepers.id(),
        "keep-alive shared: each function's rounds are sent by one replica, agreed through Redis"
    );
    telemetry::keep_alive_sharing();
    Some(keepers)
}

impl Gateway {
    /// Whether this replica sends `function`'s keep-alive rounds: it is the function's keeper,
    /// or it keeps every function (no membership, or none it can trust now).
    pub fn keeps_function(&self, function: &str) -> bool {
        self.keepers.as_ref().is_none_or(|k| k.keeps(function))
    }

    /// The replicas this one shares keep-alive with, itself included; 0 while it cannot tell
    /// (or shares with none) and keeps every function.
    pub fn keep_alive_replicas(&self) -> usize {
        self.keepers.as_ref().map_or(0, Keepers::replicas)
    }

    /// Beats until stopped; a change in the replicas counted is logged and shown in the
    /// gauges.
    pub(super) async fn run_keepers(self: Arc<Self>) {
        let Some(keepers) = &self.keepers else { return };
        let mut counted = None;
        loop {
            let next = keepers.beat().await;
            self.keepers_changed(keepers, &mut counted);
            tokio::time::sleep_until(next).await;
            self.keepers_changed(keepers, &mut counted);
        }
    }

    /// After a beat, or when the view ran out: the gauges, the log, the rounds of functions
    /// taken over, and the attempts of replicas gone.
    fn keepers_changed(self: &Arc<Self>, keepers: &Keepers, counted: &mut Option<usize>) {
        let replicas = keepers.replicas();
        let kept_here: Vec<bool> = self
            .functions()
            .map(|f| keepers.keeps(&f.config.name))
            .collect();
        let kept = kept_here.iter().filter(|&&k| k).count();
        telemetry::keep_alive_shared(replicas, kept);
        let rounds = keepers.taken_over(kept_here);
        if let (false, Some(warmer)) = (rounds.is_empty(), &self.warmer) {
            tracing::info!(
                functions = rounds.len(),
                "keep-alive taken over: sending the rounds last left to the keeper that left"
            );
            self.execute(warmer, rounds);
        }
        self.forget_attempts(&keepers.live());
        if *counted == Some(replicas) {
            return;
        }
        *counted = Some(replicas);
        if replicas == 0 {
            tracing::warn!(
                id = keepers.id(),
                "keep-alive membership unknown (Redis does not answer): this replica keeps every function"
            );
        } else {
            tracing::info!(
                id = keepers.id(),
                replicas,
                functions_kept = kept,
                "keep-alive shared among replicas"
            );
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(3000);

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("replica-{i}")).collect()
    }

    #[test]
    fn without_a_trusted_view_a_replica_keeps_every_function() {
        let t0 = Instant::now();
        let mut view = KeeperView::new("replica-0", TTL);
        assert!(view.keeps("any", t0), "before Redis first answers");
        assert_eq!(view.replicas(t0), 0);
        view.answered(Some(ids(2)), t0);
        let theirs = (0..50)
            .map(|i| format!("fn-{i}"))
            .find(|f| keeper_of(f, &ids(2)) == Some("replica-1"))
            .expect("some function is the other's");
        assert!(!view.keeps(&theirs, t0 + Duration::from_millis(100)));
        assert_eq!(view.replicas(t0), 2);
        // Redis stops answering: the view is trusted until a TTL after its beat was sent,
        // less a fifth; the others drop this replica no sooner than a TTL after it.
        view.answered(None, t0 + Duration::from_millis(1000));
        view.answered(None, t0 + Duration::from_millis(2000));
        assert!(!view.keeps(&theirs, t0 + Duration::from_millis(2399)));
        assert!(view.keeps(&theirs, t0 + Duration::from_millis(2400)));
        assert_eq!(view.replicas(t0 + Duration::from_millis(2400)), 0);
        assert_eq!(
            view.next_beat(t0 + Duration::from_millis(2000)),
            t0 + Duration::from_millis(2400),
            "woken when the view runs out, so the change shows then"
        );
    }

    fn round(function: FunctionId) -> Action {
        Action::Ping {
            function,
            target: 0,
            count: 2,
            kept_by: crate::policy::KeptBy::Forecast,
        }
    }

    #[test]
    fn a_function_taken_over_gets_the_round_last_left_for_it_if_recent() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut handover = Handover::default();
        assert!(handover
            .taken_over(vec![true, false, false], t0, ms(1000))
            .is_empty());
        handover.left(1, round(1), t0);
        handover.left(2, round(2), t0);
        // Function 1 passes to this replica 500 ms on; 2 stays with its keeper.
        assert_eq!(
            handover.taken_over(vec![true, true, false], t0 + ms(500), ms(1000)),
            [round(1)]
        );
        assert!(
            handover
                .taken_over(vec![true, true, false], t0 + ms(600), ms(1000))
                .is_empty(),
            "sent once"
        );
        // 2 passes too, but its round was left too long ago: its keeper had time to send it.
        assert!(handover
            .taken_over(vec![true, true, true], t0 + ms(1500), ms(1000))
            .is_empty());
    }

    #[test]
    fn keepers_are_chosen_among_the_replicas_of_the_same_configuration() {
        let t0 = Instant::now();
        let members = ["a@new", "b@new", "c@old"].map(String::from).to_vec();
        let views: Vec<KeeperView> = members
            .iter()
            .map(|me| {
                let mut view = KeeperView::new(me.clone(), TTL);
                view.answered(Some(members.clone()), t0);
                view
            })
            .collect();
        for i in 0..50 {
            let f = format!("fn-{i}");
            let new: Vec<bool> = views[..2].iter().map(|v| v.keeps(&f, t0)).collect();
            assert_eq!(
                new.iter().filter(|&&k| k).count(),
                1,
                "{f}: one keeper among the new"
            );
            assert!(views[2].keeps(&f, t0), "the old one keeps all it serves");
        }
        assert_eq!(views[0].live(t0), ["a", "b", "c"]);
        // An environment a's attempt freed goes to one of the others, whatever their
        // configuration.
        for attempt in 0..50 {
            let takers: Vec<bool> = views.iter().map(|v| v.takes("a", attempt, t0)).collect();
            assert!(
                !takers[0] && takers[1] != takers[2],
                "{attempt}: {takers:?}"
            );
        }
        assert_eq!(views[0].replicas(t0), 3);
    }

    #[test]
    fn a_set_that_misses_this_replica_still_counts_it() {
        let t0 = Instant::now();
        let mut view = KeeperView::new("replica-9", TTL);
        view.answered(Some(ids(2)), t0);
        assert_eq!(view.replicas(t0), 3);
        let mut all = ids(2);
        all.push("replica-9".into());
        for i in 0..30 {
            let f = format!("fn-{i}");
            assert_eq!(view.keeps(&f, t0), keeper_of(&f, &all) == Some("replica-9"));
        }
    }
}
