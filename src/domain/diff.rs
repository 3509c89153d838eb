//! What changed between two snapshots: the event's `changed` list (see
//! [`crate::domain::event`]) and its inverse check, [`apply`].
//!
//! Top-level keys are compared by JSON equality; snapshots are produced canonically, so
//! equal data is equal JSON. `updated_at` is never reported: it changes on every save and
//! would make every event look like a change. The Projectrak `fields` array is compared
//! per field: a field counts as changed when its `value` differs (or it appears or
//! disappears), and is reported as `fields.<id>`. A field renamed or retyped with the same
//! value is not a change of the project, and is not reported. If either side's `fields`
//! is not a well-formed array of objects with unique integer ids, the whole key is
//! compared and reported as `fields`.
//!
//! Key order is `after`'s (sorted: serde_json's map is a `BTreeMap` here), followed by keys
//! only in `before`; `fields.<id>` entries take the place of `fields`, in `after`'s array
//! order followed by fields only in `before`.

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// The key never reported as changed.
pub const IGNORED_KEY: &str = "updated_at";
/// The key of the Projectrak field array, diffed per field.
pub const FIELDS_KEY: &str = "fields";
/// Prefix of per-field change entries: `fields.<id>`.
const FIELD_PREFIX: &str = "fields.";

/// The changed keys of two snapshot objects (see module docs). A side that is not an
/// object (a create's missing `before`, say) counts as an empty object.
pub fn diff(before: &Value, after: &Value) -> Vec<String> {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut changed = Vec::new();
    for (key, av) in a {
        if key == IGNORED_KEY {
            continue;
        }
        let bv = b.get(key);
        if key == FIELDS_KEY {
            if let Some(ids) = bv.and_then(|bv| changed_fields(bv, av)) {
                changed.extend(ids.into_iter().map(|id| format!("{FIELD_PREFIX}{id}")));
                continue;
            }
        }
        if bv != Some(av) {
            changed.push(key.clone());
        }
    }
    for key in b.keys() {
        if key != IGNORED_KEY && !a.contains_key(key) {
            changed.push(key.clone());
        }
    }
    changed
}

/// Copies the after-values of `changed` keys onto `before`: a key missing from `after` is
/// removed, and `fields.<id>` replaces (adds, removes) that one entry of the field array.
/// `apply(b, a, &diff(b, a))` equals `a` except for `updated_at`, which stays `before`'s.
pub fn apply(before: &Value, after: &Value, changed: &[String]) -> Value {
    let empty = Map::new();
    let a = after.as_object().unwrap_or(&empty);
    let mut out = before.as_object().cloned().unwrap_or_default();
    let mut field_ids = Vec::new();
    for key in changed {
        if let Some(id) = field_id(key) {
            field_ids.push(id);
            continue;
        }
        match a.get(key) {
            Some(v) => out.insert(key.clone(), v.clone()),
            None => out.remove(key),
        };
    }
    if !field_ids.is_empty() {
        match merge_fields(out.get(FIELDS_KEY), a.get(FIELDS_KEY), &field_ids) {
            Some(fields) => out.insert(FIELDS_KEY.to_owned(), fields),
            None => out.remove(FIELDS_KEY),
        };
    }
    Value::Object(out)
}

/// The id in a `fields.<id>` key.
fn field_id(key: &str) -> Option<i64> {
    key.strip_prefix(FIELD_PREFIX)?.parse().ok()
}

/// The entries of a well-formed field array, with their ids; `None` if malformed.
fn field_entries(v: &Value) -> Option<Vec<(i64, &Map<String, Value>)>> {
    let mut out: Vec<(i64, &Map<String, Value>)> = Vec::new();
    for entry in v.as_array()? {
        let entry = entry.as_object()?;
        let id = entry.get("id")?.as_i64()?;
        if out.iter().any(|(seen, _)| *seen == id) {
            return None;
        }
        out.push((id, entry));
    }
    Some(out)
}

/// Ids of fields whose value differs, or that exist on one side only.
fn changed_fields(before: &Value, after: &Value) -> Option<Vec<i64>> {
    let b = field_entries(before)?;
    let a = field_entries(after)?;
    fn find<'a>(list: &[(i64, &'a Map<String, Value>)], id: i64) -> Option<Option<&'a Value>> {
        list.iter().find(|(i, _)| *i == id).map(|(_, e)| e.get("value"))
    }
    let mut ids = Vec::new();
    for (id, entry) in &a {
        if find(&b, *id) != Some(entry.get("value")) {
            ids.push(*id);
        }
    }
    for (id, _) in &b {
        if find(&a, *id).is_none() {
            ids.push(*id);
        }
    }
    Some(ids)
}

/// `after`'s field array with the entries not in `ids` taken from `before`; `None` when
/// `after` has no field array.
fn merge_fields(before: Option<&Value>, after: Option<&Value>, ids: &[i64]) -> Option<Value> {
    let after = after?;
    let Some(a) = field_entries(after) else {
        return Some(after.clone());
    };
    let b = before.and_then(field_entries).unwrap_or_default();
    let merged = a
        .into_iter()
        .map(|(id, entry)| {
            let kept = b.iter().find(|(i, _)| *i == id && !ids.contains(&id));
            Value::Object(kept.map_or(entry, |(_, e)| e).clone())
        })
        .collect();
    Some(Value::Array(merged))
}
