//! The cache's shared tier against a real redis-server (started and stopped by the tests,
//! installed by `scripts/test.sh`), in real time: Redis's socket does not run on tokio's
//! paused clock. Ground truth is the emulator's count of invocations and Redis's own keys.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cache::{call, call_at, gateway_toml, invocations, start, EMULATOR};
use common::process::GatewayProcess;
use common::redis::RedisServer;
use common::Stack;
use warmgate::clock::TokioClock;
use warmgate::emulator::Emulator;
use warmgate::platform::PlatformSpec;

/// Keys in Redis (the cache's, as nothing else writes there).
fn keys(redis: &RedisServer) -> usize {
    let mut connection = redis
        .client()
        .get_connection()
        .expect("redis-server answers");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("warmgate:cache:v1:*")
        .query(&mut connection)
        .unwrap();
    keys.len()
}

/// Waits until Redis holds `n` cache keys: an answer reaches Redis after its client has it.
async fn until_keys(redis: &RedisServer, n: usize) {
    for _ in 0..1000 {
        if keys(redis) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("Redis never held {n} cache keys");
}

async fn cache_status(stack: &Stack) -> serde_json::Value {
    let url = format!("http://{}/v1/cache", stack.gateway.metrics_addr());
    stack
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A gateway process (the real binary) in front of the emulator at `endpoint`, and its URL.
fn replica(name: &str, endpoint: &str, redis: &str) -> (GatewayProcess, String) {
    let dir = std::env::temp_dir().join(format!("warmgate-cache-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = gateway_toml("live", Some(redis)).replace("http://placeholder", endpoint);
    std::fs::write(dir.join("warmgate.toml"), config).unwrap();
    let process = GatewayProcess::start(&dir.join("warmgate.toml"));
    let base = format!("http://{}", process.addr);
    (process, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_payload_hits_across_two_gateway_processes_and_a_restart() {
    let redis = RedisServer::start();
    let spec = PlatformSpec::from_toml(EMULATOR).unwrap();
    let emulator = Emulator::new(spec, Arc::new(TokioClock::new()))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = emulator.endpoint_url();
    let http = reqwest::Client::new();
    let (a, a_base) = replica("a", &endpoint, &redis.url());
    let (_b, b_base) = replica("b", &endpoint, &redis.url());
    let model = |e: &Emulator| {
        let truth = e.snapshot();
        let totals = truth.function("model").unwrap().totals();
        totals.invocations() - totals.pings
    };

    let first = call_at(
        &http,
        &a_base,
        "model",
        r#"{"prompt":"hi","params":{"k":5}}"#,
        None,
    )
    .await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
    until_keys(&redis, 1).await;

    // The other replica, and the key order changed.
    let there = call_at(
        &http,
        &b_base,
        "model",
        r#"{"params":{"k":5},"prompt":"hi"}"#,
        None,
    )
    .await;
    assert_eq!((there.status, there.cache.as_str()), (200, "hit"));
    assert!(there.timing.contains("lookup: redis"), "{}", there.timing);
    assert_eq!(there.body, first.body);
    assert_eq!(
        model(emulator.emulator()),
        1,
        "one invocation for both replicas"
    );

    // A replica restarted with an empty local tier still finds it.
    drop(a);
    let (_a, a_base) = replica("a2", &endpoint, &redis.url());
    let after = call_at(
        &http,
        &a_base,
        "model",
        r#"{"prompt":"hi","params":{"k":5}}"#,
        None,
    )
    .await;
    assert_eq!(
        (after.cache.as_str(), after.body.as_str()),
        ("hit", first.body.as_str())
    );
    assert_eq!(model(emulator.emulator()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_code_sha256_misses() {
    let redis = RedisServer::start();
    let v1 = start("live", Some(&redis.url())).await;
    let answer = call(&v1, "model", r#"{"prompt":"hi"}"#, None).await;
    assert_eq!(answer.cache, "miss");
    until_keys(&redis, 1).await;

    // The same public function deployed with new code (alias `next`, CodeSha256 of v2).
    let v2 = start("next", Some(&redis.url())).await;
    let fresh = call(&v2, "model", r#"{"prompt":"hi"}"#, None).await;
    assert_eq!(
        (fresh.status, fresh.cache.as_str()),
        (200, "miss"),
        "never an old code's answer"
    );
    assert_ne!(fresh.body, answer.body, "the new code answers otherwise");
    assert_eq!(invocations(&v2, "model"), 1);

    // A replica still on the old code shares the old answer.
    let old = start("live", Some(&redis.url())).await;
    let shared = call(&old, "model", r#"{"prompt":"hi"}"#, None).await;
    assert_eq!(
        (shared.cache.as_str(), shared.body.as_str()),
        ("hit", answer.body.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_loses_no_request_and_comes_back() {
    let mut redis = RedisServer::start();
    let stack = start("live", Some(&redis.url())).await;
    let stored = call(&stack, "model", r#"{"prompt":"kept"}"#, None).await;
    until_keys(&redis, 1).await;
    assert_eq!(cache_status(&stack).await["redis"]["up"], true);

    redis.stop();
    for i in 0..20 {
        let answer = call(&stack, "model", &format!(r#"{{"prompt":"new {i}"}}"#), None).await;
        assert_eq!(
            (answer.status, answer.cache.as_str()),
            (200, "miss"),
            "request {i}"
        );
    }
    // The local tier still answers what it holds.
    let local = call(&stack, "model", r#"{"prompt":"kept"}"#, None).await;
    assert_eq!(
        (local.cache.as_str(), local.body.as_str()),
        ("hit", stored.body.as_str())
    );
    assert_eq!(
        cache_status(&stack).await["redis"]["up"],
        false,
        "the outage is reported"
    );
    assert_eq!(invocations(&stack, "model"), 21);

    // Redis is back (empty): new answers reach it again once the gateway reconnects.
    redis.restart();
    let mut back = false;
    for i in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        call(
            &stack,
            "model",
            &format!(r#"{{"prompt":"after {i}"}}"#),
            None,
        )
        .await;
        if keys(&redis) > 0 {
            back = true;
            break;
        }
    }
    assert!(back, "the gateway never stored in Redis again");
    // A request that met the reconnection may still fail after the first store lands, and
    // mark the tier down until its health check: wait for the report rather than race it.
    assert!(
        redis_reported_up(&stack).await,
        "the tier stored in Redis but never reported it up"
    );

    // Without traffic too, the gateway notices Redis's return (its health check).
    redis.stop();
    call(&stack, "model", r#"{"prompt":"while down"}"#, None).await;
    assert_eq!(cache_status(&stack).await["redis"]["up"], false);
    redis.restart();
    assert!(
        redis_reported_up(&stack).await,
        "the health check never saw Redis back"
    );
}

/// Whether the gateway reports its Redis tier up within 15 s.
async fn redis_reported_up(stack: &Stack) -> bool {
    for _ in 0..300 {
        if cache_status(stack).await["redis"]["up"] == true {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_costs_a_request_its_timeout_only() {
    let redis = RedisServer::start();
    let toml =
        gateway_toml("live", Some(&redis.url())).replace("timeout_ms = 2000", "timeout_ms = 20");
    let stack = common::start_on(EMULATOR, &toml, true).await;
    // Redis stalls for 3 s: lookups time out after 20 ms and requests go on to Lambda.
    let blocker = {
        let url = redis.url();
        std::thread::spawn(move || {
            let client = redis::Client::open(url).unwrap();
            let mut connection = client.get_connection().unwrap();
            let _: () = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(3)
                .query(&mut connection)
                .unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = call(&stack, "model", r#"{"prompt":"while stalled"}"#, None).await;
    assert_eq!((answer.status, answer.cache.as_str()), (200, "miss"));
    assert_eq!(cache_status(&stack).await["redis"]["up"], false);
    blocker.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_tier_speaks_tls_with_a_password_as_elasticache() {
    let redis = RedisServer::start_tls("s3cret-token");
    let toml = gateway_toml("live", Some(&redis.url())).replace(
        "timeout_ms = 2000",
        &format!(
            "timeout_ms = 2000\npassword = \"s3cret-token\"\nca_file = {:?}",
            redis.ca_file().unwrap()
        ),
    );
    let a = common::start_on(EMULATOR, &toml, true).await;
    let first = call(&a, "model", r#"{"prompt":"over tls"}"#, None).await;
    assert_eq!(first.cache, "miss");
    until_keys(&redis, 1).await;
    assert_eq!(cache_status(&a).await["redis"]["up"], true);
    // A second replica with an empty local tier finds the answer through TLS.
    let b = common::start_on(EMULATOR, &toml, true).await;
    let hit = call(&b, "model", r#"{"prompt":"over tls"}"#, None).await;
    assert_eq!(
        (hit.cache.as_str(), hit.body.as_str()),
        ("hit", first.body.as_str())
    );
    assert!(hit.timing.contains("lookup: redis"), "{}", hit.timing);
}
