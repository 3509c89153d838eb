//! The delivery engine: getting a rendered, signed body to a receiver and recording what
//! happened. This layer owns everything that touches the network.
//!
//! - [`ssrf`]: which addresses a webhook may reach (pure).
//! - [`client`]: the shared HTTPS client — rustls, keep-alive pools, no redirects, a resolver
//!   that connects only to addresses the policy allowed — and the classification of its
//!   failures into values.
//! - [`fanout`]: which webhooks an event goes to, each body rendered once (pure; the store
//!   calls it inside the event's transaction).
//! - [`engine`]: the per-process engine — local handoff, claims, wake-ups, `run_once`,
//!   graceful shutdown; [`worker`]: per-webhook lanes and the global cap; [`send`]: one
//!   request; [`outcome`]: response → retry decision → record (pure); [`recorder`]:
//!   batched writes; [`metrics`]: Prometheus figures.
//!
//! The retry rules live in [`crate::domain::retry`] and the signatures in
//! [`crate::formats::signing`]: both are pure and used from here.

mod attempt;
pub mod client;
pub mod engine;
pub mod fanout;
pub mod metrics;
pub mod outcome;
pub mod recorder;
pub mod send;
pub mod ssrf;
pub mod worker;

pub use engine::DeliveryEngine;
