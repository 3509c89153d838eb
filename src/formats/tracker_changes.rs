//! Pivotal Tracker v5 `changes[]` entries built from Herald snapshots (formats.md §2.2–2.3).
//!
//! Snapshot keys become Tracker field names (`requested_by` → `requested_by_id`, `owners` →
//! `owner_ids`, `person` → `person_id`); keys Tracker has no field for are left out. A create
//! carries the full new record with empty arrays as `[]`; an update carries only the changed
//! fields plus `updated_at` in both `original_values` and `new_values`; a delete carries no
//! values. Timestamps the activity itself sets (`created_at`/`updated_at` of the record it
//! creates or updates) are the event's `occurred_at`, so every timestamp an activity
//! introduces agrees with its `occurred_at` (the vendor example does not, see §2.6).

use serde::Serialize;
use serde_json::Value;

use super::encode::{array_field, field, number, str_field};
use super::ordered::{Node, Obj};

/// One entry of `changes`. Field order is the wire order.
#[derive(Debug, Clone, Serialize)]
pub struct Change<'a> {
    /// `story` or `comment`.
    pub kind: &'static str,
    /// `create`, `update` or `delete`.
    pub change_type: &'static str,
    /// The changed record's id.
    pub id: Value,
    /// Story name (stories only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a Value>,
    /// Story type (stories only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub story_type: Option<&'a Value>,
    /// Old values of the changed fields (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_values: Option<Obj>,
    /// New values: the full record on create, the changed fields on update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_values: Option<Obj>,
}

/// The Tracker name and value of story snapshot key `key`; `None` for keys Tracker has no
/// story field for (`uuid`, `updated_at`, …).
pub fn story_value(s: &Value, key: &str) -> Option<(&'static str, Value)> {
    let ids = |key: &str| {
        Value::Array(
            array_field(s, key)
                .iter()
                .map(|u| field(u, "id").clone())
                .collect(),
        )
    };
    let plain: &'static str = match key {
        "requested_by" => return Some(("requested_by_id", field(field(s, key), "id").clone())),
        "owners" => return Some(("owner_ids", ids(key))),
        "labels" => return Some(("labels", Value::Array(array_field(s, key).to_vec()))),
        "estimate" => return Some(("estimate", number(field(s, key)))),
        "project_id" => "project_id",
        "name" => "name",
        "description" => "description",
        "story_type" => "story_type",
        "current_state" => "current_state",
        "accepted_at" => "accepted_at",
        "deadline" => "deadline",
        "before_id" => "before_id",
        "after_id" => "after_id",
        _ => return None,
    };
    Some((plain, field(s, key).clone()))
}

fn story_head<'a>(change_type: &'static str, id: Value, s: &'a Value) -> Change<'a> {
    Change {
        kind: "story",
        change_type,
        id,
        name: Some(field(s, "name")),
        story_type: Some(field(s, "story_type")),
        original_values: None,
        new_values: None,
    }
}

/// A story `create` change with the full new record.
pub fn story_create(id: i64, s: &Value, occurred_at: i64) -> Change<'_> {
    let mut v = Obj::new().with("id", id);
    for key in [
        "project_id",
        "name",
        "description",
        "story_type",
        "current_state",
        "estimate",
        "requested_by",
        "owners",
    ] {
        if let Some((name, value)) = story_value(s, key) {
            v.insert(name, value);
        }
    }
    // Order as in Tracker's own payloads: followers, label names, label ids.
    v.insert("follower_ids", Node::Arr(Vec::new()));
    if let Some((name, value)) = story_value(s, "labels") {
        v.insert(name, value);
    }
    v.insert("label_ids", Node::Arr(Vec::new()));
    v.insert("before_id", field(s, "before_id").clone());
    v.insert("after_id", field(s, "after_id").clone());
    v.insert("created_at", occurred_at);
    v.insert("updated_at", occurred_at);
    if str_field(s, "story_type") == Some("release") {
        v.insert("deadline", field(s, "deadline").clone());
    }
    if !field(s, "accepted_at").is_null() {
        v.insert("accepted_at", field(s, "accepted_at").clone());
    }
    Change {
        new_values: Some(v),
        ..story_head("create", Value::from(id), s)
    }
}

/// `original_values` / `new_values` of an update: the changed keys `value` knows how to
/// name (in `changed` order), plus `updated_at` (the activity's time on the new side).
fn update_values(
    before: &Value,
    after: &Value,
    changed: &[String],
    occurred_at: i64,
    value: fn(&Value, &str) -> Option<(&'static str, Value)>,
) -> (Obj, Obj) {
    let mut old = Obj::new();
    let mut new = Obj::new();
    for key in changed {
        if let (Some((name, o)), Some((_, n))) = (value(before, key), value(after, key)) {
            old.insert(name, o);
            new.insert(name, n);
        }
    }
    old.insert("updated_at", field(before, "updated_at").clone());
    new.insert("updated_at", occurred_at);
    (old, new)
}

/// A story `update` change: the `changed` snapshot keys Tracker knows, plus `updated_at`.
/// Named after the story as it is now.
pub fn story_update<'a>(
    id: i64,
    before: &'a Value,
    after: &'a Value,
    changed: &[String],
    occurred_at: i64,
) -> Change<'a> {
    let (old, new) = update_values(before, after, changed, occurred_at, story_value);
    Change {
        original_values: Some(old),
        new_values: Some(new),
        ..story_head("update", Value::from(id), after)
    }
}

/// A story `delete` change: id, name and type, no values.
pub fn story_delete(id: i64, s: &Value) -> Change<'_> {
    story_head("delete", Value::from(id), s)
}

fn comment_head<'a>(change_type: &'static str, id: i64) -> Change<'a> {
    Change {
        kind: "comment",
        change_type,
        id: Value::from(id),
        name: None,
        story_type: None,
        original_values: None,
        new_values: None,
    }
}

/// The Tracker name and value of comment snapshot key `key`.
fn comment_value(s: &Value, key: &str) -> Option<(&'static str, Value)> {
    match key {
        "text" => Some(("text", field(s, "text").clone())),
        "story_id" => Some(("story_id", field(s, "story_id").clone())),
        "person" => Some(("person_id", field(field(s, "person"), "id").clone())),
        _ => None,
    }
}

/// A comment `create` change with the full new record (attachments always empty: Herald
/// stores none).
pub fn comment_create(id: i64, s: &Value, occurred_at: i64) -> Change<'static> {
    let mut v = Obj::new().with("id", id);
    for key in ["story_id", "text", "person"] {
        if let Some((name, value)) = comment_value(s, key) {
            v.insert(name, value);
        }
    }
    v.insert("created_at", occurred_at);
    v.insert("updated_at", occurred_at);
    for empty in [
        "file_attachment_ids",
        "google_attachment_ids",
        "file_attachments",
        "google_attachments",
    ] {
        v.insert(empty, Node::Arr(Vec::new()));
    }
    Change {
        new_values: Some(v),
        ..comment_head("create", id)
    }
}

/// A comment `update` change: changed fields plus `updated_at`.
pub fn comment_update(
    id: i64,
    before: &Value,
    after: &Value,
    changed: &[String],
    occurred_at: i64,
) -> Change<'static> {
    let (old, new) = update_values(before, after, changed, occurred_at, comment_value);
    Change {
        original_values: Some(old),
        new_values: Some(new),
        ..comment_head("update", id)
    }
}

/// A comment `delete` change: the id only.
pub fn comment_delete(id: i64) -> Change<'static> {
    comment_head("delete", id)
}
