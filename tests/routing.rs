//! The warm-pool estimator and router in the gateway, checked against the emulator's ground
//! truth, in paused time.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Stack;
use futures::future::join_all;
use rand::{Rng, SeedableRng};

const EMULATOR: &str = r#"
[settings]
seed = 11
# Narrower than the default 5-10 min, so the estimator has something to learn.
idle_reclaim_s = { min = 420, max = 450 }

# Two aliases on two versions of the same code; 2 provisioned environments on "live".
[[function]]
name = "pc"
memory_mb = 1024
timeout_s = 30
init_ms = 2000
duration_ms = 100
[[function.version]]
[[function.version]]
[[function.alias]]
name = "live"
version = "1"
[[function.alias]]
name = "standby"
version = "2"
[[function.provisioned]]
qualifier = "live"
concurrency = 2

# Two equivalent versions, no provisioning.
[[function]]
name = "duo"
timeout_s = 30
init_ms = 2000
duration_ms = 100
[[function.version]]
[[function.version]]

# Short requests behind a long cold start.
[[function]]
name = "quick"
timeout_s = 30
init_ms = 2000
duration_ms = 50

# The same, called rarely.
[[function]]
name = "lone"
timeout_s = 30
init_ms = 2000
duration_ms = 50
"#;

const GATEWAY: &str = r#"
[backend]
kind = "endpoint"
url = "http://placeholder"

[access]
open = true

[[function]]
name = "pc"
targets = ["live", "standby"]

[[function]]
name = "duo"
targets = ["1", "2"]

[[function]]
name = "quick"
targets = ["$LATEST"]

[[function]]
name = "lone"
"#;

/// The calls these tests make, with what the routing headers say.
trait Routed {
    async fn call(&self, function: &str) -> (bool, String, String, Duration);
    async fn call_pinned(&self, function: &str, qualifier: &str);
    async fn burst(&self, function: &str, n: usize) -> Vec<(bool, String, String, Duration)>;
}

async fn start(gateway_toml: &str) -> Stack {
    common::start_on(EMULATOR, gateway_toml, true).await
}

impl Routed for Stack {
    /// Invokes through `/v1`; returns (cold start, target, route, latency).
    async fn call(&self, function: &str) -> (bool, String, String, Duration) {
        let url = format!(
            "http://{}/v1/functions/{function}/invoke",
            self.gateway.addr()
        );
        let began = tokio::time::Instant::now();
        let r = self.http.post(url).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let h = |k: &str| r.headers()[k].to_str().unwrap().to_string();
        (
            h("x-warmgate-cold-start") == "true",
            h("x-warmgate-target"),
            h("x-warmgate-route"),
            began.elapsed(),
        )
    }

