//! What a replay counts, and the figures made of it.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use hdrhistogram::Histogram;

use crate::platform::{EnvId, Invocation, Rejection, Snapshot, Start};
use crate::policy::cost::{self, Prices, Usage};
use crate::policy::driver::PingReason;
use crate::policy::FunctionId;
use crate::sim::trace::Trace;

use super::settings::*;

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

/// Real invocations of one function after the warm-up.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FunctionTally {
    invocations: u64,
    cold_starts: u64,
    throttles: u64,
    pings: u64,
    /// Pings that met no idle environment and paid for a new one's init.
    cold_pings: u64,
    /// This function's part of the bill, provisioned allocation left out (it is settled
    /// from snapshots, over all functions).
    usage: Usage,
}

/// What a replay counts after the warm-up, as it goes.
#[derive(Debug)]
pub(super) struct Tally {
    functions: Vec<FunctionTally>,
    pings: u64,
    ping_throttles: u64,
    /// Keep-alive pings the budget refused.
    pub(super) pings_refused: u64,
    /// Requests answered 503 at once: every target's breaker was open.
    pub(super) unavailable: u64,
    pub(super) provisioning_refused: u64,
    pub(super) estimator: EstimatorTally,
    /// Real requests held for a busy environment, and those of them that met a cold one all
    /// the same.
    waits: u64,
    waits_then_cold: u64,
    /// What real requests that ran waited for before their handler started: a cold start's
    /// init plus any time held for a busy environment, in ms, and its sum.
    start_delay_ms: Histogram<u64>,
    start_delay: Duration,
    /// Pings by why they were sent (see [`ReasonFigures`]): sent, those that started an
    /// environment, and those that reached one real traffic had just used.
    ping_reasons: std::collections::BTreeMap<&'static str, (u64, u64, u64)>,
    /// The environments pings started that no real call has used yet, with why each ping was
    /// sent: what is left at the end is [`ReasonFigures::unused_environments`].
    unused_ping_starts: HashMap<EnvId, &'static str>,
}

impl Tally {
    pub(super) fn new(functions: usize) -> Self {
        Tally {
            functions: vec![FunctionTally::default(); functions],
            pings: 0,
            ping_throttles: 0,
            pings_refused: 0,
            unavailable: 0,
            provisioning_refused: 0,
            estimator: EstimatorTally::default(),
            waits: 0,
            waits_then_cold: 0,
            start_delay_ms: Histogram::new(3).expect("3 significant figures are valid"),
            start_delay: Duration::ZERO,
            ping_reasons: Default::default(),
            unused_ping_starts: HashMap::new(),
        }
    }

    /// Counts one ping (already counted by [`Self::record`]) under why it was sent, and
    /// whether it reached an environment real traffic had just used (`fresh`).
    pub(super) fn record_ping_reason(
        &mut self,
        reason: PingReason,
        outcome: &Result<Invocation, Rejection>,
        fresh: bool,
    ) {
        let cold = matches!(outcome, Ok(i) if i.start == Start::Cold);
        let (pings, cold_pings, fresh_pings) =
            self.ping_reasons.entry(reason.detail()).or_default();
        *pings += 1;
        *cold_pings += u64::from(cold);
        *fresh_pings += u64::from(fresh);
        if let (Ok(i), true) = (outcome, cold) {
            self.unused_ping_starts
                .insert(i.environment, reason.detail());
        }
    }

    /// A real call ran on `environment`: if a ping started it, that ping's init was of use.
    pub(super) fn record_call_environment(&mut self, environment: EnvId) {
        self.unused_ping_starts.remove(&environment);
    }

