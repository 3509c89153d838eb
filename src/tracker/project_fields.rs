//! A project's typed Projectrak fields: input (a map from field name or id to value) is
//! parsed against each field's type, merged onto the stored values, formulas are
//! recomputed, and the snapshot's `fields` array is rebuilt from today's definitions so
//! renamed or newly added fields never look like value changes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::domain::field::{
    from_canonical_json, parse_input, to_canonical_json, FieldDef, FieldType, FieldValue, RefLookup,
    RefResolver,
};
use crate::domain::formula::evaluate_formulas;
use crate::domain::webhook::FieldError;

/// Stored values by field id, decoded under the current definitions (a value that no
/// longer fits its field's type, e.g. after a retype, reads as unset).
pub fn stored_values(defs: &[FieldDef], data: &Map<String, Value>) -> BTreeMap<i64, FieldValue> {
    let mut out = BTreeMap::new();
    let Some(Value::Array(entries)) = data.get("fields") else {
        return out;
    };
    for e in entries {
        let Some(id) = e.get("id").and_then(Value::as_i64) else {
            continue;
        };
        if let Some(def) = defs.iter().find(|d| d.id == id) {
            let v = e.get("value").unwrap_or(&Value::Null);
            if let Ok(val) = from_canonical_json(def.field_type, v) {
                out.insert(id, val);
            }
        }
    }
    out
}

/// Finds the definition an input key names: a numeric id, or a name (case-insensitive).
pub(crate) fn find<'a>(defs: &'a [FieldDef], key: &str) -> Option<&'a FieldDef> {
    if let Ok(id) = key.parse::<i64>() {
        if let Some(d) = defs.iter().find(|d| d.id == id) {
            return Some(d);
        }
    }
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(key.trim()))
}

/// Applies `input` (the request's `fields` object, if any) to the stored values and
/// recomputes formulas; returns the snapshot's `fields` array.
pub fn apply(
    defs: &[FieldDef],
    current: Option<&Map<String, Value>>,
    input: Option<&Value>,
    refs: &(impl RefLookup + RefResolver),
) -> Result<Value, Vec<FieldError>> {
    let mut values = current.map(|c| stored_values(defs, c)).unwrap_or_default();
    let mut errs = Vec::new();
    match input {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (key, raw) in m {
                let path = format!("fields.{key}");
                let Some(def) = find(defs, key) else {
                    errs.push(FieldError::new(path, format!("unknown field `{key}`")));
                    continue;
                };
                match parse_input(def, raw, refs) {
                    Ok(v) => {
                        values.insert(def.id, v);
                    }
                    Err(e) => errs.push(FieldError::new(path, e.to_string())),
                }
            }
        }
        Some(_) => errs.push(FieldError::new(
            "fields",
            "fields must be an object mapping field names or ids to values",
        )),
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(render(defs, &values, refs, true))
}

/// Builds the `fields` array from values. With `recompute`, formulas are evaluated (an
/// evaluation problem, such as a formula referring to a since-deleted field, leaves that
/// formula unset); without, their stored values are kept.
pub fn render(
    defs: &[FieldDef],
    values: &BTreeMap<i64, FieldValue>,
    refs: &dyn RefResolver,
    recompute: bool,
) -> Value {
    let formulas = if recompute {
        evaluate_formulas(defs, values).unwrap_or_default()
    } else {
        values.clone()
    };
    let entries: Vec<Value> = defs
        .iter()
        .map(|d| {
            let v = if d.field_type == FieldType::Formula {
                formulas.get(&d.id)
            } else {
                values.get(&d.id)
            };
            let value = v.map_or_else(
                || {
                    if d.field_type.is_multi() {
                        json!([])
                    } else {
                        Value::Null
                    }
                },
                |v| to_canonical_json(v, refs),
            );
            json!({"id": d.id, "name": d.name, "type": d.field_type.as_str(), "value": value})
        })
        .collect();
    Value::Array(entries)
}

/// Re-expresses stored attributes under today's definitions (for diffing). Stored formula
/// values are kept: a formula's new definition shows up as a change on the next save.
pub fn normalize(defs: &[FieldDef], data: &Map<String, Value>, refs: &dyn RefResolver) -> Map<String, Value> {
    let mut out = data.clone();
    out.insert(
        "fields".into(),
        render(defs, &stored_values(defs, data), refs, false),
    );
    out
}

/// Resolves through `primary` (freshly loaded refs), falling back to the references
/// already stored in the project's values, so values nobody touched re-render exactly as
/// stored even when their users were not loaded for this request.
pub struct WithStored<'a, R> {
    primary: &'a R,
    users: std::collections::HashMap<String, crate::domain::event::UserRef>,
    projects: std::collections::HashMap<i64, crate::domain::event::ProjectRef>,
}

impl<'a, R: RefLookup + RefResolver> WithStored<'a, R> {
    /// Harvests the references stored in `data`'s `fields`.
    pub fn new(primary: &'a R, data: Option<&Map<String, Value>>) -> Self {
        let mut users = std::collections::HashMap::new();
        let mut projects = std::collections::HashMap::new();
        if let Some(Value::Array(entries)) = data.and_then(|d| d.get("fields")) {
            for e in entries {
                let items: Vec<&Value> = match e.get("value") {
                    Some(Value::Array(a)) => a.iter().collect(),
                    Some(v @ Value::Object(_)) => vec![v],
                    _ => continue,
                };
                for item in items {
                    match e.get("type").and_then(Value::as_str) {
                        Some("user" | "multiuser") => {
                            if let Ok(u) =
                                serde_json::from_value::<crate::domain::event::UserRef>(item.clone())
                            {
                                users.insert(u.account_id.clone(), u);
                            }
                        }
                        Some("project" | "multiproject") => {
                            if let Ok(p) =
                                serde_json::from_value::<crate::domain::event::ProjectRef>(item.clone())
                            {
                                projects.insert(p.id, p);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Self {
            primary,
            users,
            projects,
        }
    }
}

impl<R: RefLookup + RefResolver> RefResolver for WithStored<'_, R> {
    fn user(&self, account_id: &str) -> Option<crate::domain::event::UserRef> {
        RefResolver::user(self.primary, account_id).or_else(|| self.users.get(account_id).cloned())
    }
    fn project(&self, id: i64) -> Option<crate::domain::event::ProjectRef> {
        RefResolver::project(self.primary, id).or_else(|| self.projects.get(&id).cloned())
    }
}

impl<R: RefLookup + RefResolver> RefLookup for WithStored<'_, R> {
    fn user_exists(&self, account_id: &str) -> bool {
        self.primary.user_exists(account_id)
    }
    fn project_exists(&self, id: i64) -> bool {
        self.primary.project_exists(id)
    }
}
