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

use uuid::Uuid;

use super::{render, Event, Format, RenderContext, Rendered};

/// Length of a hyphenated UUID.
const UUID_LEN: usize = 36;

/// An event's body in one format, ready to be given each webhook's ids.
#[derive(Debug, Clone)]
pub struct Template {
    rendered: Rendered,
    webhook_at: Vec<usize>,
    delivery_at: Vec<usize>,
}

impl Template {
    /// Renders `event` in `format` once; `None` when the format has nothing to send (as
    /// [`render`]).
    pub fn new(format: Format, event: &Event, public_base_url: &str) -> Option<Self> {
        let webhook = Uuid::new_v4();
        let delivery = Uuid::new_v4();
        let ctx = RenderContext {
            webhook_id: webhook,
            delivery_id: delivery,
            public_base_url,
        };
        let rendered = render(format, event, &ctx)?;
        let webhook_at = places(&rendered.body, webhook);
        let delivery_at = places(&rendered.body, delivery);
        Some(Self {
            rendered,
            webhook_at,
            delivery_at,
        })
    }

    /// The body and headers for one webhook and delivery: byte for byte what [`render`]
    /// gives with these ids.
    pub fn instantiate(&self, webhook_id: Uuid, delivery_id: Uuid) -> Rendered {
        let mut out = self.rendered.clone();
        let mut buf = Uuid::encode_buffer();
        let text = webhook_id.hyphenated().encode_lower(&mut buf).as_bytes();
        for &at in &self.webhook_at {
            out.body[at..at + UUID_LEN].copy_from_slice(text);
        }
        let text = delivery_id.hyphenated().encode_lower(&mut buf).as_bytes();
        for &at in &self.delivery_at {
            out.body[at..at + UUID_LEN].copy_from_slice(text);
        }
        out
    }
}

/// Where `id`'s text occurs in `body`.
fn places(body: &[u8], id: Uuid) -> Vec<usize> {
    let mut buf = Uuid::encode_buffer();
    let needle = id.hyphenated().encode_lower(&mut buf).as_bytes();
    memchr::memmem::find_iter(body, needle).collect()
}
