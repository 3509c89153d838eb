//! Herald: outgoing webhooks for project-tracking data.
//!
//! Layout: a pure core ([`domain`], [`formats`]) with I/O at the edges ([`store`],
//! [`api`]); [`startup::Application`] wires them together and [`cli`] drives it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod formats;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod timefmt;
pub mod tracker;
pub mod ui;
