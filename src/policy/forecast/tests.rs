use super::*;

const MIN: Duration = Duration::from_secs(60);
const S: Duration = Duration::from_secs(1);

#[test]
fn calls_longer_than_the_lookback_are_counted_by_the_drivers_count() {
    // Twenty calls of 10 minutes, one every 20 s, all running at 7 min 20 s. Reported
    // as they end, each overlaps only the few it can still see; the driver counted them.
    let peak = |counted: bool| {
        let mut f = FunctionForecast::new(&ForecastConfig::default());
        let starts: Vec<Time> = (0..20u32).map(|i| MIN + 20 * S * i).collect();
        if counted {
            for (i, &at) in starts.iter().enumerate() {
                f.record_running(at, i as u32 + 1);
            }
        }
        for &at in &starts {
            f.record(at, at + 10 * MIN, 1);
        }
        let recent_max = ForecastConfig {
            peak_quantile: None,
            ..ForecastConfig::default()
        };
        f.demand(18 * MIN, 5 * MIN, &recent_max).environments
    };
    assert_eq!(peak(true), 20);
    assert!(peak(false) < 10, "{}", peak(false));
}

#[test]
fn periodic_idle_times_say_when_an_arrival_is_likely() {
    let mut h = IdleHistogram::new(MIN, 240 * MIN);
    for _ in 0..10 {
        h.record(12 * MIN + 10 * S);
    }
    assert_eq!(h.probability_within(MIN, 5 * MIN), 0.0);
    assert_eq!(h.probability_within(10 * MIN, 5 * MIN), 1.0);
    assert_eq!(h.likely_from(MIN, 2 * MIN, 0.5), Some(10 * MIN));
    assert_eq!(
        h.probability_within(20 * MIN, 5 * MIN),
        0.0,
        "past every gap"
    );
    assert_eq!(h.likely_from(13 * MIN, 5 * MIN, 0.1), None);
}

#[test]
fn out_of_bound_idle_times_lower_the_probability() {
    let mut h = IdleHistogram::new(MIN, 240 * MIN);
    h.record(2 * MIN);
    h.record(300 * MIN);
    assert!((h.probability_within(Duration::ZERO, 5 * MIN) - 0.5).abs() < 1e-9);
    assert_eq!(h.samples(), 2);
}

#[test]
fn the_recent_peak_and_a_rising_trend_size_the_pool() {
    let cfg = ForecastConfig::default();
    let mut c = ConcurrencyForecast::default();
    // Peaks 1, 2, ..., 10 in minutes 0..10.
    for m in 0..10u32 {
        c.record_start(MIN * m + S, m + 1, S);
    }
    let now = 10 * MIN;
    assert_eq!(c.recent_peak(now, &cfg), 10);
    assert!((c.trend(now, &cfg) - 1.0).abs() < 1e-9);
    assert_eq!(c.environments(now, 5 * MIN, &cfg), 15);
    // One busy second per minute: 1/60 in flight.
    assert!((c.in_flight(now) - 1.0 / 60.0).abs() < 1e-9);
}

#[test]
fn a_call_a_minute_keeps_one_environment_whatever_its_quiet_minutes() {
    let cfg = ForecastConfig::default();
    let mut c = ConcurrencyForecast::default();
    // One call in each of minutes 0..30 but minute 21: the trend window's slope is
    // positive (about 0.04 a minute), a fifth of an environment over 5 minutes.
    for m in (0..30u32).filter(|&m| m != 21) {
        c.record_start(MIN * m + S, 1, S);
    }
    let now = 30 * MIN;
    assert!(c.trend(now, &cfg) > 0.0);
    assert_eq!(c.environments(now, 5 * MIN, &cfg), 1);
}

#[test]
fn a_burst_is_remembered_across_its_quiet_gap() {
    let cfg = ForecastConfig::default();
    let mut c = ConcurrencyForecast::default();
    for k in 0..3u32 {
        for i in 1..=6 {
            c.record_start(45 * MIN * k + S, i, S);
        }
    }
    // 44 minutes after the last burst: outside the 30-minute window, still remembered.
    assert_eq!(c.environments(134 * MIN, 5 * MIN, &cfg), 6);
}

