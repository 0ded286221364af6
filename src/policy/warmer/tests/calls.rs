//! Rounds around the calls in flight: shortfalls, missed rounds, early rounds, and a lone
//! environment's refresh before a timer's next call.

use super::*;

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
