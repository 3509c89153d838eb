//! Shared test fixtures.

pub mod app;
pub mod logs;

pub use app::{Backend, TestApp};
