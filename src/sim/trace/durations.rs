//! How a function's handler durations are distributed: the percentiles the Azure 2019 trace
//! gives, or the percentiles of the durations a per-invocation trace observed.

use std::time::Duration;

use rand::Rng;

/// The cumulative probabilities of the points of [`DurationModel::Percentiles`], in field order.
pub const PERCENTILE_LEVELS: [f64; 7] = [0.0, 0.01, 0.25, 0.50, 0.75, 0.99, 1.0];

/// How a function's handler durations are distributed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DurationModel {
    /// Percentiles in milliseconds at the cumulative probabilities [`PERCENTILE_LEVELS`]
    /// (0, 1, 25, 50, 75, 99, 100 %), as the Azure 2019 durations file gives them, plus the
    /// trace's average. Points are non-decreasing when built by [`DurationModel::percentiles`].
    Percentiles {
        average_ms: f64,
        p0: f64,
        p1: f64,
        p25: f64,
        p50: f64,
        p75: f64,
        p99: f64,
        p100: f64,
    },
    /// Always this duration.
    Fixed(Duration),
}

impl DurationModel {
    /// A percentile model from the trace's average and its seven points (ms, in the order of
    /// [`PERCENTILE_LEVELS`]). Negative or non-finite figures become 0, and each point is raised
    /// to at least the one before, so that the inverse CDF is non-decreasing.
    pub fn percentiles(average_ms: f64, points_ms: [f64; 7]) -> DurationModel {
        let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let mut p = points_ms.map(clean);
        for i in 1..p.len() {
            p[i] = p[i].max(p[i - 1]);
        }
        DurationModel::Percentiles {
            average_ms: clean(average_ms),
            p0: p[0],
            p1: p[1],
            p25: p[2],
            p50: p[3],
            p75: p[4],
            p99: p[5],
            p100: p[6],
        }
    }

    /// The percentile model of observed durations: each point is the sample quantile at its
    /// level, interpolated linearly between order statistics (position `level * (n - 1)` in the
    /// sorted samples); the average is the mean. Sorts `samples`. `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<DurationModel> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let last = samples.len() - 1;
        let point = |level: f64| {
            let pos = level * last as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            let frac = pos - lo as f64;
            ms(samples[lo]) + (ms(samples[hi]) - ms(samples[lo])) * frac
        };
        let mean = samples.iter().map(|&d| ms(d)).sum::<f64>() / samples.len() as f64;
        Some(DurationModel::percentiles(
            mean,
            PERCENTILE_LEVELS.map(point),
        ))
    }

    /// The inverse CDF at `u` in [0, 1]: for a percentile model, the straight line between the
    /// two points whose levels bracket `u` (piecewise-linear interpolation), so the result lies
    /// in `[p0, p100]`; for a fixed model, the fixed duration.
    pub fn quantile(&self, u: f64) -> Duration {
        match *self {
            DurationModel::Fixed(d) => d,
            DurationModel::Percentiles {
                p0,
                p1,
                p25,
                p50,
                p75,
                p99,
                p100,
                ..
            } => {
                let points = [p0, p1, p25, p50, p75, p99, p100];
                let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
                // The first segment whose upper level reaches u.
                let i = (1..PERCENTILE_LEVELS.len())
                    .find(|&i| u <= PERCENTILE_LEVELS[i])
                    .unwrap_or(PERCENTILE_LEVELS.len() - 1);
                let (l0, l1) = (PERCENTILE_LEVELS[i - 1], PERCENTILE_LEVELS[i]);
                let (v0, v1) = (points[i - 1], points[i]);
                let v = v0 + (v1 - v0) * (u - l0) / (l1 - l0);
                from_ms(v)
            }
        }
    }

    /// Draws one duration: `u` uniform in [0, 1) from `rng`, then [`DurationModel::quantile`].
    /// For a percentile model the draw lies in `[p0, p100]` and its median is `p50`.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            DurationModel::Fixed(d) => d,
            DurationModel::Percentiles { .. } => self.quantile(rng.random::<f64>()),
        }
    }

    /// The average duration as the trace states it (for a percentile model, the trace's
    /// `Average`, which need not equal the mean of [`DurationModel::sample`]).
    pub fn average(&self) -> Duration {
        match *self {
            DurationModel::Fixed(d) => d,
            DurationModel::Percentiles { average_ms, .. } => from_ms(average_ms),
        }
    }
}

pub(super) fn from_ms(ms: f64) -> Duration {
    from_secs(ms / 1e3)
}

/// Seconds as a duration: 0 for negative or NaN figures, saturating at `Duration::MAX`.
pub(super) fn from_secs(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn duration_sampling_follows_the_percentiles() {
        let model = DurationModel::percentiles(45.0, [10.0, 10.0, 20.0, 40.0, 60.0, 100.0, 200.0]);
        for (level, ms) in PERCENTILE_LEVELS.iter().zip([10, 10, 20, 40, 60, 100, 200]) {
            assert_eq!(model.quantile(*level), Duration::from_millis(ms));
        }
        assert_eq!(
            model.quantile(0.5 + 0.125),
            Duration::from_millis(50),
            "halfway p50..p75"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut draws: Vec<Duration> = (0..100_000).map(|_| model.sample(&mut rng)).collect();
        assert!(draws
            .iter()
            .all(|&d| d >= Duration::from_millis(10) && d <= Duration::from_millis(200)));
        draws.sort_unstable();
        let median = draws[draws.len() / 2].as_secs_f64() * 1e3;
        assert!((median - 40.0).abs() < 0.5, "median {median} ms");
        let p99 = draws[draws.len() * 99 / 100].as_secs_f64() * 1e3;
        assert!((p99 - 100.0).abs() < 3.0, "p99 {p99} ms");

        // Points are made non-decreasing and non-negative.
        let odd = DurationModel::percentiles(1.0, [-1.0, 5.0, 3.0, 4.0, f64::NAN, 9.0, 8.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut last = Duration::ZERO;
        for i in 0..=100 {
            let q = odd.quantile(i as f64 / 100.0);
            assert!(q >= last);
            last = q;
        }
        assert_eq!(odd.quantile(1.0), Duration::from_millis(9));
        let fixed = DurationModel::Fixed(Duration::from_millis(3));
        assert_eq!(fixed.sample(&mut rng), Duration::from_millis(3));

        let mut samples: Vec<Duration> = (1..=101).rev().map(Duration::from_millis).collect();
        let model = DurationModel::from_samples(&mut samples).unwrap();
        assert_eq!(
            model,
            DurationModel::Percentiles {
                average_ms: 51.0,
                p0: 1.0,
                p1: 2.0,
                p25: 26.0,
                p50: 51.0,
                p75: 76.0,
                p99: 100.0,
                p100: 101.0
            }
        );
        assert_eq!(DurationModel::from_samples(&mut []), None);
    }
}
