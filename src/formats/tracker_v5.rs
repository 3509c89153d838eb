//! Pivotal Tracker "webhook format v5" bodies: one activity object per story or comment
//! event (formats.md §2), keys in the order of the vendor's docs example.
//!
//! - `kind` is `story_{create,update,delete}_activity` or
//!   `comment_{create,update,delete}_activity`.
//! - `guid` is `{project id}_{project_version}`, unique per activity (receivers use it as an
//!   idempotency key). The domain versions every story and comment event; should an event
//!   lack `project_version`, its `seq` stands in so the guid stays unique.
//! - `message`/`highlight` are chosen from what changed, as Tracker writes them: create →
//!   `added`; a `current_state` change → the new state as the verb (`started`, `accepted`,
//!   `unstarted`, …); only the estimate → `estimated` ("… as 3 points"); only the position
//!   (`before_id`/`after_id`) → `moved` ("… moved this story"); anything else → `edited`;
//!   delete → `deleted`; comments → `added comment:`, `edited comment:`, `deleted comment:`
//!   followed by the quoted text.
//! - `changes`: see [`super::tracker_changes`]. A comment event carries two changes, the
//!   comment's own first, then the story's `updated_at` bump (from `parent_before` /
//!   `parent_after`).
//! - `primary_resources` is the story, `url` = `{public_base_url}/story/show/{id}` (never an
//!   empty host, unlike the vendor example).
//! - `occurred_at` is epoch milliseconds.
//!
//! `Webhook:Ping` (the "test" button) has no Tracker equivalent. Herald sends an activity of
//! kind `ping_activity` with highlight `pinged` ("Anna Doe pinged this webhook"), no changes
//! and no primary resources; the project is the event's project, or `{id: 0, name: ""}`.
//! Tracker's migration guide tells receivers to ignore what they do not know, and receivers
//! such as Zulip's answer unknown kinds with "unsupported event", which is enough to prove
//! the endpoint works.

use serde::Serialize;
use serde_json::Value;

use super::encode::{canonical_decimal, field, int_field, str_field};
use super::tracker_changes::{
    comment_create, comment_delete, comment_update, story_create, story_delete, story_update, story_value,
    Change,
};
use super::RenderContext;
use crate::domain::event::Event;
use crate::domain::event_type::{Action, EntityKind};

/// A Tracker v5 activity. Field order is the wire order.
#[derive(Debug, Clone, Serialize)]
pub struct Activity<'a> {
    /// `<resource>_<verb>_activity`.
    pub kind: &'static str,
    /// `{project_id}_{project_version}`.
    pub guid: String,
    /// Per-project change counter.
    pub project_version: i64,
    /// Readable sentence.
    pub message: String,
    /// The verb fragment of `message`.
    pub highlight: String,
    /// What changed.
    pub changes: Vec<Change<'a>>,
    /// The story the activity is about.
    pub primary_resources: Vec<Resource<'a>>,
    /// The project.
    pub project: ProjectOut<'a>,
    /// Who did it.
    pub performed_by: Person<'a>,
    /// When, epoch milliseconds.
    pub occurred_at: i64,
}

/// A `primary_resources` entry (always a story here).
#[derive(Debug, Clone, Serialize)]
pub struct Resource<'a> {
    /// `story`.
    pub kind: &'static str,
    /// Story id.
    pub id: i64,
    /// Story name.
    pub name: &'a Value,
    /// Story type.
    pub story_type: &'a Value,
    /// Link to the story.
    pub url: String,
}

/// `project`.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectOut<'a> {
    /// `project`.
    pub kind: &'static str,
    /// Project id.
    pub id: i64,
    /// Project name.
    pub name: &'a str,
}

/// `performed_by`.
#[derive(Debug, Clone, Serialize)]
pub struct Person<'a> {
    /// `person`.
    pub kind: &'static str,
    /// Numeric user id.
    pub id: i64,
    /// Display name.
    pub name: &'a str,
    /// Initials.
    pub initials: &'a str,
}

static NULL: Value = Value::Null;

fn snap(v: &Option<Value>) -> &Value {
    v.as_ref().unwrap_or(&NULL)
}