    /// Invokes a pinned target through the Lambda API path.
    async fn call_pinned(&self, function: &str, qualifier: &str) {
        let url = format!(
            "http://{}/2015-03-31/functions/{function}/invocations?Qualifier={qualifier}",
            self.gateway.addr()
        );
        let r = self.http.post(url).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn burst(&self, function: &str, n: usize) -> Vec<(bool, String, String, Duration)> {
        join_all((0..n).map(|_| self.call(function))).await
    }
}

/// A scripted day: 160 bursts of 1 to 5 concurrent calls, separated by idle gaps drawn
/// log-uniformly from 30 s to 45 min, with the estimate compared to the ground truth twice
/// per gap once the first quarter has calibrated the reclaim model.
///
/// Near the reclaim time all environments of one burst share an idle age and live or die
/// together, so a single check can miss by a burst's size there; the test bounds how often.
/// (Before the reclaim model learnt from ghosts' ends and stopped cutting its curve right
/// after the oldest age seen alive: exact 92.1%, within one 97.1%, mean absolute error 0.133.
/// Then 96.7%, 99.2%, 0.042; with the curve refit whenever the observations could have moved
/// it, 96.7%, 99.6%, 0.037, the check off by more than one (4 environments at 457 s of idle,
/// counted 2.2, all gone) lying between the oldest idle age seen alive, 370 s, and the
/// youngest seen gone, 560 s, where nothing placed the reclaim. Now the gateway probes that
/// stretch (`Pool::probe_due`; here 5 probes, 3 meeting no environment): 97.5%, 99.6%, 0.029.
/// The check still off by more than one (5 environments at 422 s of idle, counted 5, 3 alive)
/// is inside the reclaim window with the curve bracketed within 10 s: each environment draws
/// its own reclaim time, and even the true curve (0.93 there) counts 5. Seeds 1 to 60: exact
/// 97.6 to 98.2% on average, within one 99.47 to 99.60%, mean absolute error 0.031 to 0.023,
/// 3.3 probes a day (2.1 meeting none); the bounds below fail at one seed with probes (11:
/// within one 97.9%, a probe met an environment reclaimed early, one chance in ten, and put
/// the curve 15 s early) and at six without. Then lone pings stopped holding their
/// environment and the wait learnt the tail of durations, which changes what the gateway
/// sends: seed 42 now 98.8%, 100% within one, 0.013 (5 probes, 3 meeting none); seeds 1 to
/// 30: exact 97.1 to 100%, within one 98.8 to 100% (100% at 15 of them, 99.7% on average),
/// mean absolute error at most 0.037. No environment here lives near the lifetime cap, which
/// the pool also models.)
#[tokio::test(start_paused = true)]
async fn the_estimate_tracks_the_truth_over_a_day_of_bursts_and_idles() {
    let stack = start(GATEWAY).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let bursts = 160;
    let mut errors: Vec<f64> = Vec::new();
    for i in 0..bursts {
        let size = rng.random_range(1..=5);
        stack.burst("quick", size).await;
        let gap: f64 = rng.random_range(0.5f64.ln()..45f64.ln()).exp();
        // Check 20% into the gap, and at its end, just before the next burst.
        for share in [0.2, 0.8] {
            tokio::time::sleep(Duration::from_secs_f64(gap * 60.0 * share)).await;
            if i < bursts / 4 {
                continue; // calibrating
            }
            let now = stack.gateway.gateway().now();
            let views = stack
                .gateway
                .gateway()
                .function("quick")
                .unwrap()
                .pool_views(now);
            let truth = stack.emulator.emulator().snapshot();
            let idle = truth
                .function("quick")
                .unwrap()
                .version("$LATEST")
                .unwrap()
                .environments
                .idle;
            // The estimated count: the expected number of warm idle environments, rounded.
            errors.push(views[0].1.warm_idle.round() - f64::from(idle));
        }
    }
    let n = errors.len() as f64;
    let exact = errors.iter().filter(|e| **e == 0.0).count() as f64 / n;
    let within_one = errors.iter().filter(|e| e.abs() <= 1.0).count() as f64 / n;
    let mean_abs = errors.iter().map(|e| e.abs()).sum::<f64>() / n;
    let probes = probes(&stack, "quick").await;
    let probed: f64 = probes.values().sum();
    println!(
        "{n} checks: exact {:.1}%, within one {:.1}%, mean absolute error {mean_abs:.3} environments; probes {probes:?}",
        exact * 100.0,
        within_one * 100.0
    );
    assert!(n >= 240.0);
    assert!((1.0..=10.0).contains(&probed), "{probes:?}");
    assert!(exact >= 0.95, "exact in {:.1}% of checks", exact * 100.0);
    assert!(
        within_one >= 0.98,
        "within one in {:.1}% of checks",
        within_one * 100.0
    );
    assert!(mean_abs < 0.06);
}

/// The probes the gateway has sent to `function`, by outcome, from its `/metrics` (the
/// recorder is the process's: only the test that calls a function counts its probes).
async fn probes(stack: &Stack, function: &str) -> HashMap<String, f64> {
    let url = format!("http://{}/metrics", stack.gateway.metrics_addr());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let mut by_outcome = HashMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("warmgate_probes_total{"))
    {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        if !labels.contains(&format!("function=\"{function}\"")) {
            continue;
        }
        let outcome = labels.split("outcome=\"").nth(1).unwrap();
        let outcome = outcome.split('"').next().unwrap().to_string();
        *by_outcome.entry(outcome).or_default() += value.parse::<f64>().unwrap();
    }
    by_outcome
}

