//! Tests of the platform model, in virtual time: minutes pass in no time at all.

use super::dist::Dist;
use super::spec::{AliasSpec, ProvisionedSpec, VersionSpec};
use super::*;
use proptest::prelude::*;

const S: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

/// One function "f" with a fixed 1 s init, 100 ms handler and 10 min idle reclaim, so that
/// every figure below can be worked out by hand.
fn spec_with(f: impl FnOnce(&mut FunctionSpec), s: impl FnOnce(&mut Settings)) -> PlatformSpec {
    let mut function = FunctionSpec::named("f");
    function.memory_mb = 1024;
    function.init_ms = Dist::Fixed(1000.0);
    function.duration_ms = Dist::Fixed(100.0);
    function.versions = vec![VersionSpec::default(), VersionSpec::default()];
    function.aliases = vec![AliasSpec {
        name: "live".into(),
        version: "1".into(),
        routing: Default::default(),
        description: String::new(),
    }];
    f(&mut function);
    let mut settings = Settings {
        idle_reclaim_s: Dist::Fixed(600.0),
        max_lifetime_s: Dist::Fixed(4.0 * 3600.0),
        provisioned_allocation_s: Dist::Fixed(90.0),
        ..Settings::default()
    };
    s(&mut settings);
    let spec = PlatformSpec {
        settings,
        functions: vec![function],
    };
    spec.validate().expect("test spec is valid");
    spec
}

fn platform() -> Platform {
    Platform::new(spec_with(|_| {}, |_| {}))
}

fn call(p: &mut Platform, at: Time, qualifier: Option<&str>) -> Result<Invocation, Rejection> {
    p.invoke(
        at,
        &Request {
            function: "f",
            qualifier,
            payload: br#"{"text":"hello"}"#,
            client_context: None,
        },
    )
}

#[test]
fn first_call_is_cold_the_next_warm() {
    let mut p = platform();
    let first = call(&mut p, Duration::ZERO, None).unwrap();
    assert_eq!(first.start, Start::Cold);
    assert_eq!(first.init, Some(S));
    assert_eq!(first.latency(), Duration::from_millis(1100));
    // Billed since August 2025: init plus handler.
    assert_eq!(first.billed, Duration::from_millis(1100));
    let second = call(&mut p, 2 * S, None).unwrap();
    assert_eq!(second.start, Start::Warm);
    assert_eq!(second.environment, first.environment);
    assert_eq!(second.init, None);
    assert_eq!(second.latency(), Duration::from_millis(100));
}

#[test]
fn a_busy_environment_is_not_shared() {
    let mut p = platform();
    let envs: Vec<_> = (0..5)
        .map(|_| call(&mut p, Duration::ZERO, None).unwrap())
        .collect();
    assert!(envs.iter().all(|i| i.start == Start::Cold));
    let mut ids: Vec<_> = envs.iter().map(|i| i.environment).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    let snap = p.snapshot(Duration::from_millis(500));
    assert_eq!(snap.functions[0].versions[0].environments.initializing, 5);
    let snap = p.snapshot(Duration::from_millis(1050));
    assert_eq!(snap.functions[0].versions[0].environments.busy, 5);
    let later: Vec<_> = (0..5)
        .map(|_| call(&mut p, 10 * S, None).unwrap())
        .collect();
    assert!(later.iter().all(|i| i.start == Start::Warm));
}

#[test]
fn idle_environments_are_reclaimed_after_the_idle_time() {
    let mut p = platform();
    call(&mut p, Duration::ZERO, None).unwrap(); // idle from 1.1 s
    let idle_from = Duration::from_millis(1100);
    assert_eq!(
        call(&mut p, idle_from + 10 * MIN - S, None).unwrap().start,
        Start::Warm
    );
    // Idle again from (that call + 100 ms); reclaimed 10 min later.
    let idle_from = idle_from + 10 * MIN - S + Duration::from_millis(100);
    let snap = p.snapshot(idle_from + 10 * MIN - S);
    assert_eq!(snap.functions[0].versions[0].environments.idle, 1);
    let snap = p.snapshot(idle_from + 10 * MIN);
    assert_eq!(snap.functions[0].versions[0].environments.total(), 0);
    assert_eq!(
        snap.functions[0].versions[0].stats.environments_reclaimed,
        1
    );
    assert_eq!(
        call(&mut p, idle_from + 10 * MIN + S, None).unwrap().start,
        Start::Cold
    );
}

