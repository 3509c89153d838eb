//! Reference resolution for one request: every user account id and entity id the input
//! mentions is loaded up front (two queries), so validation afterwards is pure and the
//! same rules serve attributes and typed project fields.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::domain::attrs::Refs;
use crate::domain::event::{ProjectRef, UserRef};
use crate::domain::event_type::EntityKind;
use crate::domain::field::{RefLookup, RefResolver};
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

impl Preloaded {
    /// Loads every user and entity `input` could refer to.
    pub async fn load(store: &dyn Store, tenant_id: i64, input: &Value) -> StoreResult<Self> {
        let (mut strings, mut ints) = (Vec::new(), Vec::new());
        collect(input, &mut strings, &mut ints, 0);
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
