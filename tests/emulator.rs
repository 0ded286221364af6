//! The emulator, driven through aws-sdk-lambda over real HTTP on 127.0.0.1:0.
//!
//! Time is tokio's paused clock: init durations and ten minutes of idle pass in no real time,
//! and the runs are deterministic.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use futures::future::join_all;
use warmgate::clock::TokioClock;
use warmgate::emulator::{Emulator, RunningEmulator};
use warmgate::lambda::report::{decode_log_result, parse_log_tail, Report};
use warmgate::lambda::LambdaClient;
use warmgate::platform::PlatformSpec;

const SPEC: &str = r#"
[settings]
seed = 7
scaling_per_10s = 6
idle_reclaim_s = 600
provisioned_allocation_s = 60

[[function]]
name = "classify"
memory_mb = 2048
timeout_s = 30
init_ms = 1500
duration_ms = 50
[[function.version]]
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "canary"
version = "1"
routing = { "2" = 0.3 }

[[function]]
name = "limited"
reserved_concurrency = 2
init_ms = 500
duration_ms = 1000

[[function]]
name = "flaky"
init_ms = 100
duration_ms = 20
error_rate = 1.0
"#;

async fn start(spec: &str) -> (RunningEmulator, aws_sdk_lambda::Client) {
    let spec = PlatformSpec::from_toml(spec).expect("valid spec");
    let emulator = Emulator::new(spec, Arc::new(TokioClock::new()));
    let running = emulator
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    let client = LambdaClient::for_endpoint(&running.endpoint_url(), "us-east-1")
        .sdk()
        .clone();
    (running, client)
}

