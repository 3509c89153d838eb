//! The delivery engine: getting a rendered, signed body to a receiver and recording what
//! happened. This layer owns everything that touches the network.
//!
//! - [`ssrf`]: which addresses a webhook may reach (pure).
//! - [`client`]: the shared HTTPS client — rustls, keep-alive pools, no redirects, a resolver
//!   that connects only to addresses the policy allowed — and the classification of its
//!   failures into values.
//!
//! The retry rules live in [`crate::domain::retry`] and the signatures in
//! [`crate::formats::signing`]: both are pure and used from here.

pub mod client;
pub mod ssrf;
