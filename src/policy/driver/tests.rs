//! The driver's decisions, event by event.

use super::*;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn warm(duration: Duration) -> Outcome {
    Outcome::Ran {
        start: Some(Start::Warm),
        duration,
        init: None,
        billed_gb_s: None,
    }
}

fn cold(duration: Duration, init: Duration) -> Outcome {
    Outcome::Ran {
        start: Some(Start::Cold),
        duration,
        init: Some(init),
        billed_gb_s: Some(0.1),
    }
}

fn sent(admission: Admission) -> Send {
    match admission {
        Admission::Send(send) => send,
        other => panic!("expected a send, got {other:?}"),
    }
}

/// A driver whose one target has served a cold request and has one in flight now.
fn busy_after_one_cold(settings: FunctionSettings) -> (FunctionDriver, Attempt) {
    let mut driver = FunctionDriver::new(0, 1, settings);
    let first = sent(driver.arrive(Duration::ZERO)).attempt;
    driver.finish(2 * S + 50 * MS, &first, cold(50 * MS, 2 * S));
    let second = sent(driver.arrive(3 * S)).attempt;
    (driver, second)
}

#[test]
fn requests_in_flight_count_real_attempts_until_they_end_and_never_pings() {
    let mut driver = FunctionDriver::new(0, 1, FunctionSettings::default());
    let first = sent(driver.arrive(Duration::ZERO)).attempt;
    let second = driver.pinned(S, 0).attempt;
    let ping = driver.start_ping(S, 0);
    assert_eq!(driver.running(), 2);
    driver.finish(2 * S, &ping, warm(MS));
    driver.finish(3 * S, &first, cold(S, 2 * S));
    assert_eq!(driver.running(), 1);
    // Refused, it did not run: it is no longer in flight either.
    driver.finish(3 * S, &second, Outcome::NotRun);
    assert_eq!(driver.running(), 0);
}

#[test]
fn a_request_meeting_a_busy_environment_is_held_and_one_burst_ping_starts() {
    let (mut driver, busy) = busy_after_one_cold(FunctionSettings::default());
    let Admission::Hold {
        waiter,
        until,
        burst,
    } = driver.arrive(3 * S + 10 * MS)
    else {
        panic!("expected a hold");
    };
    assert!(until > 3 * S + 10 * MS && until <= 3 * S + 10 * MS + S);
    let burst = burst.expect("a burst ping starts an environment");
    assert!(burst.started.ping);
    // A second waiter gets no second burst ping while the first is on its way.
    let Admission::Hold { burst: none, .. } = driver.arrive(3 * S + 20 * MS) else {
        panic!("expected a hold");
    };
    assert_eq!(none, None);
    assert_eq!(driver.holding(), 2);
    // The busy request ends: the first waiter is released onto its environment, warm.
    let finished = driver.finish(3 * S + 50 * MS, &busy, warm(50 * MS));
    let (released, send) = finished.released.expect("the first waiter");
    assert_eq!(released, waiter);
    assert_eq!(send.route, Route::Warm);
    assert_eq!(send.waited, Some(40 * MS));
    assert_eq!(driver.expire(until, waiter), None, "already released");
    assert_eq!(driver.holding(), 1);
}

#[test]
fn a_deeper_queue_starts_one_environment_for_every_two_waiters() {
    let (mut driver, _busy) = busy_after_one_cold(FunctionSettings::default());
    let mut bursts = Vec::new();
    for i in 0..5u32 {
        let Admission::Hold { burst, .. } = driver.arrive(3 * S + MS * (10 + i)) else {
            panic!("expected a hold");
        };
        bursts.push(burst);
    }
    // Waiters 1, 3 and 5 each start one: three on their way for five waiting.
    let started: Vec<bool> = bursts.iter().map(Option::is_some).collect();
    assert_eq!(started, [true, false, true, false, true]);
    // One of them ready: it takes the first waiter, and the next arrival (five waiting
    // again, two on their way) starts one more.
    let first = bursts[0].expect("started");
    driver.finish(5 * S, &first, cold(S, MS));
    let Admission::Hold { burst, .. } = driver.arrive(5 * S + MS) else {
        panic!("expected a hold");
    };
    assert!(burst.is_some());
    // One at a time, as it was, where the function asks for it.
    let settings = FunctionSettings {
        wait: WaitPolicy {
            waiters_per_burst_ping: 32,
            ..WaitPolicy::default()
        },
        ..FunctionSettings::default()
    };
    let (mut one_at_a_time, _) = busy_after_one_cold(settings);
    let pings = (0..5u32)
        .filter(|i| {
            matches!(
                one_at_a_time.arrive(3 * S + MS * (10 + i)),
                Admission::Hold { burst: Some(_), .. }
            )
        })
        .count();
    assert_eq!(pings, 1);
}

