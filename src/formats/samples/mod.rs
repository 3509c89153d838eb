//! Fixed sample events, one per event type, built from the vendor examples (the seeds).
//!
//! One data set serves three purposes, so they cannot drift apart: the golden tests render
//! these events and compare them with the vendors' payloads, `docs/formats.md` shows their
//! renderings verbatim (a test keeps the file in sync), and the benchmarks render them.
//! They are plain values with fixed ids and timestamps, so every rendering is reproducible.

mod ppm;
mod tracker;

use serde_json::{json, Value};
use uuid::{uuid, Uuid};

use super::RenderContext;
use crate::domain::event::{Event, ParentRef, ProjectRef, UserRef};
use crate::domain::event_type::{EntityKind, EventType};

/// The render context used with the samples: the webhook and delivery ids of the PPM
/// `Project:Created` example, and an example public base URL.
pub fn context() -> RenderContext<'static> {
    RenderContext {
        webhook_id: uuid!("b4475520-5537-4c17-ad46-fb60a59fc5d1"),
        delivery_id: uuid!("6879a8fe-59e7-49c5-af91-fd9c3b4bfad8"),
        public_base_url: "https://herald.example.com",
    }
}

/// The sample event for `t`.
pub fn event(t: EventType) -> Event {
    match t {
        EventType::PROJECT_CREATED => ppm::project_created(),
        EventType::PROJECT_UPDATED => ppm::project_updated(),
        EventType::PROJECT_DELETED => ppm::project_deleted(),
        EventType::IDEA_CREATED => ppm::idea(t),
        EventType::IDEA_UPDATED => ppm::idea(t),
        EventType::IDEA_DELETED => ppm::idea(t),
        EventType::TASK_CREATED => ppm::task(t),
        EventType::TASK_UPDATED => ppm::task(t),
        EventType::TASK_DELETED => ppm::task(t),
        EventType::KEY_DATE_CREATED => ppm::key_date_created(),
        EventType::KEY_DATE_UPDATED => ppm::key_date(t),
        EventType::KEY_DATE_DELETED => ppm::key_date(t),
        EventType::STORY_CREATED => tracker::story_created(),
        EventType::STORY_UPDATED => tracker::story_updated(),
        EventType::STORY_DELETED => tracker::story_deleted(),
        EventType::COMMENT_CREATED => tracker::comment(t),
        EventType::COMMENT_UPDATED => tracker::comment(t),
        EventType::COMMENT_DELETED => tracker::comment(t),
        _ => ping(),
    }
}

/// One sample per event type, in [`EventType::ALL`] order.
pub fn all() -> Vec<Event> {
    EventType::ALL.iter().map(|t| event(*t)).collect()
}

fn ping() -> Event {
    let ctx = context();
    Event {
        entity_id: 0,
        entity_uuid: ctx.webhook_id,
        ..base(EventType::WEBHOOK_PING, anna(), 1_644_825_600_000)
    }
}

/// A skeleton event; callers fill in the entity and snapshots.
fn base(t: EventType, actor: UserRef, occurred_at: i64) -> Event {
    let n = EventType::ALL.iter().position(|x| *x == t).unwrap_or_default() as u128;
    Event {
        seq: 1000 + n as i64,
        id: Uuid::from_u128(0x0194_f1c2_7e00_7000_8000_0000_0000_0000 + n),
        tenant: "acme".to_owned(),
        event_type: t,
        entity_kind: t.kind(),
        entity_id: 0,
        entity_uuid: Uuid::nil(),
        parent: None,
        project: None,
        actor,
        occurred_at,
        project_version: None,
        before: None,
        after: None,
        changed: Vec::new(),
        parent_before: None,
        parent_after: None,
    }
}

/// `base` with a shallow merge of `patch` into it: how the samples describe "the same
/// snapshot, but with these values".
fn merged(base: &Value, patch: Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Value::Object(p)) = (out.as_object_mut(), patch) {
        o.extend(p);
    }
    out
}

fn user(id: i64, uuid: Uuid, account_id: &str, name: &str, initials: &str, email: &str) -> UserRef {
    UserRef {
        id,
        uuid,
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        initials: initials.to_owned(),
        email: email.to_owned(),
    }
}

/// A `UserRef` as snapshots store it.
fn user_json(u: &UserRef) -> Value {
    json!({
        "id": u.id, "uuid": u.uuid, "account_id": u.account_id,
        "name": u.name, "initials": u.initials, "email": u.email,
    })
}

fn anna() -> UserRef {
    user(
        7,
        uuid!("2158fcf3-d93d-4436-bff5-869f1d686d61"),
        "DUMMY-ACCOUNT-ID-4c44-b436-73155f48d985",
        "Anna Doe",
        "AD",
        "anna.doe@company.com",
    )
}

fn john() -> UserRef {
    user(
        8,
        uuid!("d56ca5f1-6f8f-4aff-877e-db257b87ba6a"),
        "DUMMY-ACCOUNT-ID-5d11-a3c2-0a1b2c3d4e5f",
        "John Doe",
        "JD",
        "john.doe@company.com",
    )
}

/// The project that owns the sample tasks and key dates.
fn website() -> ProjectRef {
    ProjectRef {
        id: 13651,
        uuid: uuid!("28e92b4c-3b0c-4100-83c8-80231b62efcb"),
        key: "WEB".to_owned(),
        name: "Website relaunch".to_owned(),
    }
}

fn parent_of(p: &ProjectRef) -> Option<ParentRef> {
    Some(ParentRef {
        kind: EntityKind::Project,
        id: p.id,
        uuid: p.uuid,
    })
}
