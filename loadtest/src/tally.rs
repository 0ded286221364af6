//! What a run counts: each request's latency from its intended send time (so a request the
//! generator sent late is charged for the delay, as wrk2 does: no coordinated omission), cold
//! starts seen in the answers, errors by kind, and the same over time for the plots.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, up to an hour.
const MAX_US: u64 = 3_600_000_000;

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx without a function error; `cold` as the answer told it (`None`: it did not say).
    Ok { cold: Option<bool> },
    /// Anything else. An error answer may still say whether it met a cold start.
    Error { kind: Failure, cold: Option<bool> },
}

/// Why a request failed; few kinds, so that the report's list stays short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// An answer with a status other than 2xx.
    Status(u16),
    /// A 2xx whose `X-Amz-Function-Error` says the function failed.
    FunctionError,
    /// No answer within the request timeout.
    Timeout,
    /// The connection failed: refused, reset, closed before the answer.
    Connection,
}

impl Failure {
    /// Whether an HTTP answer came back.
    pub fn answered(self) -> bool {
        matches!(self, Failure::Status(_) | Failure::FunctionError)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "HTTP {code}"),
            Failure::FunctionError => f.write_str("function error"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Connection => f.write_str("connection error"),
        }
    }
}

/// One request's fate; times are offsets from the run's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// When the schedule meant it to be sent.
    pub intended: Duration,
    /// When it was actually sent.
    pub sent: Duration,
    /// When its answer (or its failure) came.
    pub done: Duration,
    /// Its arrival in trace time.
    pub trace_at: Duration,
    pub answer: Answer,
}

impl Outcome {
    /// Its latency as the client saw it, from the intended send time.
    pub fn latency(&self) -> Duration {
        self.done.saturating_sub(self.intended)
    }

    /// How late the generator sent it.
    pub fn lag(&self) -> Duration {
        self.sent.saturating_sub(self.intended)
    }

    fn cold(&self) -> Option<bool> {
        match &self.answer {
            Answer::Ok { cold } | Answer::Error { cold, .. } => *cold,
        }
    }
}

/// A stretch of trace time, for the plots over time.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub requests: u64,
    pub cold: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

/// Everything a run counts.
#[derive(Debug)]
pub struct Tally {
    /// Requests that arrive before this (trace time) are sent but left out of the figures: the
    /// warmer learns from them, as the simulator's warm-up.
    warmup: Duration,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    pub warmup_requests: u64,
    /// Requests counted in the figures (after the warm-up), answered or not.
    pub measured: u64,
    /// Of those, HTTP answers of any status.
    pub answered: u64,
    pub ok: u64,
    pub cold: u64,
    pub warm: u64,
    pub unknown: u64,
    pub errors: BTreeMap<String, u64>,
    /// Width of a bucket in trace time.
    pub bucket_width: Duration,
    pub buckets: Vec<Bucket>,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, sigfig).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

impl Tally {
    /// A tally for a run over `trace_span` of trace time, in at most about 120 buckets of
    /// whole trace seconds.
    pub fn new(trace_span: Duration, warmup: Duration) -> Tally {
        let width = Duration::from_secs((trace_span.as_secs() / 120).max(1));
        let n = (trace_span.as_nanos() / width.as_nanos()) as usize + 1;
        Tally {
            warmup,
            latency: histogram(3),
            lag: histogram(3),
            warmup_requests: 0,
            measured: 0,
            answered: 0,
            ok: 0,
            cold: 0,
            warm: 0,
            unknown: 0,
            errors: BTreeMap::new(),
            bucket_width: width,
            // Two significant figures: enough for a plot, and 120 of them stay small.
            buckets: (0..n)
                .map(|_| Bucket {
                    requests: 0,
                    cold: 0,
                    errors: 0,
                    latency: histogram(2),
                })
                .collect(),
        }
    }

