//! Keep-alive shared among replicas (`gateway::keepers`), against a real redis-server, in
//! real time (Redis's TTLs do not run on tokio's paused clock): two gateways with a warmer
//! share one Redis and one emulator (sped up, so that 5-minute rounds come every second).
//! Each function's rounds are sent by one replica, the one that says it keeps it; when Redis
//! goes, both keep every function (more pings, never fewer); when one stops, the other keeps
//! its functions; each hears the calls the other serves, in its policy and its warm-pool
//! estimate (`gateway::exchange`). Ground
//! truth: the pings each gateway sent, counted at its Lambda client, and the calls clients
//! made.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::redis::RedisServer;
use parking_lot::Mutex;
use tokio::time::Instant;
use warmgate::clock::TokioClock;
use warmgate::config::Config;
use warmgate::emulator::{Emulator, RunningEmulator};
use warmgate::gateway::RunningGateway;
use warmgate::lambda::{InvokeError, InvokeRequest, InvokeResponse, Invoker, LambdaClient};
use warmgate::platform::PlatformSpec;

/// Emulated time runs this much faster than real time: a 5-minute round every second.
const SCALE: f64 = 300.0;
const FUNCTIONS: [&str; 4] = ["k0", "k1", "k2", "k3"];

/// A function whose calls run 10 emulated minutes (2 s of real time).
const LONG: &str = "long";

fn emulator_toml() -> String {
    let mut spec = String::from("[settings]\nseed = 3\nidle_reclaim_s = 600\n");
    spec.push_str(&format!(
        "\n[[function]]\nname = \"{LONG}\"\nmemory_mb = 128\ntimeout_s = 900\ninit_ms = 200\nduration_ms = 600000\n[[function.version]]\n[[function.alias]]\nname = \"live\"\nversion = \"1\"\n"
    ));
    for name in FUNCTIONS {
        spec.push_str(&format!(
            "\n[[function]]\nname = \"{name}\"\nmemory_mb = 128\ninit_ms = 200\nduration_ms = 10\n[[function.version]]\n[[function.alias]]\nname = \"live\"\nversion = \"1\"\n"
        ));
    }
    spec
}

fn gateway_toml(endpoint: &str, redis: &str, ttl_ms: u64) -> String {
    let mut config = format!(
        r#"{backend}
[warmer]
enabled = true
policy = "fixed-5min"
jitter_ms = 0
replica_ttl_ms = {ttl_ms}

[cache.redis]
url = "{redis}"
timeout_ms = 100
retry_after_ms = 50
"#,
        backend = common::endpoint_backend_toml(endpoint, SCALE)
    );
    for name in FUNCTIONS {
        config.push_str(&format!(
            "\n[[function]]\nname = \"{name}\"\ntargets = [\"live\"]\nprobe = {{ enabled = false }}\n"
        ));
    }
    config.push_str(&format!(
        "\n[[function]]\nname = \"{LONG}\"\ntargets = [\"live\"]\ntimeout_ms = 900000\nprobe = {{ enabled = false }}\n"
    ));
    config
}

/// The Lambda client, counting the keep-alive pings sent through it by function.
struct Counting {
    lambda: LambdaClient,
    pings: Mutex<BTreeMap<String, u32>>,
}

#[async_trait::async_trait]
impl Invoker for Counting {
    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse, InvokeError> {
        let ping = req.client_context.as_deref().is_some_and(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c)
                .is_ok_and(|json| String::from_utf8_lossy(&json).contains("warmgate-ping"))
        });
        if ping {
            *self
                .pings
                .lock()
                .entry(req.function_name.clone())
                .or_default() += 1;
        }
        self.lambda.invoke(req).await
    }
}

struct Replica {
    running: RunningGateway,
    counting: Arc<Counting>,
}

impl Replica {
    async fn start(emulator: &RunningEmulator, redis: &RedisServer, ttl_ms: u64) -> Self {
        let endpoint = emulator.endpoint_url();
        let config = Config::parse(&gateway_toml(&endpoint, &redis.url(), ttl_ms), [], "test")
            .expect("a valid configuration");
        let lambda = LambdaClient::for_endpoint(&endpoint, "us-east-1");
        let counting = Arc::new(Counting {
            lambda: lambda.clone(),
            pings: Mutex::new(BTreeMap::new()),
        });
        let running =
            common::serve_replica(config, counting.clone(), Arc::new(lambda), SCALE).await;
        Self { running, counting }
    }

    fn replicas(&self) -> usize {
        self.running.gateway().keep_alive_replicas()
    }

    fn keeps(&self, function: &str) -> bool {
        self.running.gateway().keeps_function(function)
    }

    /// The pings it sent to each function since the last call.
    fn take_pings(&self) -> BTreeMap<String, u32> {
        std::mem::take(&mut *self.counting.pings.lock())
    }
}

