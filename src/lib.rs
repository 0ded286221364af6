//! warmgate: an HTTP gateway that takes AWS Lambda cold starts off the path of AI inference.
//!
//! See ARCHITECTURE.md for the bird's-eye view and the invariants every module keeps.

pub mod advise;
pub mod cache;
pub mod clock;
pub mod config;
pub mod emulator;
pub mod gateway;
pub mod lambda;
pub mod platform;
pub mod policy;
pub mod sim;
pub mod stack;
pub mod telemetry;
