//! `/metrics`, scraped over HTTP and parsed, shows what the test caused.
//!
//! Its own test binary: the Prometheus recorder is process-wide, so no other test's requests
//! can blur these counts.

mod common;

use std::collections::HashMap;

use common::start;

/// Parses the text exposition into `name{labels}` → value.
fn parse(exposition: &str) -> HashMap<String, f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn find(metrics: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| {
            k.starts_with(&format!("{name}{{")) && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(start_paused = true)]
async fn metrics_show_the_requests_cold_starts_and_latencies_caused() {
    let stack = start().await;
    for _ in 0..3 {
        assert_eq!(stack.invoke("sentiment", "{}").await.status(), 200);
    }
    assert_eq!(stack.invoke("flaky", "{}").await.status(), 502);
    assert_eq!(stack.invoke("nope", "{}").await.status(), 404);

    let url = format!("http://{}/metrics", stack.gateway.metrics_addr());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let metrics = parse(&text);
    let ok = find(
        &metrics,
        "warmgate_requests_total",
        &[
            "function=\"sentiment\"",
            "target=\"live\"",
            "outcome=\"ok\"",
        ],
    );
    assert_eq!(ok, 3.0, "{text}");
    assert_eq!(
        find(
            &metrics,
            "warmgate_requests_total",
            &["function=\"flaky\"", "outcome=\"function_error\""]
        ),
        1.0
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_requests_total",
            &["function=\"_unknown\"", "outcome=\"not_found\""]
        ),
        1.0
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_cold_starts_total",
            &["function=\"sentiment\""]
        ),
        1.0
    );
    // Real histograms with buckets from 1 ms to 30 s, not summaries.
    assert!(
        text.contains("# TYPE warmgate_request_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_init_duration_seconds_bucket",
            &["function=\"sentiment\"", "le=\"2.5\""]
        ),
        1.0
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_init_duration_seconds_bucket",
            &["function=\"sentiment\"", "le=\"1\""]
        ),
        0.0
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_lambda_duration_seconds_count",
            &["function=\"sentiment\""]
        ),
        3.0
    );
    assert!(text.contains("le=\"0.001\"") && text.contains("le=\"30\""));
    assert_eq!(
        find(
            &metrics,
            "warmgate_in_flight_requests",
            &["function=\"sentiment\""]
        ),
        0.0
    );
}
