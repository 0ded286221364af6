//! The replay engine with several equivalent targets per function: traffic to the first target,
//! spread over the targets, or routed by the gateway's router over its pool estimates; and the
//! estimator's error against the platform's ground truth. Deterministic mode, hand-computed.

use std::time::Duration;

use warmgate::policy::baselines::none::NoPolicy;
use warmgate::sim::engine::{replay, Candidate, Figures, Mode, SimSettings, Traffic};
use warmgate::sim::trace::{Arrival, DurationModel, Trace, TraceFormat, TraceFunction};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One 1 GB function called at `times`, each call lasting `duration`, over `span`.
fn one_function(
    times: impl Iterator<Item = Duration>,
    duration: Duration,
    span: Duration,
) -> Trace {
    Trace {
        name: "made-up".into(),
        format: TraceFormat::Azure2019,
        functions: vec![TraceFunction {
            lambda: Default::default(),
            id: "f".into(),
            app: "app".into(),
            trigger: None,
            memory_mb: 1024,
            durations: DurationModel::Fixed(duration),
            arrivals: times
                .map(|at| Arrival {
                    at,
                    duration: Some(duration),
                    tokens: None,
                })
                .collect(),
        }],
        duration: span,
    }
}

/// One function whose calls come every `every`, at 30 s into their minute, over `span`, each
/// lasting 1 ms.
fn periodic(every: Duration, span: Duration) -> Trace {
    let times = (0..)
        .map(|k| every * k + 30 * SEC)
        .take_while(|&t| t < span);
    one_function(times, Duration::from_millis(1), span)
}

/// Deterministic mode (fixed 10-minute reclaim, zero init), one hour of warm-up, K targets.
fn settings(targets: usize) -> SimSettings {
    SimSettings {
        mode: Mode::Deterministic,
        warmup: HOUR,
        targets,
        ..SimSettings::default()
    }
}

fn run(trace: &Trace, settings: &SimSettings, traffic: Traffic) -> Figures {
    let candidate = Candidate::new(Box::new(NoPolicy)).with_traffic(traffic);
    replay(trace, settings, candidate, &|_| {})
}

#[test]
fn spread_traffic_meets_cold_starts_that_routing_avoids() {
    // A call every 6 minutes for 4 hours: k = 0..=39, at 6k min + 30 s; after the first hour,
    // k = 10..=39, 30 calls. The reclaim is 10 minutes.
    let trace = periodic(6 * MIN, 4 * HOUR);
    let two = settings(2);

    // One alias: its environment idles 6 minutes between calls, always warm.
    let first = run(&trace, &two, Traffic::First);
    assert_eq!((first.invocations, first.cold_starts), (30, 0));
    assert_eq!(first.traffic, Traffic::First);
    assert_eq!(first.targets, 2);

    // Spread (in turn, in deterministic mode): each alias sees a call every 12 minutes, after
    // its environment was reclaimed at 10: every call is cold.
    let spread = run(&trace, &two, Traffic::Spread);
    assert_eq!((spread.invocations, spread.cold_starts), (30, 30));
    assert_eq!(spread.policy, "none+spread");

    // Routed: the router keeps every call on the target that holds the environment. (The
    // prior counts an environment warm for 5 minutes only, so the router expects a cold start
    // at first, and sends it where the observed init is cheapest: the target already used.
    // The warm start where none was expected teaches the pool the longer life.)
    let routed = run(&trace, &two, Traffic::Routed);
    assert_eq!((routed.invocations, routed.cold_starts), (30, 0));
    assert_eq!(routed.policy, "none+route");
}

#[test]
fn one_target_routed_is_one_target_unrouted() {
    let trace = periodic(11 * MIN, 6 * HOUR);
    let one = settings(1);
    let first = run(&trace, &one, Traffic::First);
    let routed = run(&trace, &one, Traffic::Routed);
    // Calls at 30 s + 11k min, k = 6..=32 after the first hour: every one cold.
    assert_eq!((first.invocations, first.cold_starts), (27, 27));
    assert_eq!(
        (routed.invocations, routed.cold_starts),
        (first.invocations, first.cold_starts)
    );
    // Two targets with traffic to the first are one target: the other is never called.
    let two = run(&trace, &settings(2), Traffic::First);
    assert_eq!((two.invocations, two.cold_starts), (27, 27));
    assert_eq!(two.idle_gb_s, first.idle_gb_s);
}

