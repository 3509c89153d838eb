//! Fan-out planning, pure: which webhooks an event goes to, and the body each one gets.
//!
//! The store calls [`plan`] inside the transaction that writes the event, with the tenant's
//! enabled webhooks, and inserts one delivery row per [`Planned`] entry. Each body is
//! rendered exactly once, here; every attempt resends the stored bytes.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::event::{Event, UserRef};
use crate::domain::event_type::{EntityKind, EventType};
use crate::domain::webhook::Ordering;
use crate::formats::template::{SharedBody, Template};
use crate::formats::{self, Format, RenderContext, Rendered};
use crate::store::TargetRow;

/// A webhook as fan-out sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Wire format.
    pub format: Format,
    /// Subscribed event types.
    pub event_types: Vec<EventType>,
    /// Project filter (empty = every project).
    pub project_ids: Vec<i64>,
    /// Ordering guarantee.
    pub ordering: Ordering,
    /// Where and how to send.
    pub target: Arc<TargetRow>,
}

impl Subscriber {
    /// Whether `event` is for this webhook: a subscribed type, and a project in the filter
    /// (an event without a project never passes a non-empty filter).
    pub fn wants(&self, event: &Event) -> bool {
        self.event_types.contains(&event.event_type)
            && (self.project_ids.is_empty()
                || event
                    .project
                    .as_ref()
                    .is_some_and(|p| self.project_ids.contains(&p.id)))
    }
}

/// One delivery to create.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Index into the subscribers passed to [`plan`].
    pub subscriber: usize,
    /// New delivery id (= `MessageId` in the body = `webhook-id` header).
    pub delivery_id: Uuid,
    /// Body and format headers.
    pub rendered: Rendered,
    /// Set for per-entity ordered webhooks: deliveries with the same key go in event order.
    pub entity_key: Option<String>,
    /// Set when the body is its format's [`Plan::bodies`] entry filled in: the row then
    /// points at that shared body instead of keeping a copy.
    pub shared: Option<Format>,
}

/// An event's deliveries and the bodies they share, one per format.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One per webhook that gets the event.
    pub deliveries: Vec<Planned>,
    /// The body of each format some delivery uses, with stand-in ids.
    pub bodies: Vec<(Format, SharedBody)>,
}

/// Plans the deliveries of `event`. Webhooks whose format has nothing to send for it (e.g.
/// Projectrak and a save that changed only formula fields) get none.
///
/// The event is rendered once per format, not once per webhook: bodies of one format
/// differ only in the ids a [`Template`] fills in.
pub fn plan(event: &Event, subscribers: &[Subscriber], public_base_url: &str) -> Plan {
    let mut templates: [Option<Option<Template>>; Format::ALL.len()] = Default::default();
    let deliveries: Vec<Planned> = subscribers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.wants(event))
        .filter_map(|(i, s)| {
            let slot = &mut templates[Format::ALL.iter().position(|f| *f == s.format)?];
            let template = slot.get_or_insert_with(|| Template::new(s.format, event, public_base_url));
            let delivery_id = delivery_id();
            Some(Planned {
                subscriber: i,
                delivery_id,
                rendered: template.as_ref()?.instantiate(s.target.webhook_id, delivery_id),
                entity_key: (s.ordering == Ordering::PerEntity).then(|| entity_key(event)),
                shared: Some(s.format),
            })
        })
        .collect();
    let bodies = Format::ALL
        .iter()
        .zip(templates)
        .filter_map(|(f, t)| Some((*f, t.flatten()?.shared())))
        .collect();
    Plan { deliveries, bodies }
}

/// Plans a delivery of `event` to one subscriber regardless of its subscriptions (test
/// pings).
pub fn planned(
    index: usize,
    subscriber: &Subscriber,
    event: &Event,
    public_base_url: &str,
) -> Option<Planned> {
    let delivery_id = delivery_id();
    let ctx = RenderContext {
        webhook_id: subscriber.target.webhook_id,
        delivery_id,
        public_base_url,
    };
    let rendered = formats::render(subscriber.format, event, &ctx)?;
    Some(Planned {
        subscriber: index,
        delivery_id,
        rendered,
        entity_key: (subscriber.ordering == Ordering::PerEntity).then(|| entity_key(event)),
        shared: None,
    })
}

