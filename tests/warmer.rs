//! The warmer's executor in the gateway, against the emulator's ground truth, in paused time.

use std::time::Duration;

use warmgate::emulator::RunningEmulator;
use warmgate::gateway::RunningGateway;
use warmgate::stack::LocalStack;

const EMULATOR: &str = r#"
[settings]
seed = 9

[[function]]
name = "model"
memory_mb = 2048
timeout_s = 30
init_ms = { median = 2500, spread = 1.3 }
duration_ms = { median = 60, spread = 1.2 }

# A long batch call, to hold the gateway's admission permits.
[[function]]
name = "batch"
timeout_s = 600
init_ms = 500
duration_ms = 150000
"#;

const MIN: Duration = Duration::from_secs(60);

async fn start(warmer: &str, function_extra: &str) -> (RunningEmulator, RunningGateway) {
    start_on(EMULATOR, warmer, function_extra).await
}

async fn start_on(
    emulator: &str,
    warmer: &str,
    function_extra: &str,
) -> (RunningEmulator, RunningGateway) {
    let toml = format!(
        "[backend]\nkind = \"endpoint\"\nurl = \"http://x\"\n\n[access]\nopen = true\n\n[warmer]\n{warmer}\n\n[[function]]\nname = \"model\"\n{function_extra}\n"
    );
    let stack = LocalStack::start(emulator, &toml, Duration::from_secs(30)).await;
    stack.gateway.wait_ready(Duration::ZERO).await.unwrap();
    (stack.emulator, stack.gateway)
}

/// Calls `model` through the gateway `calls` times, `every` apart; whether each was cold.
async fn cold_by_call(gateway: &RunningGateway, calls: usize, every: Duration) -> Vec<bool> {
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/functions/model/invoke", gateway.addr());
    let mut cold = Vec::new();
    for _ in 0..calls {
        let r = http.post(&url).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 200);
        cold.push(r.headers()["x-warmgate-cold-start"] == "true");
        tokio::time::sleep(every).await;
    }
    cold
}

#[tokio::test(start_paused = true)]
async fn k_concurrent_pings_keep_k_distinct_environments_warm() {
    let (emulator, _gateway) = start(
        "enabled = true\npolicy = \"fixed-4min-x3\"\njitter_ms = 500",
        "",
    )
    .await;
    // Rounds fall on multiples of 4 minutes of the gateway's clock; look 30 s after each
    // (past the jitter and a cold start's init).
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut rounds = 0;
    let mut exact = 0;
    for _ in 0..30 {
        let truth = emulator.emulator().snapshot();
        let version = truth.function("model").unwrap().version("$LATEST").unwrap();
        rounds += 1;
        exact += usize::from(version.environments.total() == 3);
        tokio::time::sleep(4 * MIN).await;
    }
    let truth = emulator.emulator().snapshot();
    let stats = &truth
        .function("model")
        .unwrap()
        .version("$LATEST")
        .unwrap()
        .stats;
    println!("{exact} of {rounds} rounds found exactly 3 environments; {} pings, {} environments created", stats.pings, stats.environments_created);
    assert!(exact * 100 >= rounds * 95, "{exact} of {rounds}");
    assert_eq!(stats.environments_created, 3, "the same three, kept warm");
}

/// Billed ms per ping of the warm rounds between minute 10 and minute 30 (the first round's
/// cold starts bill their init).
async fn billed_per_warm_ping(policy: &str) -> u64 {
    let (emulator, _gateway) = start(
        &format!("enabled = true\npolicy = \"{policy}\"\njitter_ms = 0"),
        "",
    )
    .await;
    let pings = |e: &RunningEmulator| {
        let stats = e.emulator().snapshot().function("model").unwrap().totals();
        (stats.pings, stats.ping_billed_ms)
    };
    tokio::time::sleep(10 * MIN).await;
    let (pings_before, billed_before) = pings(&emulator);
    tokio::time::sleep(20 * MIN).await;
    let (pings_after, billed_after) = pings(&emulator);
    assert!(pings_after > pings_before);
    (billed_after - billed_before) / (pings_after - pings_before)
}

