//! Warm invocations per second the emulator serves on loopback.
//!
//! `cargo bench --bench emulator_throughput [-- SECONDS CONNECTIONS]`
//!
//! The emulator must not be the bottleneck of later load tests (target: 20,000 warm
//! invocations per second on the 2-core machine). The load comes from the same process over
//! plain HTTP/1.1 keep-alive connections, the cheapest client there is, so the figure is a
//! lower bound for the emulator alone: both share the two cores.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{drive, post};
use hdrhistogram::Histogram;
use warmgate::clock::TokioClock;
use warmgate::emulator::Emulator;
use warmgate::platform::PlatformSpec;

const SPEC: &str = r#"
[settings]
scaling_per_10s = 100000
account_concurrency = 100000
[[function]]
name = "bench"
memory_mb = 1024
init_ms = 0
duration_ms = 1
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let numbers: Vec<u64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let seconds = numbers.first().copied().unwrap_or(5);
    let connections = numbers.get(1).copied().unwrap_or(64) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(Duration::from_secs(seconds), connections));
}

async fn run(length: Duration, connections: usize) {
    let spec = PlatformSpec::from_toml(SPEC).unwrap();
    let emulator = Emulator::new(spec, Arc::new(TokioClock::new()));
    let running = emulator.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = running.addr();
    let request = post(
        addr,
        "/2015-03-31/functions/bench/invocations",
        "x-amz-log-type: Tail\r\n",
        r#"{"text":"the quick brown fox jumps over the lazy dog"}"#,
    );

    // Warm the pool: one environment per connection.
    let warmup = Instant::now() + Duration::from_secs(1);
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive(addr, request.clone(), warmup)))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }

    let deadline = Instant::now() + length;
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive(addr, request.clone(), deadline)))
        .collect();
    let mut latency = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        latency.add(t.await.unwrap()).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let truth = running.emulator().snapshot();
    let stats = truth.function("bench").unwrap().totals();
    println!("emulator warm invocations over loopback ({connections} keep-alive connections, handler 1 ms, LogType Tail)");
    println!("  requests        {}", latency.len());
    println!("  seconds         {elapsed:.2}");
    println!("  per second      {:.0}", latency.len() as f64 / elapsed);
    println!(
        "  latency p50     {:.2} ms   p99 {:.2} ms",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "  ground truth    {} warm, {} cold (the warm-up's)",
        stats.warm_starts, stats.cold_starts
    );
    running.shutdown().await.unwrap();
}