#[test]
fn environments_end_at_their_lifetime_cap_even_when_used() {
    let mut p = Platform::new(spec_with(
        |_| {},
        |s| s.max_lifetime_s = Dist::Fixed(3600.0),
    ));
    let first = call(&mut p, Duration::ZERO, None).unwrap();
    let mut t = Duration::ZERO;
    while t < 3600 * S {
        t += 5 * MIN;
        let i = call(&mut p, t, None).unwrap();
        if t < 3600 * S {
            assert_eq!(i.environment, first.environment);
        } else {
            assert_eq!(i.start, Start::Cold, "a new environment after an hour");
        }
    }
}

#[test]
fn reserved_concurrency_throttles_with_its_reason() {
    let mut p = Platform::new(spec_with(|f| f.reserved_concurrency = Some(2), |_| {}));
    call(&mut p, Duration::ZERO, None).unwrap();
    call(&mut p, Duration::ZERO, None).unwrap();
    assert_eq!(
        call(&mut p, Duration::ZERO, None).unwrap_err(),
        Rejection::Throttled {
            reason: ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
        }
    );
    // Once one finishes, there is room again.
    assert!(call(&mut p, 2 * S, None).is_ok());
}

#[test]
fn account_concurrency_throttles_with_its_reason() {
    let mut p = Platform::new(spec_with(|_| {}, |s| s.account_concurrency = 3));
    for _ in 0..3 {
        call(&mut p, Duration::ZERO, None).unwrap();
    }
    assert_eq!(
        call(&mut p, Duration::ZERO, None).unwrap_err(),
        Rejection::Throttled {
            reason: ThrottleReason::ConcurrentInvocationLimitExceeded
        }
    );
}

#[test]
fn the_scaling_rate_limits_new_environments_per_ten_seconds() {
    let mut p = Platform::new(spec_with(|_| {}, |s| s.scaling_per_10s = 4));
    for _ in 0..4 {
        call(&mut p, Duration::ZERO, None).unwrap();
    }
    assert_eq!(
        call(&mut p, S, None).unwrap_err(),
        Rejection::Throttled {
            reason: ThrottleReason::FunctionInvocationRateLimitExceeded
        }
    );
    // Warm environments are not limited by the scaling rate.
    assert_eq!(call(&mut p, 2 * S, None).unwrap().start, Start::Warm);
    // And the window refills 10 s after the first starts.
    for _ in 0..3 {
        call(&mut p, 10 * S, None).unwrap();
    }
    assert_eq!(call(&mut p, 10 * S, None).unwrap().start, Start::Warm);
    assert_eq!(call(&mut p, 10 * S, None).unwrap().start, Start::Cold);
    let snap = p.snapshot(10 * S);
    let throttles = &snap.functions[0].versions[0].stats.throttles;
    assert_eq!(
        throttles[&ThrottleReason::FunctionInvocationRateLimitExceeded],
        1
    );
}

