//! Field definitions kept in memory per tenant, so a project change does not read them
//! again: on the fan-out bench that look-up was one of four queries before each change.
//!
//! Why it is safe with several servers (PostgreSQL) and the CLI (SQLite) writing: every
//! change to a tenant's definitions raises `tenants.fields_version` in the same
//! transaction, and every API token is read together with that version. Definitions are
//! kept under the version the *requesting* token saw, and they are loaded after that
//! read, so they are at least that new; a request whose token shows another version
//! loads them again. A change therefore always validates against definitions no older
//! than those committed when its request was authenticated — what reading them per
//! request gave, without the query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::field::FieldDef;
use crate::store::{Store, StoreResult};

/// A tenant's definitions and the version they were loaded under.
type Kept = (i64, Arc<Vec<FieldDef>>);

/// The cache: tenant id → [`Kept`]. Bounded by the number of tenants; tenant ids are never
/// reused.
#[derive(Debug, Default)]
pub struct FieldCache {
    tenants: Mutex<HashMap<i64, Kept>>,
}

impl FieldCache {
    /// The tenant's definitions for a request that read `version` with its token: from
    /// memory when they were loaded under that same version, else from the store (and
    /// then kept under it).
    pub async fn get(
        &self,
        store: &dyn Store,
        tenant_id: i64,
        version: i64,
    ) -> StoreResult<Arc<Vec<FieldDef>>> {
        if let Some(defs) = self.kept(tenant_id, version) {
            return Ok(defs);
        }
        let defs = Arc::new(super::fields(store, tenant_id).await?);
        self.lock().insert(tenant_id, (version, defs.clone()));
        Ok(defs)
    }

    fn kept(&self, tenant_id: i64, version: i64) -> Option<Arc<Vec<FieldDef>>> {
        match self.lock().get(&tenant_id) {
            Some((v, defs)) if *v == version => Some(defs.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Kept>> {
        // The map holds no invariant a panicking holder could break.
        self.tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
