//! Diff tests: examples for the reporting rules; properties that an unchanged snapshot has
//! no changes and that applying the reported changes reproduces the new snapshot.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;

fn project(budget: f64, status: Value, updated_at: i64) -> Value {
    json!({
        "id": 13647, "key": "DEMO", "name": "Demo project", "budget": budget,
        "updated_at": updated_at,
        "fields": [
            {"id": 1, "name": "Status", "type": "status", "value": status},
            {"id": 10001, "name": "Budget", "type": "number", "value": 23000},
        ],
    })
}

#[test]
fn reports_changed_keys_and_fields_but_not_updated_at() {
    let before = project(1.0, json!("On track"), 1);
    let after = project(2.0, json!("Done"), 2);
    assert_eq!(diff(&before, &after), ["budget", "fields.1"]);
    assert!(diff(&before, &project(1.0, json!("On track"), 99)).is_empty());
}

#[test]
fn keys_only_in_before_come_last() {
    let before = json!({"a": 1, "z": 1, "gone": true});
    let after = json!({"a": 2, "new": null, "z": 1});
    assert_eq!(diff(&before, &after), ["a", "new", "gone"]);
    assert_eq!(apply(&before, &after, &diff(&before, &after)), after);
}

#[test]
fn fields_added_removed_and_renamed() {
    let before = json!({"fields": [
        {"id": 1, "name": "Status", "type": "status", "value": "On track"},
        {"id": 2, "name": "Priority", "type": "priority", "value": null},
    ]});
    let after = json!({"fields": [
        {"id": 1, "name": "State", "type": "status", "value": "On track"},
        {"id": 3, "name": "Start date", "type": "date", "value": "2025-02-22"},
    ]});
    // The rename of field 1 is not a change of the project.
    assert_eq!(diff(&before, &after), ["fields.3", "fields.2"]);
    let applied = apply(&before, &after, &diff(&before, &after));
    assert_eq!(applied["fields"][0]["name"], "Status");
    assert_eq!(applied["fields"][1], after["fields"][1]);
    assert_eq!(applied["fields"].as_array().map(Vec::len), Some(2));
}

#[test]
fn malformed_field_arrays_are_compared_whole() {
    let before = json!({"fields": [{"id": 1, "value": 1}, {"id": 1, "value": 2}]});
    let after = json!({"fields": [{"id": 1, "value": 3}]});
    assert_eq!(diff(&before, &after), ["fields"]);
    assert_eq!(apply(&before, &after, &diff(&before, &after)), after);
    assert_eq!(diff(&json!({}), &after), ["fields"]);
}

#[test]
fn non_objects_count_as_empty() {
    let after = json!({"name": "x", "updated_at": 5});
    assert_eq!(diff(&Value::Null, &after), ["name"]);
    assert_eq!(diff(&after, &Value::Null), ["name"]);
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        (-3i64..3).prop_map(|i| Value::from(i as f64 / 2.0)),
        prop::sample::select(vec!["", "a", "On track", "Done"]).prop_map(Value::from),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(vec!["id", "name"]), inner, 0..2)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A field array: some of a fixed set of fields, in id order, with the same metadata for
/// the same id (as snapshots of one tenant have), and arbitrary values.
fn arb_fields() -> impl Strategy<Value = Value> {
    let ids = [1i64, 2, 5, 10_001, 10_002];
    prop::collection::vec((any::<bool>(), arb_json()), ids.len()).prop_map(move |slots| {
        let entries: Vec<Value> = ids
            .iter()
            .zip(slots)
            .filter(|(_, (present, _))| *present)
            .map(|(id, (_, value))| json!({"id": id, "name": format!("F{id}"), "type": "number", "value": value}))
            .collect();
        Value::Array(entries)
    })
}

fn arb_snapshot() -> impl Strategy<Value = Value> {
    let keys = vec![
        "budget",
        "custom",
        "description",
        "key",
        "manager",
        "name",
        "updated_at",
    ];
    (
        prop::collection::btree_map(prop::sample::select(keys), arb_json(), 0..7),
        prop_oneof![Just(None), arb_fields().prop_map(Some), arb_json().prop_map(Some)],
    )
        .prop_map(|(map, fields)| {
            let mut obj: Map<String, Value> = map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(f) = fields {
                obj.insert(FIELDS_KEY.to_owned(), f);
            }
            Value::Object(obj)
        })
}

fn without_updated_at(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove(IGNORED_KEY);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_snapshot_does_not_differ_from_itself(a in arb_snapshot()) {
        prop_assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn applying_the_changes_reproduces_after(before in arb_snapshot(), after in arb_snapshot()) {
        let changed = diff(&before, &after);
        prop_assert!(!changed.iter().any(|k| k == IGNORED_KEY));
        let applied = apply(&before, &after, &changed);
        prop_assert_eq!(without_updated_at(&applied), without_updated_at(&after));
        if without_updated_at(&before) == without_updated_at(&after) {
            prop_assert!(changed.is_empty());
        } else {
            prop_assert!(!changed.is_empty());
        }
    }

    #[test]
    fn reported_plain_keys_really_differ(before in arb_snapshot(), after in arb_snapshot()) {
        for key in diff(&before, &after) {
            if !key.starts_with(FIELD_PREFIX) {
                prop_assert_ne!(before.get(&key), after.get(&key), "{}", key);
            }
        }
    }
}