#[test]
fn provisioned_concurrency_is_ready_after_its_delay_then_spills_over() {
    let mut p = platform();
    let view = p.put_provisioned(Duration::ZERO, "f", "live", 2).unwrap();
    assert_eq!(view.status, ProvisionedStatus::InProgress);
    assert_eq!(view.allocated, 0);
    // Before READY every call is on demand and counted as spillover.
    let early = call(&mut p, 10 * S, Some("live")).unwrap();
    assert_eq!(early.start, Start::Cold);
    assert!(early.spillover);
    let view = p.get_provisioned(90 * S, "f", "live").unwrap();
    assert_eq!(view.status, ProvisionedStatus::Ready);
    assert_eq!((view.allocated, view.available), (2, 2));

    let t = 100 * S;
    let a = call(&mut p, t, Some("live")).unwrap();
    let b = call(&mut p, t, Some("live")).unwrap();
    assert_eq!((a.start, b.start), (Start::Provisioned, Start::Provisioned));
    assert!(!a.spillover && a.init.is_none());
    // The third concurrent call spills over to the warm on-demand environment.
    let c = call(&mut p, t, Some("live")).unwrap();
    assert_eq!(c.start, Start::Warm);
    assert!(c.spillover);
    // Version 1 invoked directly does not use the alias's provisioned pool.
    let d = call(&mut p, t, Some("1")).unwrap();
    assert!(!d.spillover);
    assert_eq!(d.start, Start::Cold);

    let snap = p.snapshot(t);
    let v1 = snap.functions[0].version("1").unwrap();
    assert_eq!(v1.stats.provisioned_starts, 2);
    assert_eq!(v1.stats.spillovers, 2);
    assert_eq!(v1.environments.provisioned, 2);
    // Provisioned environments are never reclaimed for idleness.
    let snap = p.snapshot(t + 60 * MIN);
    let v1 = snap.functions[0].version("1").unwrap();
    assert_eq!(v1.environments.provisioned, 2);
    assert_eq!(v1.environments.idle_on_demand(), 0);
    let expected_gb_s = 2.0 * (t + 60 * MIN - 90 * S).as_secs_f64();
    assert!((v1.stats.provisioned_gb_s - expected_gb_s).abs() < 1e-6);
}

#[test]
fn provisioned_concurrency_rules_of_the_control_plane() {
    let mut p = Platform::new(spec_with(|f| f.reserved_concurrency = Some(3), |_| {}));
    assert!(matches!(
        p.put_provisioned(Duration::ZERO, "f", "$LATEST", 1),
        Err(ControlError::InvalidParameter(_))
    ));
    assert!(matches!(
        p.put_provisioned(Duration::ZERO, "f", "live", 4),
        Err(ControlError::InvalidParameter(m)) if m.contains("reservedConcurrentExecution")
    ));
    assert!(matches!(
        p.get_provisioned(Duration::ZERO, "f", "live"),
        Err(ControlError::ProvisionedConfigNotFound(_))
    ));
    p.put_provisioned(Duration::ZERO, "f", "live", 2).unwrap();
    assert_eq!(p.list_provisioned(MIN, "f").unwrap().len(), 1);
    p.delete_provisioned(2 * MIN, "f", "live").unwrap();
    assert!(p.list_provisioned(2 * MIN, "f").unwrap().is_empty());
    assert_eq!(
        call(&mut p, 3 * MIN, Some("live")).unwrap().start,
        Start::Cold
    );
}

#[test]
fn control_plane_writes_are_rate_limited() {
    let mut p = Platform::new(spec_with(|_| {}, |s| s.control_plane_rate_per_s = 2.0));
    let at = |ms: u64| Duration::from_millis(ms);
    p.put_provisioned(at(0), "f", "live", 1).unwrap();
    p.put_provisioned(at(0), "f", "live", 2).unwrap();
    // A third write in the same instant is over the rate, a Delete as well as a Put.
    assert!(matches!(
        p.put_provisioned(at(0), "f", "live", 3),
        Err(ControlError::Throttled)
    ));
    assert!(matches!(
        p.delete_provisioned(at(100), "f", "live"),
        Err(ControlError::Throttled)
    ));
    assert_eq!(
        p.get_provisioned(at(100), "f", "live").unwrap().requested,
        2,
        "reads are not"
    );
    // Half a second refills one write.
    p.put_provisioned(at(600), "f", "live", 3).unwrap();
    assert!(matches!(
        p.put_provisioned(at(600), "f", "live", 4),
        Err(ControlError::Throttled)
    ));
    assert_eq!(
        p.get_provisioned(at(600), "f", "live").unwrap().requested,
        3
    );
}

#[test]
fn provisioned_allocation_can_fail() {
    let mut p = Platform::new(spec_with(|_| {}, |s| s.provisioned_failure_rate = 1.0));
    p.put_provisioned(Duration::ZERO, "f", "live", 1).unwrap();
    let view = p.get_provisioned(10 * MIN, "f", "live").unwrap();
    assert_eq!(view.status, ProvisionedStatus::Failed);
    assert!(view.status_reason.is_some());
}

#[test]
fn provisioned_at_start_is_ready_at_once() {
    let mut p = Platform::new(spec_with(
        |f| {
            f.provisioned = vec![ProvisionedSpec {
                qualifier: "live".into(),
                concurrency: 1,
            }]
        },
        |_| {},
    ));
    assert_eq!(
        call(&mut p, S, Some("live")).unwrap().start,
        Start::Provisioned
    );
}

