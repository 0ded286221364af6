//! The replay engine against hand-computed answers, on small made-up traces.

use std::time::Duration;

use warmgate::clock::Time;
use warmgate::platform::dist::Dist;
use warmgate::policy::baselines::fixed_interval::FixedInterval;
use warmgate::policy::baselines::none::NoPolicy;
use warmgate::policy::{Action, FunctionInfo, Observation, Policy};
use warmgate::sim::engine::{replay, Candidate, Figures, Mode, SimSettings};
use warmgate::sim::trace::{Arrival, DurationModel, Trace, TraceFormat, TraceFunction};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// us-east-1 x86 prices, as DESIGN lists them.
const ON_DEMAND_GB_S: f64 = 0.000_016_666_7;
const PER_REQUEST: f64 = 0.20 / 1e6;
const PROVISIONED_GB_S: f64 = 0.000_004_166_7;
const PROVISIONED_DURATION_GB_S: f64 = 0.000_009_722_2;

/// A function of 1,024 MB whose arrivals are `times`, each lasting `duration` (given by the
/// trace, so that no mode draws it).
fn function(times: impl IntoIterator<Item = Duration>, duration: Duration) -> TraceFunction {
    TraceFunction {
        lambda: Default::default(),
        id: "f".into(),
        app: "app".into(),
        trigger: None,
        memory_mb: 1024,
        durations: DurationModel::Fixed(duration),
        arrivals: times
            .into_iter()
            .map(|at| Arrival {
                at,
                duration: Some(duration),
                tokens: None,
            })
            .collect(),
    }
}

fn trace(functions: Vec<TraceFunction>, span: Duration) -> Trace {
    Trace {
        name: "made-up".into(),
        format: TraceFormat::Azure2019,
        functions,
        duration: span,
    }
}

/// A call every 11 minutes, at 30 s into its minute (where the even spread puts one call).
fn every_11_minutes(span: Duration) -> Trace {
    let times = (0..)
        .map(|k| k * 11 * MIN + 30 * SEC)
        .take_while(|&t| t < span);
    trace(vec![function(times, Duration::from_millis(1))], span)
}

/// Deterministic mode: fixed 10-minute reclaim, zero init, no lifetime cap.
fn deterministic(warmup: Duration) -> SimSettings {
    SimSettings {
        mode: Mode::Deterministic,
        warmup,
        ..SimSettings::default()
    }
}

fn run(trace: &Trace, settings: &SimSettings, policy: Box<dyn Policy>) -> Figures {
    replay(trace, settings, Candidate::new(policy), &|_| {})
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-9)
}

#[test]
fn a_call_every_11_minutes_is_always_cold_with_a_10_minute_reclaim() {
    let trace = every_11_minutes(6 * HOUR);
    let figures = run(&trace, &deterministic(HOUR), Box::new(NoPolicy));
    // Calls at 30 s + 11k min; after the first hour, k = 6 (66.5 min) to 32 (352.5 min).
    assert_eq!(figures.invocations, 27);
    assert_eq!(figures.cold_starts, 27);
    assert_eq!(figures.cold_start_share, 1.0);
    assert_eq!(figures.function_cold_share_p50, 1.0);
    assert_eq!(figures.pings, 0);
}

#[test]
fn a_9_minute_warmer_makes_every_call_warm() {
    let trace = every_11_minutes(6 * HOUR);
    let warmer = FixedInterval::new(9 * MIN, 1);
    let figures = run(&trace, &deterministic(HOUR), Box::new(warmer));
    assert_eq!(figures.invocations, 27);
    assert_eq!(figures.cold_starts, 0);
    // Pings at 63, 72, ..., 351 min: multiples of 9 min within [60 min, 360 min).
    assert_eq!(figures.pings, (63..360).step_by(9).count() as u64);
    // Even over the whole trace only the very first ping met a cold environment.
    let all = run(
        &trace,
        &deterministic(Duration::ZERO),
        Box::new(FixedInterval::new(9 * MIN, 1)),
    );
    assert_eq!((all.invocations, all.cold_starts), (33, 0));
}

