//! Records and requests for tracker data (users, fields, entities) and the event log.
//!
//! A change is submitted as a [`ChangeRequest`] carrying a pure `compute` function: the
//! store opens a transaction, locks what the change touches, reads the current state, lets
//! `compute` derive the new attributes, diffs, and writes the entity, the project version
//! and the event together — so a change and its event are durable together or not at all.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::event::UserRef;
use crate::domain::event_type::EntityKind;
use crate::domain::webhook::FieldError;

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Account id (unique in the tenant).
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// Initials.
    pub initials: String,
    /// E-mail.
    pub email: String,
}

/// A stored entity row. `data` holds the kind's attributes; ids, parent and timestamps are
/// columns, merged in by [`EntityRow::snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    /// Numeric id (unique across kinds).
    pub id: i64,
    /// UUID.
    pub uuid: Uuid,
    /// Kind.
    pub kind: EntityKind,
    /// Parent kind and id.
    pub parent: Option<(EntityKind, i64)>,
    /// Project the entity belongs to (itself for projects).
    pub project_id: Option<i64>,
    /// Story order within a project.
    pub position: Option<f64>,
    /// Per-project change counter (projects only).
    pub version: i64,
    /// Attributes.
    pub data: Map<String, Value>,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

impl EntityRow {
    /// The canonical snapshot (see [`crate::domain::event`] for the schema).
    pub fn snapshot(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.into());
        m.insert("uuid".into(), self.uuid.to_string().into());
        if let Some((_, pid)) = self.parent {
            match self.kind {
                EntityKind::Story | EntityKind::Task => {
                    m.insert("project_id".into(), pid.into());
                }
                EntityKind::Comment => {
                    m.insert("story_id".into(), pid.into());
                }
                _ => {}
            }
        }
        for (k, v) in &self.data {
            m.insert(k.clone(), v.clone());
        }
        m.insert("created_at".into(), self.created_at.into());
        m.insert("updated_at".into(), self.updated_at.into());
        Value::Object(m)
    }

    /// This row's columns with `data` as its attributes: a copy that does not clone the
    /// attributes it is about to replace (a project's run to hundreds of entries, and a
    /// change made up to three such copies).
    pub fn with_data(&self, data: Map<String, Value>) -> Self {
        Self {
            id: self.id,
            uuid: self.uuid,
            kind: self.kind,
            parent: self.parent,
            project_id: self.project_id,
            position: self.position,
            version: self.version,
            data,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The entity's display name, if it has one.
    pub fn name(&self) -> &str {
        self.data.get("name").and_then(Value::as_str).unwrap_or("")
    }
}

/// Where to put a story in its project's list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Position {
    /// Directly before the story with this id.
    Before(i64),
    /// Directly after the story with this id.
    After(i64),
}

/// What a change does.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOp {
    /// Create an entity under `parent` (required for stories, comments, tasks, key dates).
    Create {
        /// Parent kind and id.
        parent: Option<(EntityKind, i64)>,
    },
    /// Update entity `id`.
    Update {
        /// Entity id.
        id: i64,
    },
    /// Delete entity `id` (and its children).
    Delete {
        /// Entity id.
        id: i64,
    },
}

/// Derives the new attributes from the current ones (`None` on create).
pub type ComputeFn = std::sync::Arc<
    dyn Fn(Option<&Map<String, Value>>) -> Result<Map<String, Value>, Vec<FieldError>> + Send + Sync,
>;

/// Re-expresses stored attributes under today's definitions (e.g. a project's `fields`
/// after a field was added or renamed), so a diff reports only real changes.
pub type NormalizeFn = std::sync::Arc<dyn Fn(&Map<String, Value>) -> Map<String, Value> + Send + Sync>;

