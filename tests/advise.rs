//! `warmgate advise` against the local stack: the gateway keeps its history while clients
//! call it (paused time, the emulator's clock), then the `warmgate` binary advises from that
//! history and the emulator's settings, and `warmgate simulate`, run as its advice says,
//! reproduces the expected costs it printed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use warmgate::lambda::{ControlPlane, LambdaClient};

const EMULATOR: &str = r#"
[settings]
seed = 11
idle_reclaim_s = 300

# Busy all the time, and given far more memory than it uses.
[[function]]
name = "steady"
runtime = "python3.12"
memory_mb = 1024
max_memory_used_mb = 180
timeout_s = 120
init_ms = 4000
duration_ms = 30000
[[function.version]]
[[function.alias]]
name = "live"
version = "1"

# Called now and then, SnapStart on, on arm64, nearly out of memory.
[[function]]
name = "rare"
runtime = "java21"
architecture = "arm64"
snap_start = true
restore_ms = 300
memory_mb = 512
max_memory_used_mb = 480
init_ms = 5000
duration_ms = 200
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
"#;

fn gateway_toml(history: &Path, emulator_url: &str) -> String {
    format!(
        r#"
[backend]
kind = "endpoint"
url = "{emulator_url}"

[access]
open = true

[warmer]
enabled = false

[history]
path = "{}"

[[function]]
name = "steady"
targets = ["live"]
timeout_ms = 60000

[[function]]
name = "rare"
targets = ["live"]

[[function]]
name = "idle"
lambda_name = "rare"
targets = ["live"]
"#,
        history.display()
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warmgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the `warmgate` binary with `args`; its stdout, or a failure with its stderr.
async fn warmgate(args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warmgate"))
        .args(args)
        .output()
        .await
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "warmgate {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn function<'a>(advice: &'a Value, name: &str) -> &'a Value {
    advice["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == name)
        .unwrap_or_else(|| panic!("no advice for {name}: {advice:#}"))
}

#[tokio::test(start_paused = true)]
async fn advise_reads_the_history_and_its_costs_are_the_simulators() {
    let dir = temp_dir("advise");
    let history = dir.join("warmgate-history.csv");
    // The gateway's configuration needs the emulator's URL: start the stack with a
    // placeholder, then write the file the binary reads with the real one.
    let stack = common::start_on(
        EMULATOR,
        &gateway_toml(&history, "http://placeholder"),
        true,
    )
    .await;
    let emulator_url = stack.emulator.endpoint_url();
    let config = dir.join("warmgate.toml");
    std::fs::write(&config, gateway_toml(&history, &emulator_url)).unwrap();
    // Today: two provisioned environments on steady's alias, set by a person.
    let lambda = LambdaClient::for_endpoint(&emulator_url, "us-east-1");
    lambda.set_provisioned("steady", "live", 2).await.unwrap();

    // An hour: three clients back to back on steady, and rare every twelve minutes.
    let stack = Arc::new(stack);
    let mut clients: Vec<_> = (0..3)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let until = tokio::time::Instant::now() + Duration::from_secs(3600);
                let mut calls = 0u64;
                while tokio::time::Instant::now() < until {
                    assert_eq!(stack.invoke("steady", "{}").await.status(), 200);
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let rare = stack.clone();
    clients.push(tokio::spawn(async move {
        for _ in 0..5 {
            assert_eq!(rare.invoke("rare", "{}").await.status(), 200);
            tokio::time::sleep(Duration::from_secs(720)).await;
        }
        5
    }));
    let mut steady_calls = 0;
    for (i, client) in clients.into_iter().enumerate() {
        let calls = client.await.unwrap();
        if i < 3 {
            steady_calls += calls;
        }
    }
    // Shut the gateway down: its history is flushed. The emulator stays for advise.
    let stack = Arc::into_inner(stack).expect("clients are done");
    stack
        .gateway
        .shutdown(Duration::from_secs(5))
        .await
        .unwrap();

    let printed = warmgate(&["advise", "--config", config.to_str().unwrap(), "--json"]).await;
    let advice: Value = serde_json::from_str(&printed).expect("JSON");

    let steady = function(&advice, "steady");
    assert_eq!(
        steady["observed"]["invocations"], steady_calls,
        "every call recorded"
    );
    assert_eq!(steady["runtime"], "python3.12");
    assert_eq!(steady["architecture"], "x86_64");
    let pc = &steady["provisioned"];
    assert_eq!(pc["today"], 2, "today's level is read from Lambda");
    let levels: Vec<u64> = pc["recommended_by_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap())
        .collect();
    assert!(
        !levels.is_empty() && levels.iter().all(|&l| l == 3),
        "three environments always busy: three provisioned, {levels:?}"
    );
    let usd = |scenario: &str| pc[scenario]["usd"].as_f64().unwrap();
    let cold = |scenario: &str| pc[scenario]["cold_starts"].as_u64().unwrap();
    assert!(
        usd("recommended") < usd("on_demand_only"),
        "busy all the time, provisioned is cheaper: {pc:#}"
    );
    assert!(cold("recommended") <= cold("today_setting"), "{pc:#}");
    assert!(
        usd("today_setting") != usd("on_demand_only"),
        "today's two provisioned environments are replayed: {pc:#}"
    );
    assert_eq!(
        steady["memory"]["recommended_mb"], 256,
        "180 MB used of 1024"
    );
    assert_eq!(steady["architecture_change"]["to"], "arm64");
    let snap = &steady["snap_start_advice"];
    assert_eq!(snap["supported"], true);
    assert_eq!(
        snap["advised"], false,
        "provisioned concurrency is advised, and Lambda runs not both: {snap:#}"
    );

    let rare = function(&advice, "rare");
    assert_eq!(rare["observed"]["invocations"], 5);
    assert_eq!(rare["snap_start"], true);
    assert_eq!(
        rare["observed"]["restore_p50_ms"], 300.0,
        "restores, not inits"
    );
    assert!(rare["observed"]["init_p50_ms"].is_null());
    assert_eq!(rare["snap_start_advice"]["advised"], true);
    assert_eq!(rare["architecture_change"], Value::Null, "arm64 already");
    assert_eq!(
        rare["memory"]["recommended_mb"], 640,
        "480 MB of 512 used: raise it"
    );
    let rare_levels = rare["provisioned"]["recommended_by_hour"]
        .as_array()
        .unwrap();
    assert!(
        rare_levels.iter().all(|l| l == 0),
        "a call every twelve minutes does not pay for an environment: {rare_levels:?}"
    );
    assert_eq!(advice["without_calls"], serde_json::json!(["idle"]));

    // The advice's command, run as printed (with a file to write to), gives its figures.
    let command = pc["reproduce"].as_str().unwrap();
    let out = dir.join("replayed.json");
    let mut args: Vec<&str> = command.split(' ').skip(1).collect();
    let out_arg = out.to_str().unwrap();
    args.extend(["--out", out_arg]);
    warmgate(&args).await;
    let replayed: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let policies = replayed["policies"].as_array().unwrap();
    for (scenario, policy) in [
        ("on_demand_only", "none"),
        ("today_setting", "pc-fixed-2"),
        ("recommended", "pc-planner"),
    ] {
        let row = policies
            .iter()
            .find(|p| p["policy"] == policy)
            .unwrap_or_else(|| panic!("{policy} replayed: {replayed:#}"));
        assert_eq!(row["bill_usd"].as_f64(), Some(usd(scenario)), "{scenario}");
        assert_eq!(
            row["cold_starts"].as_u64(),
            Some(cold(scenario)),
            "{scenario}"
        );
    }
    stack.emulator.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the `warmgate` binary with `args`, expecting it to fail; its stderr.
async fn warmgate_fails(args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warmgate"))
        .args(args)
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success(), "warmgate {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn advise_says_what_it_lacks() {
    let dir = temp_dir("advise-errors");
    let config = dir.join("warmgate.toml");
    let without_history = gateway_toml(Path::new("unused"), "http://127.0.0.1:9")
        .replace("[history]\npath = \"unused\"\n", "");
    std::fs::write(&config, without_history).unwrap();
    let config = config.to_str().unwrap();
    let err = warmgate_fails(&["advise", "--config", config]).await;
    assert!(err.contains("no [history] path, and no --history"), "{err}");

    let missing = dir.join("warmgate-history.csv");
    let err = warmgate_fails(&[
        "advise",
        "--config",
        config,
        "--history",
        missing.to_str().unwrap(),
    ])
    .await;
    assert!(
        err.contains("cannot read the history") && err.contains("warmgate-history.csv"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
