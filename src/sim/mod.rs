//! Trace replay in virtual time: trace readers, the replay engine and the reports that compare
//! policies on the same trace.

pub mod cli;
pub mod engine;
pub mod plot;
pub mod report;
pub mod trace;