#[test]
fn the_estimate_is_exact_where_the_platform_keeps_what_the_prior_counts() {
    // A call a minute, at 30 s, for 2 hours: the environment is idle 1 minute at most, well
    // within both the platform's 10-minute reclaim and the pool's 5-minute prior.
    let trace = periodic(MIN, 2 * HOUR);
    let routed = run(&trace, &settings(2), Traffic::Routed);
    assert_eq!(routed.cold_starts, 0);
    let e = routed.estimator;
    // Ticks at minutes 60..=119. Every call goes to target 0, which holds one idle
    // environment at each tick (estimate 1, truth 1); target 1 has neither, and is not
    // sampled.
    assert_eq!(e.samples, 60);
    assert_eq!(e.mean_abs_error, 0.0);
    assert_eq!(e.exact_share, 1.0);
    assert_eq!(e.within_1_share, 1.0);
    assert_eq!(e.p99_abs_error, 0);
    assert_eq!(e.mean_error, 0.0);
    assert_eq!(e.mean_truth, 1.0);

    // Measured without routing too, when asked: spread in turn, each target has a call every
    // 2 minutes, one idle environment at each tick, both sampled.
    let measured = SimSettings {
        measure_estimator: true,
        ..settings(2)
    };
    let spread = run(&trace, &measured, Traffic::Spread);
    assert_eq!(spread.cold_starts, 0);
    assert_eq!(spread.estimator.samples, 120);
    assert_eq!(spread.estimator.exact_share, 1.0);
    // Not asked, not routed: not measured.
    let unmeasured = run(&trace, &settings(2), Traffic::Spread);
    assert_eq!(unmeasured.estimator.samples, 0);
}

#[test]
fn the_estimate_counts_the_environments_a_burst_leaves() {
    // Three concurrent 10 s calls at 30 s past each of 120 minutes: three environments, busy
    // from 30 s to 40 s, idle at every whole minute.
    let span = 2 * HOUR;
    let duration = 10 * SEC;
    let arrivals = (0..120u32)
        .flat_map(|m| [m * MIN + 30 * SEC; 3])
        .map(|at| Arrival {
            at,
            duration: Some(duration),
            tokens: None,
        })
        .collect();
    let trace = Trace {
        name: "burst".into(),
        format: TraceFormat::Azure2019,
        functions: vec![TraceFunction {
            lambda: Default::default(),
            id: "f".into(),
            app: "app".into(),
            trigger: None,
            memory_mb: 1024,
            durations: DurationModel::Fixed(duration),
            arrivals,
        }],
        duration: span,
    };
    let routed = run(&trace, &settings(2), Traffic::Routed);
    assert_eq!((routed.invocations, routed.cold_starts), (180, 0));
    let e = routed.estimator;
    assert_eq!(e.samples, 60);
    assert_eq!((e.mean_abs_error, e.mean_truth), (0.0, 3.0));
}

#[test]
fn a_throttled_routed_request_counts_once() {
    // An account quota of 2, three concurrent 1-minute calls at 30 s past each minute for two
    // hours: one of the three is throttled on every target, and counts once.
    let span = 2 * HOUR;
    let duration = MIN - SEC;
    let arrivals = (0..120u32)
        .flat_map(|m| [m * MIN + 30 * SEC; 3])
        .map(|at| Arrival {
            at,
            duration: Some(duration),
            tokens: None,
        })
        .collect();
    let trace = Trace {
        name: "throttled".into(),
        format: TraceFormat::Azure2019,
        functions: vec![TraceFunction {
            lambda: Default::default(),
            id: "f".into(),
            app: "app".into(),
            trigger: None,
            memory_mb: 1024,
            durations: DurationModel::Fixed(duration),
            arrivals,
        }],
        duration: span,
    };
    let quota = SimSettings {
        account_concurrency: 2,
        ..settings(2)
    };
    let first = run(&trace, &quota, Traffic::First);
    let routed = run(&trace, &quota, Traffic::Routed);
    assert_eq!((first.invocations, first.throttles), (180, 60));
    assert_eq!((routed.invocations, routed.throttles), (180, 60));
    assert_eq!(routed.cold_starts, first.cold_starts);
}

