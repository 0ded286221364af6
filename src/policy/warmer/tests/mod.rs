use super::*;
use crate::policy::budget::PingBudget;
use crate::policy::fixtures::call;

const S: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

mod budget;
mod calls;
mod lifetime;

fn info() -> FunctionInfo {
    crate::policy::fixtures::info(128)
}

/// Acts whenever the warmer asks, up to `until`; returns the pings with their times.
fn run_until(w: &mut Warmer, until: Time) -> Vec<(Time, u32)> {
    run_until_kept(w, until)
        .into_iter()
        .map(|(t, count, _)| (t, count))
        .collect()
}

/// [`run_until`], with the rule that asked for each round.
fn run_until_kept(w: &mut Warmer, until: Time) -> Vec<(Time, u32, KeptBy)> {
    let mut pings = Vec::new();
    while let Some(t) = w.next_wake().filter(|&t| t <= until) {
        for a in w.act(t) {
            match a {
                Action::Ping { count, kept_by, .. } => pings.push((t, count, kept_by)),
                other => panic!("{other:?}"),
            }
        }
    }
    pings
}

#[test]
fn an_unseen_function_gets_one_environment_from_the_start() {
    let mut w = Warmer::default();
    let first = w.start(&[info()], Duration::ZERO);
    assert_eq!(
        first,
        vec![Action::Ping {
            function: 0,
            target: 0,
            count: 1,
            kept_by: KeptBy::Unseen,
        }]
    );
    let pings = run_until(&mut w, 20 * MIN);
    assert!(pings.iter().all(|&(_, c)| c == 1));
    // Refreshed before 5 minutes of idle, and not much more often.
    assert!(pings.len() >= 4 && pings.len() <= 5, "{pings:?}");
}

/// A warmer with `config` that has seen six concurrent cold calls at 10 s; and that time.
fn after_six_cold_calls(config: WarmerConfig) -> (Warmer, Time) {
    let mut w = Warmer::new(config);
    w.start(&[info()], Duration::ZERO);
    let t0 = 10 * S;
    for _ in 0..6 {
        w.observe(&call(t0, S, Some(Start::Cold)));
    }
    (w, t0)
}

#[test]
fn each_round_names_the_rule_that_asked_for_it() {
    // Six concurrent calls, then quiet: by the first refresh the target has fallen to one
    // and the hold keeps the six a few refreshes; then one is kept, by the fallback (too few
    // idle times to forecast) for its hour after the call, and by the floor past it.
    let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
    let mut rules: Vec<(u32, KeptBy)> = run_until_kept(&mut w, t0 + 3 * 60 * MIN)
        .into_iter()
        .map(|(_, count, kept_by)| (count, kept_by))
        .collect();
    rules.dedup();
    assert_eq!(
        rules,
        [(6, KeptBy::Held), (1, KeptBy::Fallback), (1, KeptBy::Floor)],
    );
}

#[test]
fn k_concurrent_calls_are_kept_warm_with_one_ping_of_k() {
    let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
    assert_eq!(w.target(0, t0 + S), 6);
    let pings = run_until(&mut w, t0 + 5 * MIN);
    let last = pings.last().copied().expect("a refresh");
    assert_eq!(last.1, 6, "{pings:?}");
    assert!(last.0 > t0 + 4 * MIN && last.0 < t0 + 5 * MIN, "{pings:?}");
}

