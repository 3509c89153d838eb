//! Property tests: whatever the snapshots hold, every format renders valid JSON, renders
//! it the same way twice, never panics, and Projectrak values keep their documented types.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::domain::event::Event;
use crate::domain::event_type::EventType;
use crate::formats::{render, samples, Format};

/// Any JSON value, nested a little (non-finite floats become `null`, as serde_json does).
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys the renderers read, so mutations hit the interesting paths.
const KEYS: &[&str] = &[
    "name",
    "description",
    "budget",
    "cost",
    "progress",
    "priority",
    "overall_status",
    "start_date",
    "finish_date",
    "manager",
    "portfolio",
    "custom",
    "fields",
    "stage",
    "tags",
    "challenge",
    "submitter",
    "child_project",
    "group",
    "duration",
    "assigned_to",
    "date",
    "story_type",
    "current_state",
    "estimate",
    "accepted_at",
    "requested_by",
    "owners",
    "labels",
    "before_id",
    "after_id",
    "text",
    "person",
    "story_id",
    "created_at",
    "updated_at",
    "fields.12345",
    "fields.54321",
];

/// A generated field: id, then (type, value) after and (type, value) before.
type GenField = (i64, (String, Value), (String, Value));

fn set(snapshot: &mut Option<Value>, key: &str, value: &Value) {
    if let Some(Value::Object(o)) = snapshot {
        o.insert(key.to_owned(), value.clone());
    }
}

prop_compose! {
    /// A sample event with some snapshot values replaced by arbitrary JSON, an arbitrary
    /// `changed` list, time and version, and sometimes a snapshot missing altogether.
    fn arb_event()(
        index in 0..EventType::ALL.len(),
        edits in prop::collection::vec((0..KEYS.len(), arb_json(), any::<bool>()), 0..4),
        changed in prop::collection::vec(0..KEYS.len(), 0..4),
        occurred_at in any::<i64>(),
        version in any::<Option<i64>>(),
        drop in 0u8..8,
    ) -> Event {
        let mut e = samples::event(EventType::ALL[index]);
        for (k, v, in_before) in &edits {
            set(if *in_before { &mut e.before } else { &mut e.after }, KEYS[*k], v);
            set(&mut e.parent_after, KEYS[*k], v);
        }
        if !changed.is_empty() {
            e.changed = changed.iter().map(|k| KEYS[*k].to_owned()).collect();
        }
        e.occurred_at = occurred_at;
        e.project_version = version;
        match drop {
            0 => e.before = None,
            1 => e.after = None,
            2 => e.parent_before = None,
            3 => e.project = None,
            _ => {}
        }
        e
    }
}

proptest! {
    #[test]
    fn every_body_is_valid_deterministic_json(event in arb_event()) {
        let ctx = samples::context();
        for format in Format::ALL {
            let first = render(format, &event, &ctx);
            prop_assert_eq!(&first, &render(format, &event, &ctx));
            if let Some(r) = first {
                prop_assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
                prop_assert_eq!(&r.headers[0], &("Herald-Event-Type", event.event_type.to_string()));
            }
        }
    }

    #[test]
    fn projectrak_values_are_strings_null_string_arrays_or_milestones(
        fields in prop::collection::vec((0i64..6, arb_field_value(), arb_field_value()), 0..8),
    ) {
        let mut e = samples::event(EventType::PROJECT_UPDATED);
        let build = |pick: fn(&GenField) -> &Value| {
            Value::Array(fields.iter().map(|f| {
                json!({"id": f.0, "name": format!("F{}", f.0), "type": (f.1).0, "value": pick(f)})
            }).collect())
        };
        set(&mut e.before, "fields", &build(|f| &(f.2).1));
        set(&mut e.after, "fields", &build(|f| &(f.1).1));
        let Some(r) = render(Format::Projectrak, &e, &samples::context()) else {
            return Ok(());
        };
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let out = body["data"]["fields"].as_array().unwrap();
        prop_assert!(!out.is_empty());
        for f in out {
            prop_assert!(f["type"] != "formula");
            for v in [&f["value"]["current"], &f["value"]["previous"]] {
                prop_assert!(projectrak_value_ok(v, f["type"].as_str().unwrap()), "bad value {}", v);
            }
        }
    }
}

fn projectrak_value_ok(v: &Value, field_type: &str) -> bool {
    match v {
        Value::Null | Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        Value::Object(o) => {
            field_type == "milestone"
                && o.len() == 4
                && ["id", "date", "name", "linkedIssuesId"]
                    .iter()
                    .all(|k| o.contains_key(*k))
                && o["linkedIssuesId"].is_array()
        }
        _ => false,
    }
}

/// A field type with a value: usually well-typed for it, sometimes arbitrary JSON.
fn arb_field_value() -> impl Strategy<Value = (String, Value)> {
    let types = prop::sample::select(vec![
        "text",
        "textarea",
        "number",
        "date",
        "duration",
        "priority",
        "status",
        "list",
        "multilist",
        "user",
        "multiuser",
        "project",
        "multiproject",
        "milestone",
        "formula",
    ]);
    (
        types,
        any::<bool>(),
        arb_json(),
        any::<i64>(),
        any::<f64>(),
        "\\PC{0,8}",
    )
        .prop_map(|(t, typed, junk, i, f, s)| {
            let user =
                json!({"id": i, "uuid": "u", "account_id": s, "name": s, "initials": "X", "email": ""});
            let project = json!({"id": i, "uuid": "p", "key": s, "name": s});
            let value = match (typed, t) {
                (false, _) => junk,
                (_, "number" | "formula") => json!(f),
                (_, "duration") => json!(i),
                (_, "date") => json!("2024-02-29"),
                (_, "multilist") => json!([s, "b"]),
                (_, "user") => user,
                (_, "multiuser") => json!([user]),
                (_, "project") => project,
                (_, "multiproject") => json!([project]),
                (_, "milestone") => {
                    json!({"id": i, "date": "2025-02-22", "name": s, "linked_issues_id": [i]})
                }
                _ => json!(s),
            };
            (t.to_owned(), value)
        })
}
