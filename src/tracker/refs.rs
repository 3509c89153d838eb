//! Reference resolution for one request: every user account id and entity id the input
//! could refer to is loaded up front (at most two queries), so validation afterwards is
//! pure and the same rules serve attributes and typed project fields.
//!
//! Only values that can hold a reference are looked up: attributes and project fields of
//! a referring type (users, projects, portfolios, programs), and — to stay on the safe
//! side — anything the kind's attribute table or field definitions do not know (it is
//! rejected later, but never for want of a look-up). Texts, numbers, dates, options and
//! PPM custom attributes need none, so a change that sets only those costs no query here.

use std::collections::HashMap;

use serde_json::{json, Value};

use serde_json::Map;

use crate::domain::attrs::{self, Refs};
use crate::domain::event::{ProjectRef, UserRef};
use crate::domain::event_type::EntityKind;
use crate::domain::field::{FieldDef, RefLookup, RefResolver};
use crate::store::{EntityHead, Store, StoreResult, User};

/// Most distinct strings or numbers collected from one input (bounds the lookups).
const MAX_CANDIDATES: usize = 2000;

/// Users and entities an input may refer to.
#[derive(Debug, Default)]
pub struct Preloaded {
    users: HashMap<String, UserRef>,
    entities: HashMap<i64, EntityHead>,
}

/// Converts a stored user into the reference events carry.
pub fn user_ref(u: &User) -> UserRef {
    UserRef {
        id: u.id,
        uuid: u.uuid,
        account_id: u.account_id.clone(),
        name: u.name.clone(),
        initials: u.initials.clone(),
        email: u.email.clone(),
    }
}

fn collect(v: &Value, strings: &mut Vec<String>, ints: &mut Vec<i64>, depth: usize) {
    if depth > 8 || strings.len() + ints.len() > MAX_CANDIDATES {
        return;
    }
    match v {
        Value::String(s) if s.len() <= 128 => {
            strings.push(s.clone());
            if let Ok(n) = s.parse::<i64>() {
                ints.push(n);
            }
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ints.push(i);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, strings, ints, depth + 1)),
        Value::Object(m) => m.values().for_each(|x| collect(x, strings, ints, depth + 1)),
        _ => {}
    }
}

/// The values of a change's `body` that may refer to users or entities (see the module
/// doc): the input of [`Preloaded::load`]. `defs` are the tenant's field definitions
/// (projects only; other kinds have no `fields`).
pub fn reference_candidates<'a>(
    kind: EntityKind,
    body: &'a Map<String, Value>,
    defs: &[FieldDef],
) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for (key, value) in body {
        let nk = attrs::norm_key(key);
        if kind == EntityKind::Project && nk == "fields" {
            match value {
                Value::Object(fields) => out.extend(
                    fields
                        .iter()
                        .filter(|(name, _)| {
                            super::project_fields::find(defs, name).is_none_or(|d| d.field_type.refers())
                        })
                        .map(|(_, v)| v),
                ),
                other => out.push(other),
            }
            continue;
        }
        match attrs::spec_for(kind, &nk) {
            Some(spec) if !spec.ty.refers() => {}
            _ => out.push(value),
        }
    }
    out
}

impl Preloaded {
    /// Loads every user and entity the `candidates` (from [`reference_candidates`]) could
    /// refer to; no query at all when they name none.
    pub async fn load(
        store: &dyn Store,
        tenant_id: i64,
        kind: EntityKind,
        body: &Map<String, Value>,
        defs: &[FieldDef],
    ) -> StoreResult<Self> {
        let (mut strings, mut ints) = (Vec::new(), Vec::new());
        for value in reference_candidates(kind, body, defs) {
            collect(value, &mut strings, &mut ints, 0);
        }
        strings.sort();
        strings.dedup();
        ints.sort_unstable();
        ints.dedup();
        let users = store.users_by_account_ids(tenant_id, &strings).await?;
        let entities = store.entity_heads(tenant_id, &ints).await?;
        Ok(Self {
            users: users
                .iter()
                .map(|u| (u.account_id.clone(), user_ref(u)))
                .collect(),
            entities: entities.into_iter().map(|e| (e.id, e)).collect(),
        })
    }
}

impl Refs for Preloaded {
    fn user(&self, account_id: &str) -> Option<UserRef> {
        self.users.get(account_id).cloned()
    }
    fn project(&self, id: i64) -> Option<ProjectRef> {
        self.entities
            .get(&id)
            .filter(|e| e.kind == EntityKind::Project)
            .map(|e| ProjectRef {
                id: e.id,
                uuid: e.uuid,
                key: e.key.clone().unwrap_or_default(),
                name: e.name.clone(),
            })
    }
    fn named(&self, kind: EntityKind, id: i64) -> Option<Value> {
        self.entities
            .get(&id)
            .filter(|e| e.kind == kind)
            .map(|e| json!({"id": e.id, "uuid": e.uuid.to_string(), "name": e.name}))
    }
}

impl RefLookup for Preloaded {
    fn user_exists(&self, account_id: &str) -> bool {
        self.users.contains_key(account_id)
    }
    fn project_exists(&self, id: i64) -> bool {
        Refs::project(self, id).is_some()
    }
}

impl RefResolver for Preloaded {
    fn user(&self, account_id: &str) -> Option<UserRef> {
        Refs::user(self, account_id)
    }
    fn project(&self, id: i64) -> Option<ProjectRef> {
        Refs::project(self, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::field::{system_fields, FieldType};
    use serde_json::json;

    fn defs() -> Vec<FieldDef> {
        let mut d = system_fields();
        d.push(FieldDef::custom(10001, "Notes", FieldType::Text, Vec::new(), None).unwrap());
        d.push(FieldDef::custom(10002, "Reviewer", FieldType::User, Vec::new(), None).unwrap());
        d
    }

    fn candidates(kind: EntityKind, body: Value) -> Vec<Value> {
        let Value::Object(body) = body else { unreachable!() };
        reference_candidates(kind, &body, &defs())
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn values_that_cannot_refer_need_no_look_up() {
        let body = json!({
            "name": "ghost", "description": "u1", "custom": {"Owner": "u1"},
            "fields": {"Notes": "u1", "10001": "u2", "Status": "On track"}
        });
        assert_eq!(candidates(EntityKind::Project, body), Vec::<Value>::new());
    }

    #[test]
    fn referring_and_unknown_values_are_looked_up() {
        let body = json!({
            "fields": {"Reviewer": "u1", "stakeholders": ["u2"], "Related projects": [7], "Nope": "u3"},
            "Nope": "u4"
        });
        let got = candidates(EntityKind::Project, body);
        for v in [json!("u1"), json!(["u2"]), json!([7]), json!("u3"), json!("u4")] {
            assert!(got.contains(&v), "{v} missing from {got:?}");
        }
        assert_eq!(got.len(), 5);
        let story = json!({"owners": ["u1"], "RequestedBy": "u2", "name": "u3"});
        assert_eq!(candidates(EntityKind::Story, story).len(), 2);
        assert_eq!(
            candidates(EntityKind::Project, json!({"fields": "u1"})),
            vec![json!("u1")]
        );
    }
}
