//! PPM Express `Attributes`: one snapshot turned into PPM display labels.
//!
//! Key order follows the vendor's own payloads (seed 003) so a receiver diffing our body
//! against PPM's sees the same layout. Custom attributes (`custom` in project and idea
//! snapshots) are appended after the built-in ones with their labels passed through
//! byte-for-byte (`Idea’s sponsor` keeps its U+2019). A custom label never duplicates a key:
//! it may replace one of the placeholder defaults PPM always sends for Projects and Herald
//! does not model (`Impact`, `Risk`, …), but never a modeled attribute, which stays
//! authoritative.

use serde_json::Value;

use super::encode::{array_field, field, int_field, number, ppm_date, ppm_timestamp_value};
use super::ordered::{Node, Obj};
use crate::domain::event_type::EntityKind;

/// Project attributes PPM always sends that Herald does not model, with PPM's defaults.
/// Listed so the body has the vendor's full shape; a custom attribute with the same label
/// replaces the default.
const PROJECT_DEFAULTS: &[(&str, i64)] = &[
    ("Impact", 0),
    ("Risk", 0),
    ("Revenue", 0),
    ("Efforts", 0),
    ("RisksStatus", -1),
    ("IssuesStatus", -1),
    ("ResourcesStatus", -1),
    ("CostStatus", -1),
    ("ScheduleStatus", -1),
    ("Number", 0),
    ("Score", 0),
    ("AlignmentScore", 0),
    ("ReportedTime", 0),
    ("PlannedWork", 0),
];

/// Project lookups PPM sends as `null` when empty and Herald does not model.
const PROJECT_NULL_DEFAULTS: &[&str] = &["ParentIdea", "HighLevelScope", "Stage"];

/// Builds the `Attributes` object for an entity of `kind` from its snapshot. `entity_uuid`
/// is the event's entity UUID, used for the Project `Id` attribute so it is right even
/// when a snapshot is incomplete. `None` for kinds PPM has no events for.
pub fn attributes(kind: EntityKind, entity_uuid: &str, s: &Value) -> Option<Obj> {
    match kind {
        EntityKind::Project => Some(project(entity_uuid, s)),
        EntityKind::Idea => Some(idea(s)),
        EntityKind::Task => Some(task(s)),
        EntityKind::KeyDate => Some(key_date(s)),
        _ => None,
    }
}

fn default_of(label: &str) -> Option<Node> {
    PROJECT_DEFAULTS
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, v)| Node::int(*v))
        .or_else(|| PROJECT_NULL_DEFAULTS.contains(&label).then_some(Node::NULL))
}

fn project(entity_uuid: &str, s: &Value) -> Obj {
    let d = |label: &str| default_of(label).unwrap_or(Node::NULL);
    let a = Obj::new()
        .with("Impact", d("Impact"))
        .with("Risk", d("Risk"))
        .with("Cost", number(field(s, "cost")))
        .with("Revenue", d("Revenue"))
        .with("Efforts", d("Efforts"))
        .with("RisksStatus", d("RisksStatus"))
        .with("IssuesStatus", d("IssuesStatus"))
        .with("ResourcesStatus", d("ResourcesStatus"))
        .with("CostStatus", d("CostStatus"))
        .with("ScheduleStatus", d("ScheduleStatus"))
        .with("Id", entity_uuid)
        .with("Name", field(s, "name").clone())
        .with("ParentIdea", d("ParentIdea"))
        .with("Portfolio", lookups(s, "portfolio"))
        .with("Program", lookups(s, "program"))
        .with("HighLevelScope", d("HighLevelScope"))
        .with("Progress", number(field(s, "progress")))
        .with("Number", d("Number"))
        .with("StartDate", ppm_date(field(s, "start_date")))
        .with("FinishDate", ppm_date(field(s, "finish_date")))
        .with("Description", field(s, "description").clone())
        .with("Priority", number(field(s, "priority")))
        .with("Score", d("Score"))
        .with("Manager", people(s, "manager"))
        .with("Stage", d("Stage"))
        .with(
            "OverallStatus",
            Node::int(int_field(s, "overall_status").unwrap_or(-1)),
        )
        .with("Budget", number(field(s, "budget")))
        .with("CreatedDate", ppm_timestamp_value(field(s, "created_at")))
        .with("LastModifiedDate", ppm_timestamp_value(field(s, "updated_at")))
        .with("AlignmentScore", d("AlignmentScore"))
        .with("ReportedTime", d("ReportedTime"))
        .with("PlannedWork", d("PlannedWork"));
    with_custom(a, s, |label| default_of(label).is_some())
}