async fn emulator() -> RunningEmulator {
    let spec = PlatformSpec::from_toml(&emulator_toml()).unwrap();
    Emulator::new(spec, Arc::new(TokioClock::scaled(SCALE)))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Waits until `condition` holds, at most `limit`.
async fn until(limit: Duration, what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The pings each replica sends over `window` of real time (about one round a second per
/// function it keeps), counted from a clean start.
async fn pings_over(window: Duration, replicas: &[&Replica]) -> Vec<BTreeMap<String, u32>> {
    for r in replicas {
        r.take_pings();
    }
    tokio::time::sleep(window).await;
    replicas.iter().map(|r| r.take_pings()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_is_pinged_by_its_keeper_alone_and_by_both_without_redis() {
    let mut redis = RedisServer::start();
    let emulator = emulator().await;
    // A short TTL: Redis's loss shows within half a second.
    let a = Replica::start(&emulator, &redis, 600).await;
    let b = Replica::start(&emulator, &redis, 600).await;
    let limit = Duration::from_secs(5);
    until(limit, "both replicas count each other", || {
        a.replicas() == 2 && b.replicas() == 2
    })
    .await;
    // Rounds decided before the views agreed have been sent.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for f in FUNCTIONS {
        assert!(
            a.keeps(f) != b.keeps(f),
            "{f}: exactly one keeper (a {}, b {})",
            a.keeps(f),
            b.keeps(f)
        );
    }
    let sent = pings_over(Duration::from_secs(5), &[&a, &b]).await;
    for f in FUNCTIONS {
        let (by_a, by_b) = (
            sent[0].get(f).copied().unwrap_or(0),
            sent[1].get(f).copied().unwrap_or(0),
        );
        let (keeper, other) = if a.keeps(f) {
            (by_a, by_b)
        } else {
            (by_b, by_a)
        };
        assert!(
            keeper >= 2,
            "{f}: its keeper pinged it {keeper} times in 25 emulated minutes"
        );
        assert_eq!(
            other, 0,
            "{f}: the replica that does not keep it sent {other} pings"
        );
    }

    // Redis goes: neither can tell who keeps what, so each keeps every function, as alone.
    redis.stop();
    until(limit, "both replicas stop trusting the membership", || {
        a.replicas() == 0 && b.replicas() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = pings_over(Duration::from_secs(5), &[&a, &b]).await;
    for (replica, pings) in ["a", "b"].iter().zip(&sent) {
        for f in FUNCTIONS {
            let n = pings.get(f).copied().unwrap_or(0);
            assert!(n >= 2, "without Redis, {replica} pinged {f} {n} times");
        }
    }
    a.running.shutdown(Duration::from_secs(5)).await.unwrap();
    b.running.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_leaves_its_functions_to_the_other() {
    let redis = RedisServer::start();
    let emulator = emulator().await;
    // A long TTL: had a not left, b would count it for 20 s.
    let a = Replica::start(&emulator, &redis, 20_000).await;
    let b = Replica::start(&emulator, &redis, 20_000).await;
    let limit = Duration::from_secs(10);
    until(limit, "both replicas count each other", || {
        a.replicas() == 2 && b.replicas() == 2
    })
    .await;
    let left_by_a: Vec<&str> = FUNCTIONS.into_iter().filter(|f| a.keeps(f)).collect();

    a.running.shutdown(Duration::from_secs(5)).await.unwrap();
    // It left the membership: b takes its functions at its next beat (every 6.7 s), long
    // before a's entry would have expired.
    until(limit, "the remaining replica counts itself alone", || {
        b.replicas() == 1
    })
    .await;
    assert!(FUNCTIONS.iter().all(|f| b.keeps(f)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = pings_over(Duration::from_secs(4), &[&b]).await;
    for f in FUNCTIONS {
        let n = sent[0].get(f).copied().unwrap_or(0);
        assert!(
            n >= 2,
            "{f} (a kept {left_by_a:?}): pinged {n} times by the replica left"
        );
    }
    b.running.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// `replica`'s warm-pool estimate of `long:live` now.
fn estimate(replica: &Replica) -> warmgate::policy::pool::PoolView {
    let gateway = replica.running.gateway();
    gateway.function(LONG).unwrap().pool_views(gateway.now())[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_hears_the_calls_the_other_serves() {
    let redis = RedisServer::start();
    let emulator = emulator().await;
    let a = Replica::start(&emulator, &redis, 600).await;
    let b = Replica::start(&emulator, &redis, 600).await;
    let limit = Duration::from_secs(10);
    until(limit, "both replicas count each other", || {
        a.replicas() == 2 && b.replicas() == 2
    })
    .await;
    let heard_before = a.running.gateway().calls_heard();
    // Three clients call b at once; each call runs 2 s.
    let url = format!("http://{}/v1/functions/{LONG}/invoke", b.running.addr());
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let answer = reqwest::Client::new()
                    .post(&url)
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 200);
            })
        })
        .collect();
    // a, whose policy plans keep-alive on the whole fleet, counts them in flight, and its
    // estimate holds three environments busy...
    until(limit, "a counts b's three calls in flight", || {
        a.running.gateway().in_flight_elsewhere(LONG) == 3 && estimate(&a).in_flight == 3
    })
    .await;
    for call in calls {
        call.await.expect("every call answered 200");
    }
    // ...then hears of each as it ends: none in flight, three environments left idle.
    until(limit, "a hears b's three calls end", || {
        let view = estimate(&a);
        a.running.gateway().in_flight_elsewhere(LONG) == 0
            && a.running.gateway().calls_heard() >= heard_before + 3
            && view.in_flight == 0
            && view.warm_idle >= 2.5
    })
    .await;
    assert_eq!(
        b.running.gateway().in_flight_elsewhere(LONG),
        0,
        "b counts its own calls, not as another's"
    );
    a.running.shutdown(Duration::from_secs(5)).await.unwrap();
    b.running.shutdown(Duration::from_secs(5)).await.unwrap();
}
