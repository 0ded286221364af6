//! `warmgate_keep_alive_pings_total`: the warmer's pings by the rule that asked for them,
//! scraped from `/metrics` against the emulator's own count.
//!
//! Its own test binary: the Prometheus recorder is process-wide, so no other test's pings
//! can blur these counts.

use std::collections::HashMap;
use std::time::Duration;

use warmgate::policy::KeptBy;
use warmgate::stack::LocalStack;

const EMULATOR: &str = r#"
[settings]
seed = 3

[[function]]
name = "model"
memory_mb = 1024
init_ms = 2000
duration_ms = 50
"#;

// No jitter, so that a scrape between two rounds sees every round's pings answered.
const GATEWAY: &str = r#"
[backend]
kind = "endpoint"
url = "http://x"

[access]
open = true

[warmer]
enabled = true
policy = "warmer"
jitter_ms = 0

[[function]]
name = "model"
"#;

const MIN: Duration = Duration::from_secs(60);

/// The `model` function's keep-alive pings on `/metrics`: by rule, and as
/// `warmgate_pings_total` counts them (answered, any target, any way they met their
/// environment).
async fn scrape(addr: std::net::SocketAddr) -> (HashMap<&'static str, f64>, f64) {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |line: &str| -> f64 { line.rsplit_once(' ').unwrap().1.parse().unwrap() };
    let by_rule = KeptBy::ALL
        .iter()
        .map(|k| {
            let series = format!(
                "warmgate_keep_alive_pings_total{{function=\"model\",kept_by=\"{}\"}}",
                k.as_str()
            );
            let line = text
                .lines()
                .find(|l| l.starts_with(&series))
                .unwrap_or_else(|| panic!("no {series}\n{text}"));
            (k.as_str(), value(line))
        })
        .collect();
    let answered = text
        .lines()
        .filter(|l| {
            l.starts_with("warmgate_pings_total{")
                && l.contains("function=\"model\"")
                && l.contains("reason=\"keep_alive\"")
        })
        .map(value)
        .sum();
    (by_rule, answered)
}

#[tokio::test(start_paused = true)]
async fn keep_alive_pings_are_counted_by_the_rule_that_asked_for_them() {
    let stack = LocalStack::start(EMULATOR, GATEWAY, Duration::from_secs(30)).await;
    stack.gateway.wait_ready(Duration::ZERO).await.unwrap();
    let metrics = stack.gateway.metrics_addr();
    let emulator_pings = || {
        stack
            .emulator
            .emulator()
            .snapshot()
            .function("model")
            .unwrap()
            .totals()
            .pings as f64
    };

    // Never called: every ping keeps it warm for its first call. Rounds come every 4 min
    // 50 s from the start; 31 minutes falls between two.
    tokio::time::sleep(31 * MIN).await;
    let (by_rule, answered) = scrape(metrics).await;
    let sent: f64 = by_rule.values().sum();
    assert!(by_rule["unseen"] >= 6.0, "{by_rule:?}");
    assert_eq!(sent, by_rule["unseen"], "{by_rule:?}");
    assert_eq!(sent, answered, "{by_rule:?}");
    assert_eq!(sent, emulator_pings());

    // One call: with too few idle times to forecast, the fallback keeps it warm an hour.
    let url = format!("http://{}/v1/functions/model/invoke", stack.gateway.addr());
    let response = reqwest::Client::new()
        .post(url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(30 * MIN).await;
    let (after, answered) = scrape(metrics).await;
    assert!(after["fallback"] >= 4.0, "{after:?}");
    assert_eq!(after["unseen"], by_rule["unseen"], "{after:?}");
    let sent: f64 = after.values().sum();
    assert_eq!(sent, answered, "{after:?}");
    assert_eq!(sent, emulator_pings());
}