#[test]
fn per_function_figures_say_where_the_pings_and_the_dollars_went() {
    let span = 6 * HOUR;
    let mut called = every_11_minutes(span).functions.remove(0);
    called.id = "called".into();
    let mut idle = function([], Duration::from_millis(1));
    idle.id = "never-called".into();
    let trace = trace(vec![called, idle], span);
    let figures = run(
        &trace,
        &deterministic(HOUR),
        Box::new(FixedInterval::new(9 * MIN, 1)),
    );
    let [called, idle] = &figures.functions[..] else {
        panic!("{:?}", figures.functions);
    };
    let pings = (63..360).step_by(9).count() as u64;
    assert_eq!(called.function, "called");
    assert_eq!(
        (
            called.invocations,
            called.cold_starts,
            called.pings,
            called.cold_pings
        ),
        (27, 0, pings, 0)
    );
    // Pinged all along from the start, the idle function's environment never went cold.
    assert_eq!(
        (idle.invocations, idle.pings, idle.cold_pings),
        (0, pings, 0)
    );
    assert_eq!(called.pings + idle.pings, figures.pings);
    assert!(close(called.bill_usd + idle.bill_usd, figures.bill_usd));
    // Without calls, the idle function's part is its pings alone.
    assert!(idle.bill_usd > 0.0 && idle.bill_usd < called.bill_usd);
}

#[test]
fn three_calls_a_minute_are_cold_only_the_first_time() {
    let span = 2 * HOUR;
    let times = (0..120u32).flat_map(|m| [10, 30, 50].map(|s| m * MIN + s * SEC));
    let trace = trace(vec![function(times, Duration::from_micros(1))], span);
    let whole = run(&trace, &deterministic(Duration::ZERO), Box::new(NoPolicy));
    assert_eq!((whole.invocations, whole.cold_starts), (360, 1));
    let after_warmup = run(&trace, &deterministic(HOUR), Box::new(NoPolicy));
    assert_eq!(
        (after_warmup.invocations, after_warmup.cold_starts),
        (180, 0)
    );
}

#[test]
fn the_warmup_is_left_out_of_every_figure() {
    let trace = every_11_minutes(3 * HOUR);
    let from_zero = run(&trace, &deterministic(Duration::ZERO), Box::new(NoPolicy));
    let after_hour = run(&trace, &deterministic(HOUR), Box::new(NoPolicy));
    // 17 calls in 3 h (k = 0..=16); 6 of them (k = 0..=5) before minute 60.
    assert_eq!((from_zero.invocations, from_zero.cold_starts), (17, 17));
    assert_eq!((after_hour.invocations, after_hour.cold_starts), (11, 11));
    // Idle memory (1 GB): each environment idles its 600 s from the end of its call to its
    // reclaim, except the last, cut by the end of the trace (176.5 min + 1 ms to 180 min).
    let last = 3.5 * 60.0 - 0.001;
    assert!(close(from_zero.idle_gb_s, 16.0 * 600.0 + last));
    // From minute 60: the environment of the call at 55.5 min idles until 65.5 min + 1 ms,
    // 330.001 s of it after the boundary; then 10 calls of full idle, and the last one.
    assert!(
        close(after_hour.idle_gb_s, 330.001 + 10.0 * 600.0 + last),
        "{}",
        after_hour.idle_gb_s
    );
}

