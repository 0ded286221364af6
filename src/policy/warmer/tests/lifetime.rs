//! Kept environments replaced before Lambda's lifetime cap ends them.

use super::*;

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
fn a_kept_environment_whose_end_is_reported_is_replaced_then_not_before() {
    // Called every 3 minutes since 10 s, as above, with the extension reporting ends: the
    // first end report (an environment the warmer never kept) tells it ends are reported.
    let mut w = Warmer::default();
    w.start(&[info()], Duration::ZERO);
    let mut pings = run_until(&mut w, 10 * S);
    w.environment_ended(0, Duration::ZERO, 5 * S);
    let born = 10 * S;
    let mut t = born;
    // Lambda ends the environment 3 h 10 min after its start, idle, 20 s after a call.
    let end = born + 190 * MIN;
    while t + 3 * MIN < end {
        let start = if t == born { Start::Cold } else { Start::Warm };
        w.observe(&call(t, S, Some(start)));
        pings.extend(run_until(&mut w, t + 3 * MIN - S));
        t += 3 * MIN;
    }
    w.observe(&call(t, S, Some(Start::Warm)));
    pings.extend(run_until(&mut w, end - S));
    // No rotation at 115 minutes: the environment lives on until Lambda ends it.
    assert!(pings.iter().all(|&(at, _)| at <= 10 * S), "{pings:?}");
    // An end reported for an environment the warmer does not hold changes nothing.
    w.environment_ended(0, born + 30 * MIN, end - S);
    assert_eq!(run_until(&mut w, end), vec![]);
    // Its own end: one ping at once, which starts the successor before the next call.
    w.environment_ended(0, born, end);
    assert_eq!(run_until(&mut w, end + S), vec![(end, 1)]);
}
