//! The enabled webhooks of each tenant, kept in memory for fan-out.
//!
//! Why: fan-out runs inside every change's write, and reading (and JSON-parsing) the
//! tenant's webhooks was one of the few statements a change makes — on SQLite the costliest
//! step of the writer's work, on PostgreSQL one of four round trips per change.
//!
//! Why it is safe, on each backend:
//! - *SQLite*: one process owns the file and every write, including every write to
//!   `webhooks`, goes through the single writer connection. Each such write calls
//!   [`SubscriberCache::forget`] while it still holds that connection (before committing),
//!   and the cache is only filled by a fan-out holding it too, so a fan-out never sees a
//!   list older than the last committed webhook change. Lists are kept at version 0.
//! - *PostgreSQL*, several nodes writing: every write to what fan-out reads of a webhook
//!   raises `tenants.webhooks_version` in its transaction (a trigger, migration 0009), and
//!   every API token is read together with that version. A list is kept under the version
//!   the request that read it saw with its token, and it was read after that, so it is at
//!   least that new; a request uses a kept list only when its own version is no newer. A
//!   change therefore fans out to webhooks no older than those committed when its request
//!   was authenticated (the same argument as `tracker::FieldCache`'s): a webhook created
//!   before that sees the change, one deleted or disabled before it does not. One changed
//!   while the request runs may or may not, as when the change read them itself a few
//!   milliseconds later. Requests without a version read them. Versions only rise; a
//!   database restored to an older state needs its nodes restarted (as for field
//!   definitions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::delivery::fanout::Subscriber;

/// A tenant's enabled webhooks (in creation order) and the version they are at least as
/// new as.
type Kept = (i64, Arc<Vec<Subscriber>>);

/// Tenant id → [`Kept`]. Bounded by the number of tenants (ids are never reused).
#[derive(Debug, Default)]
pub struct SubscriberCache {
    tenants: Mutex<HashMap<i64, Kept>>,
}

impl SubscriberCache {
    /// The kept list for `tenant_id` if it is at least as new as `version`.
    pub fn get(&self, tenant_id: i64, version: i64) -> Option<Arc<Vec<Subscriber>>> {
        match self.lock().get(&tenant_id) {
            Some((v, subs)) if *v >= version => Some(Arc::clone(subs)),
            _ => None,
        }
    }

    /// Keeps `subs` as `tenant_id`'s enabled webhooks at `version`, unless a list kept at
    /// a newer version is there already (a slower request's older read must not replace
    /// it).
    pub fn put(&self, tenant_id: i64, version: i64, subs: Arc<Vec<Subscriber>>) {
        let mut tenants = self.lock();
        match tenants.get(&tenant_id) {
            Some((v, _)) if *v > version => {}
            _ => {
                tenants.insert(tenant_id, (version, subs));
            }
        }
    }

    /// Drops every kept list: a webhook was created, changed, disabled or deleted through
    /// SQLite's writer. (Webhook changes are rare; clearing all tenants keeps the callers
    /// simple.)
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Kept>> {
        // The map holds no invariant a panic could break halfway.
        self.tenants.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::Ordering;
    use crate::formats::Format;
    use crate::store::TargetRow;

    fn sub() -> Subscriber {
        Subscriber {
            format: Format::Standard,
            event_types: Vec::new(),
            project_ids: Vec::new(),
            ordering: Ordering::None,
            target: Arc::new(TargetRow::example()),
        }
    }

    #[test]
    fn forget_drops_every_tenant() {
        let c = SubscriberCache::default();
        c.put(1, 0, Arc::new(vec![sub()]));
        c.put(2, 0, Arc::new(Vec::new()));
        assert_eq!(c.get(1, 0).map(|s| s.len()), Some(1));
        assert_eq!(c.get(2, 0).map(|s| s.len()), Some(0));
        assert!(c.get(3, 0).is_none());
        c.forget();
        assert!(c.get(1, 0).is_none() && c.get(2, 0).is_none());
    }

    #[test]
    fn a_list_serves_requests_that_saw_its_version_or_an_older_one() {
        let c = SubscriberCache::default();
        c.put(1, 5, Arc::new(vec![sub()]));
        assert!(c.get(1, 4).is_some() && c.get(1, 5).is_some());
        // A request that saw a newer version must read the webhooks again.
        assert!(c.get(1, 6).is_none());
    }

    #[test]
    fn an_older_read_does_not_replace_a_newer_list() {
        let c = SubscriberCache::default();
        c.put(1, 7, Arc::new(vec![sub(), sub()]));
        c.put(1, 6, Arc::new(Vec::new()));
        assert_eq!(c.get(1, 7).map(|s| s.len()), Some(2));
        // The same or a newer version replaces it.
        c.put(1, 7, Arc::new(vec![sub()]));
        assert_eq!(c.get(1, 7).map(|s| s.len()), Some(1));
        c.put(1, 9, Arc::new(Vec::new()));
        assert_eq!(c.get(1, 8).map(|s| s.len()), Some(0));
    }
}
