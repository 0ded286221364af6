//! Warm invocations per second the emulator serves on loopback.
//!
//! `cargo bench --bench emulator_throughput [-- SECONDS CONNECTIONS]`
//!
//! The emulator must not be the bottleneck of later load tests (target: 20,000 warm
//! invocations per second on the 2-core machine). The load comes from the same process over
//! plain HTTP/1.1 keep-alive connections, the cheapest client there is, so the figure is a
//! lower bound for the emulator alone: both share the two cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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
    let payload = br#"{"text":"the quick brown fox jumps over the lazy dog"}"#;
    let request = format!(
        "POST /2015-03-31/functions/bench/invocations HTTP/1.1\r\nhost: {addr}\r\n\
         x-amz-log-type: Tail\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        payload.len(),
        std::str::from_utf8(payload).unwrap()
    );
    let request = Arc::new(request.into_bytes());

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

/// Sends requests one after another on one connection until `deadline`; latencies in µs.
async fn drive(
    addr: std::net::SocketAddr,
    request: Arc<Vec<u8>>,
    deadline: Instant,
) -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    while Instant::now() < deadline {
        let sent = Instant::now();
        stream.write_all(&request).await.unwrap();
        read_response(&mut stream, &mut buf).await;
        latency.record(sent.elapsed().as_micros() as u64).unwrap();
    }
    latency
}

/// Reads one HTTP/1.1 response with a Content-Length body; panics on anything but 200.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "connection closed");
        filled += n;
        let head = &buf[..filled];
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = std::str::from_utf8(&head[..end]).unwrap();
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            let length: usize = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            while filled < end + 4 + length {
                let n = stream.read(&mut buf[filled..]).await.unwrap();
                assert!(n > 0, "connection closed");
                filled += n;
            }
            return;
        }
    }
}