#[test]
fn the_bill_is_the_hand_computed_bill() {
    // Ten 100 ms calls of a 1 GB function, at 30 s past each of the first ten minutes.
    let times = (0..10u32).map(|m| m * MIN + 30 * SEC);
    let trace = trace(vec![function(times, Duration::from_millis(100))], 10 * MIN);
    // Default mode with every draw fixed: 500 ms init, 10 min reclaim.
    let settings = SimSettings {
        warmup: Duration::ZERO,
        init_ms: Dist::Fixed(500.0),
        idle_reclaim_s: Some(Dist::Fixed(600.0)),
        ..SimSettings::default()
    };
    let alone = run(&trace, &settings, Box::new(NoPolicy));
    assert_eq!((alone.invocations, alone.cold_starts), (10, 1));
    // The cold call bills its init too: 600 ms, then nine of 100 ms: 1.5 GB-s.
    assert!(close(alone.on_demand_gb_s, 1.5));
    assert!(close(
        alone.bill_usd,
        1.5 * ON_DEMAND_GB_S + 10.0 * PER_REQUEST
    ));

    // A 5-minute warmer pings at 0 (cold: 500 ms init, and 1 ms: a lone ping asks for no
    // hold) and at 5 min (warm, 1 ms); every call is then warm: 0.501 + 0.001 + 10 * 0.1 =
    // 1.502 GB-s and 12 requests.
    let warmed = run(&trace, &settings, Box::new(FixedInterval::plugin_default()));
    assert_eq!((warmed.cold_starts, warmed.pings), (0, 2));
    assert!(
        close(warmed.on_demand_gb_s, 1.502),
        "{}",
        warmed.on_demand_gb_s
    );
    assert!(close(
        warmed.bill_usd,
        1.502 * ON_DEMAND_GB_S + 12.0 * PER_REQUEST
    ));
}

/// Provisions `concurrency` on every function at start, and does nothing else.
struct ProvisionAtStart(u32);

impl Policy for ProvisionAtStart {
    fn name(&self) -> String {
        "provision-at-start".into()
    }
    fn start(&mut self, functions: &[FunctionInfo], _now: Time) -> Vec<Action> {
        (0..functions.len())
            .map(|function| Action::SetProvisioned {
                function,
                target: 0,
                concurrency: self.0,
            })
            .collect()
    }
    fn observe(&mut self, _observation: &Observation) {}
    fn act(&mut self, _now: Time) -> Vec<Action> {
        Vec::new()
    }
    fn next_wake(&self) -> Option<Time> {
        None
    }
}

/// Provisions one environment at start and notes the allocation times it hears of.
struct ProvisionAndListen(std::sync::Arc<std::sync::Mutex<Vec<(usize, Duration)>>>);

impl Policy for ProvisionAndListen {
    fn name(&self) -> String {
        "provision-and-listen".into()
    }
    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        ProvisionAtStart(1).start(functions, now)
    }
    fn observe(&mut self, _observation: &Observation) {}
    fn act(&mut self, _now: Time) -> Vec<Action> {
        Vec::new()
    }
    fn next_wake(&self) -> Option<Time> {
        None
    }
    fn provisioned_ready(&mut self, function: usize, after: Duration) {
        self.0.lock().unwrap().push((function, after));
    }
}

#[test]
fn the_policy_hears_how_long_its_allocation_took() {
    let trace = trace(vec![function([5 * MIN], Duration::from_millis(100))], HOUR);
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    run(
        &trace,
        &deterministic(Duration::ZERO),
        Box::new(ProvisionAndListen(heard.clone())),
    );
    assert_eq!(
        *heard.lock().unwrap(),
        [(0, 90 * SEC)],
        "deterministic mode allocates in 90 s; heard once"
    );
}

/// One environment provisioned at start, deleted at `until`.
struct ProvisionUntil(Duration, bool);

impl Policy for ProvisionUntil {
    fn name(&self) -> String {
        "provision-until".into()
    }
    fn start(&mut self, functions: &[FunctionInfo], now: Time) -> Vec<Action> {
        ProvisionAtStart(1).start(functions, now)
    }
    fn observe(&mut self, _observation: &Observation) {}
    fn act(&mut self, now: Time) -> Vec<Action> {
        if self.1 || now < self.0 {
            return Vec::new();
        }
        self.1 = true;
        vec![Action::SetProvisioned {
            function: 0,
            target: 0,
            concurrency: 0,
        }]
    }
    fn next_wake(&self) -> Option<Time> {
        (!self.1).then_some(self.0)
    }
}