async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    qualifier: Option<&str>,
) -> (aws_sdk_lambda::operation::invoke::InvokeOutput, Report) {
    let out = client
        .invoke()
        .function_name(function)
        .set_qualifier(qualifier.map(str::to_string))
        .log_type(LogType::Tail)
        .payload(Blob::new(r#"{"text":"a fine day"}"#))
        .send()
        .await
        .expect("invoke succeeds");
    let tail = decode_log_result(out.log_result().expect("log tail")).unwrap();
    let report = parse_log_tail(&tail).expect("REPORT line");
    (out, report)
}

#[tokio::test(start_paused = true)]
async fn first_call_is_cold_with_init_duration_then_warm() {
    let (emulator, client) = start(SPEC).await;
    let (out, report) = invoke(&client, "classify", None).await;
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    assert_eq!(report.init_duration, Some(Duration::from_millis(1500)));
    assert_eq!(report.memory_size_mb, 2048);
    let body: serde_json::Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["model"], "classify");

    let (_, report) = invoke(&client, "classify", None).await;
    assert_eq!(report.init_duration, None, "second call is warm");
    let truth = emulator.emulator().snapshot();
    let latest = truth
        .function("classify")
        .unwrap()
        .version("$LATEST")
        .unwrap();
    assert_eq!((latest.stats.cold_starts, latest.stats.warm_starts), (1, 1));
    emulator.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_caller_waits_out_init_and_handler() {
    let (_emulator, client) = start(SPEC).await;
    let started = tokio::time::Instant::now();
    invoke(&client, "classify", None).await;
    assert_eq!(started.elapsed(), Duration::from_millis(1550));
    let started = tokio::time::Instant::now();
    invoke(&client, "classify", None).await;
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn n_concurrent_calls_start_n_environments() {
    let (emulator, client) = start(SPEC).await;
    let reports = join_all((0..5).map(|_| invoke(&client, "classify", None))).await;
    assert!(reports.iter().all(|(_, r)| r.init_duration.is_some()));
    let truth = emulator.emulator().snapshot();
    let latest = truth
        .function("classify")
        .unwrap()
        .version("$LATEST")
        .unwrap();
    assert_eq!(latest.environments.idle, 5);
    assert_eq!(latest.stats.environments_created, 5);
    // And five more at once all find a warm environment.
    let reports = join_all((0..5).map(|_| invoke(&client, "classify", None))).await;
    assert!(reports.iter().all(|(_, r)| r.init_duration.is_none()));
}

#[tokio::test(start_paused = true)]
async fn idle_environments_are_reclaimed_after_ten_minutes() {
    let (emulator, client) = start(SPEC).await;
    invoke(&client, "classify", None).await;
    tokio::time::advance(Duration::from_secs(9 * 60)).await;
    let (_, report) = invoke(&client, "classify", None).await;
    assert!(
        report.init_duration.is_none(),
        "still warm after 9 idle minutes"
    );
    tokio::time::advance(Duration::from_secs(10 * 60 + 1)).await;
    let truth = emulator.emulator().snapshot();
    let latest = truth
        .function("classify")
        .unwrap()
        .version("$LATEST")
        .unwrap();
    assert_eq!(latest.environments.total(), 0);
    assert_eq!(latest.stats.environments_reclaimed, 1);
    let (_, report) = invoke(&client, "classify", None).await;
    assert!(report.init_duration.is_some(), "cold again after reclaim");
}

fn throttle_reason(
    err: aws_sdk_lambda::error::SdkError<aws_sdk_lambda::operation::invoke::InvokeError>,
) -> (String, Option<String>) {
    let throttle = match err.into_service_error() {
        aws_sdk_lambda::operation::invoke::InvokeError::TooManyRequestsException(t) => t,
        other => panic!("typed TooManyRequestsException, got {other:?}"),
    };
    (
        throttle.reason().expect("reason").as_str().to_string(),
        throttle.retry_after_seconds().map(str::to_string),
    )
}

async fn concurrent_errors(
    client: &aws_sdk_lambda::Client,
    function: &str,
    n: usize,
) -> Vec<aws_sdk_lambda::error::SdkError<aws_sdk_lambda::operation::invoke::InvokeError>> {
    let calls = (0..n).map(|_| client.invoke().function_name(function).send());
    join_all(calls)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn reserved_concurrency_throttles_with_its_reason() {
    let (_emulator, client) = start(SPEC).await;
    let errors = concurrent_errors(&client, "limited", 3).await;
    assert_eq!(errors.len(), 1);
    let (reason, retry_after) = throttle_reason(errors.into_iter().next().unwrap());
    assert_eq!(reason, "ReservedFunctionConcurrentInvocationLimitExceeded");
    assert_eq!(retry_after.as_deref(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn account_concurrency_throttles_with_its_reason() {
    let spec = "[settings]\naccount_concurrency = 3\n[[function]]\nname = \"f\"\n";
    let (_emulator, client) = start(spec).await;
    let errors = concurrent_errors(&client, "f", 4).await;
    assert_eq!(errors.len(), 1);
    let (reason, _) = throttle_reason(errors.into_iter().next().unwrap());
    assert_eq!(reason, "ConcurrentInvocationLimitExceeded");
}

#[tokio::test(start_paused = true)]
async fn the_scaling_rate_throttles_with_its_reason() {
    let (_emulator, client) = start(SPEC).await;
    let errors = concurrent_errors(&client, "classify", 7).await;
    assert_eq!(errors.len(), 1, "6 new environments per 10 s");
    let (reason, _) = throttle_reason(errors.into_iter().next().unwrap());
    assert_eq!(reason, "FunctionInvocationRateLimitExceeded");
}

#[tokio::test(start_paused = true)]
async fn control_plane_writes_over_the_rate_are_throttled_as_lambda_does() {
    let (_emulator, client) = start(SPEC).await;
    let put = |n: i32| {
        client
            .put_provisioned_concurrency_config()
            .function_name("classify")
            .qualifier("live")
            .provisioned_concurrent_executions(n)
            .send()
    };
    // The default rate is 15 writes a second: the 16th at once is refused.
    for n in 1..=15 {
        put(n).await.unwrap();
    }
    let error = put(16).await.unwrap_err().into_service_error();
    assert!(error.is_too_many_requests_exception(), "{error:?}");
    tokio::time::advance(Duration::from_secs(1)).await;
    put(16).await.expect("a second later there is room again");
}

#[tokio::test(start_paused = true)]
async fn provisioned_concurrency_ready_after_its_delay_then_spillover() {
    let (emulator, client) = start(SPEC).await;
    let put = client
        .put_provisioned_concurrency_config()
        .function_name("classify")
        .qualifier("live")
        .provisioned_concurrent_executions(2)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().unwrap().as_str(), "IN_PROGRESS");
    tokio::time::advance(Duration::from_secs(61)).await;
    let got = client
        .get_provisioned_concurrency_config()
        .function_name("classify")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().unwrap().as_str(), "READY");
    assert_eq!(got.allocated_provisioned_concurrent_executions(), Some(2));
    assert_eq!(got.available_provisioned_concurrent_executions(), Some(2));

    let reports = join_all((0..3).map(|_| invoke(&client, "classify", Some("live")))).await;
    let cold = reports
        .iter()
        .filter(|(_, r)| r.init_duration.is_some())
        .count();
    assert_eq!(
        cold, 1,
        "two served warm by provisioned environments, one spilled over cold"
    );
    assert!(reports
        .iter()
        .all(|(o, _)| o.executed_version() == Some("1")));
    let truth = emulator.emulator().snapshot();
    let v1 = truth.function("classify").unwrap().version("1").unwrap();
    assert_eq!(v1.stats.provisioned_starts, 2);
    assert_eq!(v1.stats.spillovers, 1);

    let list = client
        .list_provisioned_concurrency_configs()
        .function_name("classify")
        .send()
        .await
        .unwrap();
    assert_eq!(list.provisioned_concurrency_configs().len(), 1);
    client
        .delete_provisioned_concurrency_config()
        .function_name("classify")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    let err = client
        .get_provisioned_concurrency_config()
        .function_name("classify")
        .qualifier("live")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_provisioned_concurrency_config_not_found_exception());
}

#[tokio::test(start_paused = true)]
async fn alias_weighted_routing_reaches_both_versions() {
    let (_emulator, client) = start(SPEC).await;
    let mut to_two = 0;
    for _ in 0..200 {
        let (out, _) = invoke(&client, "classify", Some("canary")).await;
        to_two += usize::from(out.executed_version() == Some("2"));
    }
    assert!((35..=85).contains(&to_two), "{to_two} of 200 at weight 0.3");
}

#[tokio::test(start_paused = true)]
async fn function_errors_keep_status_200_with_the_error_header() {
    let (_emulator, client) = start(SPEC).await;
    let (out, _) = invoke(&client, "flaky", None).await;
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
    let body: serde_json::Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert!(body["errorMessage"].is_string());
    assert!(body["errorType"].is_string());
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_typed_aws_errors() {
    let (emulator, client) = start(SPEC).await;
    let err = client
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert!(err.meta().message().unwrap().contains("function:nope"));

    let big = vec![b' '; 6 * 1024 * 1024 + 1];
    let err = client
        .invoke()
        .function_name("classify")
        .payload(Blob::new(big))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_request_too_large_exception(), "{err:?}");

    let err = client
        .invoke()
        .function_name("classify")
        .payload(Blob::new("{not json"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_request_content_exception(), "{err:?}");

    // None of them reached the platform as an invocation.
    let truth = emulator.emulator().snapshot();
    assert_eq!(
        truth.function("classify").unwrap().totals().invocations(),
        0
    );
    assert_eq!(truth.not_found, 1);
}

#[tokio::test(start_paused = true)]
async fn dry_run_and_event_invocations() {
    let (emulator, client) = start(SPEC).await;
    let dry = client
        .invoke()
        .function_name("classify")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status_code(), 204);
    let event = client
        .invoke()
        .function_name("classify")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(event.status_code(), 202);
    let truth = emulator.emulator().snapshot();
    assert_eq!(
        truth.function("classify").unwrap().totals().invocations(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn the_control_plane_describes_functions_versions_and_aliases() {
    let (_emulator, client) = start(SPEC).await;
    let functions = client.list_functions().send().await.unwrap();
    let names: Vec<_> = functions
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .collect();
    assert_eq!(names, ["classify", "limited", "flaky"]);

    let live = client
        .get_function_configuration()
        .function_name("classify")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(live.version(), Some("1"));
    let latest = client
        .get_function_configuration()
        .function_name("classify")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.code_sha256(), live.code_sha256(), "same code");
    assert_eq!(latest.memory_size(), Some(2048));

    let versions = client
        .list_versions_by_function()
        .function_name("classify")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 3);
    let aliases = client
        .list_aliases()
        .function_name("classify")
        .send()
        .await
        .unwrap();
    assert_eq!(aliases.aliases().len(), 2);
    let canary = client
        .get_alias()
        .function_name("classify")
        .name("canary")
        .send()
        .await
        .unwrap();
    let weights = canary
        .routing_config()
        .unwrap()
        .additional_version_weights()
        .unwrap();
    assert_eq!(weights.get("2"), Some(&0.3));
    let function = client
        .get_function()
        .function_name("limited")
        .send()
        .await
        .unwrap();
    assert_eq!(
        function
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(2)
    );
    let concurrency = client
        .get_function_concurrency()
        .function_name("limited")
        .send()
        .await
        .unwrap();
    assert_eq!(concurrency.reserved_concurrent_executions(), Some(2));
    let err = client
        .get_alias()
        .function_name("classify")
        .name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception());
}

#[tokio::test(start_paused = true)]
async fn the_ground_truth_endpoint_serves_json() {
    let (emulator, client) = start(SPEC).await;
    invoke(&client, "classify", None).await;
    let url = format!("{}/_emulator/state", emulator.endpoint_url());
    let truth: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let classify = &truth["functions"][0];
    assert_eq!(classify["name"], "classify");
    assert_eq!(classify["versions"][0]["stats"]["cold_starts"], 1);
    assert_eq!(classify["versions"][0]["environments"]["idle"], 1);
}

const SNAP_START_SPEC: &str = r#"
[settings]
seed = 7

[[function]]
name = "snappy"
init_ms = 1500
snap_start = true
restore_ms = 180
duration_ms = 50
[[function.version]]
[[function.alias]]
name = "live"
version = "1"

[[function]]
name = "plain"
[[function.version]]
"#;

#[tokio::test(start_paused = true)]
async fn snap_start_is_reported_and_restores_published_versions_only() {
    use aws_sdk_lambda::types::{SnapStartApplyOn, SnapStartOptimizationStatus};

    let (emulator, client) = start(SNAP_START_SPEC).await;
    let snap_start = |function: &'static str, qualifier: Option<&'static str>| {
        let client = client.clone();
        async move {
            let config = client
                .get_function_configuration()
                .function_name(function)
                .set_qualifier(qualifier.map(str::to_string))
                .send()
                .await
                .unwrap();
            let s = config.snap_start().expect("SnapStart in the configuration");
            (s.apply_on().cloned(), s.optimization_status().cloned())
        }
    };
    // On for the alias (a published version), off for $LATEST, as AWS reports it.
    let on = (
        Some(SnapStartApplyOn::PublishedVersions),
        Some(SnapStartOptimizationStatus::On),
    );
    assert_eq!(snap_start("snappy", Some("live")).await, on);
    assert_eq!(snap_start("snappy", Some("1")).await, on);
    assert_eq!(
        snap_start("snappy", None).await,
        (
            Some(SnapStartApplyOn::PublishedVersions),
            Some(SnapStartOptimizationStatus::Off)
        )
    );
    assert_eq!(
        snap_start("plain", Some("1")).await,
        (
            Some(SnapStartApplyOn::None),
            Some(SnapStartOptimizationStatus::Off)
        )
    );

    // A cold start through the alias is a restore: Restore Duration, no Init Duration, and
    // the caller waits the restore rather than init.
    let started = tokio::time::Instant::now();
    let (out, report) = invoke(&client, "snappy", Some("live")).await;
    assert_eq!(started.elapsed(), Duration::from_millis(230));
    assert_eq!(out.executed_version(), Some("1"));
    assert_eq!(report.init_duration, None);
    assert_eq!(report.restore_duration, Some(Duration::from_millis(180)));
    assert_eq!(
        report.billed_restore_duration,
        Some(Duration::from_millis(180))
    );
    assert_eq!(report.start(), warmgate::platform::Start::Cold);
    let (_, warm) = invoke(&client, "snappy", Some("live")).await;
    assert!(!warm.restored() && warm.init_duration.is_none());

    // $LATEST still initialises.
    let (out, report) = invoke(&client, "snappy", None).await;
    assert_eq!(out.executed_version(), Some("$LATEST"));
    assert_eq!(report.init_duration, Some(Duration::from_millis(1500)));
    assert!(!report.restored());

    let truth = emulator.emulator().snapshot();
    let snappy = truth.function("snappy").unwrap();
    assert_eq!(snappy.version("1").unwrap().stats.restores, 1);
    assert_eq!(snappy.version("$LATEST").unwrap().stats.restores, 0);
    emulator.shutdown().await.unwrap();
}
