use super::*;
use crate::policy::Start;

const MIN: Duration = Duration::from_secs(60);
const CALL: Duration = Duration::from_millis(100);

fn info(name: &str, app: &str) -> FunctionInfo {
    FunctionInfo {
        name: name.into(),
        app: app.into(),
        memory_mb: 128,
        targets: vec!["live".into()],
        ping_budget: None,
    }
}

fn call(function: FunctionId, arrived: Time, duration: Duration) -> Observation {
    Observation {
        function,
        target: 0,
        arrived,
        duration,
        init: None,
        start: Some(Start::Warm),
        ping: false,
        throttled: false,
    }
}

/// Replays calls: each is observed at its completion, and the policy acts whenever it
/// asked to, before anything later; then until `until`. Returns the pings, with times.
fn replay(policy: &mut HybridHistogram, calls: &[Observation], until: Time) -> Vec<(Time, Action)> {
    let mut calls = calls.to_vec();
    calls.sort_by_key(|c| c.arrived + c.duration);
    let mut pings = Vec::new();
    let mut act_until = |policy: &mut HybridHistogram, t: Time| {
        while let Some(wake) = policy.next_wake().filter(|&w| w <= t) {
            pings.extend(policy.act(wake).into_iter().map(|a| (wake, a)));
        }
    };
    for c in &calls {
        act_until(policy, c.arrived + c.duration);
        policy.observe(c);
    }
    act_until(policy, until);
    pings
}

fn periodic(period: Duration, n: u32) -> Vec<Observation> {
    (0..n).map(|k| call(0, period * k, CALL)).collect()
}

#[test]
fn a_call_every_thirty_minutes_is_prewarmed_just_before_it() {
    let mut p = HybridHistogram::new();
    p.start(&[info("f", "a")], Duration::ZERO);
    let calls = periodic(30 * MIN, 12);
    let last = calls.last().unwrap().arrived + CALL;
    let pings = replay(&mut p, &calls, last + 6 * 60 * MIN);

    let w = p.windows("a").unwrap();
    assert_eq!(w.source, WindowSource::Histogram);
    // Idle times are 30 min less the call: bin 29, so P = 29 min × 0.9 = 26.1 min and the
    // window ends at 30 min × 1.1 = 33 min.
    assert!(w.prewarm >= 26 * MIN && w.prewarm <= 27 * MIN, "{w:?}");
    assert!(w.keep_alive <= 8 * MIN, "{w:?}");
    assert_eq!(w.prewarm + w.keep_alive, 33 * MIN);

    // Once learnt (idle times 1..=5 are in after the 6th call, at 150 min), every gap
    // between calls gets pings only in its last minutes, and the call after them is warm.
    for k in 5..11u32 {
        let end = 30 * MIN * k + CALL;
        let next = 30 * MIN * (k + 1);
        let first = end + w.prewarm - PING_LEAD;
        let in_gap: Vec<Time> = pings
            .iter()
            .map(|&(t, _)| t)
            .filter(|&t| t > end && t < next)
            .collect();
        assert_eq!(in_gap, vec![first, first + PING_INTERVAL], "gap {k}");
    }
    // After the last call: pings until the window's end is covered, none long after.
    let after: Vec<Time> = pings
        .iter()
        .map(|&(t, _)| t)
        .filter(|&t| t > last)
        .collect();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|&t| t < last + 33 * MIN));
    assert_eq!(p.next_wake(), None);
    assert!(pings.iter().all(|(_, a)| *a
        == Action::Ping {
            function: 0,
            target: 0,
            count: 1,
            kept_by: KeptBy::Schedule,
        }));
}

