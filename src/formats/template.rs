//! One rendering of an event for every webhook of a format.
//!
//! Why: fan-out renders an event once per subscribed webhook, inside the change's write
//! (the single writer's critical path on SQLite), yet the bodies of one event in one format
//! differ only in the webhook and delivery ids PPM writes into them (`WebhookId`,
//! `MessageId`, a ping's `Id`); the other formats do not show them at all. A [`Template`]
//! renders the body once with two random stand-in ids and notes where they landed; each
//! webhook's body is then a copy with its own ids written over those places. A UUID's text
//! is always 36 bytes, so the copy keeps every other byte where it was, and random
//! (version 4) stand-ins cannot occur in an event's data by chance.
//!
//! The store keeps the same thing, not each copy: a delivery made from a template points
//! at its event's [`SharedBody`] (one row per event and format), and its own body is
//! filled in again whenever it is read (claims after a restart, retries, the delivery
//! log). A delivery row is then a few hundred bytes instead of the whole body, which
//! matters twice per delivery: when it is inserted and when its outcome rewrites the row.

use uuid::Uuid;

use super::{render, Event, Format, RenderContext, Rendered};

/// Length of a hyphenated UUID.
const UUID_LEN: usize = 36;

/// An event's body in one format, ready to be given each webhook's ids.
#[derive(Debug, Clone)]
pub struct Template {
    body: SharedBody,
    headers: Vec<(&'static str, String)>,
}

/// The stand-in ids a body was rendered with, to be overwritten by each delivery's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standins {
    /// Written where the webhook's id goes (PPM `WebhookId`).
    pub webhook: Uuid,
    /// Written where the delivery's id goes (PPM `MessageId`, a ping's `Id`).
    pub delivery: Uuid,
}

/// An event's body in one format as the store keeps it (`delivery_bodies`): rendered once
/// with [`Standins`], shared by every delivery of that event in that format. Where the
/// stand-ins occur is found once, when it is made, not per delivery filled from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBody {
    body: Vec<u8>,
    standins: Standins,
    webhook_at: Vec<usize>,
    delivery_at: Vec<usize>,
}

impl SharedBody {
    /// A body rendered with `standins` (as rendered, or as read back from the store).
    pub fn new(body: Vec<u8>, standins: Standins) -> Self {
        let webhook_at = places(&body, standins.webhook);
        let delivery_at = places(&body, standins.delivery);
        Self {
            body,
            standins,
            webhook_at,
            delivery_at,
        }
    }

    /// The body with its stand-ins, as stored.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The stand-in ids, as stored.
    pub fn standins(&self) -> Standins {
        self.standins
    }

    /// One delivery's body: byte for byte what rendering with its ids gives.
    pub fn fill(&self, webhook_id: Uuid, delivery_id: Uuid) -> Vec<u8> {
        let mut body = self.body.clone();
        overwrite(&mut body, &self.webhook_at, webhook_id);
        overwrite(&mut body, &self.delivery_at, delivery_id);
        body
    }
}

impl Template {
    /// Renders `event` in `format` once; `None` when the format has nothing to send (as
    /// [`render`]).
    pub fn new(format: Format, event: &Event, public_base_url: &str) -> Option<Self> {
        let standins = Standins {
            webhook: Uuid::new_v4(),
            delivery: Uuid::new_v4(),
        };
        let ctx = RenderContext {
            webhook_id: standins.webhook,
            delivery_id: standins.delivery,
            public_base_url,
        };
        let Rendered { body, headers } = render(format, event, &ctx)?;
        Some(Self {
            body: SharedBody::new(body, standins),
            headers,
        })
    }

    /// The body and headers for one webhook and delivery: byte for byte what [`render`]
    /// gives with these ids.
    pub fn instantiate(&self, webhook_id: Uuid, delivery_id: Uuid) -> Rendered {
        Rendered {
            body: self.body.fill(webhook_id, delivery_id),
            headers: self.headers.clone(),
        }
    }

    /// The body as the store keeps it (see [`SharedBody`]).
    pub fn shared(&self) -> SharedBody {
        self.body.clone()
    }
}

/// Writes `id`'s text at each of `places` in `body`.
fn overwrite(body: &mut [u8], places: &[usize], id: Uuid) {
    let mut buf = Uuid::encode_buffer();
    let text = id.hyphenated().encode_lower(&mut buf).as_bytes();
    for &at in places {
        body[at..at + UUID_LEN].copy_from_slice(text);
    }
}

/// Where `id`'s text occurs in `body`.
fn places(body: &[u8], id: Uuid) -> Vec<usize> {
    let mut buf = Uuid::encode_buffer();
    let needle = id.hyphenated().encode_lower(&mut buf).as_bytes();
    memchr::memmem::find_iter(body, needle).collect()
}
