//! The provisioned-concurrency planner in the gateway, advise mode: it learns from the
//! gateway's own traffic and reports the level it would set, in paused time against the
//! emulator; nothing is applied (the emulator's ground truth has no provisioned
//! concurrency).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::start_on;

const EMULATOR: &str = r#"
[settings]
seed = 7
idle_reclaim_s = 600

[[function]]
name = "steady"
memory_mb = 2048
timeout_s = 120
init_ms = 500
duration_ms = 30000
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
"#;

const GATEWAY: &str = r#"
[backend]
kind = "endpoint"
url = "http://placeholder"

[access]
open = true

[provisioning]
mode = "advise"

[[function]]
name = "steady"
targets = ["live"]
timeout_ms = 60000
"#;

fn recommended(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(
            "warmgate_provisioned_recommended_environments{function=\"steady\",target=\"live\"} ",
        )
        .and_then(|v| v.trim().parse().ok())
    })
}

#[tokio::test(start_paused = true)]
async fn steady_load_is_advised_its_provisioned_level_and_nothing_is_applied() {
    let stack = Arc::new(start_on(EMULATOR, GATEWAY, true).await);
    let metrics_url = format!("http://{}/metrics", stack.gateway.metrics_addr());
    let scrape = || async {
        stack
            .http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(
        recommended(&scrape().await),
        Some(0.0),
        "at zero from the start"
    );

    // Three clients back to back for ten minutes: three executions at once all the time.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let until = tokio::time::Instant::now() + Duration::from_secs(600);
                while tokio::time::Instant::now() < until {
                    assert_eq!(stack.invoke("steady", "{}").await.status(), 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(
        recommended(&scrape().await),
        Some(3.0),
        "three environments always busy pay for themselves provisioned"
    );
    let truth = stack.emulator.emulator().snapshot();
    let function = truth.function("steady").unwrap();
    assert!(
        function.provisioned.is_empty(),
        "advice only: nothing applied"
    );
}