#[test]
fn too_few_samples_fall_back_to_pinging_through_four_hours() {
    let mut p = HybridHistogram::new();
    p.start(&[info("f", "a"), info("g", "a")], Duration::ZERO);
    let calls = vec![call(0, Duration::ZERO, CALL), call(1, 30 * MIN, CALL)];
    let end = 30 * MIN + CALL;
    let pings = replay(&mut p, &calls, end + 10 * 60 * MIN);
    let w = p.windows("a").unwrap();
    assert_eq!(w.source, WindowSource::Fallback);
    assert_eq!((w.prewarm, w.keep_alive), (Duration::ZERO, RANGE));
    assert_eq!(p.idle_time_count("a"), Some((1, 0)));

    // Both functions of the app, every 4 minutes, until 4 h after the last call's end is
    // covered by the 5-minute minimum warmth.
    let times: Vec<Time> = pings.iter().map(|&(t, _)| t).collect();
    assert!(times.chunks(2).all(|pair| pair[0] == pair[1]));
    let after_last: Vec<Time> = times
        .iter()
        .copied()
        .filter(|&t| t > end)
        .step_by(2)
        .collect();
    let expected: Vec<Time> = (1..=59).map(|k| end + PING_INTERVAL * k).collect();
    assert_eq!(after_last, expected);
    assert!(*after_last.last().unwrap() + MIN_WARM >= end + RANGE);
    assert_eq!(p.next_wake(), None);
    let functions: BTreeSet<FunctionId> = pings
        .iter()
        .map(|(_, a)| match a {
            Action::Ping { function, .. } => *function,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(functions, BTreeSet::from([0, 1]));
}

#[test]
fn widely_spread_idle_times_fall_back() {
    let mut p = HybridHistogram::new();
    p.start(&[info("f", "a")], Duration::ZERO);
    // Idle times of 1 to 100 minutes, in a scrambled order: 100 bins of one count each,
    // a coefficient of variation near 1.2.
    let mut t = Duration::ZERO;
    let mut calls = Vec::new();
    for k in 0..100u32 {
        calls.push(call(0, t, CALL));
        t += CALL + MIN * (1 + (k * 37) % 100);
    }
    calls.push(call(0, t, CALL));
    replay(&mut p, &calls, t);
    assert_eq!(p.idle_time_count("a"), Some((100, 0)));
    let cv = p.apps[0].histogram.coefficient_of_variation();
    assert!(cv < CV_THRESHOLD && cv > 1.0, "cv {cv}");
    assert_eq!(p.windows("a").unwrap().source, WindowSource::Fallback);
}

#[test]
fn mostly_out_of_bound_idle_times_use_the_forecast() {
    let mut p = HybridHistogram::new();
    p.start(&[info("f", "a")], Duration::ZERO);
    let calls = periodic(5 * 60 * MIN, 7);
    let last = calls.last().unwrap().arrived + CALL;
    let pings = replay(&mut p, &calls, last + 24 * 60 * MIN);
    let w = p.windows("a").unwrap();
    assert_eq!(w.source, WindowSource::Forecast);
    let forecast = 300.0 * 60.0 - 0.1;
    assert!(
        (w.prewarm.as_secs_f64() - forecast * 0.85).abs() < 1e-3,
        "{w:?}"
    );
    assert!(
        (w.keep_alive.as_secs_f64() - forecast * 0.30).abs() < 1e-3,
        "{w:?}"
    );
    let after: Vec<Time> = pings
        .iter()
        .map(|&(t, _)| t)
        .filter(|&t| t > last)
        .collect();
    assert_eq!(after[0], last + w.prewarm - PING_LEAD);
    assert!(*after.last().unwrap() <= last + w.prewarm + w.keep_alive);
    assert!(*after.last().unwrap() + MIN_WARM >= last + w.prewarm + w.keep_alive);
}

#[test]
fn concurrent_calls_make_no_idle_time_and_late_reports_are_placed() {
    let mut p = HybridHistogram::new();
    p.start(&[info("f", "a"), info("g", "a")], Duration::ZERO);
    // A long call 0..100 min on f; short calls on g at 20 and 50 min, reported first (they
    // complete first). Before the long one is reported, two gaps look idle.
    p.observe(&call(1, Duration::ZERO, MIN));
    p.observe(&call(1, 20 * MIN, MIN));
    p.observe(&call(1, 50 * MIN, MIN));
    assert_eq!(p.idle_time_count("a"), Some((2, 0)));
    p.observe(&call(0, Duration::from_secs(30), 100 * MIN));
    assert_eq!(
        p.idle_time_count("a"),
        Some((0, 0)),
        "the long call covers both gaps"
    );
    // Overlapping calls later: still no idle time, then one real gap.
    p.observe(&call(0, 101 * MIN, 2 * MIN));
    p.observe(&call(1, 102 * MIN, 2 * MIN));
    assert_eq!(p.idle_time_count("a"), Some((1, 0)));
    assert_eq!(
        p.apps[0].gaps(),
        vec![(Duration::from_secs(30) + 100 * MIN, 101 * MIN)]
    );
}

#[test]
fn pings_and_throttles_are_not_idle_time_evidence() {
    let mut p = HybridHistogram::new();
    p.start(&[info("f", "a")], Duration::ZERO);
    p.observe(&call(0, Duration::ZERO, CALL));
    let mut ping = call(0, 10 * MIN, CALL);
    ping.ping = true;
    p.observe(&ping);
    let mut refused = call(0, 20 * MIN, Duration::ZERO);
    refused.throttled = true;
    p.observe(&refused);
    assert_eq!(p.idle_time_count("a"), Some((0, 0)));
    // One real call: fallback from its end, first ping an interval later.
    assert_eq!(p.next_wake(), Some(CALL + PING_INTERVAL));
}

/// A small deterministic generator, so that the tests need no seed plumbing.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn observations_in_any_order_give_the_same_histogram() {
    // Twelve overlapping and separate calls of three functions (fewer than the tracked
    // intervals, so the order cannot matter), reported in twenty different orders.
    let mut seed = 7;
    let calls: Vec<Observation> = (0..12)
        .map(|k| {
            let at = MIN * (lcg(&mut seed) % 600) as u32;
            let lasting = Duration::from_secs(lcg(&mut seed) % 900);
            call(k % 3, at, lasting)
        })
        .collect();
    let functions = [info("f", "a"), info("g", "a"), info("h", "a")];
    let mut reference = HybridHistogram::new();
    reference.start(&functions, Duration::ZERO);
    let mut sorted = calls.clone();
    sorted.sort_by_key(|c| c.arrived);
    sorted.iter().for_each(|c| reference.observe(c));
    for _ in 0..20 {
        let mut shuffled = calls.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, lcg(&mut seed) as usize % (i + 1));
        }
        let mut p = HybridHistogram::new();
        p.start(&functions, Duration::ZERO);
        shuffled.iter().for_each(|c| p.observe(c));
        assert_eq!(p.apps[0].busy, reference.apps[0].busy);
        assert_eq!(p.apps[0].histogram.bins, reference.apps[0].histogram.bins);
        assert_eq!(p.windows("a"), reference.windows("a"));
        assert_eq!(p.next_wake(), reference.next_wake());
    }
}