/// Two calls at 30 s into every minute for two hours, 100 ms each; at 7, 22, 37 and 52
/// minutes past each hour, six calls instead, 10 ms apart: a burst against a warm pool of two.
fn bursts_against_a_pool_of_two() -> Trace {
    let ms = Duration::from_millis(1);
    let times = (0..120u32).flat_map(move |minute| {
        let calls = if [7, 22, 37, 52].contains(&(minute % 60)) {
            6
        } else {
            2
        };
        (0..calls).map(move |i| MIN * minute + 30 * SEC + 10 * ms * i)
    });
    one_function(times, 100 * ms, 2 * HOUR)
}

#[test]
fn a_burst_against_a_busy_pool_waits_for_it_rather_than_going_cold() {
    let trace = bursts_against_a_pool_of_two();
    // A 2 s init, so that a 100 ms request is worth waiting for; reclaim at 10 minutes.
    let settings = SimSettings {
        init_ms: warmgate::platform::dist::Dist::Fixed(2000.0),
        idle_reclaim_s: Some(warmgate::platform::dist::Dist::Fixed(600.0)),
        ..SimSettings::default()
    };
    // Sent at once: four calls of each of the four bursts after the warm-up find both warm
    // environments busy and start cold (the environments they start are reclaimed before the
    // next burst, 15 minutes on).
    let routed = run(&trace, &settings, Traffic::Routed);
    assert_eq!(routed.invocations, 60 * 2 + 4 * 4);
    assert_eq!((routed.cold_starts, routed.waits), (16, 0));
    // Held: each waits its turn for one of the two environments (100 ms a round), and one
    // ping for every two of a burst's four waiters starts an environment for what may follow.
    let waiting = run(&trace, &settings, Traffic::Waiting);
    assert_eq!(waiting.policy, "none+wait");
    assert_eq!(waiting.invocations, routed.invocations);
    assert_eq!(
        (waiting.cold_starts, waiting.waits, waiting.waits_then_cold),
        (0, 16, 0)
    );
    assert_eq!(waiting.pings, 4 * 2);
    // One at a time, as the gateway did before (and does where a function asks for it).
    let one_at_a_time = SimSettings {
        waiters_per_burst_ping: 32,
        ..settings.clone()
    };
    let single = run(&trace, &one_at_a_time, Traffic::Waiting);
    assert_eq!((single.cold_starts, single.pings), (0, 4));
    // Callers waited rounds of 100 ms rather than inits of 2 s.
    assert!(
        waiting.start_delay_s < routed.start_delay_s / 4.0,
        "waiting {} s, cold {} s",
        waiting.start_delay_s,
        routed.start_delay_s
    );
    assert!(waiting.start_delay_p999_ms < 500);
    assert!(routed.start_delay_p999_ms >= 2000);
}

#[test]
fn the_estimate_gives_a_freed_provisioned_environment_to_the_next_call() {
    // One provisioned environment throughout. Each minute: a 10 s call at 30 s takes it, a
    // 20 s call at 31 s finds it busy and runs on demand, and a 1 s call at 45 s, while that
    // one still runs, takes the provisioned environment again (Lambda gives one whenever one
    // is idle). At each whole minute one on-demand environment is idle.
    let span = 2 * HOUR;
    let arrivals = (0..120u32)
        .flat_map(|m| {
            [(30, 10), (31, 20), (45, 1)].map(|(at_s, lasts_s)| Arrival {
                at: m * MIN + at_s * SEC,
                duration: Some(lasts_s * SEC),
                tokens: None,
            })
        })
        .collect();
    let mut trace = one_function(std::iter::empty(), SEC, span);
    trace.functions[0].arrivals = arrivals;
    let candidate = Candidate::new(Box::new(
        warmgate::policy::baselines::fixed_peak::FixedPeak::new(vec![1]),
    ))
    .with_traffic(Traffic::Routed);
    let routed = replay(&trace, &settings(1), candidate, &|_| {});
    assert_eq!((routed.invocations, routed.cold_starts), (180, 0));
    // Counted by the requests in flight alone, the third call of each minute was taken for
    // an on-demand one, and the estimate kept an environment more than Lambda each minute.
    let e = routed.estimator;
    assert_eq!(e.samples, 60);
    assert_eq!((e.mean_abs_error, e.mean_truth), (0.0, 1.0));
}
