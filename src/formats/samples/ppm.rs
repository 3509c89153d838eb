//! Sample project, idea, task and key-date events, from the PPM Express and Projectrak
//! examples (seeds 000 and 003).

use serde_json::{json, Value};
use uuid::uuid;

use super::{anna, base, john, merged, parent_of, user_json, website};
use crate::domain::event::{Event, ParentRef, ProjectRef};
use crate::domain::event_type::{Action, EntityKind, EventType};

fn ai_project() -> ProjectRef {
    ProjectRef {
        id: 13650,
        uuid: uuid!("a9211e5f-7565-4647-9ff8-a13952992398"),
        key: "AI".to_owned(),
        name: "Artificial Intelligence".to_owned(),
    }
}

/// The project of the PPM `Project:Created` example, as a snapshot.
fn ai_snapshot() -> Value {
    let p = ai_project();
    json!({
        "id": p.id, "uuid": p.uuid, "created_at": 1_644_504_558_690_i64, "updated_at": 1_644_504_558_690_i64,
        "key": p.key, "name": p.name, "description": null,
        "manager": [user_json(&john())], "portfolio": [], "program": [],
        "budget": 0.0, "cost": 0.0, "progress": 2, "priority": 3, "overall_status": -1,
        "start_date": "2021-12-01", "finish_date": "2021-12-31", "custom": {}, "fields": [],
    })
}

fn project_event(t: EventType, p: ProjectRef, occurred_at: i64) -> Event {
    Event {
        entity_id: p.id,
        entity_uuid: p.uuid,
        project: Some(p),
        project_version: Some(1),
        ..base(t, anna(), occurred_at)
    }
}

/// The PPM `Project:Created` example.
pub fn project_created() -> Event {
    Event {
        after: Some(ai_snapshot()),
        ..project_event(EventType::PROJECT_CREATED, ai_project(), 1_644_504_558_878)
    }
}

/// The same project, deleted.
pub fn project_deleted() -> Event {
    Event {
        before: Some(ai_snapshot()),
        project_version: Some(9),
        ..project_event(EventType::PROJECT_DELETED, ai_project(), 1_645_450_257_516)
    }
}

fn field(id: i64, name: &str, ty: &str, value: Value) -> Value {
    json!({"id": id, "name": name, "type": ty, "value": value})
}

/// The Projectrak example: Budget, Status and Milestone change; a formula field changes too
/// (and is not reported); other fields stay as they were.
pub fn project_updated() -> Event {
    let p = ProjectRef {
        id: 13647,
        uuid: uuid!("5b0e7c1a-3f7d-4a53-9d55-0c8f5b7e2a11"),
        key: "DEMO".to_owned(),
        name: "Demo project".to_owned(),
    };
    let snapshot = |budget: f64, status: &str, milestone: Value, score: i64, updated: i64| {
        json!({
            "id": p.id, "uuid": p.uuid, "created_at": 1_673_341_200_000_i64, "updated_at": updated,
            "key": p.key, "name": p.name, "description": "Demo of Projectrak webhooks",
            "manager": [user_json(&anna())], "portfolio": [], "program": [],
            "budget": budget, "cost": 1250.5, "progress": 1, "priority": 2, "overall_status": 0,
            "start_date": "2023-01-09", "finish_date": null,
            "custom": {"Sponsor": "Finance"},
            "fields": [
                field(12345, "Budget", "number", json!(budget)),
                field(54321, "Status", "status", json!(status)),
                field(12346, "Milestone", "milestone", milestone),
                field(12347, "Health score", "formula", json!(score)),
                field(12348, "Stakeholders", "multiuser", json!([user_json(&john())])),
                field(12349, "Start date", "date", json!("2023-01-09")),
                field(12350, "Estimated time", "duration", json!(28_800_000)),
            ],
        })
    };
    let before = snapshot(
        25000.0,
        "On track",
        json!({"id": 1, "date": "2025-02-18", "name": "Milestone name", "linked_issues_id": []}),
        10,
        1_675_000_000_000,
    );
    let after = snapshot(
        23000.0,
        "Done",
        json!({"id": 1, "date": "2025-02-22", "name": "Milestone name - updated", "linked_issues_id": [24, 35]}),
        12,
        1_675_182_117_615,
    );
    let changed = [
        "budget",
        "fields.12345",
        "fields.54321",
        "fields.12346",
        "fields.12347",
    ];
    Event {
        before: Some(before),
        after: Some(after),
        changed: changed.map(str::to_owned).to_vec(),
        project_version: Some(42),
        ..project_event(EventType::PROJECT_UPDATED, p, 1_675_182_117_615)
    }
}

