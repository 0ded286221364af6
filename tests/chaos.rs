//! Chaos: every fault the emulator can inject, under concurrent load through the gateway,
//! judged by the emulator's ground truth. Every request gets exactly one answer, of a kind
//! its fault allows, and no payload of a non-idempotent function is executed twice.

mod common;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use warmgate::emulator::faults::Faults;

/// Two functions alike, each on two aliases of one version.
const FUNCTION: &str = r#"
[[function]]
name = "NAME"
timeout_s = 1
init_ms = 50
duration_ms = 20
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "standby"
version = "1"

"#;

fn emulator() -> String {
    let settings = "[settings]\nseed = 11\nidle_reclaim_s = 600\n";
    format!(
        "{settings}{}{}",
        FUNCTION.replace("NAME", "once"),
        FUNCTION.replace("NAME", "again")
    )
}

const GATEWAY: &str = r#"
[gateway]
max_in_flight = 256

[backend]
kind = "endpoint"
url = "http://placeholder"

[access]
open = true

[[function]]
name = "once"
targets = ["live", "standby"]
timeout_ms = 3000
wait = { enabled = false }
probe = { enabled = false }

[[function]]
name = "again"
targets = ["live", "standby"]
timeout_ms = 3000
idempotent = true
wait = { enabled = false }
probe = { enabled = false }
"#;

/// Sends `n` requests with payloads of their own, 16 at a time; returns the statuses seen.
async fn load(stack: &common::Stack, function: &str, round: usize, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
        let calls = chunk.iter().map(|i| async move {
            let body = json!({ "round": round, "id": i }).to_string();
            let response = stack
                .http
                .post(stack.url(&format!("/v1/functions/{function}/invoke")))
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{function}: a request got no answer: {e}"));
            response.status().as_u16()
        });
        statuses.extend(futures::future::join_all(calls).await);
    }
    statuses
}

fn faults(json: Value) -> Faults {
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn under_every_fault_each_request_gets_one_answer_and_nothing_runs_twice_unless_idempotent() {
    let stack = common::start_on(&emulator(), GATEWAY, true).await;
    let emulator = stack.emulator.emulator();
    // Each fault alone at a high rate, then all of them mixed; with the answers each allows.
    let cases: Vec<(&str, Value, &[u16])> = vec![
        (
            "throttles",
            json!({ "throttle": { "ConcurrentInvocationLimitExceeded": 0.3, "ReservedFunctionConcurrentInvocationLimitExceeded": 0.2 } }),
            &[200, 429],
        ),
        (
            "service errors before",
            json!({ "service_error": 0.4 }),
            &[200, 502],
        ),
        (
            "service errors after",
            json!({ "service_error_after": 0.4 }),
            &[200, 502],
        ),
        ("dropped before", json!({ "drop_before": 0.4 }), &[200, 502]),
        ("dropped after", json!({ "drop_after": 0.4 }), &[200, 502]),
        (
            "function errors",
            json!({ "function_error": 0.4 }),
            &[200, 502],
        ),
        ("timeouts", json!({ "timeout": 0.2 }), &[200, 502]),
        ("slow", json!({ "slow": 0.5, "slow_ms": 200 }), &[200]),
        (
            "all at once",
            json!({
                "throttle": { "FunctionInvocationRateLimitExceeded": 0.1 },
                "service_error": 0.05, "service_error_after": 0.05,
                "drop_before": 0.05, "drop_after": 0.1,
                "function_error": 0.05, "timeout": 0.05,
                "slow": 0.2, "slow_ms": 100
            }),
            &[200, 429, 502],
        ),
    ];
    for (round, (what, rates, allowed)) in cases.into_iter().enumerate() {
        for function in ["once", "again"] {
            emulator
                .set_faults(function, faults(rates.clone()))
                .unwrap();
            let statuses = load(&stack, function, round, 48).await;
            let mut seen = BTreeMap::new();
            for s in &statuses {
                *seen.entry(*s).or_insert(0) += 1;
            }
            assert!(
                statuses.iter().all(|s| allowed.contains(s)),
                "{what}, {function}: answers {seen:?}, allowed {allowed:?}"
            );
            assert!(
                seen.contains_key(&200),
                "{what}, {function}: nothing served ({seen:?})"
            );
        }
        let report = emulator.fault_report();
        assert_eq!(
            report.repeated.get("once").copied().unwrap_or(0),
            0,
            "{what}: a non-idempotent payload ran twice: {report:?}"
        );
    }
    let report = emulator.fault_report();
    // The faults did happen, and the idempotent function was retried through some of them.
    assert!(report.injected["once"]["drop_after"] > 0, "{report:?}");
    assert!(
        report.repeated.get("again").copied().unwrap_or(0) > 0,
        "an idempotent function is retried after a lost answer: {report:?}"
    );
    // The gateway still serves once the faults are gone.
    emulator.set_faults("once", Faults::default()).unwrap();
    let statuses = load(&stack, "once", 99, 16).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}
