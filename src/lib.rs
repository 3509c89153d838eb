//! Herald: outgoing webhooks for project-tracking data.
#![forbid(unsafe_code)]

pub mod delivery;
pub mod domain;
pub mod formats;
