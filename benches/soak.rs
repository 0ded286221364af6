//! A bounded soak: the gateway in front of the emulator on loopback, faults on, for a fixed
//! time at a steady open-loop rate. Reports requests, answers by kind, executions at the
//! emulator (and payloads of the non-idempotent function executed twice: must be 0), and the
//! process's resident memory at start, midway and end, so that a leak shows as growth.
//!
//! `cargo bench --bench soak [-- SECONDS RATE]` (default 600 s at 200 requests a second).
//!
//! Gateway, emulator and load share one process and the machine's cores: the memory figure is
//! theirs together, and the point is its trend, not its size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use warmgate::emulator::faults::Faults;
use warmgate::stack::LocalStack;

/// Two functions alike, each on two aliases of one version.
const FUNCTION: &str = r#"
[[function]]
name = "NAME"
timeout_s = 2
init_ms = 300
duration_ms = 20
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "standby"
version = "1"
"#;

fn spec() -> String {
    let settings = "[settings]\nseed = 7\nidle_reclaim_s = 300\n";
    format!(
        "{settings}{}{}",
        FUNCTION.replace("NAME", "once"),
        FUNCTION.replace("NAME", "again")
    )
}

const GATEWAY: &str = r#"
[gateway]
max_in_flight = 4096
[backend]
kind = "endpoint"
url = "http://unused"
[access]
open = true
[warmer]
enabled = true
policy = "warmer"
[[function]]
name = "once"
targets = ["live", "standby"]
timeout_ms = 5000
[[function]]
name = "again"
targets = ["live", "standby"]
timeout_ms = 5000
idempotent = true
"#;

fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(600);
    let rate: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let stack = LocalStack::start(&spec(), GATEWAY, Duration::from_secs(30)).await;
    let faults: Faults = serde_json::from_value(json!({
        "throttle": { "ConcurrentInvocationLimitExceeded": 0.03 },
        "service_error": 0.01, "service_error_after": 0.01,
        "drop_before": 0.01, "drop_after": 0.01,
        "function_error": 0.02, "timeout": 0.005,
        "slow": 0.05, "slow_ms": 200
    }))
    .unwrap();
    for function in ["once", "again"] {
        stack
            .emulator
            .emulator()
            .set_faults(function, faults.clone())
            .unwrap();
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let answers: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let rss_start = resident_kb();
    let mut rss_mid = 0;
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let total = seconds * rate;
    let mut tasks = tokio::task::JoinSet::new();
    println!("soak: {seconds} s at {rate} requests/s, faults on, {total} requests");
    for i in 0..total {
        // Open loop: each request leaves at its own time, whatever the others are doing.
        tokio::time::sleep_until((started + every * i as u32).into()).await;
        if i == total / 2 {
            rss_mid = resident_kb();
        }
        let function = if i % 2 == 0 { "once" } else { "again" };
        let url = stack.url(&format!("/v1/functions/{function}/invoke"));
        let (http, answers) = (http.clone(), answers.clone());
        tasks.spawn(async move {
            let kind = match http
                .post(url)
                .body(json!({ "id": i }).to_string())
                .send()
                .await
            {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "no answer".to_string(),
            };
            *answers.lock().entry(kind).or_default() += 1;
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let rss_end = resident_kb();
    let report = stack.emulator.emulator().fault_report();
    println!("requests: {total} in {:.0} s", elapsed.as_secs_f64());
    println!("answers by status: {:?}", answers.lock());
    println!("executions at the emulator: {:?}", report.executions);
    println!("faults injected: {:?}", report.injected);
    println!(
        "payloads executed twice: once (not idempotent) {}, again (idempotent) {}",
        report.repeated.get("once").copied().unwrap_or(0),
        report.repeated.get("again").copied().unwrap_or(0)
    );
    println!("resident memory: start {rss_start} kB, midway {rss_mid} kB, end {rss_end} kB");
}