#[test]
fn a_peak_reached_in_one_window_is_not_sized_for() {
    // Near 1, the quantile would be the largest peak, whatever the count of windows.
    let cfg = ForecastConfig {
        peak_quantile: Some(0.999),
        ..ForecastConfig::default()
    };
    let mut c = ConcurrencyForecast::default();
    for w in 0..40u32 {
        c.record_start(5 * MIN * w + S, if w == 10 { 9 } else { 2 }, S);
    }
    let now = 200 * MIN + 30 * S;
    assert_eq!(c.environments(now, 5 * MIN, &cfg), 2);
    c.record_start(5 * MIN * 30 + 2 * S, 9, S);
    assert_eq!(
        c.environments(now, 5 * MIN, &cfg),
        9,
        "seen twice: sized for"
    );
    // `warmer-peak` asks for the largest peak, seen once or not.
    let largest = ForecastConfig {
        peak_quantile: Some(1.0),
        min_peak_windows: 1,
        ..ForecastConfig::default()
    };
    let mut once = ConcurrencyForecast::default();
    for w in 0..40u32 {
        once.record_start(5 * MIN * w + S, if w == 10 { 9 } else { 2 }, S);
    }
    assert_eq!(once.environments(now, 5 * MIN, &largest), 9);
}

#[test]
fn a_burst_straddling_two_windows_is_seen_once() {
    let cfg = ForecastConfig {
        peak_quantile: Some(0.999),
        ..ForecastConfig::default()
    };
    let steady = || {
        let mut c = ConcurrencyForecast::default();
        for w in 0..40u32 {
            c.record_start(5 * MIN * w + S, 2, S);
        }
        c
    };
    // Windows are counted back from now (minute 200): minutes 49 and 51 fall in two
    // adjacent ones.
    let now = 200 * MIN + 30 * S;
    let mut once = steady();
    once.record_start(49 * MIN + 2 * S, 9, S);
    once.record_start(51 * MIN + 2 * S, 9, S);
    assert_eq!(once.environments(now, 5 * MIN, &cfg), 2);
    // The same burst again an hour later is a pattern.
    let mut twice = once.clone();
    twice.record_start(111 * MIN + 2 * S, 9, S);
    assert_eq!(twice.environments(now, 5 * MIN, &cfg), 9);
    // So is a level held over three windows.
    let mut held = once;
    held.record_start(56 * MIN + 2 * S, 9, S);
    assert_eq!(held.environments(now, 5 * MIN, &cfg), 9);
}

#[test]
fn a_rare_spike_is_not_kept_but_a_frequent_peak_is() {
    let cfg = ForecastConfig::default();
    let mut c = ConcurrencyForecast::default();
    // 40 five-minute windows with a peak of 2, one of them 9.
    for w in 0..40u32 {
        c.record_start(5 * MIN * w + S, if w == 10 { 9 } else { 2 }, S);
    }
    let now = 200 * MIN + 30 * S;
    assert_eq!(c.environments(now, 5 * MIN, &cfg), 2);
    // Four spikes in 40 windows (10 %): above the 95th percentile's reach.
    for w in [12u32, 20, 30] {
        c.record_start(5 * MIN * w + 2 * S, 9, S);
    }
    assert_eq!(c.environments(now, 5 * MIN, &cfg), 9);
}

#[test]
fn a_burst_out_of_quiet_is_not_a_trend() {
    let cfg = ForecastConfig::default();
    let mut c = ConcurrencyForecast::default();
    c.record_start(60 * MIN + S, 1, S);
    c.record_start(75 * MIN + S, 9, S);
    let now = 76 * MIN;
    assert_eq!(c.environments(now, 5 * MIN, &cfg), 9);
    // Without the gate the lone minute reads as a steep rise.
    let ungated = ForecastConfig {
        trend_min_active_tenths: 0,
        ..cfg
    };
    assert!(c.environments(now, 5 * MIN, &ungated) > 9);
}