#[test]
fn where_calls_are_seen_starting_a_pool_whose_rounds_spared_none_is_capped() {
    // Bursts of six every 4 minutes for half an hour (each finds the last one's environments
    // warm from traffic alone), then a lone call every 2 minutes: the pool is still sized
    // for six (the windows of the last 8 hours remember the bursts), and each round pays
    // pings beyond the environment the calls keep, sparing none of them.
    let rounds = |counted: bool| {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        let mut pings = Vec::new();
        let mut calls = |w: &mut Warmer, at: Time, n: u32, start: Start| {
            pings.extend(run_until(w, at));
            if counted {
                w.in_flight(0, n, at);
            }
            for _ in 0..n {
                w.observe(&call(at, S, Some(start)));
            }
            if counted {
                w.in_flight(0, 0, at + S);
            }
        };
        calls(&mut w, 10 * S, 6, Start::Cold);
        for i in 1..8 {
            calls(&mut w, 10 * S + i * 4 * MIN, 6, Start::Warm);
        }
        for i in 1..=60 {
            calls(&mut w, 30 * MIN + i * 2 * MIN, 1, Start::Warm);
        }
        pings.retain(|&(t, _)| t > 90 * MIN);
        pings
            .into_iter()
            .map(|(_, count)| count)
            .collect::<Vec<_>>()
    };
    // Where it sees the calls start, the planner can tell that no call found an environment
    // only the pings kept: the pool is let go to the one the calls keep, which needs no
    // round but its rotation (two pings, one starting its successor).
    let seen = rounds(true);
    assert!(seen.len() <= 1 && seen.iter().all(|&c| c <= 2), "{seen:?}");
    // From calls' ends alone it cannot, and the pool of six is kept.
    let unseen = rounds(false);
    assert!(
        unseen.len() >= 10 && unseen.iter().all(|&c| c == 6),
        "{unseen:?}"
    );
}

#[test]
fn the_frugal_warmer_keeps_at_most_its_cap() {
    let config = WarmerConfig::from_name("warmer-max2").unwrap();
    assert_eq!(config.max_environments, Some(2));
    let (mut w, t0) = after_six_cold_calls(config);
    assert_eq!(w.name(), "warmer-max2");
    assert_eq!(w.target(0, t0 + S), 2);
    let pings = run_until(&mut w, t0 + 5 * MIN);
    assert!(pings.iter().all(|&(_, count)| count <= 2), "{pings:?}");
    // Names that are not ours are refused.
    for bad in ["warmer-max0", "warmer-max", "warmer-x2", "warmers"] {
        assert_eq!(WarmerConfig::from_name(bad), None, "{bad}");
    }
    assert_eq!(
        WarmerConfig::from_name("warmer"),
        Some(WarmerConfig::default())
    );
}

#[test]
fn a_short_quiet_gap_is_bridged_with_refreshes_not_a_pre_warm() {
    // Without rotation: a round of two 115 minutes in is not what this is about.
    let unrotated = WarmerConfig {
        rotate_after: None,
        ..WarmerConfig::default()
    };
    let mut w = Warmer::new(unrotated.clone());
    w.start(&[info()], Duration::ZERO);
    let period = 15 * MIN;
    for k in 0..10u32 {
        let t = period * k;
        w.observe(&call(t, S, Some(Start::Warm)));
        let pings = run_until(&mut w, t + period - S);
        if k < 4 {
            continue; // learning the gaps
        }
        // The environment is never left idle for 5 minutes, the shortest reclaim: every
        // ping refreshes a warm environment; none pays for a new one.
        let mut last = t + S;
        for &(at, count) in pings.iter().chain([(t + period, 1)].iter()) {
            assert!(at - last < 5 * MIN, "gap {k}: {pings:?}");
            assert_eq!(count, 1);
            last = at;
        }
    }
    // Without the bridge (nor the floor) it lets go and pre-warms a new environment
    // before each call.
    let mut w = Warmer::new(WarmerConfig {
        bridge: Duration::ZERO,
        floor_memory: None,
        ..unrotated
    });
    w.start(&[info()], Duration::ZERO);
    let mut longest = Duration::ZERO;
    for k in 0..10u32 {
        let t = period * k;
        w.observe(&call(t, S, Some(Start::Warm)));
        let pings = run_until(&mut w, t + period - S);
        if k >= 4 {
            let first = pings.first().map_or(t + period, |p| p.0);
            longest = longest.max(first - t);
        }
    }
    assert!(longest > 5 * MIN, "{longest:?}");
}

/// The longest time between two refreshes of the function's environment (calls count as
/// refreshes) over `(from, until]`, and whether every ping was a lone one.
fn longest_unrefreshed(
    pings: &[(Time, u32)],
    calls: &[Time],
    from: Time,
    until: Time,
) -> (Duration, bool) {
    let mut times: Vec<Time> = pings
        .iter()
        .map(|p| p.0)
        .chain(calls.iter().copied())
        .collect();
    times.retain(|&t| t > from && t <= until);
    times.push(from);
    times.push(until);
    times.sort();
    let longest = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    (longest, pings.iter().all(|p| p.1 == 1))
}