/// A function called three times: seen alive at 350 s of idle (a ghost met warm) and gone at
/// 600 s, nothing between; the reclaim is 420 to 450 s. Nothing more will be observed, so
/// without probes the curve falls linearly across and puts the median in the middle; probes
/// find it, then stop.
#[tokio::test(start_paused = true)]
async fn probes_place_the_reclaim_where_observation_cannot() {
    let run = |gateway: String| async move {
        let stack = start(&gateway).await;
        for idle in [350, 600] {
            stack.call("lone").await;
            tokio::time::sleep(Duration::from_secs(idle)).await;
        }
        let (cold, ..) = stack.call("lone").await;
        assert!(cold, "gone after 600 s of idle");
        let function = stack.gateway.gateway().function("lone").unwrap().clone();
        let pings = || {
            let truth = stack.emulator.emulator().snapshot();
            truth.function("lone").unwrap().totals().pings
        };
        tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
        let median = function.reclaim_quantile("$LATEST", 0.5).unwrap();
        let probed = pings();
        // Once the curve is sharp, an environment idling through the stretch is left alone.
        stack.call("lone").await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(pings(), probed, "probing stopped");
        (median, probed, probes(&stack, "lone").await)
    };
    let off = GATEWAY.replace(
        "name = \"lone\"\n",
        "name = \"lone\"\nprobe = { enabled = false }\n",
    );
    assert_ne!(off, GATEWAY);
    let (unprobed, none, _) = run(off).await;
    let (median, probed, outcomes) = run(GATEWAY.to_string()).await;
    println!("median {median:?} after {probed} probes {outcomes:?}; {unprobed:?} without");
    assert_eq!(none, 0);
    assert_eq!(
        unprobed,
        Duration::from_secs(480),
        "the middle of 350 to 600 s, to the next bin"
    );
    assert!(
        (420..=450).contains(&median.as_secs()),
        "the reclaim is 420 to 450 s, the median put at {median:?}"
    );
    assert!((2..=6).contains(&probed), "{probed} probes");
    assert_eq!(
        outcomes.values().sum::<f64>(),
        probed as f64,
        "{outcomes:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_beyond_provisioned_capacity_goes_to_the_warm_target_not_cold() {
    let stack = start(GATEWAY).await;
    // Three warm environments on the standby alias.
    join_all((0..3).map(|_| stack.call_pinned("pc", "standby"))).await;
    let before = stack.emulator.emulator().snapshot();
    let burst = stack.burst("pc", 5).await;
    assert!(burst.iter().all(|(cold, ..)| !cold), "{burst:?}");
    let on_live = burst
        .iter()
        .filter(|(_, t, r, _)| t == "live" && r == "provisioned")
        .count();
    let on_standby = burst
        .iter()
        .filter(|(_, t, r, _)| t == "standby" && r == "warm")
        .count();
    assert_eq!((on_live, on_standby), (2, 3));
    let after = stack.emulator.emulator().snapshot();
    let pc = |s: &warmgate::platform::Snapshot| s.function("pc").unwrap().totals();
    assert_eq!(
        pc(&after).cold_starts,
        pc(&before).cold_starts,
        "no new cold start"
    );
    assert_eq!(pc(&after).spillovers, 0, "nothing spilled over");

    // Without the standby target, the same burst spills over cold.
    // (Waiting off: waiting for a provisioned environment to free would avoid the spill too.)
    let only_live = GATEWAY.replace(
        r#"targets = ["live", "standby"]"#,
        r#"targets = ["live"]
wait = { enabled = false }"#,
    );
    let stack = start(&only_live).await;
    let burst = stack.burst("pc", 5).await;
    assert_eq!(burst.iter().filter(|(cold, ..)| *cold).count(), 3);
    let truth = stack.emulator.emulator().snapshot();
    assert_eq!(truth.function("pc").unwrap().totals().spillovers, 3);
}

#[tokio::test(start_paused = true)]
async fn with_one_warm_and_one_cold_target_every_request_goes_warm() {
    let stack = start(GATEWAY).await;
    stack.call_pinned("duo", "2").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    for _ in 0..10 {
        let (cold, target, route, _) = stack.call("duo").await;
        assert!(!cold);
        assert_eq!((target.as_str(), route.as_str()), ("2", "warm"));
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let truth = stack.emulator.emulator().snapshot();
    assert_eq!(
        truth
            .function("duo")
            .unwrap()
            .version("1")
            .unwrap()
            .stats
            .cold_starts,
        0
    );
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// The burst pings the gateway has sent to `function`, from its `/metrics` (the process's
/// recorder: a difference of two readings counts one stack's).
async fn burst_pings(stack: &Stack, function: &str) -> f64 {
    let url = format!("http://{}/metrics", stack.gateway.metrics_addr());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("warmgate_pings_total{"))
        .filter(|l| {
            l.contains(&format!("function=\"{function}\"")) && l.contains("reason=\"burst\"")
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(start_paused = true)]
async fn a_burst_against_a_small_warm_pool_waits_briefly_instead_of_going_cold() {
    let run = |gateway: String| async move {
        let stack = start(&gateway).await;
        stack.burst("quick", 2).await; // two warm environments
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = burst_pings(&stack, "quick").await;
        let burst = stack.burst("quick", 10).await;
        let cold = burst.iter().filter(|(cold, ..)| *cold).count();
        let mut latencies: Vec<Duration> = burst.iter().map(|b| b.3).collect();
        // The burst pings are counted as they answer, after their inits.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let pings = burst_pings(&stack, "quick").await - before;
        (cold, p99(&mut latencies), pings)
    };
    let (cold_waiting, p99_waiting, pings_waiting) = run(GATEWAY.to_string()).await;
    // Eight wait for the two busy environments; one burst ping for every two of them starts
    // an environment for the rest of the burst (one at a time before).
    assert_eq!(pings_waiting, 4.0);
    let no_wait = GATEWAY.replace(
        "name = \"quick\"\ntargets = [\"$LATEST\"]",
        "name = \"quick\"\ntargets = [\"$LATEST\"]\nwait = { enabled = false }",
    );
    assert_ne!(no_wait, GATEWAY);
    let (cold_direct, p99_direct, pings_direct) = run(no_wait).await;
    assert_eq!(pings_direct, 0.0);
    println!("waiting: {cold_waiting} cold, p99 {p99_waiting:?}; going cold: {cold_direct} cold, p99 {p99_direct:?}");
    assert_eq!(cold_direct, 8);
    assert_eq!(cold_waiting, 0);
    assert!(p99_waiting < p99_direct);
    assert!(p99_waiting < Duration::from_secs(1));
}
