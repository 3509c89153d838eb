//! Shared test infrastructure. Each test module uses a different subset of it, so unused
//! helpers are expected in any one build of the binary.
#![allow(dead_code)]

pub mod app;
pub mod hooks;
pub mod logs;
pub mod receiver;

pub use app::{Backend, TestApp};
pub use receiver::{Reply, TestReceiver};

/// How long tests wait for something that should happen almost at once on loopback.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
