//! Herald: outgoing webhooks for project-tracking data.
#![forbid(unsafe_code)]

pub mod domain;
pub mod formats;
