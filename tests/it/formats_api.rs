//! Golden tests through the API: the data of each vendor example is built with Herald's
//! public API, the resulting event is rendered in the example's format, and the body must
//! have the same shape (keys, nesting, order, value types, encodings) as our checked
//! rendering of that example (`tests/golden/<format>/<name>.rendered.json`, itself compared
//! with the vendor's original by the unit golden tests, with every accepted deviation
//! documented there). Ids, timestamps and UUIDs are data, not shape.

#[path = "../../src/formats/tests/shape.rs"]
#[allow(dead_code)]
mod shape;

use herald::domain::event::Event;
use herald::formats::{render, Format, RenderContext};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both;
use crate::support::TestApp;

const V1: &str = "/@default/v1";

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.call("POST", &format!("{V1}{path}"), Some(body)).await;
    assert_eq!(r.status, 201, "{path}: {}", r.text);
    r.json["data"].clone()
}

async fn patch(app: &TestApp, path: &str, body: Value) {
    let r = app.call("PATCH", &format!("{V1}{path}"), Some(body)).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
}

async fn last_event(app: &TestApp, event_type: &str) -> Event {
    let r = app
        .call("GET", &format!("{V1}/events?limit=1000&type={event_type}"), None)
        .await;
    let list = r.json["data"].as_array().unwrap();
    serde_json::from_value(list.last().expect("an event of that type").clone()).unwrap()
}

/// Reorders a Projectrak body's `fields` entries to the golden's name order: which fields
/// come first is data (system fields have the lowest ids), not shape.
fn align_fields(actual: &mut shape::Tree, golden: &shape::Tree) {
    fn get<'a>(t: &'a mut shape::Tree, key: &str) -> Option<&'a mut shape::Tree> {
        match t {
            shape::Tree::Obj(kv) => kv.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn name(t: &shape::Tree) -> Option<String> {
        match t {
            shape::Tree::Obj(kv) => kv.iter().find(|(k, _)| k == "name").and_then(|(_, v)| match v {
                shape::Tree::Str(s) => Some(s.clone()),
                _ => None,
            }),
            _ => None,
        }
    }
    let mut g = golden.clone();
    let order: Vec<String> = match get(&mut g, "data").and_then(|d| get(d, "fields")) {
        Some(shape::Tree::Arr(items)) => items.iter().filter_map(name).collect(),
        _ => return,
    };
    if let Some(shape::Tree::Arr(items)) = get(actual, "data").and_then(|d| get(d, "fields")) {
        items.sort_by_key(|f| {
            name(f)
                .and_then(|n| order.iter().position(|o| *o == n))
                .unwrap_or(usize::MAX)
        });
    }
}

#[track_caller]
fn assert_shape(format: Format, event: &Event, rendered_golden: &str) {
    let ctx = RenderContext {
        webhook_id: Uuid::new_v4(),
        delivery_id: Uuid::new_v4(),
        public_base_url: "https://herald.example.com",
    };
    let body = render(format, event, &ctx).expect("the event renders in this format");
    let mut actual: shape::Tree = serde_json::from_slice(&body.body).unwrap();
    let expected = shape::Tree::parse(rendered_golden);
    align_fields(&mut actual, &expected);
    let diffs: Vec<String> = shape::shape_diff(&expected, &actual)
        .into_iter()
        // Tracker does not specify the order of keys inside original_values/new_values.
        .filter(|d| !(d.contains("_values.") && d.ends_with("out of order")))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} body differs in shape from the golden rendering:\n  {}\nbody: {}",
        format.as_str(),
        diffs.join("\n  "),
        String::from_utf8_lossy(&body.body)
    );
}

macro_rules! golden {
    ($dir:literal, $name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/",
            $dir,
            "/",
            $name,
            ".rendered.json"
        ))
    };
}

both!(projectrak_field_update, |app: TestApp| async move {
    post(&app, "/fields", json!({"name": "Budget", "type": "number"})).await;
    post(&app, "/fields", json!({"name": "Milestone", "type": "milestone"})).await;
    let p = post(
        &app,
        "/projects",
        json!({"key": "DEMO", "name": "Demo project", "fields": {
        "Budget": 25000, "Status": "On track",
        "Milestone": {"id": 1, "date": "2025-02-18", "name": "Milestone name", "linked_issues_id": []}}}),
    )
    .await;
    patch(&app, &format!("/projects/{}", p["id"]), json!({"fields": {
        "Budget": 23000, "Status": "Done",
        "Milestone": {"id": 1, "date": "2025-02-22", "name": "Milestone name - updated", "linked_issues_id": [24, 35]}}})).await;
    let e = last_event(&app, "Project:Updated").await;
    assert_shape(Format::Projectrak, &e, golden!("projectrak", "updated"));
});

