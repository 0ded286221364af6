//! Distributions the platform draws from: init and handler durations, idle reclaim,
//! environment lifetime, provisioning delay.

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};

/// A distribution of a non-negative quantity, in the unit its field name gives (`init_ms`,
/// `idle_reclaim_s`, ...).
///
/// In TOML: a bare number is fixed; `{ median = 2500, spread = 1.4 }` is log-normal with that
/// median and geometric standard deviation; `{ min = 300, max = 600 }` is uniform.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dist {
    Fixed(f64),
    LogNormal { median: f64, spread: f64 },
    Uniform { min: f64, max: f64 },
}

impl Dist {
    /// Draws one value. Never negative.
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        match *self {
            Dist::Fixed(v) => v,
            Dist::Uniform { min, max } if max > min => rng.random_range(min..max),
            Dist::Uniform { min, .. } => min,
            Dist::LogNormal { median, spread } => {
                // spread is the geometric standard deviation: sigma = ln(spread).
                LogNormal::new(median.ln(), spread.ln())
                    .map(|d| d.sample(rng))
                    .unwrap_or(median)
            }
        }
    }

    /// The distribution's median; the deterministic mode of the simulator uses it.
    pub fn median(&self) -> f64 {
        match *self {
            Dist::Fixed(v) => v,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::LogNormal { median, .. } => median,
        }
    }

    /// Checks the parameters, naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let finite_non_negative = |v: f64| v.is_finite() && v >= 0.0;
        match *self {
            Dist::Fixed(v) if !finite_non_negative(v) => {
                Err(format!("must be a non-negative number, got {v}"))
            }
            Dist::LogNormal { median, spread } if !(median.is_finite() && median > 0.0) => Err(
                format!("log-normal median must be positive, got {median} (spread {spread})"),
            ),
            Dist::LogNormal { spread, .. } if !(spread.is_finite() && spread >= 1.0) => {
                Err(format!(
                    "log-normal spread is a geometric standard deviation, at least 1, got {spread}"
                ))
            }
            Dist::Uniform { min, max }
                if !(finite_non_negative(min) && max.is_finite() && max >= min) =>
            {
                Err(format!(
                    "uniform needs 0 <= min <= max, got min {min}, max {max}"
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn parses_the_three_toml_shapes() {
        #[derive(Deserialize)]
        struct T {
            a: Dist,
            b: Dist,
            c: Dist,
        }
        let t: T =
            toml::from_str("a = 5\nb = { median = 100.0, spread = 1.5 }\nc = { min = 1, max = 2 }")
                .unwrap();
        assert_eq!(t.a, Dist::Fixed(5.0));
        assert_eq!(
            t.b,
            Dist::LogNormal {
                median: 100.0,
                spread: 1.5
            }
        );
        assert_eq!(t.c, Dist::Uniform { min: 1.0, max: 2.0 });
    }

    #[test]
    fn log_normal_median_is_its_median() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let d = Dist::LogNormal {
            median: 2000.0,
            spread: 1.5,
        };
        let mut draws: Vec<f64> = (0..20_001).map(|_| d.sample(&mut rng)).collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[10_000];
        assert!((1900.0..2100.0).contains(&median), "median {median}");
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(Dist::LogNormal {
            median: 0.0,
            spread: 2.0
        }
        .validate()
        .unwrap_err()
        .contains("median"));
        assert!(Dist::LogNormal {
            median: 1.0,
            spread: 0.5
        }
        .validate()
        .unwrap_err()
        .contains("spread"));
        assert!(Dist::Uniform { min: 3.0, max: 1.0 }
            .validate()
            .unwrap_err()
            .contains("min"));
        assert!(Dist::Fixed(-1.0).validate().is_err());
        assert!(Dist::Fixed(0.0).validate().is_ok());
    }
}