#[test]
fn the_floor_keeps_a_rare_function_warm_between_its_calls() {
    // Called three times a day, 8 hours apart: gaps beyond the idle-time histogram's
    // range, so the forecast never says a call is likely.
    let calls: Vec<Time> = (0..3u32).map(|k| 8 * 60 * MIN * k + 10 * S).collect();
    let replay = |config: WarmerConfig| {
        let mut w = Warmer::new(config);
        w.start(&[info()], Duration::ZERO);
        let mut pings = Vec::new();
        for &t in &calls {
            pings.extend(run_until(&mut w, t - S));
            w.observe(&call(t, S, Some(Start::Warm)));
        }
        pings.extend(run_until(&mut w, calls[2] + 60 * MIN));
        pings
    };
    let pings = replay(WarmerConfig::default());
    // Never idle for the shortest reclaim (5 minutes), with lone pings only.
    let (longest, lone) = longest_unrefreshed(&pings, &calls, calls[0], calls[2]);
    assert!(longest < 5 * MIN, "{longest:?}");
    assert!(lone, "{pings:?}");
    // About one ping per 5 minutes, no more.
    let between = pings
        .iter()
        .filter(|p| p.0 > calls[0] && p.0 < calls[2])
        .count();
    assert!(between <= 16 * 60 / 4, "{between}");
    // Without the floor the function is let go an hour after each call.
    let (longest, _) = longest_unrefreshed(
        &replay(WarmerConfig {
            floor_memory: None,
            ..WarmerConfig::default()
        }),
        &calls,
        calls[0],
        calls[2],
    );
    assert!(longest > 60 * MIN, "{longest:?}");
}

#[test]
fn a_function_that_stops_being_called_is_let_go_after_the_floors_memory() {
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    let mut t = Duration::ZERO;
    for _ in 0..8 {
        w.observe(&call(t, S, Some(Start::Warm)));
        run_until(&mut w, t + 12 * MIN);
        t += 12 * MIN;
    }
    let memory = WarmerConfig::default().floor_memory.expect("a floor");
    assert_eq!(w.target(0, t + 10 * 60 * MIN), 1);
    let quiet = t + memory + 10 * MIN;
    run_until(&mut w, quiet);
    assert!(run_until(&mut w, quiet + 10 * 60 * MIN).is_empty());
    assert_eq!(w.next_wake(), None);
    assert_eq!(w.target(0, quiet), 0);
}

#[test]
fn a_job_that_comes_later_each_day_is_kept_warm_from_its_second_gap() {
    // Called once a day, 6 hours later each day: a 30-hour idle time, past the floor's day.
    let gap = 30 * 60 * MIN;
    let calls: Vec<Time> = (0..3u32).map(|k| gap * k + 10 * S).collect();
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    let mut pings = Vec::new();
    for &t in &calls {
        pings.extend(run_until(&mut w, t - S));
        w.observe(&call(t, S, Some(Start::Warm)));
    }
    let day = WarmerConfig::default().floor_memory.expect("a floor");
    // The first gap outlasts the floor's day: nothing kept the environment to the second call.
    let (first, _) = longest_unrefreshed(&pings, &calls, calls[0], calls[1]);
    assert!(first > gap - day, "{first:?}");
    // Having shown a 30-hour gap, it is kept through the next one, by lone pings.
    let (second, lone) = longest_unrefreshed(&pings, &calls, calls[1], calls[2]);
    assert!(second < 5 * MIN, "{second:?}");
    assert!(lone, "{pings:?}");
    // And let go once that gap, with its margin, has passed with no call.
    assert_eq!(w.target(0, calls[2] + gap + 60 * MIN), 1);
    assert_eq!(
        w.target(0, calls[2] + gap.mul_f64(FLOOR_GAP_MARGIN) + MIN),
        0
    );
}

