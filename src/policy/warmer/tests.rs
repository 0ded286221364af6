use super::*;
use crate::policy::budget::PingBudget;
use crate::policy::fixtures::call;

const S: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

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
fn pings_respect_the_hourly_cap() {
    let mut w = Warmer::new(WarmerConfig {
        max_pings_per_hour: Some(5),
        ..WarmerConfig::default()
    });
    w.start(&[info()], Duration::ZERO);
    for _ in 0..4 {
        w.observe(&call(S, S, Some(Start::Cold)));
    }
    let pings = run_until(&mut w, 3 * 60 * MIN);
    assert!(most_in_an_hour(&pings) <= 5, "{pings:?}");
}

/// The most pings sent within any hour.
fn most_in_an_hour(pings: &[(Time, u32)]) -> u32 {
    pings
        .iter()
        .map(|&(t, _)| {
            pings
                .iter()
                .filter(|(u, _)| *u <= t && *u + HOUR > t)
                .map(|&(_, c)| c)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn pools_are_sized_within_the_drivers_ping_budget() {
    // Six at once want six environments; 48 pings an hour refresh at most 3 of them every
    // 4 min 58 s.
    let budgeted = FunctionInfo {
        ping_budget: Some(PingBudget {
            pings_per_hour: 48,
            ..PingBudget::default()
        }),
        ..info()
    };
    let mut w = Warmer::default();
    w.start(&[budgeted], Duration::ZERO);
    let t0 = 10 * S;
    for _ in 0..6 {
        w.observe(&call(t0, S, Some(Start::Cold)));
    }
    assert_eq!(w.target(0, t0 + S), 3);
    let pings = run_until(&mut w, 3 * 60 * MIN);
    assert!(!pings.is_empty());
    assert!(pings.iter().all(|&(_, count)| count <= 3), "{pings:?}");
    assert!(most_in_an_hour(&pings) <= 48, "{pings:?}");
    // Without a budget the same calls keep all six.
    let (w, t0) = after_six_cold_calls(WarmerConfig::default());
    assert_eq!(w.target(0, t0 + S), 6);
}

/// The target of a function of `memory_mb` under `budget` just after six calls at once, each
/// a cold start with an init of `init`.
fn target_after_six_cold_starts(memory_mb: u32, init: Duration, budget: PingBudget) -> u32 {
    let mut w = Warmer::default();
    let info = FunctionInfo {
        memory_mb,
        ping_budget: Some(budget),
        ..info()
    };
    w.start(&[info], Duration::ZERO);
    let t0 = 10 * S;
    for _ in 0..6 {
        let mut cold = call(t0, S, Some(Start::Cold));
        cold.init = Some(init);
        w.observe(&cold);
    }
    w.target(0, t0 + init + S)
}

fn budget(gb_s_per_day: f64) -> PingBudget {
    PingBudget {
        gb_s_per_day,
        ..PingBudget::default()
    }
}

#[test]
fn pools_are_sized_within_the_budgets_gb_s_a_day() {
    // Six at once at 1 GB, each with a 10 s init: a kept environment bills about 87 GB-s a
    // day (298 holds of 25 ms, and 8 inits, one per lifetime).
    let target_with =
        |gb_s_per_day| target_after_six_cold_starts(1024, 10 * S, budget(gb_s_per_day));
    assert_eq!(target_with(300.0), 3);
    assert_eq!(target_with(450.0), 5);
    assert_eq!(target_with(600.0), 6);
    assert_eq!(target_with(2000.0), 6);
}

#[test]
fn the_default_budget_keeps_a_large_inference_functions_pool() {
    // Six at once at 10 GB, each loading a model for 7 s: a kept environment bills about
    // 600 GB-s a day, so 2,000 (the old default) kept three; the default keeps all six.
    let large = |b| target_after_six_cold_starts(10_240, 7 * S, b);
    assert_eq!(large(budget(2000.0)), 3);
    assert_eq!(large(PingBudget::default()), 6);
}

#[test]
fn a_kept_environment_is_replaced_before_its_lifetime_can_end() {
    // Called every 3 minutes: real traffic keeps the environment fresh, so no refresh is
    // ever due; only its lifetime can end it, and that end would meet a call.
    let calls = |config: WarmerConfig| {
        let mut w = Warmer::new(config);
        w.start(&[info()], Duration::ZERO);
        let mut pings = run_until(&mut w, 10 * S);
        for i in 0..100u32 {
            let t = 10 * S + 3 * MIN * i;
            let start = if i == 0 {
                Some(Start::Cold)
            } else {
                Some(Start::Warm)
            };
            w.observe(&call(t, S, start));
            pings.extend(run_until(&mut w, t + 3 * MIN - S));
        }
        pings
    };
    let pings = calls(WarmerConfig::default());
    // A round of two at 115 minutes of the environment's life, and again at 230 minutes
    // of its successor's (created by that round): the first ping refreshes the old
    // environment, the second starts the successor, which Lambda reuses first.
    let rounds: Vec<_> = pings.iter().filter(|&&(t, _)| t > 10 * S).collect();
    assert_eq!(rounds.len(), 2, "{pings:?}");
    let born = 10 * S;
    assert_eq!(rounds[0].1, 2);
    assert!(rounds[0].0 >= born + 115 * MIN && rounds[0].0 < born + 116 * MIN);
    assert!(rounds[1].0 >= rounds[0].0 + 115 * MIN && rounds[1].0 < rounds[0].0 + 116 * MIN);
    // Without rotation the warmer never pings such a function.
    let unrotated = calls(WarmerConfig {
        rotate_after: None,
        ..WarmerConfig::default()
    });
    assert!(unrotated.iter().all(|&(t, _)| t <= 10 * S), "{unrotated:?}");
}

/// A warmer whose function is called for 1 s at 10 s (a cold start), then again after each
/// of `gaps` in turn (warm), while the calls come before `until`, and planned up to just
/// before `until`; and the pings it sent after the first call.
fn called_until(gaps: &[Duration], until: Time) -> (Warmer, Vec<(Time, u32)>) {
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    run_until(&mut w, 10 * S);
    let mut pings = Vec::new();
    let mut t = 10 * S;
    for gap in gaps.iter().cycle() {
        let start = if t == 10 * S {
            Start::Cold
        } else {
            Start::Warm
        };
        w.observe(&call(t, S, Some(start)));
        let next = (t + *gap).min(until);
        pings.extend(run_until(&mut w, next - S));
        if next == until {
            break;
        }
        t = next;
    }
    (w, pings)
}

#[test]
fn a_rotation_that_reaches_a_successor_already_there_retires_the_old_environment() {
    // Called every 3 minutes since 10 s: its lone environment, created then, is due for
    // rotation at 115 minutes. The replica also knows a younger environment (an earlier
    // rotation's successor, which a call in flight kept from being reused first), so the
    // round of two reaches both and starts none. The old one must still be retired, or every
    // later plan would find it kept and rotate again.
    let t = 10 * S + 38 * 3 * MIN;
    let (mut w, pings) = called_until(&[3 * MIN], t);
    assert_eq!(pings, vec![]);
    let envs = &mut w.functions[0].envs;
    assert_eq!(envs.idle.len(), 1, "{envs:?}");
    let old = envs.idle[0];
    envs.idle.insert(
        0,
        replica::Idle {
            since: old.since - S,
            born: 110 * MIN,
            used: None,
        },
    );
    // The next call on time, then none for 15 minutes: the rotation, then refreshes of one.
    w.observe(&call(t, S, Some(Start::Warm)));
    let pings = run_until_kept(&mut w, t + 15 * MIN);
    let due = 10 * S + 115 * MIN;
    assert_eq!(
        pings.first(),
        Some(&(due, 2, KeptBy::Rotation)),
        "{pings:?}"
    );
    assert!(
        pings
            .iter()
            .skip(1)
            .all(|&(_, c, k)| c == 1 && k != KeptBy::Rotation),
        "one rotation, then refreshes: {pings:?}"
    );
    let kept: Vec<Time> = w.functions[0].envs.idle.iter().map(|e| e.born).collect();
    assert!(
        !kept.contains(&old.born),
        "the old environment is retired: {kept:?}"
    );
}

#[test]
fn a_rotation_waits_for_the_end_of_a_call_the_driver_counts() {
    // Called every 2 or 4 minutes since 10 s (calls of 1 s); the call at 115 min runs 100 s,
    // through the rotation due at 115 min 10 s. A successor started then would not be
    // reused first: the call's end would make the old environment the most recent.
    let (mut w, _) = called_until(&[2 * MIN, 4 * MIN], 115 * MIN);
    let (start, end) = (115 * MIN, 115 * MIN + 100 * S);
    run_until(&mut w, start);
    w.in_flight(0, 1, start);
    assert_eq!(
        run_until(&mut w, end),
        vec![],
        "no ping while the call runs"
    );
    w.in_flight(0, 0, end);
    w.observe(&call(start, end - start, Some(Start::Warm)));
    let after = run_until(&mut w, end + MIN);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, 2, "the rotation, after the call: {after:?}");
}

#[test]
fn a_shortfall_is_made_up_at_once_where_the_driver_counts_calls() {
    // Six environments kept, of which the replica has lost four, a minute after a round.
    // Where no driver counts calls, traffic in flight may hold them, so the next round waits
    // for the shortage gap; where one counts, the replica holds the calls and a shortfall is
    // a shortfall.
    let first_round = |counted: bool| {
        let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
        let now = t0 + 2 * MIN;
        run_until(&mut w, now);
        let f = &mut w.functions[0];
        f.envs.idle.drain(..4);
        f.pings.push_back((now - MIN, 1));
        if counted {
            w.in_flight(0, 0, now);
        }
        w.reschedule(0, Some(now));
        run_until(&mut w, now + 3 * MIN)
            .first()
            .map(|&(t, c)| (t - now, c))
    };
    assert_eq!(first_round(true), Some((Duration::ZERO, 6)));
    let waited = first_round(false).map(|(t, _)| t);
    assert!(waited >= Some(2 * MIN), "{waited:?}");
}

#[test]
fn a_round_that_missed_environments_is_sent_again_at_once() {
    // A rise of 30 kept two days running at 4:00 is pre-warmed by a round of 30 at 3:58; the
    // driver's check finds that ten of its pings landed where others had
    // (`Policy::round_missed`). Told, the warmer sends the round again at once; untold, it
    // believes the 30 warm and sends none before the rise.
    let begins = 4 * 60 * MIN;
    let minute = (begins.as_secs() / 60) as i64;
    let rounds = |told: bool| {
        let mut w = Warmer::default();
        w.start(&[info()], Duration::ZERO);
        w.kept_rise(0, minute - 2 * 1440, 30);
        w.kept_rise(0, minute - 1440, 30);
        let daily = |pings: Vec<(Time, u32, KeptBy)>| {
            pings
                .into_iter()
                .filter(|&(_, _, kept_by)| kept_by == KeptBy::Daily)
                .map(|(t, count, _)| (t, count))
                .collect::<Vec<_>>()
        };
        let mut sent = daily(run_until_kept(&mut w, begins - 2 * MIN));
        let answered = begins - 2 * MIN + S;
        if told {
            w.round_missed(0, 10, answered);
        }
        sent.extend(daily(run_until_kept(&mut w, begins)));
        sent
    };
    let pre_warm = (begins - 2 * MIN, 30);
    assert_eq!(rounds(true), [pre_warm, (begins - 2 * MIN + S, 30)]);
    assert_eq!(rounds(false), [pre_warm]);
}

#[test]
fn calls_in_flight_that_fill_the_pool_keep_one_environment_more() {
    // Six environments kept, six calls in flight: the next call would start cold.
    let first_round = |config: WarmerConfig| {
        let (mut w, t0) = after_six_cold_calls(config);
        run_until(&mut w, t0 + MIN);
        for n in 1..=6 {
            w.in_flight(0, n, t0 + MIN);
        }
        run_until_kept(&mut w, t0 + 2 * MIN).first().copied()
    };
    // At once, as the sixth starts (not at the next recheck, by when the rest of a burst
    // has met the full pool): a round of one, which starts the seventh.
    assert_eq!(
        first_round(WarmerConfig::default()),
        Some((70 * S, 1, KeptBy::Headroom))
    );
    let none = WarmerConfig {
        headroom_from: None,
        ..WarmerConfig::default()
    };
    assert_eq!(first_round(none), None);
}

#[test]
fn calls_seen_starting_hold_their_environments_so_rounds_do_not_repeat_each_minute() {
    // Six environments kept; three calls of 20 minutes start at 1 minute. Listed idle until
    // they end, the environments they hold looked due for a refresh at every recheck, and a
    // round a minute pinged the idle ones again.
    let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
    run_until(&mut w, t0 + MIN);
    for n in 1..=3 {
        w.in_flight(0, n, t0 + MIN);
    }
    let rounds = run_until(&mut w, t0 + 15 * MIN);
    assert!(
        (2..=3).contains(&rounds.len()) && rounds.iter().all(|&(_, c)| c == 3),
        "a round of three every refresh interval: {rounds:?}"
    );
}

#[test]
fn a_round_due_soon_goes_early_while_calls_hold_the_newest_environments() {
    // Six environments kept, all refreshed together at 11 s; the next round is due at 5 min
    // 9 s. A call seen starting 30 s before holds the most recently used environment, so a
    // round then reaches the other five with five pings, where at its due time, with no call
    // running, it needs six.
    let round = |start: Option<Time>| {
        let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
        if let Some(start) = start {
            assert_eq!(run_until(&mut w, start - S), vec![]);
            w.in_flight(0, 1, start);
        }
        run_until(&mut w, t0 + 6 * MIN).first().copied()
    };
    let due = 10 * S + S + WarmerConfig::default().refresh_age();
    assert_eq!(round(None), Some((due, 6)));
    assert_eq!(round(Some(due - 30 * S)), Some((due - 30 * S, 5)));
    // Two minutes before, one call of six spares less than the interval it would lose.
    assert_eq!(round(Some(due - 2 * MIN)).map(|(t, _)| t), Some(due));
}

/// A warmer that has seen one call of 1 s at 10 s, and that call's end.
fn after_one_call() -> (Warmer, Time) {
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    let t0 = 10 * S;
    w.observe(&call(t0, S, Some(Start::Cold)));
    (w, t0 + S)
}

#[test]
fn a_call_in_flight_refreshes_the_lone_environment_rather_than_a_ping() {
    // The next call starts at 4 min and runs 3 minutes, through the refresh due at 4 min
    // 58 s: a ping then would find the environment busy and start a second one.
    let (start, end) = (4 * MIN, 7 * MIN);
    let (mut seen, _) = after_one_call();
    run_until(&mut seen, start);
    seen.in_flight(0, 1, start);
    let during = run_until(&mut seen, end);
    assert_eq!(during, vec![], "no ping while the call runs");
    seen.in_flight(0, 0, end);
    seen.observe(&call(start, end - start, Some(Start::Warm)));
    // Its end refreshed the environment: the next refresh is due the refresh age after it.
    let after = run_until(&mut seen, end + 6 * MIN);
    assert_eq!(
        after.first().map(|&(t, c)| (t, c)),
        Some((end + WarmerConfig::default().refresh_age(), 1))
    );
    // A driver that cannot see calls leave (clients calling Lambda directly) pings then.
    let (mut unseen, _) = after_one_call();
    let blind = run_until(&mut unseen, end);
    assert!(
        blind.iter().any(|&(t, _)| t > start && t < end),
        "{blind:?}"
    );
}

/// A call of `run` every 5 minutes from 10 s, each heard only at its end (clients calling
/// Lambda directly), for 24 periods: the pings from the fifth period on, with the time since
/// the period's start.
fn pings_around_a_timers_calls(run: Duration) -> Vec<Duration> {
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    let mut pings = Vec::new();
    for k in 0..24 {
        let arrived = 10 * S + 5 * MIN * k;
        let sent = run_until(&mut w, arrived + run - S);
        if k >= 5 {
            // A period starts at the previous call's arrival.
            pings.extend(sent.into_iter().map(|(t, _)| t + 5 * MIN - arrived));
        }
        let start = if k == 0 { Start::Cold } else { Start::Warm };
        w.observe(&call(arrived, run, Some(start)));
    }
    pings
}

#[test]
fn a_lone_refresh_goes_before_a_timers_next_call_where_calls_are_heard_as_they_end() {
    // Calls of 30 s: the refresh due 4 min 58 s after a call's end falls while the next
    // call runs (from 5 min), and a ping then would start a second environment. Seen a few
    // times, the refresh goes before the next call instead.
    let pings = pings_around_a_timers_calls(30 * S);
    assert!(!pings.is_empty());
    assert!(pings.iter().all(|&t| t < 5 * MIN), "{pings:?}");
    // Calls of 1 s: the refresh, due 1 s before the next call, meets none, and goes at the
    // refresh age after the call's end.
    let refresh = S + WarmerConfig::default().refresh_age();
    assert_eq!(pings_around_a_timers_calls(S), vec![refresh; 19]);
}

#[test]
fn a_round_passes_the_calls_the_driver_has_in_flight() {
    // Six environments kept; three calls run when they are due: a round of six would meet
    // them busy and start three environments nobody asked for.
    let refresh = |running: u32| {
        let (mut w, t0) = after_six_cold_calls(WarmerConfig::default());
        for n in 1..=running {
            w.in_flight(0, n, t0 + 2 * MIN);
        }
        run_until(&mut w, t0 + 5 * MIN)
            .last()
            .map(|&(_, count)| count)
    };
    assert_eq!(refresh(3), Some(3));
    assert_eq!(refresh(0), Some(6));
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
