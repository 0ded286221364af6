//! The provisioned-concurrency planner in the gateway, in paused time against the emulator:
//! advise mode reports the level it would set and applies nothing; apply mode sets it within
//! the bounds, backs off when the control plane throttles, survives FAILED allocations, and
//! leaves alone a level a person set outside its bounds. Ground truth: the emulator's
//! provisioned-concurrency configurations.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{start_on, STEADY};

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
            "warmgate_provisioned_recommended_environments{function=\"advised\",target=\"live\"} ",
        )
        .and_then(|v| v.trim().parse().ok())
    })
}

#[tokio::test(start_paused = true)]
async fn steady_load_is_advised_its_provisioned_level_and_nothing_is_applied() {
    // A public name of its own: the metrics recorder is the process's, and this file's other
    // gateways report on `steady`.
    let gateway = GATEWAY.replace(
        "name = \"steady\"\n",
        "name = \"advised\"\nlambda_name = \"steady\"\n",
    );
    let stack = Arc::new(start_on(STEADY, &gateway, true).await);
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
                    assert_eq!(stack.invoke("advised", "{}").await.status(), 200);
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

/// `GATEWAY` in apply mode with `bounds`, and the emulator with `settings` lines added.
async fn applying(bounds: &str, settings: &str) -> common::Stack {
    let emulator = STEADY.replace(
        "idle_reclaim_s = 600\n",
        &format!("idle_reclaim_s = 600\n{settings}"),
    );
    let gateway = GATEWAY
        .replace("mode = \"advise\"", "mode = \"apply\"")
        .replace(
            "timeout_ms = 60000\n",
            &format!("timeout_ms = 60000\nprovisioning = {bounds}\n"),
        );
    start_on(&emulator, &gateway, true).await
}

/// Three clients back to back for `minutes`: three executions at once all the time.
async fn steady_load(stack: &Arc<common::Stack>, minutes: u64) {
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let until = tokio::time::Instant::now() + Duration::from_secs(60 * minutes);
                while tokio::time::Instant::now() < until {
                    assert_eq!(stack.invoke("steady", "{}").await.status(), 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

/// A person's AWS SDK client, straight to the emulator (not through the gateway).
fn emulator_sdk(stack: &common::Stack) -> aws_sdk_lambda::Client {
    warmgate::lambda::LambdaClient::for_endpoint(&stack.emulator.endpoint_url(), "us-east-1")
        .sdk()
        .clone()
}

/// The emulator's configuration on steady:live: (requested, status).
fn truth(stack: &common::Stack) -> Option<(u32, String)> {
    let truth = stack.emulator.emulator().snapshot();
    let function = truth.function("steady").unwrap();
    function
        .provisioned
        .iter()
        .find(|p| p.qualifier == "live")
        .map(|p| (p.requested, p.status.as_str().to_string()))
}

#[tokio::test(start_paused = true)]
async fn apply_mode_sets_the_level_and_the_router_uses_it() {
    let stack = Arc::new(applying("{ max = 5 }", "").await);
    steady_load(&stack, 10).await;
    // Allocation takes 1 to 2 minutes in the emulator; the controller watches it.
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_eq!(truth(&stack), Some((3, "READY".into())));
    let answer = stack.invoke("steady", "{}").await;
    assert_eq!(
        common::header(&answer, "x-warmgate-route"),
        "provisioned",
        "the pool knows it"
    );
    assert_eq!(common::header(&answer, "x-warmgate-cold-start"), "false");
    // The load is gone: lowered, after the hysteresis, to nothing.
    tokio::time::sleep(Duration::from_secs(40 * 60)).await;
    assert_eq!(truth(&stack), None, "deleted once idle");
}

#[tokio::test(start_paused = true)]
async fn apply_mode_keeps_to_the_bounds() {
    let stack = Arc::new(applying("{ max = 2 }", "").await);
    steady_load(&stack, 10).await;
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_eq!(truth(&stack), Some((2, "READY".into())));
}

#[tokio::test(start_paused = true)]
async fn apply_mode_keeps_to_the_daily_budget() {
    // A 2 GB environment's allocation costs about $0.72 a day: $1.50 a day pays for two of
    // the three the load calls for.
    let gateway = GATEWAY
        .replace(
            "mode = \"advise\"",
            "mode = \"apply\"\ndaily_budget_usd = 1.5",
        )
        .replace(
            "timeout_ms = 60000\n",
            "timeout_ms = 60000\nprovisioning = { max = 5 }\n",
        );
    let stack = Arc::new(start_on(STEADY, &gateway, true).await);
    steady_load(&stack, 10).await;
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_eq!(truth(&stack), Some((2, "READY".into())));
}

#[tokio::test(start_paused = true)]
async fn apply_mode_backs_off_a_throttled_control_plane() {
    // One write every 100 s, and someone else just took it.
    let stack = Arc::new(applying("{ max = 5 }", "control_plane_rate_per_s = 0.01\n").await);
    emulator_sdk(&stack)
        .put_provisioned_concurrency_config()
        .function_name("steady")
        .qualifier("live")
        .provisioned_concurrent_executions(1)
        .send()
        .await
        .expect("the first write of the bucket");
    steady_load(&stack, 10).await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(
        truth(&stack),
        Some((3, "READY".into())),
        "set once the rate allowed it"
    );
}

#[tokio::test(start_paused = true)]
async fn apply_mode_survives_failed_allocations() {
    let stack = Arc::new(applying("{ max = 5 }", "provisioned_failure_rate = 1.0\n").await);
    steady_load(&stack, 10).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    let (requested, status) = truth(&stack).expect("asked for");
    assert_eq!((requested, status.as_str()), (3, "FAILED"));
    // Clients were served all along (steady_load asserts each answer), and still are.
    assert_eq!(stack.invoke("steady", "{}").await.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_level_set_outside_the_bounds_by_someone_else_is_left_alone() {
    let stack = Arc::new(applying("{ max = 5 }", "").await);
    emulator_sdk(&stack)
        .put_provisioned_concurrency_config()
        .function_name("steady")
        .qualifier("live")
        .provisioned_concurrent_executions(9)
        .send()
        .await
        .unwrap();
    steady_load(&stack, 10).await;
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_eq!(truth(&stack).map(|t| t.0), Some(9));
}

#[tokio::test(start_paused = true)]
async fn a_rise_seen_yesterday_finds_its_environments_ready_today() {
    let stack = Arc::new(applying("{ max = 5 }", "").await);
    let start = tokio::time::Instant::now();
    let rise = Duration::from_secs(3600);
    let day = Duration::from_secs(86_400);
    // Day one: an hour of load from the first hour on, met cold, then nothing.
    tokio::time::sleep_until(start + rise).await;
    steady_load(&stack, 60).await;
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    assert_eq!(truth(&stack), None, "let go once idle");
    // Day two, the same time: the load comes back and meets provisioned environments.
    tokio::time::sleep_until(start + day + rise).await;
    assert_eq!(
        truth(&stack),
        Some((3, "READY".into())),
        "raised ahead of the rise"
    );
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move { stack.invoke("steady", "{}").await })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap();
        assert_eq!(common::header(&answer, "x-warmgate-cold-start"), "false");
        assert_eq!(common::header(&answer, "x-warmgate-route"), "provisioned");
    }
}
