//! The gateway end to end: real HTTP in, aws-sdk-lambda out to the emulator, paused time.

mod common;

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use common::{header, start, start_with, GATEWAY};
use futures::future::join_all;
use serde_json::Value;
use warmgate::lambda::report::{decode_log_result, parse_log_tail};

#[tokio::test(start_paused = true)]
async fn cold_then_warm_with_the_facts_in_headers() {
    let stack = start().await;
    let first = stack.invoke("sentiment", r#"{"text":"a fine day"}"#).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-warmgate-target"), "live");
    assert_eq!(header(&first, "x-warmgate-cold-start"), "true");
    let timing = header(&first, "server-timing").to_string();
    assert!(timing.contains("init;dur=2000.00"), "{timing}");
    assert!(timing.contains("lambda;dur=40.00"), "{timing}");
    assert!(timing.contains("gateway;dur="), "{timing}");
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["model"], "sentiment");

    let second = stack.invoke("sentiment", r#"{"text":"a fine day"}"#).await;
    assert_eq!(header(&second, "x-warmgate-cold-start"), "false");
    assert!(!header(&second, "server-timing").contains("init;"));
    let again: Value = second.json().await.unwrap();
    assert_eq!(again, body, "same code, same payload, same answer");
}

#[tokio::test(start_paused = true)]
async fn the_lambda_api_path_serves_an_unchanged_aws_sdk() {
    let stack = start().await;
    let client = stack.sdk();
    let out = client
        .invoke()
        .function_name("sentiment")
        .log_type(LogType::Tail)
        .payload(Blob::new(r#"{"text":"hello"}"#))
        .send()
        .await
        .expect("invoke through the gateway");
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.executed_version(), Some("1"));
    let report = parse_log_tail(&decode_log_result(out.log_result().unwrap()).unwrap()).unwrap();
    assert_eq!(report.init_duration, Some(Duration::from_millis(2000)));
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["model"], "sentiment");

    // Both ingress paths answer the same payload the same way.
    let v1: Value = stack
        .invoke("sentiment", r#"{"text":"hello"}"#)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v1, body);

    // A pinned qualifier must be one of the function's targets.
    let pinned = client
        .invoke()
        .function_name("sentiment")
        .qualifier("standby")
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status_code(), 200);
    let err = client
        .invoke()
        .function_name("sentiment")
        .qualifier("9")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    // Errors arrive typed, as from Lambda.
    let err = client
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = client
        .invoke()
        .function_name("arn:aws:lambda:us-east-1:123456789012:function:sentiment")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        err.is_resource_not_found_exception(),
        "clients never name ARNs: {err:?}"
    );
    let err = client
        .invoke()
        .function_name("sentiment")
        .payload(Blob::new("{oops"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_request_content_exception(), "{err:?}");
    let err = client
        .invoke()
        .function_name("tiny")
        .payload(Blob::new(format!(r#"{{"text":"{}"}}"#, "x".repeat(100))))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_request_too_large_exception(), "{err:?}");

    // A function error keeps Lambda's shape: 200 with X-Amz-Function-Error.
    let out = client.invoke().function_name("flaky").send().await.unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
}

async fn error_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    (status, body)
}

#[tokio::test(start_paused = true)]
async fn bad_input_gets_a_clear_error_and_the_gateway_keeps_serving() {
    let stack = start().await;
    let (status, body) = error_body(stack.invoke("nope", "{}").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_function");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"nope\""));

    let (status, body) = error_body(stack.invoke("sentiment", "{not json").await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");

    let big = r#"{"text":"this payload is longer than sixty-four bytes, the tiny limit"}"#;
    let (status, body) = error_body(stack.invoke("tiny", big).await).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("64 bytes"));

    let response = stack
        .http
        .get(stack.url("/v1/functions/sentiment/invoke"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_body(response).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let (status, body) =
        error_body(stack.http.get(stack.url("/v2/what")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "no_route");

    // None of that reached Lambda, and the gateway still serves.
    let truth = stack.emulator.emulator().snapshot();
    assert_eq!(
        truth.function("sentiment").unwrap().totals().invocations(),
        0
    );
    assert_eq!(stack.invoke("sentiment", "{}").await.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn function_errors_timeouts_and_throttles_map_to_precise_statuses() {
    let stack = start().await;
    let (status, body) = error_body(stack.invoke("flaky", "{}").await).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "function_error");
    assert_eq!(body["error"]["function_error"], "Unhandled");
    assert!(body["error"]["payload"]["errorMessage"].is_string());

    let (status, body) = error_body(stack.invoke("slow", "{}").await).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "timeout");

    // Reserved concurrency 1: of two at once, one is throttled.
    let both = join_all([stack.invoke("limited", "{}"), stack.invoke("limited", "{}")]).await;
    let mut statuses: Vec<u16> = both.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    let throttled = both.into_iter().find(|r| r.status() == 429).unwrap();
    assert_eq!(header(&throttled, "retry-after"), "1");
    let (_, body) = error_body(throttled).await;
    assert_eq!(body["error"]["code"], "throttled");
    assert_eq!(
        body["error"]["reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
}

#[tokio::test(start_paused = true)]
async fn targets_with_other_code_are_never_used() {
    let stack = start().await;
    let set = stack.gateway.gateway().function("mixed").unwrap().targets();
    let routable: Vec<_> = set.routable.iter().map(|t| t.qualifier.as_str()).collect();
    assert_eq!(routable, ["live"]);
    assert!(
        set.problems[0].contains("runs other code"),
        "{:?}",
        set.problems
    );
    for _ in 0..3 {
        let r = stack.invoke("mixed", "{}").await;
        assert_eq!(header(&r, "x-warmgate-target"), "live");
    }
}

#[tokio::test(start_paused = true)]
async fn ready_only_when_every_function_resolves() {
    let config = format!("{GATEWAY}\n[[function]]\nname = \"ghost\"\n");
    let stack = start_with(&config, false).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let response = stack.http.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["problems"][0].as_str().unwrap().contains("ghost"),
        "{body}"
    );
    let (status, body) = error_body(stack.invoke("ghost", "{}").await).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "not_ready");
    // The others serve meanwhile.
    assert_eq!(stack.invoke("sentiment", "{}").await.status(), 200);

    let stack = start().await;
    let response = stack.http.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        stack
            .http
            .get(stack.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn beyond_max_in_flight_requests_are_shed_with_retry_after() {
    let config = GATEWAY.replace("max_in_flight = 64", "max_in_flight = 1");
    let stack = start_with(&config, true).await;
    let both = join_all([stack.invoke("slow", "{}"), stack.invoke("sentiment", "{}")]).await;
    let shed: Vec<_> = both.iter().filter(|r| r.status() == 503).collect();
    assert_eq!(shed.len(), 1);
    assert_eq!(header(shed[0], "retry-after"), "1");
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_requests_in_flight() {
    let stack = start().await;
    let url = stack.url("/v1/functions/sentiment/invoke");
    let http = stack.http.clone();
    let in_flight = tokio::spawn(async move { http.post(url).body("{}").send().await });
    // Let the request reach the emulator (it now waits out a 2 s cold start).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway = stack.gateway;
    gateway.shutdown(Duration::from_secs(30)).await.unwrap();
    let response = in_flight.await.unwrap().expect("answered, not dropped");
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn only_synchronous_calls_teach_the_pool_estimate() {
    let stack = start().await;
    let client = stack.sdk();
    let warm_idle = || {
        let gateway = stack.gateway.gateway();
        let views = gateway
            .function("sentiment")
            .unwrap()
            .pool_views(gateway.now());
        views.iter().map(|(_, v)| v.warm_idle).sum::<f64>()
    };
    for kind in [InvocationType::DryRun, InvocationType::Event] {
        let out = client
            .invoke()
            .function_name("sentiment")
            .invocation_type(kind)
            .payload(Blob::new("{}"))
            .send()
            .await
            .unwrap();
        assert!(out.status_code() == 202 || out.status_code() == 204);
    }
    assert_eq!(
        warm_idle(),
        0.0,
        "no environment is known idle after a dry run or an event"
    );
    assert_eq!(stack.invoke("sentiment", "{}").await.status(), 200);
    assert_eq!(warm_idle(), 1.0);
}

/// A function that outlasts the gateway's timeout for it, on two aliases of one version.
const SLOW_ON_TWO_ALIASES: &str = r#"
[settings]
seed = 5

[[function]]
name = "slow"
timeout_s = 30
init_ms = 100
duration_ms = 5000
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "standby"
version = "1"
"#;

#[tokio::test(start_paused = true)]
async fn a_call_that_may_have_run_is_executed_once_at_lambda_unless_idempotent() {
    let gateway_toml = |idempotent: bool| {
        format!(
            "[backend]\nkind = \"endpoint\"\nurl = \"http://placeholder\"\n\n[access]\nopen = true\n\n[warmer]\nenabled = false\n\n\
             [[function]]\nname = \"slow\"\ntargets = [\"live\", \"standby\"]\ntimeout_ms = 1000\n\
             idempotent = {idempotent}\nwait = {{ enabled = false }}\nprobe = {{ enabled = false }}\n"
        )
    };
    for (idempotent, executions) in [(false, 1), (true, 2)] {
        let stack = common::start_on(SLOW_ON_TWO_ALIASES, &gateway_toml(idempotent), true).await;
        let (status, body) = error_body(stack.invoke("slow", "{}").await).await;
        assert_eq!(status, 504, "{body}");
        // Let the executions end at the emulator, then ask it what ran.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let truth = stack.emulator.emulator().snapshot();
        let version = truth.function("slow").unwrap().version("1").unwrap();
        assert_eq!(
            version.stats.invocations(),
            executions,
            "idempotent = {idempotent}: the emulator's ground truth"
        );
    }
}
