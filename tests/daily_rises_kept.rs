//! The warmer's daily rises kept in Redis (`gateway::rises`), against a real redis-server
//! and the emulator, in real time sped up 60 times (Redis's TTLs and answers do not run on
//! tokio's paused clock): an emulated minute is a real second, so the wall-clock minutes
//! the gateway keeps rises under are Unix seconds. A burst from nothing is kept under its
//! minute; a gateway that starts where two days of a rise are kept pre-warms it at its
//! minute, where a rise kept for one day only is not pre-warmed; a rise recorded while
//! Redis was down is kept once it answers, and a gateway that started while it was down reads
//! the rises then. A pre-warm round whose pings did not overlap is sent again, held longer,
//! before the rise.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::redis::RedisServer;
use warmgate::clock::TokioClock;
use warmgate::config::Config;
use warmgate::emulator::{Emulator, RunningEmulator};
use warmgate::gateway::RunningGateway;
use warmgate::lambda::LambdaClient;
use warmgate::platform::PlatformSpec;

const SCALE: f64 = 60.0;
const DAY: u64 = 24 * 60;
/// Calls in a burst, each 20 emulated seconds: no environment serves two of them.
const BURST: usize = 6;
/// Why a pre-warmed burst may meet one cold start (seen once with the pool whole, on a
/// fresh clone): most likely the refresh ping of the environment a function not yet called
/// is kept with, which falls about 5 real seconds after the gateway starts, as the burst
/// does, and may take one environment for its few milliseconds. The pool at the rise is
/// what shows the pre-warm.
const MAY_MEET_A_PING: &str = " (one may meet the refresh of the environment kept before any call)";

fn emulator_toml(functions: &[&str]) -> String {
    let mut spec = String::from("[settings]\nseed = 5\n");
    for name in functions {
        spec.push_str(&format!(
            "\n[[function]]\nname = \"{name}\"\nmemory_mb = 128\ntimeout_s = 60\ninit_ms = 2000\nduration_ms = 20000\n[[function.version]]\n[[function.alias]]\nname = \"live\"\nversion = \"1\"\n"
        ));
    }
    spec
}

/// A round's pings overlap for its hold, in emulated time: at 60 times real time the default
/// 5 ms would be a tenth of a real ms, shorter than the gateway takes to send a round.
const ROUND_HOLD_MS: u64 = 1000;

fn gateway_toml(endpoint: &str, redis: &str, functions: &[&str], round_hold_ms: u64) -> String {
    let mut config = format!(
        r#"{backend}
[warmer]
enabled = true
policy = "warmer"
jitter_ms = 0
round_hold_ms = {round_hold_ms}
max_round_hold_ms = 5000

[cache.redis]
url = "{redis}"
timeout_ms = 100
"#,
        backend = common::endpoint_backend_toml(endpoint, SCALE)
    );
    for name in functions {
        config.push_str(&format!(
            "\n[[function]]\nname = \"{name}\"\ntargets = [\"live\"]\ntimeout_ms = 120000\nprobe = {{ enabled = false }}\n"
        ));
    }
    config
}

