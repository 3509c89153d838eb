use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::delivery::client::TlsProblem;
use crate::domain::retry::Schedule;
use crate::store::{Lease, TargetRow};

fn policy() -> RetryPolicy {
    let steps = vec![Duration::from_secs(10), Duration::from_secs(60)];
    RetryPolicy::new(Schedule::new(steps).unwrap(), 0.0).unwrap()
}

fn job(tries: i64) -> DeliveryJob {
    DeliveryJob {
        id: Uuid::new_v4(),
        tenant_id: 1,
        event_type: "Project:Updated".into(),
        body: Bytes::from_static(b"{}"),
        format_headers: Vec::new().into(),
        attempts: tries + 3,
        tries,
        lease: Lease {
            token: "tok".into(),
            until: 0,
        },
        target: Arc::new(TargetRow::example()),
    }
}

fn response(status: u16, headers: &[(&str, &str)]) -> Sent {
    Sent {
        started_at: 1_000_000,
        duration_ms: 20,
        request_headers: "[]".into(),
        reply: Reply::Response(Response {
            status,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            body: CappedBody {
                bytes: b"nope".to_vec(),
                ..CappedBody::default()
            },
        }),
    }
}

fn failed(kind: ErrorKind) -> Sent {
    Sent {
        reply: Reply::Failed(kind),
        ..response(200, &[])
    }
}

fn outcome_of(tries: i64, sent: Sent) -> AttemptRecord {
    let j = job(tries);
    let d = decide(&policy(), u32::try_from(tries + 1).unwrap(), &sent, 0.5);
    record(&j, sent, &d)
}

#[test]
fn success_settles_the_delivery() {
    let r = outcome_of(0, response(204, &[]));
    assert_eq!(r.next, NextState::Succeeded);
    assert!(r.ok() && r.error.is_none() && r.disable_reason.is_none());
    assert_eq!(
        (r.number, r.tries),
        (4, 1),
        "numbers count the whole life, tries the round"
    );
}

#[test]
fn server_errors_retry_on_schedule_then_give_up() {
    let r = outcome_of(0, response(500, &[]));
    assert_eq!(
        r.next,
        NextState::Retry {
            at: 1_000_020 + 10_000
        }
    );
    assert_eq!(r.response_body.as_deref(), Some(&b"nope"[..]));
    let r = outcome_of(2, response(500, &[]));
    assert_eq!(r.next, NextState::Failed);
    assert_eq!(r.error.as_deref(), Some("gave up after 3 attempts"));
}

#[test]
fn retry_after_is_honoured_on_429_within_the_next_step() {
    let r = outcome_of(0, response(429, &[("Retry-After", "30")]));
    assert_eq!(
        r.next,
        NextState::Retry {
            at: 1_000_020 + 30_000
        }
    );
    let r = outcome_of(0, response(429, &[("retry-after", "99999")]));
    assert_eq!(
        r.next,
        NextState::Retry {
            at: 1_000_020 + 60_000
        }
    );
}

#[test]
fn gone_fails_and_disables_the_webhook() {
    let r = outcome_of(0, response(410, &[]));
    assert_eq!(r.next, NextState::Failed);
    assert!(r.disable_reason.as_deref().unwrap().contains("410 Gone"));
}

#[test]
fn redirects_are_failures_that_name_the_target() {
    let r = outcome_of(0, response(302, &[("Location", "https://elsewhere.example/")]));
    assert!(matches!(r.next, NextState::Retry { .. }));
    assert_eq!(
        r.error.as_deref(),
        Some("redirect to https://elsewhere.example/ not followed")
    );
}

#[test]
fn network_failures_retry_but_refusals_do_not() {
    for kind in [
        ErrorKind::Timeout,
        ErrorKind::Connect {
            detail: "refused".into(),
        },
        ErrorKind::Tls(TlsProblem::UnknownIssuer),
    ] {
        let name = kind.as_str();
        let r = outcome_of(0, failed(kind));
        assert!(matches!(r.next, NextState::Retry { .. }), "{name}");
        assert_eq!(r.error_kind, Some(name));
        assert!(r.status_code.is_none());
    }
    let refusal = crate::delivery::ssrf::classify("10.0.0.1".parse().unwrap()).unwrap();
    let r = outcome_of(0, failed(ErrorKind::Refused(refusal)));
    assert_eq!(r.next, NextState::Failed);
    let e = r.error.unwrap();
    assert!(e.contains("refused by policy") && e.contains("private"), "{e}");
}

#[test]
fn durations_read_like_a_person_wrote_them() {
    assert_eq!(human_duration(86_400_000), "24h");
    assert_eq!(human_duration(90_000), "1m 30s");
    assert_eq!(human_duration(5_000), "5s");
}
