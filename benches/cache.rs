//! The inference cache, measured two ways (docs/cache.md):
//!
//! 1. **Savings** on the Azure LLM inference trace (2023), arrivals as recorded. The trace has
//!    no prompts, so a repeat model gives them: each request draws its prompt from a population
//!    of `POPULATION` prompts per function by a Zipf law of exponent `s`; a prompt's size and
//!    its answer's come from the tokens of the request that first drew it, its duration by the
//!    trace reader's rule. The replay runs in virtual time through the cache's own code (keys,
//!    the local tier with its byte bound and TTL); identical requests in flight share one
//!    invocation. It is set against an exact-match oracle with unbounded memory and the same
//!    TTL: invocations and dollars saved.
//! 2. **Added latency** through the real gateway in front of the emulator (5 ms handler),
//!    sequential requests of 4 KB: no cache, a miss, a local hit, and with Redis (a real
//!    redis-server this starts) a Redis miss and a Redis hit; end to end and the lookup alone
//!    (Server-Timing `cache`).
//!
//! `cargo bench --bench cache`; settings from the environment: CACHE_BENCH_POPULATION
//! (10000), CACHE_BENCH_EXPONENTS (0.6,0.8,1.0,1.2), CACHE_BENCH_SEED (1),
//! CACHE_BENCH_REQUESTS (2000 per latency case), WARMGATE_TRACES (../shared/traces).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use warmgate::cache::{Entry, FunctionCache, Key};
use warmgate::config::FunctionConfig;
use warmgate::sim::trace::{read_azure_llm_2023, LlmOptions, Trace, TraceFunction};

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let traces = std::env::var("WARMGATE_TRACES").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/traces"),
        PathBuf::from,
    );
    let path = traces.join("azure_llm_inference_2023");
    let trace = read_azure_llm_2023(&path, &LlmOptions::default())
        .unwrap_or_else(|e| panic!("the LLM trace at {}: {e}", path.display()));
    let population: u64 = setting("CACHE_BENCH_POPULATION", 10_000);
    let seed: u64 = setting("CACHE_BENCH_SEED", 1);
    let exponents: Vec<f64> = std::env::var("CACHE_BENCH_EXPONENTS")
        .unwrap_or_else(|_| "0.6,0.8,1.0,1.2".into())
        .split(',')
        .map(|s| s.trim().parse().expect("exponents are numbers"))
        .collect();
    savings(&trace, population, seed, &exponents);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(latency(setting("CACHE_BENCH_REQUESTS", 2_000)));
}

// --- 1. Savings ------------------------------------------------------------------------

/// One prompt of the population, as first drawn.
struct Prompt {
    filler: String,
    answer_bytes: usize,
    duration: Duration,
}

#[derive(Default, Clone, Copy)]
struct Figures {
    requests: u64,
    invocations: u64,
    hits: u64,
    coalesced: u64,
    dollars_spent: f64,
    dollars_saved: f64,
}

impl Figures {
    fn add(&mut self, other: Figures) {
        self.requests += other.requests;
        self.invocations += other.invocations;
        self.hits += other.hits;
        self.coalesced += other.coalesced;
        self.dollars_spent += other.dollars_spent;
        self.dollars_saved += other.dollars_saved;
    }
}

fn cost(prompt: &Prompt, memory_mb: u32) -> f64 {
    Entry {
        payload: Default::default(),
        target: String::new(),
        executed_version: None,
        billed_ms: prompt.duration.as_millis() as u64,
        memory_mb,
    }
    .dollars()
}

/// The cache's configuration for a bench function: the defaults unless `local_max_bytes`.
fn function_config(name: &str, local_max_bytes: Option<u64>) -> FunctionConfig {
    let bound = local_max_bytes.map_or(String::new(), |b| format!("local_max_bytes = {b}\n"));
    toml::from_str(&format!(
        "name = \"{name}\"\n[cache]\nignore = [\"/request_id\"]\n{bound}"
    ))
    .expect("a valid function configuration")
}

