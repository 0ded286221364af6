//! The provisioning lease among replicas, against a real redis-server, in real time (Redis's
//! TTLs do not run on tokio's paused clock): two gateways in apply mode share one Redis and
//! one emulator (sped up, so that the planner's minutes pass in seconds). Exactly one
//! applies; when it stops, the other takes over; when Redis goes, the holder stops within
//! the TTL. Ground truth: the control-plane calls each gateway made, the emulator's
//! provisioned-concurrency configuration, and a watcher that samples both gateways
//! throughout and fails if both ever apply at once.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::redis::RedisServer;
use tokio::time::Instant;
use warmgate::clock::TokioClock;
use warmgate::config::Config;
use warmgate::emulator::{Emulator, RunningEmulator};
use warmgate::gateway::RunningGateway;
use warmgate::lambda::{ControlPlane, InvokeError, LambdaClient, ProvisionedState, TargetConfig};
use warmgate::platform::PlatformSpec;

/// Emulated time runs this much faster than real time (the lease's TTL does not).
const SCALE: f64 = 60.0;
const TTL: Duration = Duration::from_millis(300);

/// A replica serving `steady:live` as `function`. The lease tests give each replica a name of
/// its own (`steady_<replica>`), so that the process-wide metrics tell the two planners'
/// levels apart (and their loads are not shared, which is by public name).
fn gateway_toml(function: &str, endpoint: &str, redis: &str) -> String {
    format!(
        r#"{backend}
[provisioning]
mode = "apply"
lease_ttl_ms = {ttl}

[cache.redis]
url = "{redis}"
timeout_ms = 100
retry_after_ms = 50

[[function]]
name = "{function}"
lambda_name = "steady"
targets = ["live"]
timeout_ms = 60000
provisioning = {{ max = 5 }}
"#,
        backend = common::endpoint_backend_toml(endpoint, SCALE),
        ttl = TTL.as_millis()
    )
}

/// The Lambda control plane, counting the levels this gateway set.
struct Counting {
    lambda: LambdaClient,
    sets: AtomicU32,
}