    /// Counts one request, real or ping, with what the platform made of it; `waited` is how
    /// long a real request was held before it was sent.
    pub(super) fn record(
        &mut self,
        f: FunctionId,
        ping: bool,
        waited: Option<Duration>,
        outcome: &Result<Invocation, Rejection>,
    ) {
        let throttled = outcome.is_err();
        let cold = matches!(outcome, Ok(i) if i.start == Start::Cold);
        let tally = &mut self.functions[f];
        if ping {
            self.pings += 1;
            self.ping_throttles += u64::from(throttled);
            tally.pings += 1;
            tally.cold_pings += u64::from(cold);
        } else {
            tally.invocations += 1;
            tally.throttles += u64::from(throttled);
            tally.cold_starts += u64::from(cold);
            if waited.is_some() {
                self.waits += 1;
                self.waits_then_cold += u64::from(cold);
            }
            if let Ok(invocation) = outcome {
                let delay =
                    waited.unwrap_or_default() + invocation.start_delay().unwrap_or_default();
                self.start_delay += delay;
                // Auto-resizing: recording cannot fail.
                let _ = self.start_delay_ms.record(delay.as_millis() as u64);
            }
        }
        if let Ok(invocation) = outcome {
            // A throttled request is not billed; an admitted one is, init included on demand.
            let gb_s = cost::gb_s(invocation.billed_total(), invocation.memory_mb);
            tally.usage.requests += 1;
            match invocation.start {
                Start::Provisioned => tally.usage.provisioned_duration_gb_s += gb_s,
                Start::Warm | Start::Cold => tally.usage.on_demand_gb_s += gb_s,
            }
        }
    }
}

/// The estimator's error against the ground truth, as it is counted: a histogram of absolute
/// errors and the sums for the means.
#[derive(Debug, Default)]
pub(super) struct EstimatorTally {
    /// Samples by absolute error (the last bin holds every larger error).
    by_error: Vec<u64>,
    signed: i64,
    truth: u64,
}

/// Absolute errors beyond this share one histogram bin.
pub(super) const ERROR_BINS: usize = 1024;

impl EstimatorTally {
    pub(super) fn record(&mut self, estimate: u32, truth: u32) {
        if self.by_error.is_empty() {
            self.by_error = vec![0; ERROR_BINS];
        }
        let error = estimate.abs_diff(truth) as usize;
        self.by_error[error.min(ERROR_BINS - 1)] += 1;
        self.signed += i64::from(estimate) - i64::from(truth);
        self.truth += u64::from(truth);
    }

    pub(super) fn figures(&self) -> EstimatorError {
        let samples: u64 = self.by_error.iter().sum();
        if samples == 0 {
            return EstimatorError::default();
        }
        let n = samples as f64;
        let abs: u64 = self
            .by_error
            .iter()
            .enumerate()
            .map(|(e, &c)| e as u64 * c)
            .sum();
        let within = |e: usize| self.by_error.iter().take(e + 1).sum::<u64>() as f64 / n;
        let mut seen = 0;
        let p99 = self
            .by_error
            .iter()
            .position(|&c| {
                seen += c;
                seen as f64 >= 0.99 * n
            })
            .unwrap_or(ERROR_BINS - 1);
        EstimatorError {
            samples,
            mean_abs_error: abs as f64 / n,
            exact_share: within(0),
            within_1_share: within(1),
            p99_abs_error: p99 as u32,
            mean_error: self.signed as f64 / n,
            mean_truth: self.truth as f64 / n,
        }
    }
}

/// How far the pools' estimates of warm idle environments were from the platform's ground
/// truth. A sample is one target of one function at one whole minute after the warm-up: the
/// pool's `view(now).warm_idle`, rounded, against the platform's count of idle on-demand
/// environments of the target's version. A sample is taken only where either is non-zero, so
/// that functions idle for good do not inflate the exact share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EstimatorError {
    pub samples: u64,
    /// Mean of |estimate - truth|.
    pub mean_abs_error: f64,
    /// Share of samples where the rounded estimate is the truth.
    pub exact_share: f64,
    /// Share of samples within one environment of the truth.
    pub within_1_share: f64,
    /// 99th percentile of |estimate - truth| (the smallest error at or above 99 % of samples).
    pub p99_abs_error: u32,
    /// Mean of estimate - truth: above zero, the estimate counts environments already gone.
    pub mean_error: f64,
    /// Mean true idle count over the samples, for scale.
    pub mean_truth: f64,
}

/// GB-s of provisioned concurrency allocated to the snapshot's `f`-th function so far.
fn provisioned_gb_s(snapshot: &Snapshot, f: usize) -> f64 {
    snapshot.functions.get(f).map_or(0.0, |function| {
        function
            .versions
            .iter()
            .map(|v| v.stats.provisioned_gb_s)
            .sum()
    })
}

/// GB-s on-demand environments spent idle so far, over every function.
fn idle_gb_s(snapshot: &Snapshot) -> f64 {
    snapshot
        .functions
        .iter()
        .flat_map(|f| &f.versions)
        .map(|v| v.stats.idle_gb_s)
        .sum()
}