/// Replays one function's arrivals through the cache (`local_max_bytes` None: the default
/// bound) or, with `oracle`, through an unbounded exact-match store with the same TTL.
fn replay(
    function: &TraceFunction,
    draws: &[u64],
    prompts: &HashMap<u64, Prompt>,
    local_max_bytes: Option<u64>,
    oracle: bool,
) -> Figures {
    let config = function_config(&function.id, local_max_bytes);
    let ttl = config.cache.as_ref().unwrap().ttl();
    let max_entry = config.cache.as_ref().unwrap().max_entry_bytes;
    let cache = FunctionCache::new(&config).expect("a cached function");
    let mut unbounded: HashMap<u64, Duration> = HashMap::new();
    let mut in_flight: HashMap<u64, Duration> = HashMap::new();
    let mut completions: BinaryHeap<Reverse<(Duration, u64)>> = BinaryHeap::new();
    let mut figures = Figures::default();
    let key = |rank: u64, request: usize| {
        let prompt = &prompts[&rank];
        let payload = format!(
            r#"{{"request_id":"{request}","model":"{}","prompt":"{rank}: {}","max_tokens":512}}"#,
            function.id, prompt.filler
        );
        Key::new(
            &function.id,
            "code",
            payload.as_bytes(),
            None,
            &config.cache.as_ref().unwrap().ignore,
        )
        .expect("JSON")
    };
    for (i, (arrival, &rank)) in function.arrivals.iter().zip(draws).enumerate() {
        let now = arrival.at;
        while let Some(&Reverse((done, r))) = completions.peek() {
            if done > now {
                break;
            }
            completions.pop();
            in_flight.remove(&r);
            let prompt = &prompts[&r];
            if oracle {
                unbounded.insert(r, done + ttl);
            } else if prompt.answer_bytes <= max_entry {
                let entry = Entry {
                    payload: vec![b'a'; prompt.answer_bytes].into(),
                    target: "live".into(),
                    executed_version: Some("1".into()),
                    billed_ms: prompt.duration.as_millis() as u64,
                    memory_mb: function.memory_mb,
                };
                cache.local_put(key(r, i), entry, done, ttl);
            }
        }
        let prompt = &prompts[&rank];
        let dollars = cost(prompt, function.memory_mb);
        figures.requests += 1;
        let hit = if oracle {
            unbounded.get(&rank).is_some_and(|&until| now < until)
        } else {
            cache.local_get(&key(rank, i), now).is_some()
        };
        if hit {
            figures.hits += 1;
            figures.dollars_saved += dollars;
        } else if let std::collections::hash_map::Entry::Vacant(slot) = in_flight.entry(rank) {
            figures.invocations += 1;
            figures.dollars_spent += dollars;
            slot.insert(now + prompt.duration);
            completions.push(Reverse((now + prompt.duration, rank)));
        } else {
            figures.coalesced += 1;
            figures.dollars_saved += dollars;
        }
    }
    figures
}

fn savings(trace: &Trace, population: u64, seed: u64, exponents: &[f64]) {
    println!(
        "# Savings on {} ({} requests over {:.0} min), {population} prompts per function, seed {seed}",
        trace.name,
        trace.functions.iter().map(|f| f.arrivals.len()).sum::<usize>(),
        trace.duration.as_secs_f64() / 60.0
    );
    println!();
    println!("| Zipf s | local bound | requests (invocations without a cache) | $ without a cache | cache: invocations | hits | coalesced | oracle: invocations | $ saved, cache | $ saved, oracle | cache / oracle |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &s in exponents {
        let zipf = Zipf::new(population as f64, s).expect("a valid Zipf law");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut plans = Vec::new();
        for function in &trace.functions {
            let draws: Vec<u64> = function
                .arrivals
                .iter()
                .map(|_| zipf.sample(&mut rng) as u64)
                .collect();
            let mut prompts = HashMap::new();
            for (arrival, &rank) in function.arrivals.iter().zip(&draws) {
                prompts.entry(rank).or_insert_with(|| {
                    let (context, generated) = arrival.tokens.unwrap_or((100, 100));
                    Prompt {
                        // About four bytes of text per token.
                        filler: "x".repeat(context as usize * 4),
                        answer_bytes: generated as usize * 4 + 64,
                        duration: arrival.duration.unwrap_or(Duration::from_secs(1)),
                    }
                });
            }
            plans.push((function, draws, prompts));
        }
        let total = |bound: Option<u64>, oracle: bool| {
            let mut figures = Figures::default();
            for (function, draws, prompts) in &plans {
                figures.add(replay(function, draws, prompts, bound, oracle));
            }
            figures
        };
        let oracle = total(None, true);
        for (label, bound) in [("default (32 MiB)", None), ("256 KiB", Some(256 * 1024))] {
            let cache = total(bound, false);
            println!(
                "| {s} | {label} | {} | {:.2} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2}% |",
                cache.requests,
                cache.dollars_spent + cache.dollars_saved,
                cache.invocations,
                cache.hits,
                cache.coalesced,
                oracle.invocations,
                cache.dollars_saved,
                oracle.dollars_saved,
                100.0 * cache.dollars_saved / oracle.dollars_saved.max(f64::MIN_POSITIVE)
            );
        }
    }
    println!();
}

// --- 2. Added latency ------------------------------------------------------------------

const EMULATOR: &str = r#"
[settings]
seed = 1
idle_reclaim_s = 3600

[[function]]
name = "model"
timeout_s = 30
init_ms = 100
duration_ms = 5
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
"#;