fn idea(s: &Value) -> Obj {
    let a = Obj::new()
        .with("BusinessPriority", number(field(s, "business_priority")))
        .with("ExpectedEfforts", number(field(s, "expected_efforts")))
        .with("ExpectedCost", number(field(s, "expected_cost")))
        .with("Cost", number(field(s, "cost")))
        .with("Efforts", number(field(s, "efforts")))
        .with("Tags", Value::Array(array_field(s, "tags").to_vec()))
        .with("Impact", number(field(s, "impact")))
        .with("Risk", number(field(s, "risk")))
        .with("Revenue", number(field(s, "revenue")))
        .with("Name", field(s, "name").clone())
        .with("Description", field(s, "description").clone())
        .with("AlignmentScore", number(field(s, "alignment_score")))
        .with("Stage", number(field(s, "stage")))
        .with("ChildProject", lookup(field(s, "child_project"), "uuid"))
        .with("Challenge", lookup(field(s, "challenge"), "id"))
        .with("Submitter", person(field(s, "submitter")))
        .with("Budget", number(field(s, "budget")))
        .with("CreatedDate", ppm_timestamp_value(field(s, "created_at")))
        .with("LastModifiedDate", ppm_timestamp_value(field(s, "updated_at")))
        .with("DiscussionUrl", field(s, "discussion_url").clone())
        .with("StartDate", ppm_date(field(s, "start_date")))
        .with("FinishDate", ppm_date(field(s, "finish_date")));
    with_custom(a, s, |_| false)
}

fn task(s: &Value) -> Obj {
    let group = match field(s, "group") {
        g @ Value::Object(_) => Node::Obj(
            Obj::new()
                .with("Id", field(g, "id").clone())
                .with("Name", field(g, "name").clone())
                .with("Color", field(g, "color").clone()),
        ),
        _ => Node::NULL,
    };
    Obj::new()
        .with("Group", group)
        .with("StartDate", ppm_date(field(s, "start_date")))
        .with("DueDate", ppm_date(field(s, "due_date")))
        .with("Duration", number(field(s, "duration")))
        .with("Progress", number(field(s, "progress")))
        .with("Status", number(field(s, "status")))
        .with("IsMilestone", field(s, "is_milestone").clone())
        .with("Priority", number(field(s, "priority")))
        .with("Name", field(s, "name").clone())
        .with("Description", field(s, "description").clone())
        .with("AssignedTo", people(s, "assigned_to"))
}

fn key_date(s: &Value) -> Obj {
    Obj::new()
        .with("ShowOnTimeline", field(s, "show_on_timeline").clone())
        .with("Name", field(s, "name").clone())
        .with("Type", number(field(s, "type")))
        .with("Date", ppm_date(field(s, "date")))
        .with("IsComplete", field(s, "is_complete").clone())
        .with("Status", number(field(s, "status")))
        .with("Description", field(s, "description").clone())
        .with("AssignedTo", people(s, "assigned_to"))
}

/// Appends the snapshot's `custom` attributes. A label already present is replaced only
/// when `replaceable(label)` says it holds a placeholder default.
fn with_custom(mut a: Obj, s: &Value, replaceable: impl Fn(&str) -> bool) -> Obj {
    if let Some(custom) = field(s, "custom").as_object() {
        for (label, value) in custom {
            if !a.contains_key(label) || replaceable(label) {
                a.insert(label.clone(), value.clone());
            }
        }
    }
    a
}

/// A PPM people object `{Id, FullName, ImageId}` from a snapshot `UserRef`; `null` when
/// unset. Herald keeps no avatars, so `ImageId` is always `null`.
pub fn person(u: &Value) -> Node {
    if !u.is_object() {
        return Node::NULL;
    }
    Node::Obj(
        Obj::new()
            .with("Id", field(u, "uuid").clone())
            .with("FullName", field(u, "name").clone())
            .with("ImageId", Node::NULL),
    )
}

fn people(s: &Value, key: &str) -> Node {
    Node::Arr(array_field(s, key).iter().map(person).collect())
}

/// A PPM lookup `{Id, Name}`, its id read from `id_key` (`uuid` for entity refs, `id` for
/// challenges whose id already is a UUID); `null` when unset.
fn lookup(v: &Value, id_key: &str) -> Node {
    if !v.is_object() {
        return Node::NULL;
    }
    Node::Obj(
        Obj::new()
            .with("Id", field(v, id_key).clone())
            .with("Name", field(v, "name").clone()),
    )
}

fn lookups(s: &Value, key: &str) -> Node {
    Node::Arr(array_field(s, key).iter().map(|v| lookup(v, "uuid")).collect())
}
