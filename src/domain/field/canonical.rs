//! The canonical JSON of a field value: the `value` inside a project snapshot's `fields[]`
//! (schema in [`crate::domain::event`]). It is stored in the event log, shown by the
//! `standard` format and compared by the differ, so every value has exactly one encoding.

use serde_json::{json, Value};
use uuid::Uuid;

use super::error::FieldValueError;
use super::input::Decoder;
use super::value::{format_date, FieldValue};
use super::FieldType;
use crate::domain::event::{ProjectRef, UserRef};

/// Expands the users and projects a value refers to into the [`UserRef`] / [`ProjectRef`]
/// objects snapshots carry, so payload renderers never need the store.
pub trait RefResolver {
    /// The user with this account id, if the tenant has one.
    fn user(&self, account_id: &str) -> Option<UserRef>;
    /// The project with this id, if the tenant has one.
    fn project(&self, id: i64) -> Option<ProjectRef>;
}

/// Largest magnitude up to which every integer is an exact `f64` (2^53).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Encodes a value canonically: text, option names and dates as strings, numbers as JSON
/// numbers (integers when integral and exact, so `23000` not `23000.0`), durations as
/// integer ms, users/projects expanded through `resolver`, milestones as
/// `{id, date, name, linked_issues_id}`; `null` / `[]` when unset.
///
/// A user or project the resolver no longer knows (deleted since the value was set) is
/// still written, as a placeholder ref with a nil UUID, id 0 for users and empty names,
/// so the account id / project id survives and [`from_canonical_json`] stays its inverse.
pub fn to_canonical_json(value: &FieldValue, resolver: &dyn RefResolver) -> Value {
    match value {
        FieldValue::Null => Value::Null,
        FieldValue::Text(s) | FieldValue::Option(s) => Value::String(s.clone()),
        FieldValue::Number(x) => number_json(x.get()),
        FieldValue::Date(d) => Value::String(format_date(*d)),
        FieldValue::Duration(ms) => Value::from(ms.get()),
        FieldValue::Options(list) => list.iter().cloned().map(Value::String).collect(),
        FieldValue::User(id) => user_json(resolver, id),
        FieldValue::Users(ids) => ids.iter().map(|id| user_json(resolver, id)).collect(),
        FieldValue::Project(id) => project_json(resolver, *id),
        FieldValue::Projects(ids) => ids.iter().map(|id| project_json(resolver, *id)).collect(),
        FieldValue::Milestone {
            id,
            date,
            name,
            linked_issues_id,
        } => json!({
            "id": id,
            "date": format_date(*date),
            "name": name,
            "linked_issues_id": linked_issues_id,
        }),
    }
}

/// Decodes canonical JSON written by [`to_canonical_json`] for a field of `field_type`
/// (formula values decode as numbers). The shape is checked, but not option membership or
/// user/project existence: stored history must stay readable after options, users or
/// projects are removed. Errors name the field by its type (the caller knows which field).
pub fn from_canonical_json(field_type: FieldType, json: &Value) -> Result<FieldValue, FieldValueError> {
    let label = format!("the {field_type} value");
    Decoder {
        field: &label,
        checks: None,
    }
    .decode(field_type, json)
}

/// A JSON number with one spelling per value: integral values within `f64`'s exact range
/// become JSON integers, everything else a float. serde_json parses those spellings back
/// into the same variants, so stored snapshots compare equal after a round trip.
fn number_json(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() <= EXACT_INT {
        // Exact: |x| ≤ 2^53 and integral, so the cast neither truncates nor saturates.
        Value::from(x as i64)
    } else {
        // `Finite` rules out the one failure (non-finite input).
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn user_json(resolver: &dyn RefResolver, account_id: &str) -> Value {
    let user = resolver.user(account_id).unwrap_or_else(|| UserRef {
        id: 0,
        uuid: Uuid::nil(),
        account_id: account_id.to_owned(),
        name: String::new(),
        initials: String::new(),
        email: String::new(),
    });
    // Serialising plain strings and integers cannot fail; keep the id if it somehow did.
    serde_json::to_value(&user).unwrap_or_else(|_| json!({ "account_id": account_id }))
}

fn project_json(resolver: &dyn RefResolver, id: i64) -> Value {
    let project = resolver.project(id).unwrap_or_else(|| ProjectRef {
        id,
        uuid: Uuid::nil(),
        key: String::new(),
        name: String::new(),
    });
    serde_json::to_value(&project).unwrap_or_else(|_| json!({ "id": id }))
}