#[test]
fn provisioned_concurrency_is_billed_by_the_five_minutes() {
    let trace = trace(vec![function([50 * MIN], Duration::from_millis(100))], HOUR);
    // READY at 90 s, deleted at 8 min 30 s: 7 minutes held, 10 billed.
    let seven = run(
        &trace,
        &deterministic(Duration::ZERO),
        Box::new(ProvisionUntil(8 * MIN + 30 * SEC, false)),
    );
    assert!(
        close(seven.provisioned_gb_s, 600.0),
        "{}",
        seven.provisioned_gb_s
    );
    // Deleted at 6 min 30 s: 5 minutes held, 5 billed.
    let five = run(
        &trace,
        &deterministic(Duration::ZERO),
        Box::new(ProvisionUntil(6 * MIN + 30 * SEC, false)),
    );
    assert!(
        close(five.provisioned_gb_s, 300.0),
        "{}",
        five.provisioned_gb_s
    );
}

#[test]
fn provisioned_concurrency_is_billed_from_ready_and_after_the_warmup() {
    // Six 100 ms calls at 5, 15, ..., 55 min: after the 90 s allocation of deterministic mode.
    let times = (0..6u32).map(|k| (10 * k + 5) * MIN);
    let trace = trace(vec![function(times, Duration::from_millis(100))], HOUR);
    let whole = run(
        &trace,
        &deterministic(Duration::ZERO),
        Box::new(ProvisionAtStart(1)),
    );
    assert_eq!((whole.invocations, whole.cold_starts), (6, 0));
    assert!(close(whole.provisioned_gb_s, 3600.0 - 90.0));
    assert_eq!(whole.on_demand_gb_s, 0.0);
    assert!(close(
        whole.bill_usd,
        3510.0 * PROVISIONED_GB_S + 0.6 * PROVISIONED_DURATION_GB_S + 6.0 * PER_REQUEST
    ));
    let late = run(
        &trace,
        &deterministic(30 * MIN),
        Box::new(ProvisionAtStart(1)),
    );
    assert!(close(late.provisioned_gb_s, 1800.0));
    assert_eq!(late.invocations, 3);
}

#[test]
fn never_reclaim_leaves_one_cold_start_per_concurrent_environment() {
    // Three concurrent 1 s calls at 0, then pairs of concurrent calls every 20 minutes.
    let mut times = vec![Duration::ZERO; 3];
    for k in 1..12u32 {
        times.extend([k * 20 * MIN; 2]);
    }
    let trace = trace(vec![function(times, SEC)], 4 * HOUR);
    let settings = SimSettings {
        warmup: Duration::ZERO,
        ..SimSettings::default()
    };
    let bound = replay(&trace, &settings, Candidate::never_reclaim(), &|_| {});
    assert_eq!(bound.policy, "never-reclaim");
    assert_eq!((bound.invocations, bound.cold_starts), (25, 3));
    assert!(bound.idle_gb_s > 0.0);
    // Lambda reclaims within 5 to 10 minutes: every pair is cold again.
    let lambda = run(&trace, &settings, Box::new(NoPolicy));
    assert_eq!(lambda.cold_starts, 3 + 2 * 11);
}

#[test]
fn beyond_the_account_quota_requests_are_throttled_and_not_billed() {
    let trace = trace(vec![function([Duration::ZERO; 3], SEC)], MIN);
    let settings = SimSettings {
        account_concurrency: 2,
        ..deterministic(Duration::ZERO)
    };
    let figures = run(&trace, &settings, Box::new(NoPolicy));
    assert_eq!(
        (figures.invocations, figures.cold_starts, figures.throttles),
        (3, 2, 1)
    );
    assert!(close(
        figures.bill_usd,
        2.0 * ON_DEMAND_GB_S + 2.0 * PER_REQUEST
    ));
}

/// Records what it is told and when it is asked to act.
#[derive(Default)]
struct Spy {
    observed: Vec<Observation>,
    acted: Vec<Time>,
    wake: Option<Time>,
}

