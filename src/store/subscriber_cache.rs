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
//! list older than the last committed webhook change.
//!
//! PostgreSQL, with several nodes writing, uses [`GenerationCache`] instead: every
//! webhook change on any node raises the database's webhook generation (migration 0008)
//! in its transaction, a node's lists are kept under the generation they were read with,
//! and a change's write only goes ahead while the generation is still that one — checked
//! by the very statement that writes the event and its deliveries, so no round trip is
//! spent on it (`common_fanout.rs`).

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

/// PostgreSQL: tenant id → enabled webhooks, all read under one webhook generation.
#[derive(Debug, Default)]
pub struct GenerationCache {
    inner: Mutex<Generation>,
}

/// The lists read under `generation`.
#[derive(Debug, Default)]
struct Generation {
    generation: i64,
    tenants: HashMap<i64, Arc<Vec<Subscriber>>>,
}

impl GenerationCache {
    /// `tenant_id`'s cached list and the generation it was read under, if any.
    pub fn get(&self, tenant_id: i64) -> Option<(i64, Arc<Vec<Subscriber>>)> {
        let g = self.lock();
        g.tenants.get(&tenant_id).map(|s| (g.generation, Arc::clone(s)))
    }

    /// `tenant_id`'s list if it was read under `generation`.
    pub fn get_at(&self, tenant_id: i64, generation: i64) -> Option<Arc<Vec<Subscriber>>> {
        self.get(tenant_id)
            .filter(|(g, _)| *g == generation)
            .map(|(_, s)| s)
    }

    /// Remembers `subs`, read under `generation`. A newer generation drops every list
    /// read under an older one; a list read under an older one than the cache's is not
    /// kept (a slow reader must not bring back what a webhook change replaced).
    pub fn put(&self, tenant_id: i64, generation: i64, subs: Arc<Vec<Subscriber>>) {
        let mut g = self.lock();
        if generation > g.generation {
            g.generation = generation;
            g.tenants.clear();
        }
        if generation == g.generation {
            g.tenants.insert(tenant_id, subs);
        }
    }

    /// Drops every list: a write found the generation moved on.
    pub fn forget(&self) {
        self.lock().tenants.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        // The map holds no invariant a panic could break halfway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
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

    #[test]
    fn a_generation_keeps_only_lists_read_under_it() {
        let c = GenerationCache::default();
        c.put(1, 5, Arc::new(vec![sub()]));
        c.put(2, 5, Arc::new(Vec::new()));
        assert_eq!(c.get(1).map(|(g, s)| (g, s.len())), Some((5, 1)));
        assert!(c.get_at(1, 5).is_some() && c.get_at(1, 6).is_none());
        // A list read under an older generation is not kept.
        c.put(3, 4, Arc::new(Vec::new()));
        assert!(c.get(3).is_none());
        // A newer one replaces every list.
        c.put(2, 6, Arc::new(vec![sub(), sub()]));
        assert!(c.get(1).is_none());
        assert_eq!(c.get(2).map(|(g, s)| (g, s.len())), Some((6, 2)));
        c.forget();
        assert!(c.get(2).is_none());
        // Forgetting keeps the generation: older lists still stay out.
        c.put(2, 5, Arc::new(Vec::new()));
        assert!(c.get(2).is_none());
    }
}