#[test]
fn a_function_silent_for_two_weeks_is_let_go_whatever_gaps_it_has_shown() {
    // A gap of 20 days would keep the floor 30 days past each call.
    let day = 24 * 60 * MIN;
    let calls = [10 * S, 20 * day + 10 * S];
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    for &t in &calls {
        w.observe(&call(t, S, Some(Start::Warm)));
    }
    assert_eq!(w.target(0, calls[1] + 13 * day), 1);
    assert_eq!(w.target(0, calls[1] + 14 * day + MIN), 0);
}

#[test]
fn yesterdays_peak_of_the_hour_raises_the_pool_only_where_calls_are_heard_as_they_end() {
    let day = 24 * 60 * MIN;
    let target_after_nine = |seen_starting: bool| {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        // Forty at once at 9:00 on the first day.
        for _ in 0..40 {
            w.observe(&call(9 * 60 * MIN, S, Some(Start::Cold)));
        }
        // One call at 9:00 the next day, seen starting by a gateway or heard of at its end
        // (the hour's profile applies once a call of the day has come in that hour).
        let t = day + 9 * 60 * MIN;
        if seen_starting {
            w.in_flight(0, 1, t);
        }
        w.observe(&call(t, S, Some(Start::Warm)));
        if seen_starting {
            w.in_flight(0, 0, t + S);
        }
        w.target(0, t + 2 * MIN)
    };
    let heard_at_end = target_after_nine(false);
    assert!(heard_at_end >= 40, "{heard_at_end}");
    let seen_starting = target_after_nine(true);
    assert!(seen_starting <= 2, "{seen_starting}");
}

#[test]
fn a_dearer_init_keeps_a_rare_peak_warm() {
    // Two calls every 5 minutes for 4 hours, six at once in 3 of the 48 windows: the
    // sixth environment is needed in 6% of windows. With a cold start worth its init,
    // worth a ping per window where a cold start loads a model (6 s), not where it
    // costs a 1-second init.
    let target_after = |init: Duration| {
        let mut w = Warmer::new(WarmerConfig {
            cold_start_worth: Some(1.0),
            ..WarmerConfig::default()
        });
        w.start(&[info()], Duration::ZERO);
        let mut first = call(Duration::ZERO, S, Some(Start::Cold));
        first.init = Some(init);
        w.observe(&first);
        let mut t = Duration::ZERO;
        for k in 1..=48u32 {
            t = 5 * MIN * k;
            let at_once = if k % 10 == 0 && k < 40 { 6 } else { 2 };
            for _ in 0..at_once {
                w.observe(&call(t, S, Some(Start::Warm)));
            }
            run_until(&mut w, t + 5 * MIN - S);
        }
        w.target(0, t + 2 * S)
    };
    let small = target_after(S);
    let model = target_after(6 * S);
    assert!(small <= 3, "{small}");
    assert_eq!(model, 6);
}

#[test]
fn the_name_is_the_simulators() {
    assert_eq!(Warmer::default().name(), "warmer");
}

#[test]
fn a_fallen_target_is_held_a_few_refreshes() {
    // Six calls seen once: once their window has passed the target is one environment.
    let rounds = |config: WarmerConfig| {
        let (mut w, t0) = after_six_cold_calls(config);
        (run_until(&mut w, t0 + 60 * MIN), t0)
    };
    let (followed, _) = rounds(WarmerConfig {
        depth_hold_rounds: None,
        ..WarmerConfig::default()
    });
    assert!(followed.iter().all(|&(_, c)| c == 1), "{followed:?}");
    // Held: a 1-second init at 128 MB costs about eight refreshes, no fewer than the most
    // held (6 by default).
    let most = WarmerConfig::default().depth_hold_rounds.unwrap() as usize;
    assert!(most < 8);
    let (held, t0) = rounds(WarmerConfig::default());
    let six: Vec<Time> = held
        .iter()
        .filter(|&&(_, c)| c == 6)
        .map(|&(t, _)| t)
        .collect();
    assert_eq!(six.len(), most, "{held:?}");
    assert!(six[most - 1] < t0 + 5 * MIN * most as u32, "{held:?}");
    assert!(held.iter().skip(most).all(|&(_, c)| c == 1), "{held:?}");
    // Fewer refreshes when an init costs less than the most held: a 100 ms init is about one.
    let mut cheap = Warmer::default();
    cheap.start(&[info()], Duration::ZERO);
    for _ in 0..6 {
        cheap.observe(&Observation {
            init: Some(Duration::from_millis(100)),
            ..call(t0, S, Some(Start::Cold))
        });
    }
    let pings = run_until(&mut cheap, t0 + 60 * MIN);
    let six = pings.iter().filter(|&&(_, c)| c == 6).count();
    assert!((1..most).contains(&six), "{pings:?}");
}

