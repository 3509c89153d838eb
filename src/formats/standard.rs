//! Herald's own envelope, for every event type (`Webhook:Ping` included):
//! `{id, type, timestamp, tenant, data: {entity, before, after, changes, actor}}`.
//!
//! It exposes the event as stored: snapshots are Herald's canonical snake_case
//! representation (see [`crate::domain::event`]), `changes` is the event's list of changed
//! keys, `timestamp` is RFC 3339 UTC with milliseconds. `id` is the event id (the same for
//! every webhook that receives the event); the delivery id travels in the `webhook-id`
//! header. Snapshot objects are plain JSON values, so their keys come out sorted, which is
//! deterministic and easy to diff.
//!
//! A ping is sent in the normal envelope: `type` is `Webhook:Ping`, the entity is the webhook
//! (`kind: "webhook"`), and `before`/`after` are whatever the ping event carries (usually
//! `null`).

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::encode::rfc3339_ms;
use crate::domain::event::{Event, ParentRef, ProjectRef, UserRef};
use crate::domain::event_type::{EntityKind, EventType};

/// The standard body. Field order is the wire order.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    /// Event id, shared by every delivery of the event.
    pub id: Uuid,
    /// Event type, e.g. `Project:Updated`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change happened, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// Tenant slug.
    pub tenant: &'a str,
    /// The change itself.
    pub data: Data<'a>,
}

/// `data`: the entity, its snapshots, what changed and who changed it.
#[derive(Debug, Clone, Serialize)]
pub struct Data<'a> {
    /// Which entity changed.
    pub entity: Entity<'a>,
    /// Snapshot before (`null` on create).
    pub before: &'a Option<Value>,
    /// Snapshot after (`null` on delete).
    pub after: &'a Option<Value>,
    /// Changed top-level keys (`fields.<id>` for Projectrak fields).
    pub changes: &'a [String],
    /// Who made the change.
    pub actor: &'a UserRef,
}

/// `data.entity`.
#[derive(Debug, Clone, Serialize)]
pub struct Entity<'a> {
    /// snake_case kind (`key_date`).
    pub kind: EntityKind,
    /// Numeric id.
    pub id: i64,
    /// UUID.
    pub uuid: Uuid,
    /// Parent, when the entity has one.
    pub parent: &'a Option<ParentRef>,
    /// The project the entity belongs to, when it has one.
    pub project: &'a Option<ProjectRef>,
}

/// Builds the standard body; every event has one.
pub fn build(event: &Event) -> Envelope<'_> {
    Envelope {
        id: event.id,
        event_type: event.event_type,
        timestamp: rfc3339_ms(event.occurred_at),
        tenant: &event.tenant,
        data: Data {
            entity: Entity {
                kind: event.entity_kind,
                id: event.entity_id,
                uuid: event.entity_uuid,
                parent: &event.parent,
                project: &event.project,
            },
            before: &event.before,
            after: &event.after,
            changes: &event.changed,
            actor: &event.actor,
        },
    }
}
