//! The enabled webhooks of each tenant, kept in memory for fan-out on SQLite.
//!
//! Why: fan-out runs inside every change's write transaction, and on SQLite all writes
//! queue for one connection, so each statement there is throughput lost for every caller.
//! Reading (and JSON-parsing) the tenant's webhooks was the costliest step of a change.
//!
//! Why it is safe: on SQLite one process owns the file and every write, including every
//! write to `webhooks`, goes through the single writer connection. Each such write calls
//! [`SubscriberCache::forget`] while it still holds that connection (before committing),
//! and the cache is only filled by a fan-out holding it too, so a fan-out never sees a
//! list older than the last committed webhook change. PostgreSQL, with several nodes
//! writing, does not use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::delivery::fanout::Subscriber;

/// Tenant id → that tenant's enabled webhooks, in creation order.
#[derive(Debug, Default)]
pub struct SubscriberCache {
    tenants: Mutex<HashMap<i64, Arc<Vec<Subscriber>>>>,
}

impl SubscriberCache {
    /// The cached list for `tenant_id`, if any.
    pub fn get(&self, tenant_id: i64) -> Option<Arc<Vec<Subscriber>>> {
        self.lock().get(&tenant_id).cloned()
    }

    /// Remembers `subs` as `tenant_id`'s enabled webhooks.
    pub fn put(&self, tenant_id: i64, subs: Arc<Vec<Subscriber>>) {
        self.lock().insert(tenant_id, subs);
    }

    /// Drops every cached list: a webhook was created, changed, disabled or deleted.
    /// (Webhook changes are rare; clearing all tenants keeps the callers simple.)
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Vec<Subscriber>>>> {
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
        c.put(1, Arc::new(vec![sub()]));
        c.put(2, Arc::new(Vec::new()));
        assert_eq!(c.get(1).map(|s| s.len()), Some(1));
        assert_eq!(c.get(2).map(|s| s.len()), Some(0));
        assert!(c.get(3).is_none());
        c.forget();
        assert!(c.get(1).is_none() && c.get(2).is_none());
    }
}
