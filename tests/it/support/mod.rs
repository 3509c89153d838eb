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

/// A new delivery's first attempt to `webhook`, started at `started_at` and lasting 5 ms,
/// answered `status`: succeeded on a 2xx, otherwise failed for good (no retry planned).
/// What store tests hand `record_attempts`.
pub fn attempt(webhook: uuid::Uuid, started_at: i64, status: i64) -> herald::store::AttemptRecord {
    herald::store::AttemptRecord {
        delivery_id: uuid::Uuid::now_v7(),
        webhook_id: webhook,
        lease_token: "t".into(),
        number: 1,
        tries: 1,
        started_at,
        duration_ms: 5,
        request_headers: "[]".into(),
        status_code: Some(status),
        response_headers: Some("[]".into()),
        response_body: None,
        response_truncated: false,
        error_kind: None,
        error: None,
        next: if (200..300).contains(&status) {
            herald::store::NextState::Succeeded
        } else {
            herald::store::NextState::Failed
        },
        disable_reason: None,
    }
}
