//! Baseline policies the product is judged against (DESIGN: how the product is judged).

pub mod fixed_interval;
pub mod fixed_peak;
pub mod hybrid_histogram;
pub mod none;
pub mod target_tracking;