async fn emulator(functions: &[&str]) -> RunningEmulator {
    let spec = PlatformSpec::from_toml(&emulator_toml(functions)).unwrap();
    Emulator::new(spec, Arc::new(TokioClock::scaled(SCALE)))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn gateway(
    emulator: &RunningEmulator,
    redis: &RedisServer,
    functions: &[&str],
) -> RunningGateway {
    gateway_holding(emulator, redis, functions, ROUND_HOLD_MS).await
}

/// The gateway whose rounds' pings first hold their environments `round_hold_ms`.
async fn gateway_holding(
    emulator: &RunningEmulator,
    redis: &RedisServer,
    functions: &[&str],
    round_hold_ms: u64,
) -> RunningGateway {
    let endpoint = emulator.endpoint_url();
    let config = Config::parse(
        &gateway_toml(&endpoint, &redis.url(), functions, round_hold_ms),
        [],
        "test",
    )
    .expect("a valid configuration");
    let lambda = Arc::new(LambdaClient::for_endpoint(&endpoint, "us-east-1"));
    common::serve_replica(config, lambda.clone(), lambda, SCALE).await
}

/// The wall-clock minute at the gateways' scale: at 60 times real time, the Unix second.
fn wall_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sleeps until `offset` into wall-clock minute `minute` (of 60 emulated seconds).
async fn until_minute(minute: u64, offset_s: u64) {
    let at = Duration::from_millis(minute * 1000 + offset_s * 1000 / 60);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    tokio::time::sleep(at.saturating_sub(now)).await;
}

/// A burst of `BURST` calls at once to `function`: how many met a cold start.
async fn burst(gateway: &RunningGateway, function: &str) -> usize {
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/functions/{function}/invoke", gateway.addr());
    let calls: Vec<_> = (0..BURST)
        .map(|_| tokio::spawn(http.post(&url).body("{}").send()))
        .collect();
    let mut cold = 0;
    for call in calls {
        let response = call.await.unwrap().unwrap();
        let status = response.status();
        let cold_start = response.headers().get("x-warmgate-cold-start").cloned();
        assert_eq!(
            status,
            200,
            "{function}: {}",
            response.text().await.unwrap()
        );
        let response = cold_start.unwrap();
        cold += usize::from(response == "true");
    }
    cold
}

/// Environments of `function` alive on the emulator (idle or busy).
fn environments(emulator: &RunningEmulator, function: &str) -> u32 {
    let snapshot = emulator.emulator().snapshot();
    let f = snapshot.function(function).unwrap();
    f.versions.iter().map(|v| v.environments.total()).sum()
}

/// The rises kept for wall-clock `day`: field `<minute>:<function>` → peak.
fn kept(redis: &RedisServer, day: u64) -> HashMap<String, u32> {
    let mut connection = redis
        .client()
        .get_connection()
        .expect("redis-server answers");
    redis::cmd("HGETALL")
        .arg(format!("warmgate:warmer:rises:{day}"))
        .query(&mut connection)
        .unwrap()
}

/// The rises of `function` kept in Redis over wall-clock minutes `minutes`, as (minute,
/// peak), once there are some (within 10 s).
async fn until_kept(redis: &RedisServer, function: &str, minutes: (u64, u64)) -> Vec<(u64, u32)> {
    for _ in 0..200 {
        let rises: Vec<(u64, u32)> = (minutes.0 / DAY..=minutes.1 / DAY)
            .flat_map(|day| kept(redis, day))
            .filter_map(|(field, peak)| {
                let (minute, name) = field.split_once(':')?;
                (name == function).then(|| (minute.parse().unwrap(), peak))
            })
            .collect();
        if !rises.is_empty() {
            return rises;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no rise of {function} kept in Redis within 10 s");
}

/// A burst from nothing to `function`; the wall-clock minutes it ran in.
async fn burst_from_nothing(gateway: &RunningGateway, function: &str) -> (u64, u64) {
    let before = wall_minute();
    let cold = burst(gateway, function).await;
    // The gateway holds some calls for environments the warmer starts as they wait; a rise
    // is a cold start with others running.
    assert!(cold >= 1, "{cold} of {BURST} cold: a burst from nothing");
    (before, wall_minute())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_nothing_is_kept_under_its_wall_clock_minute() {
    let redis = RedisServer::start();
    let emulator = emulator(&["model"]).await;
    let gateway = gateway(&emulator, &redis, &["model"]).await;
    let (before, after) = burst_from_nothing(&gateway, "model").await;
    // Kept once the warmer next acts (its recheck is an emulated minute).
    // A burst that ran across a minute's end (a slow machine) is kept under both. The
    // warmer counts minutes on the gateway's clock, and a rise is kept under the wall-clock
    // minute in which its clock minute began (`MinuteAlign::wall_minute`): one before the
    // burst's when the gateway's minute began in the wall's last.
    let rises = until_kept(&redis, "model", (before - 1, after)).await;
    for &(minute, _) in &rises {
        assert!(
            (before - 1..=after).contains(&minute),
            "kept under minute {minute}, the burst ran in {before}..={after}"
        );
    }
    let peak = rises.iter().map(|&(_, peak)| peak).max().unwrap_or(0);
    assert!((2..=BURST as u32).contains(&peak), "peak {peak}: {rises:?}");
    gateway.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rise_redis_did_not_take_is_kept_once_it_answers() {
    let mut redis = RedisServer::start();
    let emulator = emulator(&["model"]).await;
    let gateway = gateway(&emulator, &redis, &["model"]).await;
    redis.stop();
    let (before, after) = burst_from_nothing(&gateway, "model").await;
    // Two emulated minutes: the warmer has acted, and Redis did not answer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();
    // As above, the minute the gateway's clock minute began in may be the one before.
    let rises = until_kept(&redis, "model", (before - 1, after)).await;
    assert!(
        rises
            .iter()
            .all(|&(minute, _)| (before - 1..=after).contains(&minute)),
        "{rises:?}"
    );
    gateway.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Keeps in Redis, as an earlier gateway would have, a rise at wall-clock minute `rise` the
/// last `days` days for `function`.
fn keep_as_before(redis: &RedisServer, function: &str, rise: u64, days: u64) {
    let mut connection = redis.client().get_connection().unwrap();
    for d in 1..=days {
        let minute = rise - d * DAY;
        let _: () = redis::cmd("HSET")
            .arg(format!("warmgate:warmer:rises:{}", minute / DAY))
            .arg(format!("{minute}:{function}"))
            .arg(BURST)
            .query(&mut connection)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_starts_pre_warms_a_rise_kept_two_days_running() {
    let redis = RedisServer::start();
    // A rise at the same minute the last two days for `daily`, yesterday only for `once`;
    // both burst at that minute today.
    let rise = wall_minute() + 5;
    keep_as_before(&redis, "daily", rise, 2);
    keep_as_before(&redis, "once", rise, 1);
    let emulator = emulator(&["daily", "once"]).await;
    let gateway = gateway(&emulator, &redis, &["daily", "once"]).await;
    until_minute(rise, 10).await;
    // At the rise, `daily`'s pool holds its burst; `once` has only the environment a
    // function not yet called is kept warm with.
    let pool = environments(&emulator, "daily");
    assert!(
        pool >= BURST as u32,
        "daily: {pool} environments at the rise"
    );
    let pool = environments(&emulator, "once");
    assert!(pool <= 1, "once: {pool} environments at the rise");
    let (daily, once) = tokio::join!(burst(&gateway, "daily"), burst(&gateway, "once"));
    assert!(
        daily <= 1,
        "{daily} of {BURST} cold: a rise kept two days running is pre-warmed{MAY_MEET_A_PING}"
    );
    // Some of `once`'s calls may be held for the environments the warmer starts as they
    // wait, more of them the slower the machine: the pool above is what was not expected.
    assert!(
        once >= 1,
        "a rise kept for one day meets its burst cold: {once} of {BURST} cold"
    );
    gateway.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_warm_round_that_reached_too_few_environments_is_sent_again_held_longer() {
    let redis = RedisServer::start();
    let rise = wall_minute() + 5;
    keep_as_before(&redis, "daily", rise, 2);
    let emulator = emulator(&["daily"]).await;
    // A first hold of an emulated millisecond, a sixtieth of a real one: the round's pings
    // do not overlap, and most land on an environment another has just left (without the
    // rounds sent again, 4 or 5 of the burst's 6 calls met a cold start).
    let gateway = gateway_holding(&emulator, &redis, &["daily"], 1).await;
    until_minute(rise, 10).await;
    // On a loaded machine a ping may straggle even at the longest hold (5 s, 83 real ms),
    // and a round that misses then is not sent again: one cold start may be left.
    let cold = burst(&gateway, "daily").await;
    assert!(
        cold <= 1,
        "{cold} of {BURST} cold: the environments the first round missed were started before the rise"
    );
    gateway.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_started_without_redis_reads_the_rises_once_it_answers() {
    let mut redis = RedisServer::start();
    redis.stop();
    let emulator = emulator(&["daily"]).await;
    let gateway = gateway(&emulator, &redis, &["daily"]).await;
    // Redis comes (empty: it keeps nothing on disk), and the rise with it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    let rise = wall_minute() + 6;
    keep_as_before(&redis, "daily", rise, 2);
    until_minute(rise, 10).await;
    let pool = environments(&emulator, "daily");
    assert!(
        pool >= BURST as u32,
        "daily: {pool} environments at the rise"
    );
    let cold = burst(&gateway, "daily").await;
    assert!(
        cold <= 1,
        "{cold} of {BURST} cold: read after Redis came{MAY_MEET_A_PING}"
    );
    gateway.shutdown(Duration::from_secs(5)).await.unwrap();
}
