//! Pools and pings within the driver's budget and the configuration's cap.

use super::*;

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