#[test]
fn alias_weighted_routing_splits_by_weight() {
    let mut p = Platform::new(spec_with(
        |f| f.aliases[0].routing = [("2".to_string(), 0.25)].into(),
        |_| {},
    ));
    let mut to_two = 0;
    for i in 0..4000u64 {
        let inv = call(&mut p, Duration::from_secs(i), Some("live")).unwrap();
        to_two += u32::from(inv.executed_version == "2");
    }
    assert!(
        (800..1200).contains(&to_two),
        "{to_two} of 4000 went to version 2"
    );
}

/// "f" with SnapStart on and a fixed 200 ms restore (against its fixed 1 s init).
fn snap_start_platform(provisioned: Vec<ProvisionedSpec>) -> Platform {
    Platform::new(spec_with(
        |f| {
            f.snap_start = true;
            f.restore_ms = Dist::Fixed(200.0);
            f.provisioned = provisioned;
        },
        |_| {},
    ))
}

#[test]
fn snap_start_restores_new_environments_of_published_versions() {
    let mut p = snap_start_platform(Vec::new());
    // Through the alias (on version 1): a restore in place of init.
    let first = call(&mut p, Duration::ZERO, Some("live")).unwrap();
    assert_eq!(first.start, Start::Cold);
    assert_eq!(first.init, None);
    assert_eq!(first.restore, Some(Duration::from_millis(200)));
    assert_eq!(first.latency(), Duration::from_millis(300));
    // Billed Duration is the handler's; the restore is billed apart.
    assert_eq!(first.billed, Duration::from_millis(100));
    assert_eq!(first.billed_restore(), Some(Duration::from_millis(200)));
    let snap = p.snapshot(Duration::from_millis(150));
    let restoring = snap.functions[0].version("1").unwrap().environments;
    assert_eq!(restoring.initializing, 1, "restoring until 200 ms");
    // The restored environment then serves warm, by version number as by alias.
    let again = call(&mut p, S, Some("1")).unwrap();
    assert_eq!(
        (again.start, again.environment),
        (Start::Warm, first.environment)
    );
    assert_eq!((again.init, again.restore), (None, None));
    // Version 2 is published too: its first environment is restored.
    let v2 = call(&mut p, S, Some("2")).unwrap();
    assert_eq!((v2.start, v2.init), (Start::Cold, None));
    assert_eq!(v2.restore, Some(Duration::from_millis(200)));
    // $LATEST is never restored.
    let latest = call(&mut p, S, None).unwrap();
    assert_eq!((latest.init, latest.restore), (Some(S), None));
    assert_eq!(latest.latency(), Duration::from_millis(1100));

    let snap = p.snapshot(2 * S);
    let v1 = &snap.functions[0].version("1").unwrap().stats;
    assert_eq!((v1.cold_starts, v1.restores, v1.warm_starts), (1, 1, 1));
    // The ledger bills the restore like init: 200 ms + two 100 ms handlers, at 1 GB.
    assert_eq!(v1.billed_ms, 400);
    assert!((v1.init_gb_s - 0.2).abs() < 1e-9, "{}", v1.init_gb_s);
    let latest = &snap.functions[0].version("$LATEST").unwrap().stats;
    assert_eq!((latest.cold_starts, latest.restores), (1, 0));
    assert!((latest.init_gb_s - 1.0).abs() < 1e-9);
}

#[test]
fn snap_start_leaves_provisioned_environments_as_they_are() {
    let mut p = snap_start_platform(vec![ProvisionedSpec {
        qualifier: "live".into(),
        concurrency: 1,
    }]);
    let pooled = call(&mut p, Duration::ZERO, Some("live")).unwrap();
    assert_eq!(pooled.start, Start::Provisioned);
    assert_eq!((pooled.init, pooled.restore), (None, None));
    assert_eq!(pooled.latency(), Duration::from_millis(100));
    // The pool is busy: the spillover starts an on-demand environment, and restores it.
    let spilled = call(&mut p, Duration::ZERO, Some("live")).unwrap();
    assert!(spilled.spillover);
    assert_eq!((spilled.start, spilled.init), (Start::Cold, None));
    assert_eq!(spilled.restore, Some(Duration::from_millis(200)));
}