/// The figures of one policy on one trace, counted after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub policy: String,
    /// Equivalent targets per function.
    pub targets: usize,
    /// How requests reached the targets.
    pub traffic: Traffic,
    /// Real requests that arrived after the warm-up (throttled ones included).
    pub invocations: u64,
    /// Of them, those that met a new on-demand environment.
    pub cold_starts: u64,
    /// `cold_starts / invocations`.
    pub cold_start_share: f64,
    /// Per-function cold-start share at the median, 75th and 90th percentile of functions
    /// (over functions with at least one invocation after the warm-up).
    pub function_cold_share_p50: f64,
    pub function_cold_share_p75: f64,
    pub function_cold_share_p90: f64,
    /// Functions counted in the per-function figures.
    pub functions_counted: usize,
    pub throttles: u64,
    /// Keep-alive pings sent after the warm-up (throttled ones included).
    pub pings: u64,
    pub ping_throttles: u64,
    /// Keep-alive pings the policy asked for that the ping budget refused.
    pub pings_refused: u64,
    /// Requests the gateway answered 503 at once because every target's breaker was open.
    pub unavailable: u64,
    /// GB-s of provisioned concurrency allocated after the warm-up.
    pub provisioned_gb_s: f64,
    /// Provisioned-concurrency changes the platform refused (over the whole replay).
    pub provisioning_refused: u64,
    /// Billed GB-s on on-demand environments (init included), real and pings.
    pub on_demand_gb_s: f64,
    /// The user's bill after the warm-up, in dollars (us-east-1, x86_64).
    pub bill_usd: f64,
    /// Provider-side idle memory time: GB-s of warm, idle on-demand environments.
    pub idle_gb_s: f64,
    /// The pools' estimates against the ground truth, after the warm-up.
    pub estimator: EstimatorError,
    /// Real requests the gateway held for a busy environment ([`Traffic::Waiting`]), and
    /// those of them that met a cold start all the same.
    pub waits: u64,
    pub waits_then_cold: u64,
    /// Time real requests waited before their handler started (a cold start's init, plus any
    /// time held for a busy environment), summed over requests, in seconds, and its 99th
    /// and 99.9th percentile per request, in ms.
    pub start_delay_s: f64,
    pub start_delay_p99_ms: u64,
    pub start_delay_p999_ms: u64,
    /// Wall-clock time of the replay, in seconds (information only).
    pub replay_s: f64,
    /// Each counted function's cold-start share, sorted ascending: the CDF plot's data.
    pub function_cold_shares: Vec<f64>,
    /// Every function's own figures, in the trace's order (the `--per-function` file).
    #[serde(skip)]
    pub functions: Vec<FunctionFigures>,
    /// Pings by why they were sent (the `--pings` file); they add up to `pings`.
    pub pings_by_reason: Vec<ReasonFigures>,
}

/// A policy's pings sent for one reason, after the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonFigures {
    /// The rule of the policy that asked for a keep-alive round
    /// ([`KeptBy`](crate::policy::KeptBy): `schedule`, `unseen`, `fallback`, `forecast`,
    /// `bridge`, `floor`, `held`, `headroom`, `rotation`), `burst` (an environment started
    /// for a burst while its requests wait) or `probe` (the estimator's).
    pub reason: &'static str,
    pub pings: u64,
    /// Of them, those that started a new environment (and paid its init).
    pub cold_pings: u64,
    /// Of them, those that reached an environment real traffic had left less than the
    /// predictive warmer's refresh age before (298 s, `WarmerConfig::refresh_age`): it
    /// needed no refresh, but Lambda gives
    /// a ping the most recently used idle environment, so a round that refreshes the least
    /// recently used ones must occupy these first.
    pub fresh_pings: u64,
    /// Of the environments they started, those no real call used (before Lambda ended them,
    /// or by the end of the replay): inits the pings paid for nothing.
    pub unused_environments: u64,
}

/// One function's figures after the warm-up: where the cold starts and the pings are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionFigures {
    /// The function's name in the trace.
    pub function: String,
    pub memory_mb: u32,
    pub invocations: u64,
    pub cold_starts: u64,
    pub throttles: u64,
    pub pings: u64,
    /// Pings that started a new environment (and paid its init).
    pub cold_pings: u64,
    /// Its requests, pings included, and their billed duration, in dollars; provisioned
    /// allocation is left out (it is `provisioned_usd`).
    pub bill_usd: f64,
    /// GB-s of provisioned concurrency allocated to it.
    pub provisioned_gb_s: f64,
    /// Their price: its whole bill is `bill_usd + provisioned_usd`.
    pub provisioned_usd: f64,
}