#[async_trait::async_trait]
impl ControlPlane for Counting {
    async fn target_config(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<TargetConfig, InvokeError> {
        self.lambda.target_config(function, qualifier).await
    }

    async fn allocated_provisioned(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<u32, InvokeError> {
        self.lambda.allocated_provisioned(function, qualifier).await
    }

    async fn provisioned(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<ProvisionedState>, InvokeError> {
        self.lambda.provisioned(function, qualifier).await
    }

    async fn set_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        n: u32,
    ) -> Result<(), InvokeError> {
        self.sets.fetch_add(1, Ordering::SeqCst);
        self.lambda.set_provisioned(function, qualifier, n).await
    }
}

struct Replica {
    name: &'static str,
    /// The public name it serves `steady:live` as.
    function: String,
    running: RunningGateway,
    control: Arc<Counting>,
}

impl Replica {
    async fn start(name: &'static str, emulator: &RunningEmulator, redis: &RedisServer) -> Self {
        Self::serving(name, &format!("steady_{name}"), emulator, redis).await
    }

    /// A replica serving `steady:live` as `function`.
    async fn serving(
        name: &'static str,
        function: &str,
        emulator: &RunningEmulator,
        redis: &RedisServer,
    ) -> Self {
        let endpoint = emulator.endpoint_url();
        let config = Config::parse(&gateway_toml(function, &endpoint, &redis.url()), [], "test")
            .expect("a valid configuration");
        let lambda = LambdaClient::for_endpoint(&endpoint, "us-east-1");
        let control = Arc::new(Counting {
            lambda: lambda.clone(),
            sets: AtomicU32::new(0),
        });
        let running = common::serve_replica(config, Arc::new(lambda), control.clone(), SCALE).await;
        Self {
            name,
            function: function.to_string(),
            running,
            control,
        }
    }

    fn holds(&self) -> bool {
        self.running.gateway().provisioning_lease_held()
    }

    fn sets(&self) -> u32 {
        self.control.sets.load(Ordering::SeqCst)
    }
}

/// Samples both gateways every few milliseconds until dropped; [`Watcher::both_held`] says
/// whether both ever applied at once.
struct Watcher {
    both: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn start(a: &Replica, b: &Replica) -> Self {
        let (a, b) = (a.running.gateway().clone(), b.running.gateway().clone());
        let both = Arc::new(AtomicBool::new(false));
        let seen = both.clone();
        let task = tokio::spawn(async move {
            loop {
                if a.provisioning_lease_held() && b.provisioning_lease_held() {
                    seen.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Self { both, task }
    }

    fn both_held(&self) -> bool {
        self.both.load(Ordering::SeqCst)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `condition` holds, at most `limit`; returns how long it took.
async fn until(limit: Duration, what: &str, condition: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

async fn emulator() -> RunningEmulator {
    let spec = PlatformSpec::from_toml(common::STEADY).unwrap();
    Emulator::new(spec, Arc::new(TokioClock::scaled(SCALE)))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The emulator's requested level on steady:live.
fn requested(emulator: &RunningEmulator) -> Option<u32> {
    let truth = emulator.emulator().snapshot();
    let function = truth.function("steady").unwrap();
    function
        .provisioned
        .iter()
        .find(|p| p.qualifier == "live")
        .map(|p| p.requested)
}

/// The key in Redis and its time to live in ms.
fn lease_in_redis(redis: &RedisServer) -> (Option<String>, i64) {
    let mut connection = redis.client().get_connection().unwrap();
    let (value, ttl): (Option<String>, i64) = redis::pipe()
        .cmd("GET")
        .arg("warmgate:provisioning:lease")
        .cmd("PTTL")
        .arg("warmgate:provisioning:lease")
        .query(&mut connection)
        .unwrap();
    (value, ttl)
}

/// Clients calling one replica back to back, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Stops the clients once their calls are answered (each asserts a 200).
    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.expect("every call answered 200");
        }
    }
}

/// `clients` clients back to back on `replica`.
fn load(replica: &Replica, clients: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!(
        "http://{}/v1/functions/{}/invoke",
        replica.running.addr(),
        replica.function
    );
    let clients = (0..clients)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::SeqCst) {
                    let answer = http.post(&url).body("{}").send().await.unwrap();
                    assert_eq!(answer.status(), 200);
                }
            })
        })
        .collect();
    Load { stop, clients }
}

/// The planner's level for `replica`, from the (process-wide) metrics.
async fn recommended(replica: &Replica) -> Option<u32> {
    let metrics = reqwest::get(format!("http://{}/metrics", replica.running.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!(
        "warmgate_provisioned_recommended_environments{{function=\"{}\",target=\"live\"}} ",
        replica.function
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the emulator's level on steady:live is what `replica`'s planner recommends.
async fn until_level(emulator: &RunningEmulator, replica: &Replica) {
    let limit = Duration::from_secs(10);
    let start = Instant::now();
    loop {
        let wanted = recommended(replica).await;
        if wanted.is_some() && requested(emulator) == wanted {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{}'s level {wanted:?} not set within {limit:?}: {:?}",
            replica.name,
            requested(emulator)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_applies_and_the_other_takes_over_when_it_stops() {
    let redis = RedisServer::start();
    let emulator = emulator().await;
    let a = Replica::start("a", &emulator, &redis).await;
    let b = Replica::start("b", &emulator, &redis).await;
    let watcher = Watcher::start(&a, &b);
    until(
        Duration::from_secs(5),
        "one replica holds the lease",
        || a.holds() || b.holds(),
    )
    .await;
    let (value, ttl_ms) = lease_in_redis(&redis);
    assert!(value.is_some(), "the lease is a key in Redis");
    assert!(
        ttl_ms > 0 && ttl_ms <= TTL.as_millis() as i64,
        "it expires unless renewed: PTTL {ttl_ms}"
    );

    // Both see steady load, each its own (two clients on a, one on b): their planners
    // recommend different levels, both on steady:live.
    let (load_a, load_b) = (load(&a, 2), load(&b, 1));
    let limit = Duration::from_secs(30);
    let start = Instant::now();
    loop {
        if let (Some(la), Some(lb)) = (recommended(&a).await, recommended(&b).await) {
            if la > 0 && lb > 0 && la != lb {
                break;
            }
        }
        assert!(start.elapsed() < limit, "the planners never recommended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (holder, other, holder_load, other_load) = if a.holds() {
        (a, b, load_a, load_b)
    } else {
        (b, a, load_b, load_a)
    };
    until_level(&emulator, &holder).await;
    assert!(holder.sets() >= 1);
    assert_eq!(
        other.sets(),
        0,
        "the replica without the lease only advises"
    );
    assert!(!other.holds() && holder.holds());

    // The holder stops (and releases the lease): the other takes it, and after its wait
    // applies its own planner's level.
    let holder_name = holder.name;
    holder_load.stop().await;
    holder
        .running
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();
    let took = until(
        2 * TTL + Duration::from_millis(200),
        "the other replica takes over",
        || other.holds(),
    )
    .await;
    println!(
        "{} stopped; {} applies {took:?} later",
        holder_name, other.name
    );
    until_level(&emulator, &other).await;
    assert!(other.sets() >= 1);
    other_load.stop().await;
    assert!(!watcher.both_held(), "two replicas applied at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_from_redis_stops_applying_within_the_ttl() {
    let mut redis = RedisServer::start();
    let emulator = emulator().await;
    let a = Replica::start("c", &emulator, &redis).await;
    let b = Replica::start("d", &emulator, &redis).await;
    let watcher = Watcher::start(&a, &b);
    until(
        Duration::from_secs(5),
        "one replica holds the lease",
        || a.holds() || b.holds(),
    )
    .await;

    redis.stop();
    let stopped = until(TTL, "the holder lets go without Redis", || {
        !a.holds() && !b.holds()
    })
    .await;
    println!("Redis killed; the holder stopped applying {stopped:?} later");
    // Without Redis nobody takes it.
    tokio::time::sleep(TTL * 2).await;
    assert!(!a.holds() && !b.holds(), "taken without Redis");

    // Redis back (empty): one replica takes the lease again.
    redis.restart();
    until(
        Duration::from_secs(10),
        "a replica holds the lease again",
        || a.holds() || b.holds(),
    )
    .await;
    tokio::time::sleep(TTL).await;
    assert!(a.holds() != b.holds(), "exactly one holds it");
    assert!(!watcher.both_held(), "two replicas applied at once");
}

/// Every minute's shared load in Redis: (minute, busy seconds of `function`, its summed
/// peak, the key's time to live in ms).
fn shared_loads(redis: &RedisServer, function: &str) -> Vec<(u64, f64, u32, i64)> {
    let mut connection = redis.client().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("warmgate:provisioning:load:*")
        .query(&mut connection)
        .unwrap();
    let mut loads: Vec<(u64, f64, u32, i64)> = keys
        .iter()
        .map(|key| {
            let minute = key.rsplit(':').next().unwrap().parse().unwrap();
            let (busy, peak, ttl): (Option<f64>, Option<u32>, i64) = redis::pipe()
                .cmd("HGET")
                .arg(key)
                .arg(format!("{function}:busy"))
                .cmd("HGET")
                .arg(key)
                .arg(format!("{function}:peak"))
                .cmd("PTTL")
                .arg(key)
                .query(&mut connection)
                .unwrap();
            (minute, busy.unwrap_or(0.0), peak.unwrap_or(0), ttl)
        })
        .collect();
    loads.sort_by_key(|l| l.0);
    loads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_plans_from_the_whole_load_the_replicas_share() {
    let redis = RedisServer::start();
    let emulator = emulator().await;
    // One configuration on both, as replicas behind a load balancer: the same public name.
    let a = Replica::serving("e", "steady", &emulator, &redis).await;
    let b = Replica::serving("f", "steady", &emulator, &redis).await;
    let watcher = Watcher::start(&a, &b);
    until(
        Duration::from_secs(5),
        "one replica holds the lease",
        || a.holds() || b.holds(),
    )
    .await;

    // Four executions always busy, two through each replica: alone, each replica's planner
    // would ask for about 2; the fleet's load calls for 4.
    let (load_a, load_b) = (load(&a, 2), load(&b, 2));
    let limit = Duration::from_secs(40);
    let start = Instant::now();
    let mut levels = Vec::new();
    while requested(&emulator) != Some(4) {
        if let Some(level) = requested(&emulator) {
            if levels.last() != Some(&level) {
                levels.push(level);
            }
        }
        assert!(
            start.elapsed() < limit,
            "the level covering the whole load (4) not set within {limit:?}: levels set {levels:?}; shared loads {:?}",
            shared_loads(&redis, "steady")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "levels set {levels:?}, then 4, {:?} after the load started",
        start.elapsed()
    );

    // Redis holds the fleet's minutes: a whole minute of the load is about 4 x 60 busy
    // seconds from both replicas' shares, with a peak of 4 (2 + 2); each key expires.
    let loads = shared_loads(&redis, "steady");
    assert!(
        loads
            .iter()
            .any(|&(_, busy, peak, _)| busy > 200.0 && busy <= 240.5 && peak == 4),
        "no whole minute of both replicas' load in Redis: {loads:?}"
    );
    assert!(
        loads.iter().all(|&(_, _, _, ttl)| ttl > 0),
        "a shared minute without an expiry: {loads:?}"
    );
    // Held a while, it stays (the planner does not fall back to half the load).
    let (holder, other) = if a.holds() { (&a, &b) } else { (&b, &a) };
    let held_from = Instant::now();
    while held_from.elapsed() < Duration::from_secs(5) {
        assert_eq!(
            requested(&emulator),
            Some(4),
            "the level left the whole load's"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(holder.sets() >= 1);
    assert_eq!(
        other.sets(),
        0,
        "the replica without the lease only advises"
    );
    load_a.stop().await;
    load_b.stop().await;
    assert!(!watcher.both_held(), "two replicas applied at once");
}