#[test]
fn without_snap_start_published_versions_init() {
    let mut p = platform();
    let i = call(&mut p, Duration::ZERO, Some("live")).unwrap();
    assert_eq!((i.init, i.restore), (Some(S), None));
    assert_eq!(
        p.snapshot(S).functions[0]
            .version("1")
            .unwrap()
            .stats
            .restores,
        0
    );
}

#[test]
fn function_errors_and_timeouts() {
    let mut p = Platform::new(spec_with(|f| f.error_rate = 1.0, |_| {}));
    let i = call(&mut p, Duration::ZERO, None).unwrap();
    assert_eq!(i.function_error, Some("Unhandled"));
    let body: serde_json::Value = serde_json::from_slice(&i.payload).unwrap();
    assert!(body["errorMessage"].is_string() && body["errorType"].is_string());

    let mut p = Platform::new(spec_with(|f| f.duration_ms = Dist::Fixed(5000.0), |_| {}));
    let i = call(&mut p, Duration::ZERO, None).unwrap();
    assert_eq!(i.function_error, Some("Unhandled"));
    assert_eq!(i.duration, 3 * S, "cut at the 3 s default timeout");
    assert!(String::from_utf8_lossy(&i.payload).contains("Task timed out after 3.00 seconds"));
    // The environment is reset after a timeout: the next call is cold.
    assert_eq!(call(&mut p, 10 * S, None).unwrap().start, Start::Cold);
}

/// Invokes `f` at `at` with `payload` and, if given, a client context.
fn invoke_with(
    p: &mut Platform,
    at: Duration,
    payload: &[u8],
    context: Option<serde_json::Value>,
) -> Invocation {
    p.invoke(
        at,
        &Request {
            function: "f",
            qualifier: None,
            payload,
            client_context: context.as_ref(),
        },
    )
    .unwrap()
}

#[test]
fn pings_are_recognised_and_hold_their_environment() {
    let mut p = platform();
    let marker = p.settings().ping.payload.clone();
    let by_payload = invoke_with(&mut p, Duration::ZERO, marker.as_bytes(), None);
    let context = serde_json::json!({"custom": {"warmgate-ping": "1"}});
    let by_context = invoke_with(&mut p, Duration::ZERO, b"{}", Some(context));
    assert!(by_payload.ping && by_context.ping);
    assert_ne!(by_payload.environment, by_context.environment);
    // A lone ping's handler returns at once.
    assert_eq!(by_payload.duration, Duration::from_millis(1));
    assert_eq!(by_context.duration, Duration::from_millis(1));
    // A ping of a round asks its handler to hold the environment, as a string or a number.
    for hold in [serde_json::json!("100"), serde_json::json!(100)] {
        let context =
            serde_json::json!({"custom": {"warmgate-ping": "1", "warmgate-hold-ms": hold}});
        let held = invoke_with(&mut p, Duration::ZERO, b"{}", Some(context));
        assert!(held.ping);
        assert_eq!(held.duration, Duration::from_millis(100));
    }
    // A hold on a real request means nothing: it is not a ping.
    let context = serde_json::json!({"custom": {"warmgate-hold-ms": "100"}});
    assert!(!invoke_with(&mut p, 3 * S, b"{}", Some(context)).ping);
    assert!(!call(&mut p, 5 * S, None).unwrap().ping);
    assert_eq!(p.snapshot(5 * S).functions[0].versions[0].stats.pings, 4);
}

#[test]
fn a_ping_answer_names_its_environment() {
    let mut p = platform();
    let context = serde_json::json!({"custom": {"warmgate-ping": "1", "warmgate-hold-ms": 25}});
    let first = invoke_with(&mut p, Duration::ZERO, b"{}", Some(context.clone()));
    let second = invoke_with(&mut p, Duration::ZERO, b"{}", Some(context));
    let named = |i: &Invocation| -> String {
        let answer: serde_json::Value = serde_json::from_slice(&i.payload).unwrap();
        answer["environment"].as_str().unwrap().to_string()
    };
    assert_ne!(first.environment, second.environment);
    assert_eq!(named(&first), format!("environment-{}", first.environment));
    assert_ne!(named(&first), named(&second));
}

