//! The load generator end to end: `warmgate-load plan` writes an emulator spec, the test
//! serves it in process on 127.0.0.1:0 at the same time scale, and `warmgate-load run` replays
//! a rate profile against it. Every scheduled request must be sent and answered, and the cold
//! starts the generator counted from the answers must be the emulator's own count.
//!
//! Real time, scaled: the run lasts about a second. Nothing here asserts a timing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use warmgate::clock::TokioClock;
use warmgate::emulator::Emulator;
use warmgate::platform::PlatformSpec;

const LOAD: &str = env!("CARGO_BIN_EXE_warmgate-load");

/// 40 requests per trace second for 10 trace seconds over two functions, at 10x: one wall
/// second. With init drawn around 1 s (100 ms at 10x), the first requests meet cold starts.
const WORKLOAD: [&str; 8] = [
    "--rate",
    "40:10",
    "--functions",
    "2",
    "--time-scale",
    "10",
    "--duration-ms",
    "20",
];

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warmgate-loadgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(args: &[&str], workload: &[&str]) -> String {
    let out = Command::new(LOAD)
        .args(args)
        .args(workload)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "warmgate-load {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrival_is_sent_answered_and_its_cold_start_counted() {
    let dir = scratch();
    let plan = dir.join("plan");
    let plan_str = plan.to_str().unwrap();
    load(&["plan", "--init", "small", "--out", plan_str], &WORKLOAD);
    let spec = PlatformSpec::from_file(&plan.join("emulator.toml")).unwrap();
    assert_eq!(spec.functions.len(), 2);

    let emulator = Emulator::new(spec, Arc::new(TokioClock::scaled(10.0)))
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let target = emulator.endpoint_url();
    let run = dir.join("run");
    let run_str = run.to_str().unwrap().to_string();
    let stdout = tokio::task::spawn_blocking(move || {
        load(
            &[
                "run",
                "--target",
                &target,
                "--qualifier",
                "live",
                "--label",
                "emulator",
                "--out",
                &run_str,
            ],
            &WORKLOAD,
        )
    })
    .await
    .unwrap();
    assert!(stdout.contains("# Load run: emulator"), "{stdout}");

    let s = json(&run.join("summary.json"));
    let f = &s["figures"];
    assert_eq!(s["scheduled"], 400);
    assert_eq!(s["sent"], 400);
    assert_eq!(f["measured"], 400);
    assert_eq!(f["answered"], 400);
    assert_eq!(f["ok"], 400, "{f}");
    assert_eq!(f["start_unknown"], 0);

    let truth = emulator.emulator().snapshot();
    let (mut cold, mut warm) = (0, 0);
    for function in &truth.functions {
        let stats = function.totals();
        cold += stats.cold_starts;
        warm += stats.warm_starts;
    }
    assert!(cold >= 2, "each function starts cold at least once");
    assert_eq!(f["cold_starts"], cold);
    assert_eq!(f["warm_starts"], warm);
    for file in ["report.md", "latency_cdf.svg", "over_time.svg"] {
        assert!(run.join(file).is_file(), "{file} written");
    }

    // compare reads the summaries back into one table.
    let table = load(&["compare", &run.to_string_lossy()], &[]);
    assert!(table.contains("| emulator | 400 |"), "{table}");
    emulator.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_named() {
    let out = Command::new(LOAD)
        .args([
            "run",
            "--rate",
            "40",
            "--target",
            "http://127.0.0.1:1",
            "--out",
            "/tmp/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RATE:SECONDS"), "{stderr}");

    let out = Command::new(LOAD)
        .args(["plan", "--trace", "/nonexistent/trace", "--out", "/tmp/x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/trace"), "{stderr}");
}
