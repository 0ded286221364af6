//! Latency the gateway adds, against calling the emulated Lambda directly, in one run.
//!
//! `cargo bench --bench gateway_overhead [-- SECONDS CONNECTIONS]`
//!
//! The same warm function (handler 5 ms) is called for the same time with the same number of
//! keep-alive connections, first directly on the emulator's Invoke API, then through
//! warmgate's `/v1` path (which invokes through aws-sdk-lambda, parses the REPORT line,
//! routes and records metrics). Everything shares the machine's cores, so the comparison is
//! a ratio within one run, not an absolute figure.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{drive, post};
use hdrhistogram::Histogram;
use warmgate::stack::LocalStack;

const SPEC: &str = r#"
[settings]
scaling_per_10s = 100000
account_concurrency = 100000
[[function]]
name = "bench"
memory_mb = 1024
init_ms = 0
duration_ms = 5
"#;

const GATEWAY: &str = r#"
[gateway]
max_in_flight = 100000
[backend]
kind = "endpoint"
url = "http://unused"

[access]
open = true
[[function]]
name = "bench"
"#;

const BODY: &str = r#"{"text":"the quick brown fox jumps over the lazy dog"}"#;

fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = numbers.first().copied().unwrap_or(5);
    let connections = numbers.get(1).copied().unwrap_or(16) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(Duration::from_secs(seconds), connections));
}

async fn measure(
    addr: std::net::SocketAddr,
    request: Arc<Vec<u8>>,
    length: Duration,
    connections: usize,
) -> (Histogram<u64>, f64) {
    // Warm up: environments for every connection, connection pools filled.
    let warmup = Instant::now() + Duration::from_secs(1);
    for t in (0..connections)
        .map(|_| tokio::spawn(drive(addr, request.clone(), warmup)))
        .collect::<Vec<_>>()
    {
        t.await.unwrap();
    }
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive(addr, request.clone(), deadline)))
        .collect();
    let mut latency = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        latency.add(t.await.unwrap()).unwrap();
    }
    (latency, started.elapsed().as_secs_f64())
}

fn line(name: &str, h: &Histogram<u64>, seconds: f64) {
    println!(
        "  {name:<10} {:>8.0} req/s   p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms",
        h.len() as f64 / seconds,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    );
}

async fn run(length: Duration, connections: usize) {
    let LocalStack { emulator, gateway } =
        LocalStack::start(SPEC, GATEWAY, Duration::from_secs(10)).await;
    gateway
        .wait_ready(Duration::ZERO)
        .await
        .expect("the bench function resolves");

    let direct = post(
        emulator.addr(),
        "/2015-03-31/functions/bench/invocations",
        "x-amz-log-type: Tail\r\n",
        BODY,
    );
    let (direct_latency, direct_s) = measure(emulator.addr(), direct, length, connections).await;
    let via = post(gateway.addr(), "/v1/functions/bench/invoke", "", BODY);
    let (via_latency, via_s) = measure(gateway.addr(), via, length, connections).await;

    println!("latency added by warmgate ({connections} keep-alive connections, {}s each, warm handler 5 ms)", length.as_secs());
    line("direct", &direct_latency, direct_s);
    line("warmgate", &via_latency, via_s);
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    println!(
        "  added      p50 {:+.2} ms ({:.2}x)   p99 {:+.2} ms ({:.2}x)",
        p50(&via_latency) - p50(&direct_latency),
        p50(&via_latency) / p50(&direct_latency),
        p99(&via_latency) - p99(&direct_latency),
        p99(&via_latency) / p99(&direct_latency),
    );
}