#[tokio::test(start_paused = true)]
async fn a_round_of_pings_holds_its_environments_and_a_lone_ping_does_not() {
    // Each ping of a round asks its handler to hold, so the round's pings overlap.
    let hold = warmgate::policy::round_hold(warmgate::policy::ROUND_HOLD, 3);
    assert_eq!(
        billed_per_warm_ping("fixed-4min-x3").await,
        hold.as_millis() as u64
    );
    // A lone ping needs no overlap: the handler returns at once, billed 1 ms.
    assert_eq!(billed_per_warm_ping("fixed-4min").await, 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_pings_per_hour() {
    let (emulator, _gateway) = start(
        "enabled = true\npolicy = \"fixed-1min-x3\"\njitter_ms = 0",
        "ping_budget = { pings_per_hour = 20 }",
    )
    .await;
    tokio::time::sleep(59 * MIN).await;
    let truth = emulator.emulator().snapshot();
    let pings = truth.function("model").unwrap().totals().pings;
    assert_eq!(pings, 20, "60 wanted, 20 allowed");
}

#[tokio::test(start_paused = true)]
async fn the_predictive_warmer_keeps_no_deeper_pool_than_the_budget_refreshes() {
    // Eight calls at once, three times ten minutes apart: a pattern the warmer sizes a pool
    // of 8 for. 48 pings an hour refresh only 3 environments every 4 min 58 s, so it keeps
    // 3. A pool of 8 would have its rounds refused within the hour, unknown to the planner:
    // the environments they missed would be reclaimed and the next hour's rounds would start
    // them again.
    let (emulator, gateway) = start(
        "enabled = true\npolicy = \"warmer\"\njitter_ms = 0",
        "ping_budget = { pings_per_hour = 48 }",
    )
    .await;
    let url = format!("http://{}/v1/functions/model/invoke", gateway.addr());
    let http = reqwest::Client::new();
    let burst = || async {
        let calls: Vec<_> = (0..8)
            .map(|_| tokio::spawn(http.post(&url).body("{}").send()))
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap().status(), 200);
        }
    };
    let totals = |emulator: &RunningEmulator| {
        let truth = emulator.emulator().snapshot();
        let totals = truth.function("model").unwrap().totals();
        (totals.environments_created, totals.pings)
    };
    for _ in 0..3 {
        burst().await;
        tokio::time::sleep(10 * MIN).await;
    }
    let (after_bursts, pings_then) = totals(&emulator);
    // Under the shortest lifetime (2 hours) since the first burst, so that no environment
    // ends of age.
    tokio::time::sleep(80 * MIN).await;
    let (created, pings) = totals(&emulator);
    assert_eq!(
        created,
        after_bursts,
        "no ping started an environment ({} pings)",
        pings - pings_then
    );
    // Refreshed all along, within the budget.
    let sent = pings - pings_then;
    assert!((80 / 5..=2 * 48).contains(&sent), "{sent} pings");
}

/// A timer's function: calls of a minute.
const TIMER: &str = r#"
[settings]
seed = 9

[[function]]
name = "model"
timeout_s = 120
init_ms = 1000
duration_ms = 60000
"#;

#[tokio::test(start_paused = true)]
async fn no_ping_meets_a_lone_environment_busy_with_a_call() {
    // Calls of a minute every 5 minutes: the refresh due 4 min 58 s after one ends falls
    // within the next. The gateway tells the warmer that call is in flight, so no ping finds
    // the environment busy and starts a second one; the call's end refreshes it.
    let (emulator, gateway) = start_on(
        TIMER,
        "enabled = true\npolicy = \"warmer\"\njitter_ms = 0",
        "timeout_ms = 120000",
    )
    .await;
    // The first call comes once the warmer's first ping has started the environment.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cold = cold_by_call(&gateway, 16, 4 * MIN).await;
    let truth = emulator.emulator().snapshot();
    let totals = truth.function("model").unwrap().totals();
    println!("cold starts by call: {cold:?}; {} pings", totals.pings);
    assert!(cold.iter().all(|c| !c), "{cold:?}");
    assert_eq!(
        totals.environments_created, 1,
        "one environment all along ({} pings)",
        totals.pings
    );
}

#[tokio::test(start_paused = true)]
async fn a_function_called_every_twelve_minutes_stays_warm() {
    let (emulator, gateway) = start(
        "enabled = true\npolicy = \"hybrid-histogram\"\njitter_ms = 250",
        "",
    )
    .await;
    let cold = cold_by_call(&gateway, 20, 12 * MIN).await;
    println!("cold starts by call: {cold:?}");
    assert!(cold[0], "the very first call is cold");
    assert!(
        cold[3..].iter().all(|c| !c),
        "no cold start after the first few calls: {cold:?}"
    );
    let truth = emulator.emulator().snapshot();
    assert!(truth.function("model").unwrap().totals().pings > 0);
}