/// A new delivery's id: a version 7 UUID (millisecond time, then 74 random bits), with the
/// random bits from the thread's ChaCha generator. `Uuid::now_v7` asks the kernel for them
/// (`getrandom`, a system call per id): ~1 % of Herald's CPU in the fan-out bench, where
/// the writer thread makes ten ids per change. Nothing orders deliveries by id (`seq`
/// does), so uuid's within-millisecond counter is not needed; the random bits keep ids
/// unguessable and unique.
pub fn delivery_id() -> Uuid {
    let millis = u64::try_from(crate::timefmt::now_ms()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

/// The ordering key of an event's entity, e.g. `story:42`.
pub fn entity_key(event: &Event) -> String {
    format!("{}:{}", event.entity_kind.as_str(), event.entity_id)
}

/// The `Webhook:Ping` event sent by the "test" endpoint: about the webhook itself, by the
/// user who asked.
pub fn ping_event(webhook_id: Uuid, tenant: &str, actor: UserRef, now: i64) -> Event {
    Event {
        seq: 0,
        id: Uuid::now_v7(),
        tenant: tenant.to_owned(),
        event_type: EventType::WEBHOOK_PING,
        entity_kind: EntityKind::Webhook,
        entity_id: 0,
        entity_uuid: webhook_id,
        parent: None,
        project: None,
        actor,
        occurred_at: now,
        project_version: None,
        before: None,
        after: None,
        changed: Vec::new(),
        parent_before: None,
        parent_after: None,
    }
}

/// Stores format headers as `Name: value` lines: header values cannot contain line breaks,
/// and reading this back on a claim is a split, not a JSON parse.
pub fn encode_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
    out
}

/// Reads what [`encode_headers`] wrote.
pub fn decode_headers(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::samples;

    #[test]
    fn delivery_ids_are_v7_stamped_now_and_distinct() {
        let before = crate::timefmt::now_ms();
        let ids: Vec<Uuid> = (0..1000).map(|_| delivery_id()).collect();
        let after = crate::timefmt::now_ms();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            let ms = i64::try_from(secs * 1000).unwrap() + i64::from(nanos / 1_000_000);
            assert!((before..=after).contains(&ms), "{ms} not in {before}..={after}");
        }
        // The random part differs even within one millisecond.
        assert_ne!(ids[0].as_bytes()[6..], ids[1].as_bytes()[6..]);
    }

    fn sub(format: Format, types: &[EventType], projects: &[i64], ordering: Ordering) -> Subscriber {
        Subscriber {
            format,
            event_types: types.to_vec(),
            project_ids: projects.to_vec(),
            ordering,
            target: Arc::new(TargetRow::example()),
        }
    }

    #[test]
    fn only_subscribed_types_and_filtered_projects_get_deliveries() {
        let e = samples::event(EventType::PROJECT_UPDATED);
        let pid = e.project.as_ref().map(|p| p.id).unwrap();
        let subs = [
            sub(
                Format::Standard,
                &[EventType::PROJECT_UPDATED],
                &[],
                Ordering::None,
            ),
            sub(
                Format::Standard,
                &[EventType::PROJECT_CREATED],
                &[],
                Ordering::None,
            ),
            sub(
                Format::Standard,
                &[EventType::PROJECT_UPDATED],
                &[pid],
                Ordering::None,
            ),
            sub(
                Format::Standard,
                &[EventType::PROJECT_UPDATED],
                &[pid + 1],
                Ordering::PerEntity,
            ),
            sub(
                Format::Ppm,
                &[EventType::PROJECT_UPDATED],
                &[],
                Ordering::PerEntity,
            ),
        ];
        let Plan {
            deliveries: planned,
            bodies,
        } = plan(&e, &subs, "https://herald.example");
        // One shared body per format used, and each delivery's body is it filled in.
        let formats: Vec<Format> = bodies.iter().map(|(f, _)| *f).collect();
        assert_eq!(formats, [Format::Ppm, Format::Standard]);
        for p in &planned {
            let f = p.shared.expect("fan-out bodies are shared");
            let (_, shared) = bodies.iter().find(|(g, _)| *g == f).unwrap();
            let webhook = subs[p.subscriber].target.webhook_id;
            assert_eq!(shared.fill(webhook, p.delivery_id), p.rendered.body);
        }
        let chosen: Vec<usize> = planned.iter().map(|p| p.subscriber).collect();
        assert_eq!(chosen, [0, 2, 4]);
        assert_eq!(planned[0].entity_key, None);
        assert_eq!(planned[2].entity_key, Some(entity_key(&e)));
        // Each delivery gets its own id, and PPM puts it in the body as MessageId.
        assert_ne!(planned[0].delivery_id, planned[1].delivery_id);
        let body = String::from_utf8(planned[2].rendered.body.clone()).unwrap();
        assert!(body.contains(&planned[2].delivery_id.to_string()), "{body}");
    }

    #[test]
    fn a_format_with_nothing_to_say_plans_nothing() {
        let story = samples::event(EventType::STORY_CREATED);
        // Projectrak cannot carry story events even if (wrongly) subscribed.
        let subs = [sub(
            Format::Projectrak,
            &[EventType::STORY_CREATED],
            &[],
            Ordering::None,
        )];
        let p = plan(&story, &subs, "https://h");
        assert!(p.deliveries.is_empty() && p.bodies.is_empty());
    }

    #[test]
    fn pings_render_in_every_format() {
        let actor = samples::event(EventType::PROJECT_UPDATED).actor;
        for f in Format::ALL {
            let s = sub(f, &[], &[], Ordering::None);
            let ping = ping_event(s.target.webhook_id, "acme", actor.clone(), 1);
            assert!(planned(0, &s, &ping, "https://h").is_some(), "{f:?}");
        }
    }

    #[test]
    fn headers_round_trip() {
        let h = [("Herald-Event-Type", "Project:Updated"), ("Herald-Format", "ppm")];
        let decoded = decode_headers(&encode_headers(h));
        let pairs: Vec<(&str, &str)> = decoded.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(pairs, h);
    }
}
