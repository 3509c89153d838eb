//! Payload formats: event in, body bytes and extra headers out. Pure, deterministic, no I/O.
//! A body is rendered once at fan-out and stored; retries resend the stored bytes.

pub mod signing;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod encode;
pub mod ordered;
pub mod ppm;
pub mod ppm_attributes;
pub mod projectrak;
pub mod samples;
pub mod standard;
pub mod template;
pub mod tracker_changes;
pub mod tracker_v5;

#[cfg(test)]
mod tests;

use crate::domain::event::Event;
use crate::domain::event_type::{EntityKind, EventType};

/// The wire format a webhook asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Format {
    /// PPM Express `{WebhookId, MessageId, Data}` (the default, as the API is PPM-compatible).
    #[default]
    #[serde(rename = "ppm")]
    Ppm,
    /// Projectrak `{"data": {event: "updated", …}}`; only `Project:Updated`.
    #[serde(rename = "projectrak")]
    Projectrak,
    /// Pivotal Tracker v5 activity; stories and comments.
    #[serde(rename = "tracker-v5")]
    TrackerV5,
    /// Herald's own envelope for every event type.
    #[serde(rename = "standard")]
    Standard,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Self::Ppm, Self::Projectrak, Self::TrackerV5, Self::Standard];

    /// The spelling used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ppm => "ppm",
            Self::Projectrak => "projectrak",
            Self::TrackerV5 => "tracker-v5",
            Self::Standard => "standard",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Whether a webhook in this format may subscribe to `t`. `Webhook:Ping` is never
    /// subscribed to: it is only sent on demand, and every format can render it.
    pub fn supports(self, t: EventType) -> bool {
        if t == EventType::WEBHOOK_PING {
            return false;
        }
        match self {
            Self::Ppm => matches!(
                t.kind(),
                EntityKind::Project | EntityKind::Idea | EntityKind::Task | EntityKind::KeyDate
            ),
            Self::Projectrak => t == EventType::PROJECT_UPDATED,
            Self::TrackerV5 => matches!(t.kind(), EntityKind::Story | EntityKind::Comment),
            Self::Standard => true,
        }
    }

    /// The event types a webhook in this format can subscribe to.
    pub fn event_types(self) -> impl Iterator<Item = EventType> {
        EventType::ALL.iter().copied().filter(move |t| self.supports(*t))
    }
}

/// What a renderer needs besides the event.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The webhook being delivered to (PPM `WebhookId`).
    pub webhook_id: Uuid,
    /// The delivery id (PPM `MessageId`, `webhook-id` header), stable across retries.
    pub delivery_id: Uuid,
    /// Herald's public base URL without trailing slash, for links (Tracker `url`).
    pub public_base_url: &'a str,
}

/// A rendered request body plus the format's own extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Strict JSON, UTF-8.
    pub body: Vec<u8>,
    /// Extra headers (always includes `Herald-Event-Type`).
    pub headers: Vec<(&'static str, String)>,
}

/// A body built but not yet serialised. Keeping this step separate lets the docs generator
/// pretty-print exactly what goes on the wire (a re-parsed `serde_json::Value` would lose
/// key order) and lets benchmarks measure building and serialising apart.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Body<'a> {
    /// See [`ppm`].
    Ppm(ppm::Envelope<'a>),
    /// See [`projectrak`].
    Projectrak(projectrak::Envelope<'a>),
    /// See [`tracker_v5`].
    TrackerV5(tracker_v5::Activity<'a>),
    /// See [`standard`].
    Standard(standard::Envelope<'a>),
}

/// Builds the body of `event` in `format`, or `None` when there is nothing to send: the
/// format cannot carry this event type (a Projectrak webhook and a story), or the event
/// carries nothing the format reports (a save that changed only formula fields).
/// `Webhook:Ping` is renderable in every format.
pub fn build<'a>(format: Format, event: &'a Event, ctx: &RenderContext<'_>) -> Option<Body<'a>> {
    let t = event.event_type;
    if t != EventType::WEBHOOK_PING && !format.supports(t) {
        return None;
    }
    match format {
        Format::Ppm => ppm::build(event, ctx).map(Body::Ppm),
        Format::Projectrak => projectrak::build(event).map(Body::Projectrak),
        Format::TrackerV5 => tracker_v5::build(event, ctx).map(Body::TrackerV5),
        Format::Standard => Some(Body::Standard(standard::build(event))),
    }
}

/// Whether any format's body shows `event.seq`. Only Tracker's `project_version` does,
/// and only as the fallback for events without a project version (see `tracker_v5.rs`).
/// Fan-out may render the bodies of other events before the event is inserted and its
/// `seq` assigned (SQLite writes event and deliveries in one round trip that way).
pub fn body_shows_seq(event: &Event) -> bool {
    event.project_version.is_none()
}

/// Renders `event` in `format`. `None` means "nothing to send" (e.g. a Projectrak webhook
/// and a save that changed only formula fields).
///
/// Headers: `Herald-Event-Type` always (PPM bodies do not name their event type, so this
/// is the only place a PPM receiver can read it) and `Herald-Format`, so a receiver shared
/// by several webhooks can pick a parser without sniffing the body.
pub fn render(format: Format, event: &Event, ctx: &RenderContext<'_>) -> Option<Rendered> {
    let body = build(format, event, ctx)?;
    // Serialising these types cannot fail (string keys, finite numbers); `ok()` keeps the
    // delivery path free of panics all the same.
    let body = serde_json::to_vec(&body).ok()?;
    Some(Rendered {
        body,
        headers: vec![
            ("Herald-Event-Type", event.event_type.to_string()),
            ("Herald-Format", format.as_str().to_owned()),
        ],
    })
}