#[test]
fn many_observations_in_a_scrambled_order_do_not_panic() {
    let mut seed = 11;
    let functions: Vec<FunctionInfo> = (0..6)
        .map(|i| info(&format!("f{i}"), &format!("a{}", i % 3)))
        .collect();
    let mut p = HybridHistogram::new();
    p.start(&functions, Duration::ZERO);
    let mut now = Duration::ZERO;
    for _ in 0..5_000 {
        // Arrivals up to an hour before now, lasting up to 20 minutes; some
        // zero-length, some with init.
        now += Duration::from_millis(lcg(&mut seed) % 120_000);
        let back = Duration::from_millis(lcg(&mut seed) % 3_600_000).min(now);
        let mut o = call(
            (lcg(&mut seed) % 7) as usize, // 6 is no function
            now - back,
            Duration::from_millis(lcg(&mut seed) % 1_200_000),
        );
        if lcg(&mut seed).is_multiple_of(5) {
            o.init = Some(Duration::from_millis(lcg(&mut seed) % 10_000));
        }
        p.observe(&o);
        if let Some(w) = p.next_wake().filter(|&w| w <= now) {
            p.act(w);
        }
        p.act(now);
    }
    for app in &p.apps {
        let h = &app.histogram;
        assert_eq!(h.in_range, h.bins.iter().sum::<u32>());
        let squares: u64 = h.bins.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
        assert_eq!(h.sum_squares, squares);
        assert!(app.busy.len() <= TRACKED_INTERVALS);
    }
}

#[test]
fn the_name_is_the_simulators() {
    assert_eq!(HybridHistogram::default().name(), "hybrid-histogram");
}
