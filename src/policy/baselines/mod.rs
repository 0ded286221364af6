//! Baseline policies the product is judged against (README and docs/simulator.md name them).

pub mod fixed_interval;
pub mod fixed_peak;
pub mod hybrid_histogram;
pub mod none;
pub mod target_tracking;