impl Policy for Spy {
    fn name(&self) -> String {
        "spy".into()
    }
    fn start(&mut self, _functions: &[FunctionInfo], _now: Time) -> Vec<Action> {
        self.wake = Some(2 * MIN);
        Vec::new()
    }
    fn observe(&mut self, observation: &Observation) {
        self.observed.push(*observation);
    }
    fn act(&mut self, now: Time) -> Vec<Action> {
        self.acted.push(now);
        // A policy that keeps asking for a time already past must not stall the replay.
        self.wake = Some(now);
        Vec::new()
    }
    fn next_wake(&self) -> Option<Time> {
        self.wake
    }
}

#[test]
fn policies_hear_every_invocation_and_may_not_stall_the_replay() {
    let trace = every_11_minutes(HOUR);
    let spy = std::sync::Arc::new(std::sync::Mutex::new(Spy::default()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Spy>>);
    impl Policy for Shared {
        fn name(&self) -> String {
            "spy".into()
        }
        fn start(&mut self, f: &[FunctionInfo], now: Time) -> Vec<Action> {
            assert_eq!(f[0].targets, ["live"]);
            self.0.lock().unwrap().start(f, now)
        }
        fn observe(&mut self, o: &Observation) {
            self.0.lock().unwrap().observe(o)
        }
        fn act(&mut self, now: Time) -> Vec<Action> {
            self.0.lock().unwrap().act(now)
        }
        fn next_wake(&self) -> Option<Time> {
            self.0.lock().unwrap().next_wake()
        }
    }
    let figures = run(
        &trace,
        &deterministic(Duration::ZERO),
        Box::new(Shared(spy.clone())),
    );
    assert_eq!(figures.invocations, 6);
    let spy = spy.lock().unwrap();
    assert_eq!(spy.observed.len(), 6);
    assert!(spy.observed.iter().all(|o| !o.ping && !o.throttled));
    assert_eq!(spy.observed[1].arrived, 11 * MIN + 30 * SEC);
    // Woken at 2 min, then once more after each later event (an arrival or a completion).
    assert_eq!(spy.acted[0], 2 * MIN);
    assert!(spy.acted.windows(2).all(|w| w[0] <= w[1]));
    assert!(spy.acted.len() <= 1 + 2 * 6, "{:?}", spy.acted);
}

#[test]
fn fixed_peak_from_the_oracle_leaves_no_cold_start_after_allocation() {
    use warmgate::policy::baselines::fixed_peak::FixedPeak;
    use warmgate::sim::engine::peak_concurrency;
    // Three concurrent 1 s calls every 10 minutes, for 2 hours.
    let times = (0..12u32).flat_map(|k| [k * 10 * MIN + 30 * SEC; 3]);
    let trace = trace(vec![function(times, SEC)], 2 * HOUR);
    let settings = deterministic(HOUR);
    let peaks = peak_concurrency(&trace, &settings);
    assert_eq!(peaks, [3]);
    let figures = run(&trace, &settings, Box::new(FixedPeak::new(peaks)));
    assert_eq!((figures.invocations, figures.cold_starts), (18, 0));
    // Three 1 GB environments through the counted hour.
    assert!(close(figures.provisioned_gb_s, 3.0 * 3600.0));
    assert_eq!(figures.idle_gb_s, 0.0);
}

#[test]
fn a_comparison_in_parallel_equals_the_replays_one_by_one() {
    use warmgate::sim::engine::compare;
    let trace = every_11_minutes(3 * HOUR);
    let settings = SimSettings {
        warmup: Duration::ZERO,
        ..SimSettings::default()
    };
    let make = || {
        vec![
            Candidate::new(Box::new(NoPolicy)),
            Candidate::new(Box::new(FixedInterval::plugin_default())),
            Candidate::never_reclaim(),
        ]
    };
    let without_time = |mut f: Figures| {
        f.replay_s = 0.0;
        f
    };
    let together: Vec<Figures> = compare(&trace, &settings, make(), &|_, _| {})
        .into_iter()
        .map(without_time)
        .collect();
    let one_by_one: Vec<Figures> = make()
        .into_iter()
        .map(|c| without_time(replay(&trace, &settings, c, &|_| {})))
        .collect();
    assert_eq!(together, one_by_one);
    let labels: Vec<&str> = together.iter().map(|f| f.policy.as_str()).collect();
    assert_eq!(labels, ["none", "fixed-5min", "never-reclaim"]);
}

/// `policy` replayed by two gateway replicas, keep-alive shared or each on its own.
fn two_replicas(
    trace: &Trace,
    settings: &SimSettings,
    policy: impl Fn() -> Box<dyn Policy>,
    shared: bool,
    traffic: warmgate::sim::engine::Traffic,
) -> Figures {
    let candidate = Candidate::new(policy())
        .with_traffic(traffic)
        .with_replicas(vec![policy()], shared);
    replay(trace, settings, candidate, &|_| {})
}

#[test]
fn two_replicas_sharing_keep_alive_ping_as_one_and_alone_each_pings() {
    use warmgate::sim::engine::Traffic;
    let trace = every_11_minutes(6 * HOUR);
    let settings = deterministic(HOUR);
    let warmer = || Box::new(FixedInterval::new(9 * MIN, 1)) as Box<dyn Policy>;
    let one = run(&trace, &settings, warmer());
    let shared = two_replicas(&trace, &settings, warmer, true, Traffic::First);
    let alone = two_replicas(&trace, &settings, warmer, false, Traffic::First);
    assert_eq!(shared.policy, "fixed-9min@2");
    assert_eq!(alone.policy, "fixed-9min@2-unshared");
    assert_eq!((one.pings, one.cold_starts), (33, 0));
    assert_eq!(
        (shared.pings, shared.cold_starts),
        (one.pings, 0),
        "the keeper alone pings"
    );
    assert_eq!(alone.pings, 2 * one.pings, "each replica pings");
    assert!(alone.bill_usd > shared.bill_usd);
}

#[test]
fn a_replica_sharing_the_estimate_sees_the_other_replicas_calls() {
    use warmgate::sim::engine::Traffic;
    // Calls every 30 s, to the two replicas in turn: the first replica's last 50 s, the
    // second's 1 ms. The second's call finds the first's environment busy and keeps one of
    // its own: at each whole minute two environments are idle, one left by each replica.
    let span = 3 * HOUR;
    let mut f = function([], Duration::from_millis(1));
    f.arrivals = (0..)
        .map(|k| k * 30 * SEC)
        .take_while(|&t| t < span)
        .enumerate()
        .map(|(k, at)| Arrival {
            at,
            duration: Some(if k % 2 == 0 {
                50 * SEC
            } else {
                Duration::from_millis(1)
            }),
            tokens: None,
        })
        .collect();
    let trace = trace(vec![f], span);
    let settings = SimSettings {
        measure_estimator: true,
        ..deterministic(HOUR)
    };
    let none = || Box::new(NoPolicy) as Box<dyn Policy>;
    let shared = two_replicas(&trace, &settings, none, true, Traffic::Waiting);
    let alone = two_replicas(&trace, &settings, none, false, Traffic::Waiting);
    assert_eq!((shared.cold_starts, alone.cold_starts), (0, 0));
    // The first replica's estimate, sampled each minute against the platform: it holds
    // both environments when it hears the other's attempts, only its own otherwise.
    assert!(shared.estimator.samples >= 120, "{:?}", shared.estimator);
    assert_eq!(
        shared.estimator.mean_abs_error, 0.0,
        "{:?}",
        shared.estimator
    );
    assert_eq!(alone.estimator.mean_error, -1.0, "{:?}", alone.estimator);
}

/// Counts the times it is told how many calls are in flight.
struct InFlightCounter(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Policy for InFlightCounter {
    fn name(&self) -> String {
        "counter".into()
    }
    fn start(&mut self, _functions: &[FunctionInfo], _now: Time) -> Vec<Action> {
        Vec::new()
    }
    fn observe(&mut self, _observation: &Observation) {}
    fn in_flight(&mut self, _function: usize, _requests: u32, _now: Time) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn act(&mut self, _now: Time) -> Vec<Action> {
        Vec::new()
    }
    fn next_wake(&self) -> Option<Time> {
        None
    }
}

#[test]
fn replicas_beside_clients_that_call_lambda_directly_never_see_calls_in_flight() {
    use warmgate::sim::engine::Traffic;
    let trace = every_11_minutes(2 * HOUR);
    let settings = deterministic(Duration::ZERO);
    let told = |traffic| {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let policy = || Box::new(InFlightCounter(count.clone())) as Box<dyn Policy>;
        two_replicas(&trace, &settings, policy, true, traffic);
        count.load(std::sync::atomic::Ordering::Relaxed)
    };
    // Through the gateway each replica counts its own calls at start and end, and the other
    // hears both: 4 counts per call.
    assert_eq!(told(Traffic::Waiting), 4 * 11);
    // Directly, no replica sees a call start, its own or another's.
    assert_eq!(told(Traffic::First), 0);
}

#[test]
fn with_call_reports_each_replica_beside_direct_clients_counts_the_calls_reported_to_it() {
    use warmgate::sim::engine::Traffic;
    let trace = every_11_minutes(2 * HOUR);
    let told = |call_reports| {
        let settings = SimSettings {
            call_reports,
            ..deterministic(Duration::ZERO)
        };
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let policy = || Box::new(InFlightCounter(count.clone())) as Box<dyn Policy>;
        two_replicas(&trace, &settings, policy, true, Traffic::First);
        count.load(std::sync::atomic::Ordering::Relaxed)
    };
    // The extension reports each call's start and end to the replica the load balancer
    // sends it to, which counts it and does not share the count: 2 counts per call.
    assert_eq!(told(true), 2 * 11);
    assert_eq!(told(false), 0);
}

/// A policy that pings nothing and records the environment ends it hears of.
#[derive(Default)]
struct EndsHeard(std::sync::Arc<std::sync::Mutex<Vec<(Time, Time)>>>);

impl Policy for EndsHeard {
    fn name(&self) -> String {
        "ends-heard".into()
    }
    fn start(&mut self, _: &[FunctionInfo], _: Time) -> Vec<Action> {
        Vec::new()
    }
    fn observe(&mut self, _: &Observation) {}
    fn environment_ended(&mut self, function: usize, born: Time, now: Time) {
        assert_eq!(function, 0);
        self.0.lock().unwrap().push((born, now));
    }
    fn act(&mut self, _: Time) -> Vec<Action> {
        Vec::new()
    }
    fn next_wake(&self) -> Option<Time> {
        None
    }
}

#[test]
fn with_the_extension_policies_hear_each_environment_end_as_it_ends() {
    // A call every 11 minutes, each on a new environment that Lambda reclaims 10 minutes
    // after the call's end (deterministic mode).
    let trace = every_11_minutes(HOUR);
    let heard = |extension: bool| {
        let policy = EndsHeard::default();
        let ends = policy.0.clone();
        let settings = SimSettings {
            extension,
            ..deterministic(Duration::ZERO)
        };
        let figures = run(&trace, &settings, Box::new(policy));
        assert_eq!((figures.invocations, figures.cold_starts), (6, 6));
        let ends = ends.lock().unwrap().clone();
        ends
    };
    let ends = heard(true);
    // The sixth environment (called at 55.5 min) is reclaimed past the trace's hour.
    let expected: Vec<_> = (0..5u32)
        .map(|k| {
            let called = k * 11 * MIN + 30 * SEC;
            (called, called + Duration::from_millis(1) + 10 * MIN)
        })
        .collect();
    assert_eq!(ends, expected);
    assert_eq!(heard(false), vec![]);
}
