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
    // Real histograms with buckets from 1 ms to 60 s, not summaries.
    assert!(
        text.contains("# TYPE warmgate_request_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_init_duration_seconds_bucket",
            &["function=\"sentiment\"", "le=\"5\""]
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
    assert!(text.contains("le=\"0.001\"") && text.contains("le=\"60\""));
    assert_eq!(
        find(
            &metrics,
            "warmgate_added_latency_seconds_count",
            &["function=\"sentiment\""]
        ),
        3.0
    );
    // The latency warmgate adds has finer buckets, from 100 µs.
    assert!(
        text.contains(
            "warmgate_added_latency_seconds_bucket{function=\"sentiment\",le=\"0.0001\"}"
        ),
        "{text}"
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_in_flight_requests",
            &["function=\"sentiment\""]
        ),
        0.0
    );
}

#[tokio::test(start_paused = true)]
async fn every_family_has_help_and_every_function_its_series_from_the_start() {
    let stack = start().await;
    let url = format!("http://{}/metrics", stack.gateway.metrics_addr());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let metrics = parse(&text);

    // Every family announced with a TYPE has HELP text.
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(typed.len() >= 20, "{text}");
    for family in &typed {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP\n{text}"
        );
    }
    // Counters end in _total; nothing else does.
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
    }

    // `limited` (target $LATEST) was never called: its series are there, at zero.
    let limited = ["function=\"limited\"", "target=\"$LATEST\""];
    for series in [
        "warmgate_requests_total",
        "warmgate_cold_starts_total",
        "warmgate_routes_total",
        "warmgate_pings_total",
        "warmgate_ping_billed_byte_seconds_total",
        "warmgate_request_duration_seconds_count",
        "warmgate_init_duration_seconds_bucket",
        "warmgate_pool_warm_idle_environments",
    ] {
        let found: Vec<_> = metrics
            .iter()
            .filter(|(k, _)| {
                k.starts_with(&format!("{series}{{")) && limited.iter().all(|l| k.contains(l))
            })
            .collect();
        assert!(!found.is_empty(), "no {series} for limited\n{text}");
        assert!(found.iter().all(|(_, v)| **v == 0.0), "{found:?}");
    }
    assert!(metrics.contains_key(
        "warmgate_requests_total{function=\"limited\",target=\"$LATEST\",outcome=\"throttled\"}"
    ));
    assert_eq!(
        find(
            &metrics,
            "warmgate_function_ready",
            &["function=\"limited\""]
        ),
        1.0
    );
    assert_eq!(
        find(
            &metrics,
            "warmgate_ping_budget_remaining_pings",
            &["function=\"limited\""]
        ),
        1200.0
    );
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(find(&metrics, "warmgate_build_info", &[&version]), 1.0);
}
