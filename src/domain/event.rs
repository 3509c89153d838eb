//! Events: the durable record of one change to one entity, and the only input the payload
//! formats see. An event carries everything a renderer needs (actor, project, resolved
//! snapshots) so rendering stays pure: no store lookups at delivery time, and a body rendered
//! today is the same body rendered tomorrow.
//!
//! # Snapshot schema (the `before` / `after` objects)
//! Snapshots are Herald's canonical entity representation, snake_case keys, stored verbatim in
//! the event log and exposed as-is by the `standard` format. Every snapshot has `id` (i64),
//! `uuid` (string), `created_at` and `updated_at` (epoch ms). A [`UserRef`] is serialised as
//! `{id, uuid, account_id, name, initials, email}`; a [`ProjectRef`] as `{id, uuid, key, name}`.
//!
//! - **project**: `key, name, description|null, manager:[UserRef], portfolio:[{id,uuid,name}],
//!   program:[{id,uuid,name}], budget:f64, cost:f64, progress:i64, priority:i64,
//!   overall_status:i64 (-1 = unset), start_date:"YYYY-MM-DD"|null, finish_date|null,
//!   custom:{label: json} (PPM custom attributes, passed through by label),
//!   fields:[{id, name, type, value}]` — every Projectrak field of the tenant, value in the
//!   canonical encoding of [`crate::domain::field`] (text → string, number → JSON number,
//!   date → "YYYY-MM-DD", duration → integer ms, status/priority/list → option name,
//!   multilist → [name], user → UserRef, multiuser → [UserRef], project → ProjectRef,
//!   multiproject → [ProjectRef], milestone → {id, date, name, linked_issues_id:[i64]},
//!   formula → number; unset single value → null, unset multi value → []).
//! - **story**: `project_id, name, description|null, story_type (feature|bug|chore|release),
//!   current_state (unscheduled|unstarted|planned|started|finished|delivered|accepted|rejected),
//!   estimate:f64|null, accepted_at:ms|null, deadline:ms|null, requested_by:UserRef|null,
//!   owners:[UserRef], labels:[string], before_id:i64|null (next story), after_id:i64|null
//!   (previous story)`.
//! - **comment**: `story_id, text, person:UserRef`.
//! - **task**: `project_id, name, description|null, group:{id(uuid),name,color}|null,
//!   start_date|null, due_date|null, duration:i64|null (days), progress:i64 (0..100),
//!   status:i64, priority:i64, is_milestone:bool, assigned_to:[UserRef]`.
//! - **idea**: `name, description|null, stage:i64, business_priority:i64, cost:f64,
//!   efforts:f64, expected_cost:f64, expected_efforts:f64, impact:i64, risk:i64,
//!   revenue:f64, budget:f64, alignment_score:f64, tags:[string],
//!   challenge:{id(uuid),name}|null, submitter:UserRef|null, child_project:ProjectRef|null,
//!   discussion_url|null, start_date|null, finish_date|null, custom:{label: json}`.
//! - **key_date**: `name, description|null, type:i64, date:"YYYY-MM-DD"|null,
//!   is_complete:bool, status:i64, show_on_timeline:bool, assigned_to:[UserRef]`
//!   (its owner is the event's `parent`: a project, portfolio or program).
//!
//! `changed` lists the top-level snapshot keys whose value differs, in snapshot key order,
//! with `fields.<field id>` for each changed Projectrak field; `updated_at` is never listed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event_type::{EntityKind, EventType};

/// A user as events carry it: enough for every format's author block
/// (PPM `Initiator`, Tracker `performed_by`, Projectrak `user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// Numeric id (Tracker `person.id`).
    pub id: i64,
    /// UUID (PPM `UserId`).
    pub uuid: Uuid,
    /// Account id (Projectrak `user`), e.g. `DUMMY-ACCOUNT-ID-…`.
    pub account_id: String,
    /// Display name (PPM `FullName`, Tracker `name`).
    pub name: String,
    /// Initials (Tracker `initials`).
    pub initials: String,
    /// E-mail (PPM `LogonAccount`); empty when unknown.
    pub email: String,
}

/// The project an entity lives in, as every format names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRef {
    /// Numeric id (Projectrak/Tracker).
    pub id: i64,
    /// UUID (PPM).
    pub uuid: Uuid,
    /// Short key, e.g. `DEMO`.
    pub key: String,
    /// Display name.
    pub name: String,
}

/// The parent of a child entity (task → project, key date → project/portfolio/program,
/// story → project, comment → story).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// What kind of entity the parent is.
    pub kind: EntityKind,
    /// Numeric id.
    pub id: i64,
    /// UUID (PPM `ParentEntityId`).
    pub uuid: Uuid,
}

/// One change, as written to the outbox in the same transaction as the change itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic per database; the event log cursor.
    pub seq: i64,
    /// Globally unique event id.
    pub id: Uuid,
    /// Tenant slug.
    pub tenant: String,
    /// `Project:Updated`, …
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Kind of the entity that changed.
    pub entity_kind: EntityKind,
    /// Numeric id of the entity.
    pub entity_id: i64,
    /// UUID of the entity.
    pub entity_uuid: Uuid,
    /// Parent entity, when the entity has one.
    pub parent: Option<ParentRef>,
    /// The project the entity belongs to (the project itself for project events); `None`
    /// for key dates of portfolios/programs and for pings.
    pub project: Option<ProjectRef>,
    /// Who made the change.
    pub actor: UserRef,
    /// When the change happened, epoch milliseconds.
    pub occurred_at: i64,
    /// Per-project change counter after this change (Tracker `project_version`).
    pub project_version: Option<i64>,
    /// Snapshot before the change (`None` on create).
    pub before: Option<serde_json::Value>,
    /// Snapshot after the change (`None` on delete).
    pub after: Option<serde_json::Value>,
    /// Changed top-level keys (see module docs).
    pub changed: Vec<String>,
    /// For comment events: the parent story's snapshot before and after (a comment bumps
    /// the story's `updated_at`; Tracker reports that as a second change).
    pub parent_before: Option<serde_json::Value>,
    /// See `parent_before`.
    pub parent_after: Option<serde_json::Value>,
}