#[test]
fn a_burst_from_nothing_each_day_is_pre_warmed_at_its_minute_from_the_third_day() {
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    let day = 24 * 60 * MIN;
    let begins = 4 * 60 * MIN;
    let burst = |w: &mut Warmer, on: u32, start| {
        for _ in 0..40 {
            w.observe(&call(on * day + begins + 10 * S, 4 * MIN, Some(start)));
        }
    };
    let daily = |pings: Vec<(Time, u32, KeptBy)>| -> Vec<(Time, u32)> {
        pings
            .into_iter()
            .filter(|&(_, _, kept_by)| kept_by == KeptBy::Daily)
            .map(|(t, count, _)| (t, count))
            .collect()
    };
    // Met cold two days running; nothing is kept for it the second day.
    burst(&mut w, 0, Start::Cold);
    // Handed out once, to be kept beyond the process.
    assert_eq!(w.rises_to_keep(), [(0, 4 * 60, 40)]);
    assert_eq!(w.rises_to_keep(), []);
    assert_eq!(daily(run_until_kept(&mut w, day + begins)), []);
    burst(&mut w, 1, Start::Cold);
    // The third day, one round of 40 a lead and a minute before its minute, and none after
    // it: the hold keeps nothing of it.
    let third = run_until_kept(&mut w, 2 * day + begins + 30 * MIN);
    assert_eq!(daily(third.clone()), [(2 * day + begins - 2 * MIN, 40)]);
    assert!(
        third
            .iter()
            .filter(|&&(t, _, _)| t > 2 * day + begins + 2 * MIN)
            .all(|&(_, count, _)| count == 1),
        "{third:?}"
    );
    // It comes back, warm: expected the day after.
    burst(&mut w, 2, Start::Warm);
    let fourth = run_until_kept(&mut w, 3 * day + begins + 30 * MIN);
    assert_eq!(daily(fourth), [(3 * day + begins - 2 * MIN, 40)]);
    // That day it does not come: nothing is kept for it the day after.
    assert_eq!(daily(run_until_kept(&mut w, 5 * day)), []);
}

#[test]
fn rises_kept_elsewhere_are_pre_warmed_and_neither_is_without_daily_rises() {
    let day = 24 * 60 * MIN;
    let begins = 4 * 60 * MIN;
    // Kept by an earlier life at minute 4:00, one and two days before this clock's origin.
    let minute = (begins.as_secs() / 60) as i64;
    let restarted = |config: WarmerConfig| {
        let mut w = Warmer::new(config);
        w.start(&[info()], Duration::ZERO);
        w.kept_rise(0, minute - 2 * 1440, 30);
        w.kept_rise(0, minute - 1440, 30);
        run_until_kept(&mut w, begins + 30 * MIN)
            .into_iter()
            .filter(|&(_, _, kept_by)| kept_by == KeptBy::Daily)
            .map(|(t, count, _)| (t, count))
            .collect::<Vec<_>>()
    };
    assert_eq!(restarted(WarmerConfig::default()), [(begins - 2 * MIN, 30)]);
    let off = WarmerConfig {
        daily_rises: false,
        ..WarmerConfig::default()
    };
    assert_eq!(restarted(off.clone()), []);
    // Nor does it record a burst it meets cold two days running.
    let mut w = Warmer::new(off);
    w.start(&[info()], Duration::ZERO);
    for on in 0..2 {
        for _ in 0..40 {
            w.observe(&call(
                on * day + begins + 10 * S,
                4 * MIN,
                Some(Start::Cold),
            ));
        }
    }
    assert!(w.rises_to_keep().is_empty());
    assert!(run_until_kept(&mut w, 2 * day + begins + 30 * MIN)
        .iter()
        .all(|&(_, _, kept_by)| kept_by != KeptBy::Daily));
}