#[test]
fn a_handler_that_does_not_honour_the_hold_lets_a_round_collapse() {
    let mut p = Platform::new(spec_with(
        |_| {},
        |s| {
            s.ping.hold_ms = 0.0;
            s.ping.honour_hold = false;
        },
    ));
    let context = serde_json::json!({"custom": {"warmgate-ping": "1", "warmgate-hold-ms": 25}});
    // The first ping starts an environment (busy while it initialises); once warm, every
    // ping of a round meets it free again: the handler answered at once.
    let cold = invoke_with(&mut p, Duration::ZERO, b"{}", Some(context.clone()));
    let at = 60 * S;
    let round: Vec<_> = (0..3)
        .map(|_| invoke_with(&mut p, at, b"{}", Some(context.clone())))
        .collect();
    assert!(round.iter().all(|i| i.duration.is_zero()));
    assert!(round.iter().all(|i| i.environment == cold.environment));
}

#[test]
fn unknown_function_or_qualifier_is_not_found() {
    let mut p = platform();
    let e = p
        .invoke(
            Duration::ZERO,
            &Request {
                function: "nope",
                qualifier: None,
                payload: b"{}",
                client_context: None,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Rejection::NotFound { message } if message.contains("function:nope")));
    assert!(matches!(
        call(&mut p, Duration::ZERO, Some("9")),
        Err(Rejection::NotFound { .. })
    ));
    assert!(matches!(
        call(&mut p, Duration::ZERO, Some("dev")),
        Err(Rejection::NotFound { .. })
    ));
    assert_eq!(p.snapshot(Duration::ZERO).not_found, 3);
}