    pub fn record(&mut self, o: &Outcome) {
        let latency = micros(o.latency());
        let i = ((o.trace_at.as_nanos() / self.bucket_width.as_nanos()) as usize)
            .min(self.buckets.len() - 1);
        let bucket = &mut self.buckets[i];
        bucket.requests += 1;
        bucket.latency.saturating_record(latency);
        if o.cold() == Some(true) {
            bucket.cold += 1;
        }
        if matches!(o.answer, Answer::Error { .. }) {
            bucket.errors += 1;
        }
        if o.trace_at < self.warmup {
            self.warmup_requests += 1;
            return;
        }
        self.measured += 1;
        self.latency.saturating_record(latency);
        self.lag.saturating_record(micros(o.lag()));
        match o.cold() {
            Some(true) => self.cold += 1,
            Some(false) => self.warm += 1,
            None => self.unknown += 1,
        }
        match &o.answer {
            Answer::Ok { .. } => {
                self.ok += 1;
                self.answered += 1;
            }
            Answer::Error { kind, .. } => {
                if kind.answered() {
                    self.answered += 1;
                }
                *self.errors.entry(kind.to_string()).or_default() += 1;
            }
        }
    }

    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// The figures of the measured requests.
    pub fn summary(&self) -> Figures {
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
        let h = &self.latency;
        let told = self.cold + self.warm;
        Figures {
            measured: self.measured,
            answered: self.answered,
            ok: self.ok,
            cold_starts: self.cold,
            warm_starts: self.warm,
            start_unknown: self.unknown,
            cold_share: if told == 0 {
                0.0
            } else {
                self.cold as f64 / told as f64
            },
            errors: self.errors.clone(),
            latency_ms: Percentiles {
                p50: ms(h, 0.5),
                p90: ms(h, 0.9),
                p99: ms(h, 0.99),
                p999: ms(h, 0.999),
                max: h.max() as f64 / 1e3,
                mean: h.mean() / 1e3,
            },
            send_lag_ms: Lag {
                p99: ms(&self.lag, 0.99),
                max: self.lag.max() as f64 / 1e3,
            },
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// How late the generator sent its requests: near zero when it kept up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lag {
    pub p99: f64,
    pub max: f64,
}

/// The figures of a run's measured requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    pub measured: u64,
    pub answered: u64,
    pub ok: u64,
    pub cold_starts: u64,
    pub warm_starts: u64,
    pub start_unknown: u64,
    /// Cold starts among the answers that said warm or cold.
    pub cold_share: f64,
    pub errors: BTreeMap<String, u64>,
    pub latency_ms: Percentiles,
    pub send_lag_ms: Lag,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn outcome(intended: u64, sent: u64, done: u64, answer: Answer) -> Outcome {
        Outcome {
            intended: ms(intended),
            sent: ms(sent),
            done: ms(done),
            trace_at: ms(intended * 60),
            answer,
        }
    }

    #[test]
    fn a_late_request_is_charged_from_its_intended_time() {
        let mut t = Tally::new(Duration::from_secs(600), Duration::ZERO);
        // Meant for 100 ms, sent at 150 ms (the generator was behind), answered 10 ms later.
        t.record(&outcome(100, 150, 160, Answer::Ok { cold: Some(false) }));
        let f = t.summary();
        assert!(
            (f.latency_ms.max - 60.0).abs() < 0.1,
            "{}",
            f.latency_ms.max
        );
        assert!(
            (f.send_lag_ms.max - 50.0).abs() < 0.1,
            "{}",
            f.send_lag_ms.max
        );
    }

    #[test]
    fn percentiles_cold_starts_and_errors_are_counted() {
        let mut t = Tally::new(Duration::from_secs(600), Duration::ZERO);
        for i in 0..98 {
            t.record(&outcome(i, i, i + 10, Answer::Ok { cold: Some(false) }));
        }
        t.record(&outcome(98, 98, 98 + 1000, Answer::Ok { cold: Some(true) }));
        let error = |kind| Answer::Error { kind, cold: None };
        t.record(&outcome(99, 99, 99 + 30_000, error(Failure::Timeout)));
        t.record(&outcome(100, 100, 105, error(Failure::Status(502))));
        t.record(&outcome(101, 101, 105, error(Failure::Status(502))));
        let f = t.summary();
        assert_eq!((f.measured, f.answered, f.ok), (102, 101, 99));
        assert_eq!((f.cold_starts, f.warm_starts, f.start_unknown), (1, 98, 3));
        assert!((f.cold_share - 1.0 / 99.0).abs() < 1e-9);
        assert_eq!(f.errors["HTTP 502"], 2);
        assert_eq!(f.errors["timeout"], 1);
        assert!(
            (f.latency_ms.p50 - 10.0).abs() < 0.05,
            "{}",
            f.latency_ms.p50
        );
        // The 99th percentile of 102 requests is the 101st: the 1 s cold start.
        assert!(
            (f.latency_ms.p99 - 1000.0).abs() < 1.0,
            "{}",
            f.latency_ms.p99
        );
        assert!(
            (f.latency_ms.max - 30_000.0).abs() < 30.0,
            "{}",
            f.latency_ms.max
        );
    }

    #[test]
    fn warm_up_requests_are_plotted_but_left_out_of_the_figures() {
        let mut t = Tally::new(Duration::from_secs(600), Duration::from_secs(60));
        // trace_at = intended * 60: 0.5 s and 0.9 s wall are 30 s and 54 s of trace.
        t.record(&outcome(500, 500, 2500, Answer::Ok { cold: Some(true) }));
        t.record(&outcome(900, 900, 910, Answer::Ok { cold: Some(false) }));
        t.record(&outcome(1500, 1500, 1510, Answer::Ok { cold: Some(false) }));
        assert_eq!((t.warmup_requests, t.measured), (2, 1));
        assert_eq!(t.summary().cold_starts, 0);
        assert_eq!(t.buckets.iter().map(|b| b.cold).sum::<u64>(), 1);
        assert_eq!(t.buckets.iter().map(|b| b.requests).sum::<u64>(), 3);
        // 600 s of trace in buckets of 5 s.
        assert_eq!(t.bucket_width, Duration::from_secs(5));
    }
}