#[test]
fn the_profile_applies_from_the_second_day() {
    let cfg = ForecastConfig::default();
    let mut c = ConcurrencyForecast::default();
    let day = 24 * 60 * MIN;
    c.record_start(9 * 60 * MIN, 40, S);
    assert_eq!(c.profile_peak(9 * 60 * MIN), 0, "same day");
    c.record_start(day + 3 * 60 * MIN, 1, S);
    c.record_start(day + 9 * 60 * MIN, 2, S);
    assert_eq!(c.profile_peak(day + 9 * 60 * MIN + 5 * MIN), 40);
    assert!(c.environments(day + 8 * 60 * MIN + 58 * MIN, 5 * MIN, &cfg) >= 40);
}

#[test]
fn executions_reported_after_those_they_overlap_are_counted_at_once() {
    let cfg = ForecastConfig::default();
    let mut f = FunctionForecast::new(&cfg);
    // A runs from 0 to 100 s; B and C start and end within it, so they are reported
    // first and each found only itself running.
    f.record(10 * S, 20 * S, 1);
    f.record(30 * S, 40 * S, 1);
    assert_eq!(f.concurrency.environments(50 * S, 5 * MIN, &cfg), 1);
    f.record(Duration::ZERO, 100 * S, 1);
    assert_eq!(f.concurrency.environments(100 * S, 5 * MIN, &cfg), 2);
}

proptest::proptest! {
    /// Whatever the order of completions, each minute's peak is the most executions
    /// running at once at a start in it (for executions shorter than the lookback).
    #[test]
    fn minute_peaks_count_every_overlap(
        runs in proptest::collection::vec((0u64..600, 1u64..120), 1..60)
    ) {
        let mut by_end: Vec<(Time, Time)> = runs
            .iter()
            .map(|&(a, d)| (S * a as u32, S * (a + d) as u32))
            .collect();
        by_end.sort_by_key(|&(a, e)| (e, a));
        let mut o = Overlaps::default();
        let mut peaks = std::collections::BTreeMap::new();
        for &(a, e) in &by_end {
            o.add(a, e);
            if o.due(e) {
                for (m, p) in o.sweep(e) {
                    let peak = peaks.entry(m).or_insert(0);
                    *peak = p.max(*peak);
                }
            }
        }
        let last = by_end.last().unwrap().1;
        o.swept = None;
        for (m, p) in o.sweep(last) {
            let peak = peaks.entry(m).or_insert(0);
            *peak = p.max(*peak);
        }
        for (&m, &peak) in &peaks {
            // Brute force: at each start in minute m, the executions running (an end at
            // the same instant has freed its environment).
            let truth = by_end
                .iter()
                .filter(|&&(a, _)| ConcurrencyForecast::minute(a) == m)
                .map(|&(a, _)| by_end.iter().filter(|&&(b, e)| b <= a && a < e).count())
                .max()
                .unwrap_or(0) as u32;
            proptest::prop_assert_eq!(peak, truth, "minute {}", m);
        }
    }
}

#[test]
fn a_function_forecast_needs_samples_before_it_gives_a_probability() {
    let cfg = ForecastConfig::default();
    let mut f = FunctionForecast::new(&cfg);
    assert!(!f.seen());
    let mut t = Duration::ZERO;
    for k in 0..4 {
        f.record(t, t + S, 1);
        let d = f.demand(t + S, 5 * MIN, &cfg);
        assert_eq!(d.probability.is_none(), k < 3, "{k}");
        t += 10 * MIN;
    }
    // Idle times of 9 min 59 s (bin 9): a 5-minute window reaches them from 4 min of idle.
    assert_eq!(
        f.likely_from(31 * MIN, 5 * MIN, 0.5),
        Some(30 * MIN + S + 4 * MIN)
    );
}
