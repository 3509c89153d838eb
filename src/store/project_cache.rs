//! The projects a PostgreSQL node last wrote, kept in memory so that a project's next
//! update on this node skips reading it.
//!
//! Why: a project update on PostgreSQL is three statements, each a round trip and a
//! transaction of its own (the token, the project, the one write of the change, its event
//! and deliveries). Skipping the read measured +4–21 % deliveries/s on `fanout-pg` and
//! 9–19 % less PostgreSQL CPU per delivery (BENCHMARKS.md).
//!
//! Why it is safe: a kept row is used only by the optimistic path (`Finish::Optimistic`),
//! whose one write is guarded by the project's `version` (`… AND version = $kept`), and
//! every write to an existing project row raises that version: its own updates, every
//! change to something in it (the project version of the event), on any node. (Only the
//! creating transaction writes a project without raising it, before anyone can keep it.) A kept row older than
//! the stored one therefore makes the write find no row and write nothing; the node then
//! forgets it and runs the update again from a fresh read (`PgStore::run_change`). Rows
//! are kept only as this node's own writes left them — the row a successful update wrote,
//! never one read for another purpose — and forgotten when this node changes something in
//! the project or deletes it. Versions only rise: a database restored to an older state
//! needs its nodes restarted (as for webhooks and field definitions).
//!
//! What it costs when stale: a project last changed by another node costs this node's
//! next update of it one statement that writes nothing (its bodies rendered for it), then
//! the read and write it would have made anyway — a project updated from several nodes in
//! turn costs a round trip more per update than without the cache. An update drawn from
//! the kept row without a write (nothing to change, input refused) is made again from a
//! fresh read before it is answered.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use super::EntityRow;

/// Most projects kept per node. A kept row is a project's attributes (typically a few
/// kilobytes), so this bounds the cache to a few megabytes; a node updating more projects
/// than this in turn reads the oldest again.
pub const CAPACITY: usize = 1024;

/// (tenant id, project id) → the project's row as this node last wrote it.
#[derive(Debug, Default)]
pub struct ProjectCache {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    rows: HashMap<(i64, i64), EntityRow>,
    /// The keys of `rows`, each once, in the order they were kept: the oldest goes first
    /// when full.
    order: VecDeque<(i64, i64)>,
}

impl ProjectCache {
    /// The project's row as this node last wrote it, if kept.
    pub fn get(&self, tenant_id: i64, id: i64) -> Option<EntityRow> {
        self.lock().rows.get(&(tenant_id, id)).cloned()
    }

    /// Keeps `row` (a project this node just wrote) for its next update.
    pub fn put(&self, tenant_id: i64, row: &EntityRow) {
        let mut k = self.lock();
        let key = (tenant_id, row.id);
        if k.rows.insert(key, row.clone()).is_none() {
            k.order.push_back(key);
        }
        while k.order.len() > CAPACITY {
            if let Some(old) = k.order.pop_front() {
                k.rows.remove(&old);
            }
        }
    }

    /// Drops the project's row: it is, or may be, no longer the stored one. (A scan of at
    /// most [`CAPACITY`] keys, next to a change's round trips.)
    pub fn forget(&self, tenant_id: i64, id: i64) {
        let mut k = self.lock();
        let key = (tenant_id, id);
        if k.rows.remove(&key).is_some() {
            k.order.retain(|o| *o != key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event_type::EntityKind;
    use serde_json::Map;
    use uuid::Uuid;

    fn project(id: i64, version: i64) -> EntityRow {
        EntityRow {
            id,
            uuid: Uuid::nil(),
            kind: EntityKind::Project,
            parent: None,
            project_id: Some(id),
            position: None,
            version,
            data: Map::new(),
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn keeps_the_latest_row_per_tenant_and_project() {
        let c = ProjectCache::default();
        c.put(1, &project(10, 1));
        c.put(1, &project(10, 2));
        c.put(2, &project(10, 7));
        assert_eq!(c.get(1, 10).map(|r| r.version), Some(2));
        assert_eq!(c.get(2, 10).map(|r| r.version), Some(7));
        c.forget(1, 10);
        assert!(c.get(1, 10).is_none());
        assert!(c.get(2, 10).is_some(), "another tenant's project stays");
    }

    #[test]
    fn holds_at_most_its_capacity_dropping_the_oldest() {
        let c = ProjectCache::default();
        for id in 0..(CAPACITY as i64 + 10) {
            c.put(1, &project(id, 1));
            // Forgotten and kept again: the order list must not grow past the bound.
            c.forget(1, id);
            c.put(1, &project(id, 2));
        }
        let k = c.lock();
        assert_eq!(k.rows.len(), CAPACITY);
        assert_eq!(k.order.len(), CAPACITY, "each kept key once");
        drop(k);
        assert!(c.get(1, 0).is_none(), "the oldest went first");
        assert!(c.get(1, CAPACITY as i64 + 9).is_some());
    }
}
