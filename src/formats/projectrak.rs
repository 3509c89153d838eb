//! Projectrak outgoing-webhook bodies: `{"data": {event, user, timestamp, project, fields}}`
//! for `Project:Updated` (formats.md §1 and §5).
//!
//! One body per save lists every changed non-formula field, in the order the fields appear
//! in the project snapshot. A field counts as changed when its *encoded* value differs
//! between `before` and `after`, compared by field id: the event's `changed` list is
//! derived from the same snapshots, and comparing encodings also drops no-op entries such as
//! `23000` → `23000.0`. A save that changed only formula fields (or nothing Projectrak
//! reports) renders nothing.
//!
//! Values follow §1.3 with Herald's §5 decisions: every value is a string or `null`; multi
//! types are arrays of strings (`[]` when empty); numbers are canonical decimal strings
//! (`"23000"`, `"23.5"`); dates `YYYY-MM-DD`; durations milliseconds as a string; users their
//! account id; projects their numeric id as a string; a milestone is the one object
//! `{id, date, name, linkedIssuesId}`. `previous` is `null` when the field had no entry
//! before (first set); an empty multi value stays `[]`.
//!
//! `Webhook:Ping` (the "test" button) has no Projectrak equivalent. Herald sends the same
//! envelope with `event: "ping"`, the actor, the time, the event's project when it has one
//! (else `null`) and `fields: []`; receivers that switch on `data.event` can ignore it.

use serde::Serialize;
use serde_json::Value;

use super::encode::{array_field, canonical_decimal, field, str_field};
use super::ordered::{Node, Obj};
use crate::domain::event::Event;
use crate::domain::event_type::EventType;

/// The whole body: everything sits under `data`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    /// The notification.
    pub data: Payload<'a>,
}

/// `data`: what changed, by whom, when, in which project.
#[derive(Debug, Clone, Serialize)]
pub struct Payload<'a> {
    /// `"updated"` (or `"ping"` for a test ping).
    pub event: &'static str,
    /// Account id of the user who made the change.
    pub user: &'a str,
    /// When the change happened, epoch milliseconds.
    pub timestamp: i64,
    /// The project; `null` only for a ping without a project.
    pub project: Option<Project<'a>>,
    /// One entry per changed field.
    pub fields: Vec<FieldChange<'a>>,
}

/// `data.project`.
#[derive(Debug, Clone, Serialize)]
pub struct Project<'a> {
    /// Jira project id.
    pub id: i64,
    /// Project key, e.g. `DEMO`.
    pub key: &'a str,
    /// Project name.
    pub name: &'a str,
}

/// One entry of `data.fields`.
#[derive(Debug, Clone, Serialize)]
pub struct FieldChange<'a> {
    /// Projectrak field id.
    pub id: &'a Value,
    /// Field display name.
    pub name: &'a Value,
    /// Field type name (`number`, `status`, `milestone`, … see formats.md §5).
    #[serde(rename = "type")]
    pub field_type: &'a str,
    /// Values after and before.
    pub value: ValueChange,
}

/// `fields[].value`.
#[derive(Debug, Clone, Serialize)]
pub struct ValueChange {
    /// Encoded value after the change.
    pub current: Node,
    /// Encoded value before the change; `null` when first set.
    pub previous: Node,
}

/// Builds the Projectrak body; `None` when no non-formula field changed.
pub fn build(event: &Event) -> Option<Envelope<'_>> {
    let ping = event.event_type == EventType::WEBHOOK_PING;
    let fields = if ping { Vec::new() } else { changed_fields(event) };
    if !ping && fields.is_empty() {
        return None;
    }
    Some(Envelope {
        data: Payload {
            event: if ping { "ping" } else { "updated" },
            user: &event.actor.account_id,
            timestamp: event.occurred_at,
            project: project(event),
            fields,
        },
    })
}

fn project(event: &Event) -> Option<Project<'_>> {
    if let Some(p) = &event.project {
        return Some(Project {
            id: p.id,
            key: &p.key,
            name: &p.name,
        });
    }
    let snap = event.after.as_ref().or(event.before.as_ref())?;
    Some(Project {
        id: event.entity_id,
        key: str_field(snap, "key").unwrap_or_default(),
        name: str_field(snap, "name").unwrap_or_default(),
    })
}

fn changed_fields(event: &Event) -> Vec<FieldChange<'_>> {
    let (Some(before), Some(after)) = (&event.before, &event.after) else {
        return Vec::new();
    };
    let before = array_field(before, "fields");
    array_field(after, "fields")
        .iter()
        .filter_map(|f| {
            let field_type = str_field(f, "type").unwrap_or("text");
            if field_type == "formula" {
                return None;
            }
            let id = field(f, "id");
            let current = encode(field_type, field(f, "value"));
            let previous = before
                .iter()
                .find(|b| field(b, "id") == id)
                .map_or(Node::NULL, |b| encode(field_type, field(b, "value")));
            let first_set_empty = previous == Node::NULL && is_empty(&current);
            (current != previous && !first_set_empty).then_some(FieldChange {
                id,
                name: field(f, "name"),
                field_type,
                value: ValueChange { current, previous },
            })
        })
        .collect()
}

fn is_empty(n: &Node) -> bool {
    match n.as_json() {
        Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Encodes a canonical field value for Projectrak by field type.
pub fn encode(field_type: &str, v: &Value) -> Node {
    match field_type {
        "multilist" | "multiuser" | "multiproject" => {
            let items: Vec<String> = match v {
                Value::Array(items) => items.iter().filter_map(scalar).collect(),
                other => scalar(other).into_iter().collect(),
            };
            Node::Json(Value::Array(items.into_iter().map(Value::String).collect()))
        }
        "milestone" if v.is_object() => Node::Obj(
            Obj::new()
                .with("id", field(v, "id").clone())
                .with("date", field(v, "date").clone())
                .with("name", field(v, "name").clone())
                .with(
                    "linkedIssuesId",
                    Value::Array(array_field(v, "linked_issues_id").to_vec()),
                ),
        ),
        _ => scalar(v).map_or(Node::NULL, Node::str),
    }
}

/// One value as a Projectrak string: text as is, numbers canonical, a user its account id,
/// a project its id. Anything unexpected is sent as its JSON text rather than dropped.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(_) => canonical_decimal(v),
        Value::Object(_) => {
            if let Some(account) = str_field(v, "account_id") {
                Some(account.to_owned())
            } else if let Some(id) = canonical_decimal(field(v, "id")) {
                Some(id)
            } else {
                Some(v.to_string())
            }
        }
        Value::Array(_) => Some(v.to_string()),
    }
}