#[tokio::test(start_paused = true)]
async fn the_predictive_warmer_keeps_a_twelve_minute_function_warm_in_the_gateway() {
    let (emulator, gateway) =
        start("enabled = true\npolicy = \"warmer\"\njitter_ms = 250", "").await;
    let cold = cold_by_call(&gateway, 20, 12 * MIN).await;
    let truth = emulator.emulator().snapshot();
    let pings = truth.function("model").unwrap().totals().pings;
    println!("cold starts by call: {cold:?}; {pings} pings");
    assert!(
        cold[3..].iter().all(|c| !c),
        "no cold start after the first few calls: {cold:?}"
    );
    // Two refreshes bridge each 12-minute gap (cheaper than pre-warming a new environment
    // under billed init), plus a few while the first gaps are learned (fallback keep-alive).
    assert!(
        pings <= 2 * 20 + 4,
        "two pings per gap and a few, got {pings}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_round_is_skipped_while_clients_hold_every_admission_permit() {
    let gateway = "[backend]\nkind = \"endpoint\"\nurl = \"http://x\"\n\n[access]\nopen = true\n\n[gateway]\nmax_in_flight = 1\n\n[warmer]\nenabled = true\npolicy = \"fixed-1min\"\njitter_ms = 0\n\n[[function]]\nname = \"model\"\n\n[[function]]\nname = \"batch\"\ntimeout_ms = 300000\n";
    let stack = LocalStack::start(EMULATOR, gateway, Duration::from_secs(30)).await;
    stack.gateway.wait_ready(Duration::ZERO).await.unwrap();
    let pings = |s: &LocalStack| {
        s.emulator
            .emulator()
            .snapshot()
            .function("model")
            .unwrap()
            .totals()
            .pings
    };
    // Past the first round (at start), a client's 150 s call takes the only permit.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let at_start = pings(&stack);
    let url = format!("http://{}/v1/functions/batch/invoke", stack.gateway.addr());
    let call = tokio::spawn(reqwest::Client::new().post(url).body("{}").send());
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(
        pings(&stack),
        at_start,
        "no round while the client holds the permit"
    );
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
    tokio::time::sleep(2 * MIN).await;
    assert!(pings(&stack) > at_start, "rounds resume once it is free");
}

/// Calls `model` every 3 minutes for 5.5 hours, on a platform whose environments live exactly
/// 2.5 hours; returns which calls were cold and how many environments the platform created.
async fn calls_across_lifetimes(policy: &str) -> (Vec<bool>, u64) {
    let emulator = EMULATOR.replace("seed = 9", "seed = 9\nmax_lifetime_s = 9000");
    let (emulator, gateway) = start_on(
        &emulator,
        &format!("enabled = true\npolicy = \"{policy}\"\njitter_ms = 250"),
        "",
    )
    .await;
    let cold = cold_by_call(&gateway, 110, 3 * MIN).await;
    let truth = emulator.emulator().snapshot();
    let created = truth
        .function("model")
        .unwrap()
        .totals()
        .environments_created;
    (cold, created)
}

#[tokio::test(start_paused = true)]
async fn a_kept_environment_is_replaced_before_its_lifetime_ends() {
    // Without a warmer, the end of the environment's lifetime meets a call, twice.
    let (cold, _) = calls_across_lifetimes("none").await;
    let late: Vec<usize> = (1..cold.len()).filter(|&i| cold[i]).collect();
    assert_eq!(late.len(), 2, "cold calls: {late:?}");
    // The warmer starts a successor before the end: only the very first call is cold.
    let (cold, created) = calls_across_lifetimes("warmer").await;
    let late: Vec<usize> = (1..cold.len()).filter(|&i| cold[i]).collect();
    assert!(late.is_empty(), "cold calls: {late:?}");
    assert!(
        created >= 3,
        "the first environment and two successors, got {created}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_ends_reported_a_kept_environment_is_replaced_at_its_end_not_before() {
    // As above, with the emulator reporting each environment's end as warmgate's extension
    // would (`ends_reported`): the warmer replaces the environment when Lambda ends it, at
    // 150 minutes.
    let emulator = EMULATOR.replace("seed = 9", "seed = 9\nmax_lifetime_s = 9000");
    let (emulator, gateway) = start_on(
        &emulator,
        "enabled = true\npolicy = \"warmer\"\njitter_ms = 250\nends_reported = true",
        "",
    )
    .await;
    let _reporter = emulator.emulator().report_ends_to(
        &format!("http://{}", gateway.addr()),
        Duration::from_millis(100),
        |lambda_name| Some(lambda_name.to_string()),
    );
    let created = || {
        let truth = emulator.emulator().snapshot();
        truth
            .function("model")
            .unwrap()
            .totals()
            .environments_created
    };
    // The environment kept for a function not called yet serves the first call.
    tokio::time::sleep(MIN).await;
    // Calls to 145 minutes: no successor yet (a rotation would have started one at 115).
    let mut cold = cold_by_call(&gateway, 49, 3 * MIN).await;
    assert_eq!(created(), 1);
    cold.extend(cold_by_call(&gateway, 61, 3 * MIN).await);
    assert!(!cold.contains(&true), "cold calls: {cold:?}");
    // The first environment and its successors at 150 and 300 minutes.
    assert_eq!(created(), 3);
    let text = metrics(&gateway).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("warmgate_environment_ends_total{")
                && l.contains("function=\"model\"")
                && l.ends_with(" 2")),
        "two ends heard"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_that_fill_the_pool_get_one_environment_more_as_they_start() {
    // `warmer-peak` keeps the peak it saw: three calls of a minute at once. When three such
    // calls run again they fill the pool, and the warmer keeps one environment more for the
    // next call as they start (the gateway wakes it for each start), not at its next
    // recheck up to a minute later, by when the rest of a burst would have met a full pool.
    let (_emulator, gateway) = start_on(
        TIMER,
        "enabled = true\npolicy = \"warmer-peak\"\njitter_ms = 0",
        "timeout_ms = 120000",
    )
    .await;
    let url = format!("http://{}/v1/functions/model/invoke", gateway.addr());
    let http = reqwest::Client::new();
    let burst = || {
        (0..3)
            .map(|_| tokio::spawn(http.post(&url).body("{}").send()))
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    for call in burst() {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    tokio::time::sleep(2 * MIN).await;
    assert_eq!(headroom_pings(&gateway).await, 0);
    let calls = burst();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        headroom_pings(&gateway).await,
        1,
        "one more as the calls fill the pool"
    );
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-warmgate-cold-start"], "false");
    }
}

/// `TIMER`'s function under the name `function` (the counters are the process's: a test
/// reads its own function's), behind a gateway whose warmer is `warmer-peak`.
async fn peak_kept(function: &str) -> LocalStack {
    let emulator = TIMER.replace("name = \"model\"", &format!("name = \"{function}\""));
    let toml = format!(
        "[backend]\nkind = \"endpoint\"\nurl = \"http://x\"\n\n[access]\nopen = true\n\n[warmer]\nenabled = true\npolicy = \"warmer-peak\"\njitter_ms = 0\n\n[[function]]\nname = \"{function}\"\ntimeout_ms = 120000\n"
    );
    let stack = LocalStack::start(&emulator, &toml, Duration::from_secs(30)).await;
    stack.gateway.wait_ready(Duration::ZERO).await.unwrap();
    stack
}

/// Three calls of `url` at once, each its own task.
fn three_at_once(
    http: &reqwest::Client,
    url: &str,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>> {
    (0..3)
        .map(|_| tokio::spawn(http.post(url).body("{}").send()))
        .collect()
}

/// Teaches `function`'s `warmer-peak` a peak of three: three calls at once through the
/// gateway, then two minutes.
async fn learn_a_peak_of_three(http: &reqwest::Client, gateway: &RunningGateway, function: &str) {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let url = format!("http://{}/v1/functions/{function}/invoke", gateway.addr());
    for call in three_at_once(http, &url) {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    tokio::time::sleep(2 * MIN).await;
}

/// The emulator's Invoke API for `function`, as a client that calls Lambda directly uses it.
fn direct_url(emulator: &RunningEmulator, function: &str) -> String {
    format!(
        "http://{}/2015-03-31/functions/{function}/invocations",
        emulator.addr()
    )
}

#[tokio::test(start_paused = true)]
async fn calls_reported_from_the_environments_fill_the_pool_as_the_gateways_own_do() {
    // As above, but the second burst comes from clients that call Lambda directly: the
    // gateway sees none of it until the environments report each call's start.
    let stack = peak_kept("reported").await;
    let (emulator, gateway) = (stack.emulator, stack.gateway);
    let headroom_pings = |gateway| kept_by_pings_of(gateway, "reported", "headroom");
    let http = reqwest::Client::new();
    let report = format!(
        "http://{}/v1/functions/reported/environments/calls",
        gateway.addr()
    );
    learn_a_peak_of_three(&http, &gateway, "reported").await;
    let calls = three_at_once(&http, &direct_url(&emulator, "reported"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(headroom_pings(&gateway).await, 0, "unreported, unseen");
    let tell = |event: &'static str, id: usize| {
        let took = if event == "finished" {
            r#", "duration_ms": 60000"#
        } else {
            ""
        };
        let body = format!(r#"{{"event": "{event}", "request_id": "direct-{id}"{took}}}"#);
        http.post(&report).body(body).send()
    };
    for id in 0..3 {
        assert_eq!(tell("started", id).await.unwrap().status(), 202);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        headroom_pings(&gateway).await,
        1,
        "one more as the reported calls fill the pool"
    );
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    for id in 0..3 {
        assert_eq!(tell("finished", id).await.unwrap().status(), 202);
    }
    let text = metrics(&gateway).await;
    for event in ["started", "finished"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("warmgate_calls_reported_total{")
                    && l.contains("function=\"reported\"")
                    && l.contains(&format!("event=\"{event}\""))
                    && l.ends_with(" 3")),
            "three {event} reports counted"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_emulator_reports_direct_calls_as_the_extensions_proxy_would() {
    // The burst of the test above, reported by the emulator standing in for the extension:
    // the calls it serves directly, not those the gateway sends (they carry its mark), nor
    // its pings.
    let stack = peak_kept("proxied").await;
    let (emulator, gateway) = (stack.emulator, stack.gateway);
    let _reporter = emulator
        .emulator()
        .report_calls_to(&format!("http://{}", gateway.addr()), |name| {
            Some(name.to_string())
        });
    let http = reqwest::Client::new();
    learn_a_peak_of_three(&http, &gateway, "proxied").await;
    let reported = |event: &'static str| {
        let gateway = &gateway;
        async move {
            let text = metrics(gateway).await;
            text.lines()
                .filter(|l| {
                    l.starts_with("warmgate_calls_reported_total{")
                        && l.contains("function=\"proxied\"")
                        && l.contains(&format!("event=\"{event}\""))
                })
                .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
                .sum::<u64>()
        }
    };
    assert_eq!(reported("started").await, 0, "the gateway's own calls");
    let calls = three_at_once(&http, &direct_url(&emulator, "proxied"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reported("started").await, 3);
    assert_eq!(
        kept_by_pings_of(&gateway, "proxied", "headroom").await,
        1,
        "one more as the reported calls fill the pool"
    );
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(reported("finished").await, 3);
}

#[tokio::test(start_paused = true)]
async fn the_warmer_learns_from_reported_ends_as_from_its_own_calls() {
    // `warmer-peak` keeps the largest peak it saw. A function called only by clients that
    // call Lambda directly: the gateway hears of three overlapping calls only as their
    // environments report their ends, and keeps three environments; unreported, one (the
    // floor of a function never called).
    let kept = |report: bool| async move {
        let stack = peak_kept("observed").await;
        tokio::time::sleep(MIN).await;
        if report {
            let url = format!(
                "http://{}/v1/functions/observed/environments/calls",
                stack.gateway.addr()
            );
            let http = reqwest::Client::new();
            for id in 0..3 {
                let body = format!(
                    r#"{{"event": "finished", "request_id": "d-{id}", "duration_ms": 60000}}"#
                );
                let answer = http.post(&url).body(body).send().await.unwrap();
                assert_eq!(answer.status(), 202);
            }
        }
        // Past the emulator's idle reclaim: what is warm now, the warmer kept.
        tokio::time::sleep(20 * MIN).await;
        let truth = stack.emulator.emulator().snapshot();
        let version = truth
            .function("observed")
            .unwrap()
            .version("$LATEST")
            .unwrap();
        version.environments.total()
    };
    assert_eq!(kept(false).await, 1);
    assert_eq!(kept(true).await, 3);
}

/// Pings the warmer sent `model` because calls in flight filled its pool, as scraped.
async fn headroom_pings(gateway: &RunningGateway) -> u64 {
    kept_by_pings(gateway, "headroom").await
}

/// The gateway's metrics, as scraped.
async fn metrics(gateway: &RunningGateway) -> String {
    reqwest::get(format!("http://{}/metrics", gateway.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Pings the warmer sent `model` by the rule `kept_by`, as scraped.
async fn kept_by_pings(gateway: &RunningGateway, kept_by: &str) -> u64 {
    kept_by_pings_of(gateway, "model", kept_by).await
}

/// Pings the warmer sent `function` for `kept_by`, as scraped (the counters are the
/// process's: a test reads its own function's).
async fn kept_by_pings_of(gateway: &RunningGateway, function: &str, kept_by: &str) -> u64 {
    metrics(gateway)
        .await
        .lines()
        .filter(|l| {
            l.starts_with("warmgate_keep_alive_pings_total{")
                && l.contains(&format!("function=\"{function}\""))
                && l.contains(&format!("kept_by=\"{kept_by}\""))
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

/// Six calls of 20 s at once, at 4:00:10 each day for three days, through a gateway whose
/// `[warmer]` is `warmer`: the cold starts each day met, and the gateway. With `daily`, it
/// also checks that no round was sent for a rise seen once (the pings' counter is the
/// process's: only the test that may send them reads it).
async fn daily_burst(warmer: &str, daily: bool) -> (Vec<usize>, RunningGateway) {
    // The floor's lone environment serves one.
    let emulator = EMULATOR.replace(
        "duration_ms = { median = 60, spread = 1.2 }",
        "duration_ms = 20000",
    );
    let (emulator, gateway) = start_on(&emulator, warmer, "").await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/functions/model/invoke", gateway.addr());
    let started = tokio::time::Instant::now();
    let day = 24 * 60 * MIN;
    let mut cold_by_day = Vec::new();
    for d in 0..3 {
        tokio::time::sleep_until(started + d * day + 4 * 60 * MIN + Duration::from_secs(10)).await;
        let calls: Vec<_> = (0..6)
            .map(|_| tokio::spawn(http.post(&url).body("{}").send()))
            .collect();
        let mut cold = 0;
        for call in calls {
            let response = call.await.unwrap().unwrap();
            assert_eq!(response.status(), 200);
            cold += usize::from(response.headers()["x-warmgate-cold-start"] == "true");
        }
        cold_by_day.push(cold);
        if d == 1 && daily {
            assert_eq!(
                kept_by_pings(&gateway, "daily").await,
                0,
                "a rise seen once is not pre-warmed"
            );
        }
    }
    drop(emulator);
    (cold_by_day, gateway)
}

#[tokio::test(start_paused = true)]
async fn a_burst_at_the_same_minute_two_days_running_finds_its_environments_warm_the_third() {
    // The wall clock when the gateway starts: it hardly moves while tokio's time is paused.
    let started_min = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let (cold_by_day, gateway) =
        daily_burst("enabled = true\npolicy = \"warmer\"\njitter_ms = 0", true).await;
    assert!(
        cold_by_day[0] >= 4 && cold_by_day[1] >= 4,
        "{cold_by_day:?}"
    );
    assert_eq!(cold_by_day[2], 0, "{cold_by_day:?}");
    assert!(kept_by_pings(&gateway, "daily").await >= 5);

    // `GET /v1/pools` shows the rise, yesterday's and today's, by their time of day: 4 hours
    // after the gateway started, on the wall clock its own clock was set by at the start.
    let pools: serde_json::Value =
        reqwest::get(format!("http://{}/v1/pools", gateway.metrics_addr()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let model = pools["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "model")
        .unwrap();
    let rises = model["daily_rises"].as_array().unwrap();
    let days: Vec<u64> = rises.iter().map(|r| r["days"].as_u64().unwrap()).collect();
    assert_eq!(days, [2, 3], "{rises:?}");
    let near: Vec<String> = (0..3)
        .map(|d| {
            let m = (started_min + 4 * 60 + d - 1) % (24 * 60);
            format!("{:02}:{:02}", m / 60, m % 60)
        })
        .collect();
    for rise in rises {
        assert_eq!(rise["expected"], true, "{rise}");
        assert!(rise["peak"].as_u64().unwrap() >= 5, "{rise}");
        let at = rise["at_utc"].as_str().unwrap().to_string();
        assert!(near.contains(&at), "{rise} {near:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn without_daily_rises_the_third_day_meets_the_burst_cold_again() {
    let (cold_by_day, _gateway) = daily_burst(
        "enabled = true\npolicy = \"warmer\"\njitter_ms = 0\ndaily_rises = false",
        false,
    )
    .await;
    assert!(cold_by_day.iter().all(|&c| c >= 4), "{cold_by_day:?}");
}
