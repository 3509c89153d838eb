//! Tracker changes: the one path every create, update and delete of tracker data takes,
//! whether it comes from the JSON API or the admin UI. It loads what validation needs
//! (references, field definitions), hands the store a pure `compute` function, and lets
//! the store commit the change together with its event.

mod field_cache;
pub mod project_fields;
pub mod refs;

use serde_json::{Map, Value};

use crate::domain::attrs;
use crate::domain::event::UserRef;
use crate::domain::event_type::EntityKind;
use crate::domain::field::{system_fields, FieldDef};
use crate::domain::webhook::FieldError;
use crate::store::{ChangeOp, ChangeOutcome, ChangeRequest, Position, Store, StoreError, StoreResult, User};
use crate::timefmt::now_ms;

pub use field_cache::FieldCache;
pub use refs::{user_ref, Preloaded};

/// The tenant's field definitions, creating Projectrak's predefined ones on first use.
pub async fn fields(store: &dyn Store, tenant_id: i64) -> StoreResult<Vec<FieldDef>> {
    let defs = store.list_fields(tenant_id).await?;
    if defs.iter().any(|d| d.system) {
        return Ok(defs);
    }
    store
        .ensure_system_fields(tenant_id, &system_fields(), now_ms())
        .await?;
    store.list_fields(tenant_id).await
}

/// Who a change is attributed to: the token's user, or — for tokens with `events:write`
/// relaying another system's changes — the user named by `Herald-Acting-User`.
pub async fn actor(
    store: &dyn Store,
    tenant_id: i64,
    token_user: &UserRef,
    acting: Option<&str>,
    may_act: bool,
) -> Result<UserRef, StoreError> {
    match acting {
        Some(account) => {
            if !may_act {
                return Err(StoreError::Invalid(vec![FieldError::new(
                    "Herald-Acting-User",
                    "Herald-Acting-User requires a token with the events:write scope",
                )]));
            }
            let users: Vec<User> = store
                .users_by_account_ids(tenant_id, &[account.to_owned()])
                .await?;
            users.first().map(user_ref).ok_or_else(|| {
                StoreError::Invalid(vec![FieldError::new(
                    "Herald-Acting-User",
                    format!("no user with account id `{account}` in this tenant"),
                )])
            })
        }
        None => Ok(token_user.clone()),
    }
}

/// One requested change, as the API or UI parsed it.
#[derive(Debug)]
pub struct Change<'a> {
    /// Tenant id.
    pub tenant_id: i64,
    /// Tenant slug.
    pub tenant: &'a str,
    /// Entity kind.
    pub kind: EntityKind,
    /// Create / update / delete.
    pub op: ChangeOp,
    /// Attributes submitted (empty for deletes).
    pub body: Map<String, Value>,
    /// Author.
    pub actor: &'a UserRef,
    /// The tenant's `fields_version` as read with the caller's token (see [`FieldCache`]).
    pub fields_version: i64,
    /// The tenant's webhooks version as read with the caller's token (fan-out may use
    /// webhooks cached at this version or later: `store/subscriber_cache.rs`).
    pub webhooks_version: i64,
}

/// Reads a story position from `before_id` / `after_id` in the body.
pub fn position(body: &Map<String, Value>) -> Result<Option<Position>, StoreError> {
    let get = |k: &str| {
        body.iter()
            .find(|(key, _)| attrs::norm_key(key) == k)
            .map(|(_, v)| v)
    };
    let bad = |f: &str| StoreError::Invalid(vec![FieldError::new(f, format!("{f} must be a story id"))]);
    match (get("beforeid"), get("afterid")) {
        (Some(b), Some(a)) if !b.is_null() && !a.is_null() => {
            Err(StoreError::Invalid(vec![FieldError::new(
                "before_id",
                "give before_id or after_id, not both",
            )]))
        }
        (Some(b), _) if !b.is_null() => b
            .as_i64()
            .map(|x| Some(Position::Before(x)))
            .ok_or_else(|| bad("before_id")),
        (_, Some(a)) if !a.is_null() => a
            .as_i64()
            .map(|x| Some(Position::After(x)))
            .ok_or_else(|| bad("after_id")),
        _ => Ok(None),
    }
}

/// Applies a change: validates, commits it with its event, and returns the outcome.
/// Project field definitions come from `field_cache` (no query while they are current).
pub async fn apply(store: &dyn Store, field_cache: &FieldCache, c: Change<'_>) -> StoreResult<ChangeOutcome> {
    let now = now_ms();
    let defs = if c.kind == EntityKind::Project {
        field_cache.get(store, c.tenant_id, c.fields_version).await?
    } else {
        std::sync::Arc::default()
    };
    let refs = Preloaded::load(store, c.tenant_id, c.kind, &c.body, &defs).await?;
    let story_position = if c.kind == EntityKind::Story {
        position(&c.body)?
    } else {
        None
    };
    let kind = c.kind;
    let actor = c.actor.clone();
    let refs = std::sync::Arc::new(refs);
    let body = c.body;
    let compute = {
        let (refs, defs) = (refs.clone(), defs.clone());
        move |current: Option<&Map<String, Value>>| -> Result<Map<String, Value>, Vec<FieldError>> {
            let mut out = attrs::apply(kind, current, &body, &*refs, &actor);
            if kind == EntityKind::Story {
                out = out.and_then(|m| story_rules(current, m, now));
            }
            if kind != EntityKind::Project {
                return out;
            }
            let resolver = project_fields::WithStored::new(&*refs, current);
            let fields_input = body.iter().find(|(k, _)| k.as_str() == "fields").map(|(_, v)| v);
            match (
                out,
                project_fields::apply(&defs, current, fields_input, &resolver),
            ) {
                (Ok(mut m), Ok(f)) => {
                    m.insert("fields".into(), f);
                    Ok(m)
                }
                (Err(mut a), Err(b)) => {
                    a.extend(b);
                    Err(a)
                }
                (Err(a), _) | (_, Err(a)) => Err(a),
            }
        }
    };
    let normalize = move |data: &Map<String, Value>| -> Map<String, Value> {
        let resolver = project_fields::WithStored::new(&*refs, Some(data));
        project_fields::normalize(&defs, data, &resolver)
    };
    let req = ChangeRequest {
        tenant_id: c.tenant_id,
        tenant: c.tenant.to_owned(),
        kind: c.kind,
        op: c.op,
        position: story_position,
        actor: c.actor.clone(),
        now,
        webhooks_version: Some(c.webhooks_version),
        known: None,
        compute: std::sync::Arc::new(compute),
        normalize: if c.kind == EntityKind::Project {
            Some(std::sync::Arc::new(normalize))
        } else {
            None
        },
    };
    store.apply_change(req).await
}

/// Tracker's own rules: `accepted_at` follows acceptance, deadlines belong to releases.
fn story_rules(
    current: Option<&Map<String, Value>>,
    mut m: Map<String, Value>,
    now: i64,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let state = m.get("current_state").and_then(Value::as_str).unwrap_or("");
    let was = current
        .and_then(|c| c.get("current_state"))
        .and_then(Value::as_str);
    if state == "accepted" && was != Some("accepted") {
        m.insert("accepted_at".into(), now.into());
    } else if state != "accepted" {
        m.insert("accepted_at".into(), Value::Null);
    }
    let release = m.get("story_type").and_then(Value::as_str) == Some("release");
    if !release && !m.get("deadline").unwrap_or(&Value::Null).is_null() {
        return Err(vec![FieldError::new(
            "deadline",
            "only release stories have a deadline",
        )]);
    }
    Ok(m)
}