/// One change to one entity. It owns everything it needs, so a backend may run it on a
/// task of its own (SQLite's writer, see `group_commit.rs`).
pub struct ChangeRequest {
    /// Tenant id.
    pub tenant_id: i64,
    /// Tenant slug (copied into the event).
    pub tenant: String,
    /// Kind of entity.
    pub kind: EntityKind,
    /// What to do.
    pub op: ChangeOp,
    /// New position (stories).
    pub position: Option<Position>,
    /// Author of the change.
    pub actor: UserRef,
    /// Time of the change, epoch ms.
    pub now: i64,
    /// The tenant's `webhooks_version` as the request saw it (read with its token), when
    /// known: fan-out may then use the tenant's webhooks cached at that version or later
    /// instead of reading them (`store/subscriber_cache.rs`). `None` reads them.
    pub webhooks_version: Option<i64>,
    /// The project as this node last wrote it, for a project's update on PostgreSQL
    /// (`store/project_cache.rs`): used instead of reading it, since the update's write is
    /// guarded by the row's version. The backend sets it; callers leave it `None`.
    pub known: Option<EntityRow>,
    /// Computes the new attributes (unused for deletes).
    pub compute: ComputeFn,
    /// Normalises stored attributes before diffing (optional).
    pub normalize: Option<NormalizeFn>,
}

/// The result of a change.
#[derive(Debug)]
pub enum ChangeOutcome {
    /// Nothing differed; nothing was written (no event).
    Unchanged(EntityRow),
    /// The change and its event were committed.
    Applied {
        /// The entity after the change (`None` after a delete).
        row: Option<EntityRow>,
        /// The event written with it (`None` for kinds without events: portfolios, programs).
        event: Option<Box<crate::domain::event::Event>>,
    },
}

/// What a change did inside its transaction, for the backend that commits it.
#[derive(Debug)]
pub(crate) enum ChangeStep {
    /// Keep the writes; after commit, hand `jobs` (leased to this node) to the delivery
    /// engine, and wake it when `claimable` rows were written too.
    Keep {
        /// The answer for the caller.
        outcome: ChangeOutcome,
        /// Deliveries to hand over after commit.
        jobs: Vec<super::DeliveryJob>,
        /// Unleased (claimable) deliveries were written as well.
        claimable: bool,
    },
    /// Roll the writes back and answer with this outcome (nothing changed after all).
    Discard(ChangeOutcome),
    /// Nothing was written; run the change again in a transaction. Only
    /// [`Finish::Optimistic`] answers this: the entity changed after it was read, or the
    /// change turned out to need more than its one statement.
    Again,
}

/// How the caller commits a change, which decides how `change_path::apply` sends its
/// last writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Finish {
    /// In the caller's transaction, statement by statement, under row locks (PostgreSQL).
    Transaction,
    /// SQLite's writer batch, in a savepoint of its own: nothing else writes meanwhile,
    /// so the entity's new state is known without reading it back.
    Batch,
    /// PostgreSQL outside a transaction, for a project's update: the project is read
    /// without a lock, and its write, the tenant lock, the event and the deliveries go in
    /// one statement that commits on its own and writes nothing unless the project's
    /// `version` is still the one read. The tenant's lock, which every change of the
    /// tenant queues for, is then held for that statement and its commit only, not
    /// across the round trips to Herald and the `COMMIT` a transaction needs.
    Optimistic,
}

/// Minimal facts about an entity, for resolving references in input.
#[derive(Debug, Clone)]
pub struct EntityHead {
    /// Numeric id.
    pub id: i64,
    /// Kind.
    pub kind: EntityKind,
    /// UUID.
    pub uuid: Uuid,
    /// Project key (projects only).
    pub key: Option<String>,
    /// Name.
    pub name: String,
}

/// An event published by another system through the ingest API.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// Tenant id.
    pub tenant_id: i64,
    /// The event to store; `seq` and `project_version` (when `None`) are assigned here.
    pub event: crate::domain::event::Event,
    /// Caller-supplied key making the call idempotent.
    pub idempotency_key: Option<String>,
    /// As [`ChangeRequest::webhooks_version`].
    pub webhooks_version: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_data_keeps_every_column_and_replaces_only_the_attributes() {
        let data = |name: &str| {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m
        };
        let row = EntityRow {
            id: 7,
            uuid: Uuid::new_v4(),
            kind: EntityKind::Story,
            parent: Some((EntityKind::Project, 3)),
            project_id: Some(3),
            position: Some(1.5),
            version: 4,
            data: data("old"),
            created_at: 10,
            updated_at: 20,
        };
        let copy = row.with_data(data("new"));
        assert_eq!(copy.name(), "new");
        assert_eq!(
            EntityRow {
                data: data("old"),
                ..copy
            },
            row
        );
    }
}