#[test]
fn same_seed_same_run() {
    let run = || {
        let mut p = Platform::new(spec_with(
            |f| {
                f.init_ms = Dist::LogNormal {
                    median: 800.0,
                    spread: 2.0,
                }
            },
            |s| {
                s.idle_reclaim_s = Dist::Uniform {
                    min: 60.0,
                    max: 900.0,
                }
            },
        ));
        (0..200u64)
            .map(|i| {
                let i = call(&mut p, Duration::from_secs(i * 37 % 1000 + i * 60), None).unwrap();
                (i.latency(), i.start, i.request_id)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

// Property tests: random workloads against three functions with small limits.

#[derive(Debug, Clone)]
enum Op {
    Invoke {
        function: usize,
        qualifier: u8,
        ping: bool,
    },
    Wait(u64),
    Provision {
        function: usize,
        concurrency: u32,
    },
    Unprovision {
        function: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 0..4u8, any::<bool>()).prop_map(|(function, qualifier, ping)| Op::Invoke { function, qualifier, ping }),
        4 => (0..900_000u64).prop_map(Op::Wait),
        1 => (0..3usize, 1..4u32).prop_map(|(function, concurrency)| Op::Provision { function, concurrency }),
        1 => (0..3usize).prop_map(|function| Op::Unprovision { function }),
    ]
}

fn small_platform(seed: u64) -> Platform {
    let mut functions = Vec::new();
    for (i, reserved) in [(0, Some(4)), (1, None), (2, None)] {
        let mut f = FunctionSpec::named(format!("f{i}"));
        f.memory_mb = 512 * (i as u32 + 1);
        f.init_ms = Dist::LogNormal {
            median: 2000.0,
            spread: 2.5,
        };
        f.duration_ms = Dist::LogNormal {
            median: 300.0,
            spread: 3.0,
        };
        f.error_rate = 0.1;
        f.reserved_concurrency = reserved;
        // One function restores its published version, so the ledger checks cover restores.
        f.snap_start = i == 2;
        f.versions = vec![VersionSpec::default()];
        f.aliases = vec![AliasSpec {
            name: "live".into(),
            version: "1".into(),
            routing: Default::default(),
            description: String::new(),
        }];
        functions.push(f);
    }
    let spec = PlatformSpec {
        settings: Settings {
            seed,
            account_concurrency: 110,
            scaling_per_10s: 6,
            idle_reclaim_s: Dist::Uniform {
                min: 60.0,
                max: 600.0,
            },
            max_lifetime_s: Dist::Uniform {
                min: 600.0,
                max: 3600.0,
            },
            provisioned_allocation_s: Dist::Uniform {
                min: 1.0,
                max: 120.0,
            },
            provisioned_failure_rate: 0.2,
            ..Settings::default()
        },
        functions,
    };
    spec.validate().unwrap();
    Platform::new(spec)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_model_keeps_its_invariants(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..300)) {
        let mut p = small_platform(seed);
        let mut now = Duration::ZERO;
        let mut requests = 0u64;
        let mut admitted = 0u64;
        let mut throttled = 0u64;
        let mut not_found = 0u64;
        for op in ops {
            match op {
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Invoke { function, qualifier, ping } => {
                    let name = format!("f{function}");
                    let qualifier = [None, Some("1"), Some("live"), Some("missing")][qualifier as usize];
                    let payload: &[u8] = if ping { br#"{"warmgate":"ping"}"# } else { b"{}" };
                    requests += 1;
                    match p.invoke(now, &Request { function: &name, qualifier, payload, client_context: None }) {
                        Ok(i) => {
                            admitted += 1;
                            prop_assert!(i.completes_at >= i.started_at);
                            // A cold start waited for init or a SnapStart restore, never both.
                            prop_assert_eq!(i.init.is_some() || i.restore.is_some(), i.start == Start::Cold);
                            prop_assert!(i.init.is_none() || i.restore.is_none());
                            prop_assert_eq!(i.restore.is_some(), i.start == Start::Cold && function == 2 && qualifier.is_some());
                        }
                        Err(Rejection::Throttled { .. }) => throttled += 1,
                        Err(Rejection::NotFound { .. }) => not_found += 1,
                    }
                }
                Op::Provision { function, concurrency } => {
                    let _ = p.put_provisioned(now, &format!("f{function}"), "live", concurrency);
                }
                Op::Unprovision { function } => {
                    let _ = p.delete_provisioned(now, &format!("f{function}"), "live");
                }
            }
            // Limits hold at every step.
            let snap = p.snapshot(now);
            let mut unreserved = 0;
            for (i, f) in snap.functions.iter().enumerate() {
                let provisioned: u32 = f.provisioned.iter().map(|c| c.allocated).sum();
                let on_demand_busy: u32 = f.versions.iter()
                    .map(|v| v.environments.busy + v.environments.initializing - v.environments.provisioned_busy)
                    .sum();
                prop_assert!(on_demand_busy <= f.in_flight);
                let usage = f.in_flight - f.versions.iter().map(|v| v.environments.provisioned_busy).sum::<u32>() + provisioned;
                if i == 0 {
                    prop_assert!(usage <= 4, "reserved 4, usage {}", usage);
                } else {
                    unreserved += usage;
                }
                for c in &f.provisioned {
                    prop_assert!(c.allocated <= c.requested.max(c.allocated));
                    prop_assert!(c.available <= c.allocated);
                }
            }
            prop_assert!(unreserved <= 110 - 4);
        }
        // Every request ended in exactly one outcome.
        let snap = p.snapshot(now);
        let mut total = VersionStats::default();
        for f in &snap.functions {
            total.absorb(&f.totals());
        }
        prop_assert_eq!(total.invocations(), admitted);
        prop_assert_eq!(total.throttled(), throttled);
        prop_assert_eq!(snap.not_found, not_found);
        prop_assert_eq!(admitted + throttled + not_found, requests);
        // The GB-s ledger adds up: each on-demand environment's life is init + busy + idle.
        let accounted = total.init_gb_s + total.busy_gb_s + total.idle_gb_s;
        prop_assert!((total.environment_gb_s - accounted).abs() < 1e-6 * (1.0 + accounted),
            "lifetimes {} vs init+busy+idle {}", total.environment_gb_s, accounted);
        // And long after, every on-demand environment is gone.
        let snap = p.snapshot(now + Duration::from_secs(5 * 3600));
        for f in &snap.functions {
            for v in &f.versions {
                prop_assert_eq!(v.environments.total(), v.environments.provisioned);
                prop_assert_eq!(v.stats.environments_created, v.stats.environments_reclaimed);
            }
        }
    }
}