/// The PPM `Idea:Updated` example (stage 0 → 1); created and deleted use the same idea.
pub fn idea(t: EventType) -> Event {
    let snapshot = json!({
        "id": 5120, "uuid": "9e854862-1506-4c36-961f-85c44b5f2b8f",
        "created_at": 1_645_450_239_241_i64, "updated_at": 1_645_450_239_241_i64,
        "name": "Dog Shelter Charity", "description": "Let's donate $1000 each month",
        "stage": 1, "business_priority": 3, "cost": 2.0, "efforts": 4.0,
        "expected_cost": 1000.0, "expected_efforts": 1000.0, "impact": 0, "risk": 0,
        "revenue": 0.0, "budget": 0.0, "alignment_score": 0.0, "tags": ["#shelter"],
        "challenge": {"id": "657d8042-006b-498b-a041-d77d3968bc3a", "name": "Charity ideas"},
        "submitter": user_json(&anna()), "child_project": null, "discussion_url": null,
        "start_date": "2022-02-01", "finish_date": "2022-02-28",
        "custom": {"Idea’s sponsor": {"Id": "16facc4a-8b00-4fc6-a873-6dfa72afff85", "FullName": "Brian Adams", "ImageId": null}},
    });
    let before = merged(&snapshot, json!({"stage": 0}));
    let e = Event {
        entity_id: 5120,
        entity_uuid: uuid!("9e854862-1506-4c36-961f-85c44b5f2b8f"),
        ..base(t, anna(), 1_645_450_257_516)
    };
    match t.action() {
        Action::Created => Event {
            after: Some(before),
            ..e
        },
        Action::Deleted => Event {
            before: Some(snapshot),
            ..e
        },
        _ => Event {
            before: Some(before),
            after: Some(snapshot),
            changed: vec!["stage".to_owned()],
            ..e
        },
    }
}

/// The PPM `Task:Deleted` example; created and updated (progress 0 → 50) use the same task.
pub fn task(t: EventType) -> Event {
    let p = website();
    let snapshot = json!({
        "id": 88001, "uuid": "99cbbe21-58f5-4987-b0fc-2640009b779c",
        "created_at": 1_644_825_600_000_i64, "updated_at": 1_644_826_747_688_i64,
        "project_id": p.id, "name": "Create a test environment", "description": null,
        "group": {"id": "50a1d504-1f0a-4b39-99a7-4344e0755346", "name": "Backlog", "color": "#6a6b6d"},
        "start_date": "2022-02-14", "due_date": "2022-02-24", "duration": 9, "progress": 50,
        "status": 0, "priority": 0, "is_milestone": false, "assigned_to": [],
    });
    let before = merged(
        &snapshot,
        json!({"progress": 0, "updated_at": 1_644_825_600_000_i64}),
    );
    let e = Event {
        entity_id: 88001,
        entity_uuid: uuid!("99cbbe21-58f5-4987-b0fc-2640009b779c"),
        parent: parent_of(&p),
        project: Some(p),
        ..base(t, anna(), 1_644_826_747_688)
    };
    match t.action() {
        Action::Created => Event {
            after: Some(before),
            ..e
        },
        Action::Deleted => Event {
            before: Some(snapshot),
            ..e
        },
        _ => Event {
            before: Some(before),
            after: Some(snapshot),
            changed: vec!["progress".to_owned()],
            ..e
        },
    }
}

fn release_snapshot(complete: bool, status: i64) -> Value {
    json!({
        "id": 9301, "uuid": "776ec637-0e72-402f-8bdf-9e5f60bfbd3b",
        "created_at": 1_644_825_600_000_i64, "updated_at": 1_644_826_846_476_i64,
        "name": "Release 1.0", "description": null, "type": 0, "date": "2022-02-13",
        "is_complete": complete, "status": status, "show_on_timeline": true, "assigned_to": [],
    })
}

/// The PPM `KeyDate:Updated` example (completed); deleted uses the same key date.
pub fn key_date(t: EventType) -> Event {
    let p = website();
    let e = Event {
        entity_id: 9301,
        entity_uuid: uuid!("776ec637-0e72-402f-8bdf-9e5f60bfbd3b"),
        parent: parent_of(&p),
        project: Some(p),
        ..base(t, anna(), 1_644_826_846_476)
    };
    if t.action() == Action::Deleted {
        return Event {
            before: Some(release_snapshot(true, 10)),
            ..e
        };
    }
    Event {
        before: Some(merged(
            &release_snapshot(false, 1),
            json!({"updated_at": 1_644_825_600_000_i64}),
        )),
        after: Some(release_snapshot(true, 10)),
        changed: vec!["is_complete".to_owned(), "status".to_owned()],
        ..e
    }
}

/// A key date on a portfolio: no project, `ParentEntityType: "Portfolio"`.
pub fn key_date_created() -> Event {
    let snapshot = json!({
        "id": 9302, "uuid": "3c1f6a0e-8d2b-4b7a-9f1e-6a2d5c4b3e21",
        "created_at": 1_644_825_600_000_i64, "updated_at": 1_644_825_600_000_i64,
        "name": "Budget review", "description": "Quarterly portfolio budget review", "type": 1,
        "date": "2022-03-31", "is_complete": false, "status": 0, "show_on_timeline": false,
        "assigned_to": [user_json(&john())],
    });
    Event {
        entity_id: 9302,
        entity_uuid: uuid!("3c1f6a0e-8d2b-4b7a-9f1e-6a2d5c4b3e21"),
        parent: Some(ParentRef {
            kind: EntityKind::Portfolio,
            id: 310,
            uuid: uuid!("e0b7d6c5-4a39-4b28-8c17-f6e5d4c3b2a1"),
        }),
        after: Some(snapshot),
        ..base(EventType::KEY_DATE_CREATED, anna(), 1_644_825_600_000)
    }
}
