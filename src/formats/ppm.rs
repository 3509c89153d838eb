//! PPM Express webhook bodies: `{WebhookId, MessageId, Data}` for the twelve
//! `Project|Idea|Task|KeyDate` × `Created|Updated|Deleted` event types (formats.md §3).
//!
//! - `WebhookId` is the subscription, `MessageId` the delivery id (stable across retries, so
//!   receivers can de-duplicate on it).
//! - `Data.ParentEntityId`/`ParentEntityType` appear only when the entity has a parent
//!   (tasks and key dates); the type is the parent's PPM spelling (`Project`, `Portfolio`,
//!   `Program`).
//! - `Attributes` is the snapshot after the change; on `:Deleted` it is the last snapshot
//!   (`before`). `BeforeAttributes` (the full pre-change snapshot, not a diff) appears only
//!   on `:Updated`.
//! - `Initiator` is the actor; `TimeStamp` is when the change happened, with PPM's 7
//!   fractional digits.
//! - The event type is not in the body (PPM does not put it there); it travels in the
//!   `Herald-Event-Type` header.
//!
//! `Webhook:Ping` (the "test" button) has no PPM equivalent. Herald sends the normal
//! envelope with `Data.Id` = the webhook id, `Attributes` = `{"Ping": true}`, no parent and
//! no `BeforeAttributes`, so a receiver that routes on `WebhookId` accepts it and one that
//! inspects `Attributes` can tell it apart.
//!
//! PPM fires `Project:Updated` only for changes to its own (Details) fields. Projectrak
//! fields are not PPM attributes, so an update whose `changed` list holds only
//! `fields.<id>` entries renders nothing in this format.
//!
//! A snapshot missing where the action needs one renders as attributes of `null`s rather
//! than dropping the delivery: the receiver still learns that something happened.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::encode::ppm_timestamp;
use super::ordered::{Node, Obj};
use super::ppm_attributes::attributes;
use super::RenderContext;
use crate::domain::event::Event;
use crate::domain::event_type::{Action, EntityKind};

/// A PPM Express delivery body. Field order is the wire order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope<'a> {
    /// The webhook (subscription) that fired.
    pub webhook_id: Uuid,
    /// The delivery id.
    pub message_id: Uuid,
    /// The entity and what happened to it.
    pub data: Data<'a>,
}

/// `Data`: the entity, its attributes and who changed it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Data<'a> {
    /// UUID of the parent (task/key date owner); absent for top-level entities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_entity_id: Option<Uuid>,
    /// PPM spelling of the parent's kind; absent with `parent_entity_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_entity_type: Option<&'static str>,
    /// UUID of the entity.
    pub id: Uuid,
    /// Entity attributes keyed by PPM display label.
    pub attributes: Obj,
    /// Attributes before the change; `:Updated` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_attributes: Option<Obj>,
    /// Who made the change.
    pub initiator: Initiator<'a>,
    /// When the change happened (ISO 8601 UTC, 7 fractional digits).
    pub time_stamp: String,
}

/// `Initiator`: the user behind the change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Initiator<'a> {
    /// User UUID.
    pub user_id: Uuid,
    /// Display name.
    pub full_name: &'a str,
    /// E-mail / logon name.
    pub logon_account: &'a str,
}

/// Builds the PPM body for `event`; `None` for event kinds PPM has no events for.
pub fn build<'a>(event: &'a Event, ctx: &RenderContext<'_>) -> Option<Envelope<'a>> {
    let initiator = Initiator {
        user_id: event.actor.uuid,
        full_name: &event.actor.name,
        logon_account: &event.actor.email,
    };
    let time_stamp = ppm_timestamp(event.occurred_at);
    let kind = event.event_type.kind();
    let data = if event.event_type.action() == Action::Ping {
        Data {
            parent_entity_id: None,
            parent_entity_type: None,
            id: ctx.webhook_id,
            attributes: Obj::new().with("Ping", Node::bool(true)),
            before_attributes: None,
            initiator,
            time_stamp,
        }
    } else {
        if only_projectrak_fields_changed(event) {
            return None;
        }
        let uuid = event.entity_uuid.to_string();
        let attrs = |snap: &Option<Value>| attributes(kind, &uuid, snap.as_ref().unwrap_or(&NULL));
        let (attributes, before_attributes) = match event.event_type.action() {
            Action::Updated => (attrs(&event.after)?, Some(attrs(&event.before)?)),
            Action::Deleted => (attrs(&event.before)?, None),
            _ => (attrs(&event.after)?, None),
        };
        let parent = event
            .parent
            .as_ref()
            .filter(|_| matches!(kind, EntityKind::Task | EntityKind::KeyDate));
        Data {
            parent_entity_id: parent.map(|p| p.uuid),
            parent_entity_type: parent.map(|p| p.kind.pascal()),
            id: event.entity_uuid,
            attributes,
            before_attributes,
            initiator,
            time_stamp,
        }
    };
    Some(Envelope {
        webhook_id: ctx.webhook_id,
        message_id: ctx.delivery_id,
        data,
    })
}

/// An update that touched only Projectrak fields, which PPM attributes do not carry.
fn only_projectrak_fields_changed(event: &Event) -> bool {
    event.event_type.action() == Action::Updated
        && !event.changed.is_empty()
        && event.changed.iter().all(|c| c.starts_with("fields."))
}

static NULL: Value = Value::Null;