#[test]
fn with_the_wait_off_a_request_goes_cold_at_once() {
    let settings = FunctionSettings {
        wait: WaitPolicy {
            enabled: false,
            ..WaitPolicy::default()
        },
        ..FunctionSettings::default()
    };
    let (mut driver, _busy) = busy_after_one_cold(settings);
    assert_eq!(sent(driver.arrive(3 * S + 10 * MS)).route, Route::Cold);
}

#[test]
fn an_expired_wait_is_sent_without_a_second_wait() {
    let (mut driver, _busy) = busy_after_one_cold(FunctionSettings::default());
    let Admission::Hold { waiter, until, .. } = driver.arrive(3 * S + 10 * MS) else {
        panic!("expected a hold");
    };
    let send = driver.expire(until, waiter).expect("still held");
    assert_eq!(send.waited, Some(until - (3 * S + 10 * MS)));
    assert_eq!(driver.holding(), 0);
    assert!(!driver.cancel(waiter));
}

#[test]
fn a_throttle_fails_over_to_the_next_target_and_a_call_that_may_have_run_does_not() {
    let mut driver = FunctionDriver::new(0, 3, FunctionSettings::default());
    let first = sent(driver.arrive(Duration::ZERO)).attempt;
    assert_eq!(first.target, 0, "the preferred target");
    driver.finish(Duration::ZERO, &first, Outcome::NotRun);
    let throttled = Failure::NotRun { elsewhere: true };
    let next = driver.failover(Duration::ZERO, throttled, &[0]).unwrap();
    assert_eq!((next.attempt.target, next.route), (1, Route::Failover));
    assert_eq!(driver.failover(Duration::ZERO, throttled, &[0, 1, 2]), None);
    let at_fault = Failure::NotRun { elsewhere: false };
    assert_eq!(driver.failover(Duration::ZERO, at_fault, &[0]), None);
    assert_eq!(
        driver.failover(Duration::ZERO, Failure::MayHaveRun, &[0]),
        None,
        "invariant 4: not idempotent, never sent twice"
    );
    let mut idempotent = FunctionDriver::new(
        0,
        2,
        FunctionSettings {
            idempotent: true,
            ..FunctionSettings::default()
        },
    );
    let again = idempotent.failover(Duration::ZERO, Failure::MayHaveRun, &[0]);
    assert_eq!(again.map(|s| s.attempt.target), Some(1));
}

#[test]
fn failover_skips_targets_that_are_not_routable() {
    let mut driver = FunctionDriver::new(0, 3, FunctionSettings::default());
    driver.set_routable(vec![0, 2]);
    let next = driver.failover(S, Failure::NotRun { elsewhere: true }, &[0]);
    assert_eq!(next.map(|s| s.attempt.target), Some(2));
}

#[test]
fn a_round_is_skipped_while_clients_come_first_and_held_to_the_budget() {
    let settings = FunctionSettings {
        ping_budget: Some(PingBudget {
            pings_per_hour: 5,
            gb_s_per_day: 1000.0,
        }),
        ..FunctionSettings::default()
    };
    let mut driver = FunctionDriver::new(0, 1, settings);
    assert_eq!(driver.grant_round(S, 3, 128, true), 0);
    assert_eq!(driver.grant_round(S, 3, 128, false), 3);
    assert_eq!(driver.grant_round(2 * S, 3, 128, false), 2);
    assert_eq!(driver.budget_left(2 * S).map(|b| b.0), Some(0));
}

#[test]
fn a_finished_ping_spends_its_bill_and_teaches_the_observation() {
    let mut driver = FunctionDriver::new(3, 1, FunctionSettings::default());
    let before = driver.budget_left(S).unwrap().1;
    let ping = driver.start_ping(S, 0);
    let finished = driver.finish(3 * S, &ping, cold(MS, 2 * S));
    assert!((before - driver.budget_left(3 * S).unwrap().1 - 0.1).abs() < 1e-9);
    let o = finished.observation;
    assert_eq!((o.function, o.target, o.arrived), (3, 0, S));
    assert!(o.ping && !o.throttled && o.start == Some(Start::Cold));
    let refused = driver.start_ping(4 * S, 0);
    let o = driver.finish(4 * S, &refused, Outcome::NotRun).observation;
    assert!(o.throttled && o.start.is_none());
}