/// The `q` quantile of sorted values, interpolated linearly between order statistics
/// (position `q * (n - 1)`); 0 for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub(crate) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Figures {
    pub(super) fn new(
        policy: String,
        trace: &Trace,
        (targets, traffic): (usize, Traffic),
        tally: &Tally,
        boundary: &Snapshot,
        end: &Snapshot,
    ) -> Self {
        let invocations = tally.functions.iter().map(|t| t.invocations).sum();
        let cold_starts = tally.functions.iter().map(|t| t.cold_starts).sum();
        let mut shares: Vec<f64> = tally
            .functions
            .iter()
            .filter(|t| t.invocations > 0)
            .map(|t| share(t.cold_starts, t.invocations))
            .collect();
        shares.sort_by(f64::total_cmp);
        let (idle_end, idle_start) = (idle_gb_s(end), idle_gb_s(boundary));
        // Requests and billed duration are counted per function; provisioned allocation is
        // settled from the platform's snapshots (function `i` of the trace is the platform's
        // `i`-th); each function is billed at its architecture's prices.
        let mut usage = Usage::default();
        let mut bill_usd = 0.0;
        let functions = trace
            .functions
            .iter()
            .zip(&tally.functions)
            .enumerate()
            .map(|(i, (f, t))| {
                let prices = Prices::us_east_1(f.lambda.architecture);
                let provisioned_gb_s = provisioned_gb_s(end, i) - provisioned_gb_s(boundary, i);
                let own = Usage {
                    provisioned_gb_s,
                    ..t.usage
                };
                usage.requests += own.requests;
                usage.on_demand_gb_s += own.on_demand_gb_s;
                usage.provisioned_gb_s += own.provisioned_gb_s;
                usage.provisioned_duration_gb_s += own.provisioned_duration_gb_s;
                bill_usd += cost::bill(&own, &prices);
                FunctionFigures {
                    function: f.id.clone(),
                    memory_mb: f.memory_mb,
                    invocations: t.invocations,
                    cold_starts: t.cold_starts,
                    throttles: t.throttles,
                    pings: t.pings,
                    cold_pings: t.cold_pings,
                    bill_usd: cost::bill(&t.usage, &prices),
                    provisioned_gb_s,
                    provisioned_usd: provisioned_gb_s * prices.provisioned_gb_s,
                }
            })
            .collect();
        Figures {
            policy,
            targets,
            traffic,
            invocations,
            cold_starts,
            cold_start_share: share(cold_starts, invocations),
            function_cold_share_p50: quantile(&shares, 0.50),
            function_cold_share_p75: quantile(&shares, 0.75),
            function_cold_share_p90: quantile(&shares, 0.90),
            functions_counted: shares.len(),
            throttles: tally.functions.iter().map(|t| t.throttles).sum(),
            pings: tally.pings,
            ping_throttles: tally.ping_throttles,
            pings_refused: tally.pings_refused,
            unavailable: tally.unavailable,
            provisioned_gb_s: usage.provisioned_gb_s,
            provisioning_refused: tally.provisioning_refused,
            on_demand_gb_s: usage.on_demand_gb_s,
            bill_usd,
            idle_gb_s: idle_end - idle_start,
            estimator: tally.estimator.figures(),
            waits: tally.waits,
            waits_then_cold: tally.waits_then_cold,
            start_delay_s: tally.start_delay.as_secs_f64(),
            start_delay_p99_ms: tally.start_delay_ms.value_at_quantile(0.99),
            start_delay_p999_ms: tally.start_delay_ms.value_at_quantile(0.999),
            replay_s: 0.0,
            function_cold_shares: shares,
            functions,
            pings_by_reason: tally
                .ping_reasons
                .iter()
                .map(
                    |(&reason, &(pings, cold_pings, fresh_pings))| ReasonFigures {
                        reason,
                        pings,
                        cold_pings,
                        fresh_pings,
                        unused_environments: tally
                            .unused_ping_starts
                            .values()
                            .filter(|&&r| r == reason)
                            .count() as u64,
                    },
                )
                .collect(),
        }
    }
}