/// Builds the Tracker activity; `None` for kinds other than stories, comments and pings.
pub fn build<'a>(event: &'a Event, ctx: &RenderContext<'_>) -> Option<Activity<'a>> {
    let action = event.event_type.action();
    let kind = event.event_type.kind();
    // The story the activity is about: the entity itself, or a comment's parent story.
    let (story_id, story) = match kind {
        EntityKind::Story => {
            let s = if action == Action::Deleted {
                &event.before
            } else {
                &event.after
            };
            (event.entity_id, snap(s))
        }
        EntityKind::Comment => {
            let s = snap(if event.parent_after.is_some() {
                &event.parent_after
            } else {
                &event.parent_before
            });
            let comment = snap(if action == Action::Deleted {
                &event.before
            } else {
                &event.after
            });
            let id = event
                .parent
                .as_ref()
                .map(|p| p.id)
                .or_else(|| int_field(comment, "story_id"))
                .or_else(|| int_field(s, "id"))
                .unwrap_or_default();
            (id, s)
        }
        EntityKind::Webhook => (0, &NULL),
        _ => return None,
    };
    let (kind_name, highlight, message) = describe(event, story)?;
    let project_id = event
        .project
        .as_ref()
        .map(|p| p.id)
        .or_else(|| int_field(story, "project_id"))
        .unwrap_or_default();
    // The one use of `seq` in any body: keep `super::body_shows_seq` in step.
    let project_version = event.project_version.unwrap_or(event.seq);
    let primary_resources = if kind == EntityKind::Webhook {
        Vec::new()
    } else {
        vec![Resource {
            kind: "story",
            id: story_id,
            name: field(story, "name"),
            story_type: field(story, "story_type"),
            url: format!(
                "{}/story/show/{story_id}",
                ctx.public_base_url.trim_end_matches('/')
            ),
        }]
    };
    Some(Activity {
        kind: kind_name,
        guid: format!("{project_id}_{project_version}"),
        project_version,
        message,
        highlight,
        changes: changes(event, story_id, story),
        primary_resources,
        project: ProjectOut {
            kind: "project",
            id: project_id,
            name: event.project.as_ref().map_or("", |p| p.name.as_str()),
        },
        performed_by: Person {
            kind: "person",
            id: event.actor.id,
            name: &event.actor.name,
            initials: &event.actor.initials,
        },
        occurred_at: event.occurred_at,
    })
}

fn changes<'a>(event: &'a Event, story_id: i64, story: &'a Value) -> Vec<Change<'a>> {
    let (before, after) = (snap(&event.before), snap(&event.after));
    let (id, at) = (event.entity_id, event.occurred_at);
    let action = event.event_type.action();
    match event.event_type.kind() {
        EntityKind::Story => vec![match action {
            Action::Created => story_create(id, after, at),
            Action::Deleted => story_delete(id, before),
            _ => story_update(id, before, after, &event.changed, at),
        }],
        EntityKind::Comment => {
            let own = match action {
                Action::Created => comment_create(id, after, at),
                Action::Deleted => comment_delete(id),
                _ => comment_update(id, before, after, &event.changed, at),
            };
            let mut out = vec![own];
            if event.parent_after.is_some() {
                // The comment bumped the story's `updated_at`; Tracker reports that too.
                out.push(story_update(story_id, snap(&event.parent_before), story, &[], at));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// `(kind, highlight, message)` for the event, worded as Tracker words them.
fn describe(event: &Event, story: &Value) -> Option<(&'static str, String, String)> {
    let who = event.actor.name.as_str();
    let what = str_field(story, "story_type").unwrap_or("story");
    let kind = event.event_type.kind();
    let action = event.event_type.action();
    let (kind_name, highlight, message) = match (kind, action) {
        (EntityKind::Webhook, _) => (
            "ping_activity",
            "pinged".to_owned(),
            format!("{who} pinged this webhook"),
        ),
        (EntityKind::Story, Action::Created) => (
            "story_create_activity",
            "added".to_owned(),
            format!("{who} added this {what}"),
        ),
        (EntityKind::Story, Action::Deleted) => (
            "story_delete_activity",
            "deleted".to_owned(),
            format!("{who} deleted this {what}"),
        ),
        (EntityKind::Story, _) => {
            let (highlight, message) = story_update_words(event, who, what);
            ("story_update_activity", highlight, message)
        }
        (EntityKind::Comment, _) => {
            let (kind_name, verb, source) = match action {
                Action::Created => ("comment_create_activity", "added comment:", &event.after),
                Action::Deleted => ("comment_delete_activity", "deleted comment:", &event.before),
                _ => ("comment_update_activity", "edited comment:", &event.after),
            };
            let text = str_field(snap(source), "text").unwrap_or_default();
            (kind_name, verb.to_owned(), format!("{who} {verb} \"{text}\""))
        }
        _ => return None,
    };
    Some((kind_name, highlight, message))
}

fn story_update_words(event: &Event, who: &str, what: &str) -> (String, String) {
    let after = snap(&event.after);
    let keys: Vec<&str> = event
        .changed
        .iter()
        .map(String::as_str)
        .filter(|k| story_value(after, k).is_some())
        .collect();
    if keys.contains(&"current_state") {
        if let Some(state) = str_field(after, "current_state") {
            return (state.to_owned(), format!("{who} {state} this {what}"));
        }
    }
    if keys == ["estimate"] {
        let points = match canonical_decimal(field(after, "estimate")) {
            Some(n) if n == "1" => "1 point".to_owned(),
            Some(n) => format!("{n} points"),
            None => "unestimated".to_owned(),
        };
        return (
            "estimated".to_owned(),
            format!("{who} estimated this {what} as {points}"),
        );
    }
    if !keys.is_empty() && keys.iter().all(|k| matches!(*k, "before_id" | "after_id")) {
        return ("moved".to_owned(), format!("{who} moved this story"));
    }
    ("edited".to_owned(), format!("{who} edited this {what}"))
}