fn gateway(redis: Option<&str>) -> String {
    let redis = redis.map_or(String::new(), |url| {
        format!("[cache.redis]\nurl = \"{url}\"\n")
    });
    format!(
        r#"
[gateway]
max_in_flight = 256
[backend]
kind = "endpoint"
url = "http://placeholder"
[access]
open = true
{redis}
[[function]]
name = "plain"
lambda_name = "model"
targets = ["live"]

[[function]]
name = "cached"
lambda_name = "model"
targets = ["live"]
[function.cache]
"#
    )
}

struct Case {
    total: Histogram<u64>,
    lookup: Histogram<u64>,
}

/// Sends `payloads` one after another to `function`; end-to-end and lookup times in µs.
async fn measure(
    http: &reqwest::Client,
    base: &str,
    function: &str,
    payloads: &[String],
    expect: &str,
) -> Case {
    let mut case = Case {
        total: Histogram::new(3).unwrap(),
        lookup: Histogram::new(3).unwrap(),
    };
    for payload in payloads {
        let sent = Instant::now();
        let response = http
            .post(format!("{base}/v1/functions/{function}/invoke"))
            .body(payload.clone())
            .send()
            .await
            .unwrap();
        let cache = response
            .headers()
            .get("x-warmgate-cache")
            .map(|v| v.to_str().unwrap().to_string());
        let timing = response
            .headers()
            .get("server-timing")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        case.total
            .record(sent.elapsed().as_micros() as u64)
            .unwrap();
        assert_eq!(cache.as_deref().unwrap_or("none"), expect, "{function}");
        if let Some(ms) = timing.as_deref().and_then(|t| {
            t.split(", ")
                .find_map(|part| part.strip_prefix("cache;dur="))
                .and_then(|rest| rest.split(';').next())
                .and_then(|ms| ms.parse::<f64>().ok())
        }) {
            case.lookup.record((ms * 1000.0) as u64).unwrap();
        }
    }
    case
}

fn payloads(n: usize, tag: &str) -> Vec<String> {
    let filler = "x".repeat(4096);
    (0..n)
        .map(|i| format!(r#"{{"prompt":"{tag} {i} {filler}"}}"#))
        .collect()
}

struct Redis(Child, String);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server for the Redis rows (scripts/test.sh installs it)");
    // Killed and waited for when dropped, the panic below included.
    let redis = Redis(child, format!("redis://127.0.0.1:{port}/"));
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return redis;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not start");
}

/// Waits until `n` cached answers are in Redis: a replica stores them after answering, off
/// the request's path, so a fixed sleep would race a loaded machine.
async fn stored_in_redis(url: &str, n: usize) {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("the bench's redis-server");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*:cache:v1:cached:*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        if keys.len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} cached answers reached Redis in 60 s",
            keys.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn latency(n: usize) {
    use warmgate::stack::LocalStack;
    let redis = start_redis();
    let local = LocalStack::start(EMULATOR, &gateway(None), Duration::from_secs(10)).await;
    let a = LocalStack::start(EMULATOR, &gateway(Some(&redis.1)), Duration::from_secs(10)).await;
    let b = LocalStack::start(EMULATOR, &gateway(Some(&redis.1)), Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let base = |s: &LocalStack| s.url("");
    // Warm environments and connections.
    for s in [&local, &a, &b] {
        measure(&http, &base(s), "plain", &payloads(50, "warm"), "none").await;
    }
    let same = vec![payloads(1, "same")[0].clone(); n];
    let rows = [
        (
            "no cache",
            measure(&http, &base(&local), "plain", &payloads(n, "plain"), "none").await,
        ),
        (
            "miss, local tier only",
            measure(&http, &base(&local), "cached", &payloads(n, "miss"), "miss").await,
        ),
        ("hit, local tier", {
            measure(&http, &base(&local), "cached", &same[..1], "miss").await;
            measure(&http, &base(&local), "cached", &same, "hit").await
        }),
        (
            "miss, local and Redis",
            measure(&http, &base(&a), "cached", &payloads(n, "shared"), "miss").await,
        ),
        ("hit, Redis (another replica's answer)", {
            stored_in_redis(&redis.1, n).await;
            measure(&http, &base(&b), "cached", &payloads(n, "shared"), "hit").await
        }),
    ];
    println!("# Added latency: {n} sequential requests of 4 KB per row, emulator handler 5 ms");
    println!();
    println!("| case | p50 | p99 | lookup p50 | lookup p99 |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let us = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            "-".to_string()
        } else {
            format!("{} µs", h.value_at_quantile(q))
        }
    };
    for (name, case) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} |",
            us(&case.total, 0.5),
            us(&case.total, 0.99),
            us(&case.lookup, 0.5),
            us(&case.lookup, 0.99)
        );
    }
}