both!(
    tracker_story_create_update_and_comment,
    |app: TestApp| async move {
        post(&app, "/users", json!({"accountId": "leo", "name": "Leo Franchi"})).await;
        let p = post(&app, "/projects", json!({"key": "HC", "name": "Hard Code"})).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let s = post(
                &app,
                "/stories",
                json!({"project_id": p["id"], "name": format!("Story {i}"), "story_type": "feature"}),
            )
            .await;
            ids.push(s["id"].as_i64().unwrap());
        }
        // A story created between two others, like the example (before_id and after_id set).
        post(
            &app,
            "/stories",
            json!({"project_id": p["id"], "name": "Story that I created", "story_type": "bug",
        "description": "What a description", "after_id": ids[1]}),
        )
        .await;
        let created = last_event(&app, "Story:Created").await;
        assert_shape(Format::TrackerV5, &created, golden!("tracker-v5", "story_create"));

        patch(
            &app,
            &format!("/stories/{}", ids[2]),
            json!({"current_state": "delivered"}),
        )
        .await;
        patch(
            &app,
            &format!("/stories/{}", ids[2]),
            json!({"current_state": "accepted", "after_id": ids[3]}),
        )
        .await;
        let accepted = last_event(&app, "Story:Updated").await;
        assert_eq!(
            accepted.changed,
            vec!["accepted_at", "after_id", "before_id", "current_state"]
        );
        assert_shape(
            Format::TrackerV5,
            &accepted,
            golden!("tracker-v5", "story_update"),
        );

        post(
            &app,
            "/comments",
            json!({"story_id": ids[0], "text": "A comment on the story"}),
        )
        .await;
        let comment = last_event(&app, "Comment:Created").await;
        assert_shape(
            Format::TrackerV5,
            &comment,
            golden!("tracker-v5", "comment_create"),
        );
    }
);

both!(ppm_project_idea_key_date_and_task, |app: TestApp| async move {
    post(
        &app,
        "/users",
        json!({"accountId": "john", "name": "John Doe", "email": "john@company.com"}),
    )
    .await;
    post(
        &app,
        "/users",
        json!({"accountId": "anna", "name": "Anna Doe", "email": "anna.doe@company.com"}),
    )
    .await;
    post(
        &app,
        "/projects",
        json!({"key": "AI", "name": "Artificial Intelligence", "progress": 2, "priority": 3,
        "start_date": "2021-12-01", "finish_date": "2021-12-31", "manager": ["john"]}),
    )
    .await;
    let e = last_event(&app, "Project:Created").await;
    assert_shape(Format::Ppm, &e, golden!("ppm", "project_created"));

    let idea = post(&app, "/ideas", json!({"name": "Dog Shelter Charity", "description": "Let's donate $1000 each month",
        "business_priority": 3, "expected_efforts": 1000, "expected_cost": 1000, "cost": 2, "efforts": 4,
        "tags": ["#shelter"], "stage": 0, "challenge": {"name": "Charity ideas"}, "submitter": "anna",
        "start_date": "2022-02-01", "finish_date": "2022-02-28",
        "custom": {"Idea’s sponsor": {"Id": "16facc4a-8b00-4fc6-a873-6dfa72afff85", "FullName": "Brian Adams", "ImageId": null}}})).await;
    patch(&app, &format!("/ideas/{}", idea["id"]), json!({"stage": 1})).await;
    let e = last_event(&app, "Idea:Updated").await;
    assert_shape(Format::Ppm, &e, golden!("ppm", "idea_updated"));

    let p = post(&app, "/projects", json!({"key": "R", "name": "Release project"})).await;
    let kd = post(
        &app,
        "/key-dates",
        json!({"project_id": p["id"], "name": "Release 1.0", "type": 0,
        "date": "2022-02-13", "status": 1}),
    )
    .await;
    patch(
        &app,
        &format!("/key-dates/{}", kd["id"]),
        json!({"is_complete": true, "status": 10}),
    )
    .await;
    let e = last_event(&app, "KeyDate:Updated").await;
    assert_shape(Format::Ppm, &e, golden!("ppm", "key_date_updated"));

    let t = post(&app, "/tasks", json!({"project_id": p["id"], "name": "Create a test environment",
        "group": {"name": "Backlog", "color": "#6a6b6d"}, "start_date": "2022-02-14", "due_date": "2022-02-24",
        "duration": 9, "progress": 50})).await;
    assert_eq!(
        app.call("DELETE", &format!("{V1}/tasks/{}", t["id"]), None)
            .await
            .status,
        204
    );
    let e = last_event(&app, "Task:Deleted").await;
    assert_shape(Format::Ppm, &e, golden!("ppm", "task_deleted"));
});

both!(
    formula_only_changes_send_no_projectrak_body,
    |app: TestApp| async move {
        post(&app, "/fields", json!({"name": "Budget", "type": "number"})).await;
        let f = post(
            &app,
            "/fields",
            json!({"name": "Twice", "type": "formula", "formula": "{Budget} * 2"}),
        )
        .await;
        let p = post(
            &app,
            "/projects",
            json!({"key": "F", "name": "F", "fields": {"Budget": 10}}),
        )
        .await;
        // Changing the formula and saving the project changes only the formula's value.
        patch(
            &app,
            &format!("/fields/{}", f["id"]),
            json!({"formula": "{Budget} * 3"}),
        )
        .await;
        patch(
            &app,
            &format!("/projects/{}", p["id"]),
            json!({"fields": {"Budget": 10}}),
        )
        .await;
        let e = last_event(&app, "Project:Updated").await;
        assert_eq!(e.changed, vec![format!("fields.{}", f["id"])]);
        let ctx = RenderContext {
            webhook_id: Uuid::new_v4(),
            delivery_id: Uuid::new_v4(),
            public_base_url: "https://h",
        };
        assert!(
            render(Format::Projectrak, &e, &ctx).is_none(),
            "formula-only saves notify nobody in Projectrak format"
        );
        assert!(
            render(Format::Standard, &e, &ctx).is_some(),
            "the standard format still reports it"
        );
    }
);
