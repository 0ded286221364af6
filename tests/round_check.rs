//! A round of pings checked against the environments its answers name: a handler that holds
//! as asked gives a distinct environment per ping, one that does not is found out, its
//! function's hold lengthened up to the most, and the loss shown on `/metrics`
//! (`policy::round`, `warmgate_rounds_checked_total`).
//!
//! Its own test binary: the Prometheus recorder is process-wide. The two tests use functions
//! of different names, so their series do not mix.

use std::time::Duration;

use warmgate::stack::LocalStack;

const MIN: Duration = Duration::from_secs(60);

/// The emulator with one function `name` whose handler holds a ping as asked or not; a
/// handler that does not hold answers at once (0 ms), as one written without the
/// convention would.
fn emulator(name: &str, honour_hold: bool) -> String {
    format!(
        r#"
[settings]
seed = 5

[settings.ping]
hold_ms = 0
honour_hold = {honour_hold}

[[function]]
name = "{name}"
memory_mb = 512
init_ms = 2000
duration_ms = 50
"#
    )
}

/// Rounds of three pings every five minutes, no jitter.
fn gateway(name: &str) -> String {
    format!(
        r#"
[backend]
kind = "endpoint"
url = "http://x"

[access]
open = true

[warmer]
enabled = true
policy = "fixed-5min-x3"
jitter_ms = 0
round_hold_ms = 25
max_round_hold_ms = 100

[[function]]
name = "{name}"
"#
    )
}

/// The value of the series of `metric` for `function` with `label` (or none), as scraped.
async fn scrape(
    addr: std::net::SocketAddr,
    metric: &str,
    function: &str,
    label: Option<&str>,
) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = match label {
        Some(label) => format!("{metric}{{function=\"{function}\",{label}}}"),
        None => format!("{metric}{{function=\"{function}\"}}"),
    };
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{series} ")))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Environments of `function` alive on the emulator (idle or busy).
fn environments(stack: &LocalStack, function: &str) -> u32 {
    let snapshot = stack.emulator.emulator().snapshot();
    let f = snapshot.function(function).unwrap();
    f.versions.iter().map(|v| v.environments.total()).sum()
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_holds_gives_each_ping_of_a_round_its_own_environment() {
    let stack = LocalStack::start(
        &emulator("holds", true),
        &gateway("holds"),
        Duration::from_secs(30),
    )
    .await;
    stack.gateway.wait_ready(Duration::ZERO).await.unwrap();
    let metrics = stack.gateway.metrics_addr();
    assert_eq!(
        scrape(metrics, "warmgate_round_hold_seconds", "holds", None).await,
        0.025
    );

    // Rounds at 0, 5, 10 and 15 minutes; environments idle at most 5 minutes live on.
    tokio::time::sleep(16 * MIN).await;
    let reached = scrape(
        metrics,
        "warmgate_rounds_checked_total",
        "holds",
        Some("result=\"reached\""),
    )
    .await;
    assert!(
        reached >= 4.0,
        "{reached} rounds reached their environments"
    );
    for result in ["short", "unchecked"] {
        let label = format!("result=\"{result}\"");
        let rounds = scrape(
            metrics,
            "warmgate_rounds_checked_total",
            "holds",
            Some(&label),
        )
        .await;
        assert_eq!(rounds, 0.0, "{result}");
    }
    let missed = scrape(
        metrics,
        "warmgate_round_environments_missed_total",
        "holds",
        None,
    )
    .await;
    assert_eq!(missed, 0.0);
    assert_eq!(
        scrape(metrics, "warmgate_round_hold_seconds", "holds", None).await,
        0.025
    );
    assert_eq!(environments(&stack, "holds"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_does_not_hold_is_found_out_and_its_hold_lengthened() {
    let stack = LocalStack::start(
        &emulator("answers_at_once", false),
        &gateway("answers_at_once"),
        Duration::from_secs(30),
    )
    .await;
    stack.gateway.wait_ready(Duration::ZERO).await.unwrap();
    let metrics = stack.gateway.metrics_addr();
    let function = "answers_at_once";

    // The first round starts three environments (each ping meets the others initialising);
    // every later one lands all three pings on the environment the first freed at once.
    tokio::time::sleep(21 * MIN).await;
    let short = scrape(
        metrics,
        "warmgate_rounds_checked_total",
        function,
        Some("result=\"short\""),
    )
    .await;
    assert!(short >= 4.0, "{short} rounds fell short");
    let missed = scrape(
        metrics,
        "warmgate_round_environments_missed_total",
        function,
        None,
    )
    .await;
    assert_eq!(
        missed,
        2.0 * short,
        "each short round missed two environments"
    );
    // 25 ms doubled twice, then held at the most.
    assert_eq!(
        scrape(metrics, "warmgate_round_hold_seconds", function, None).await,
        0.1
    );
    // The two environments the rounds missed were reclaimed: what the check is for.
    assert_eq!(environments(&stack, function), 1);
}
