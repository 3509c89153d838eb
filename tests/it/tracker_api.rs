//! Tracker data and events end to end, on SQLite and PostgreSQL: every change writes exactly
//! one event in the same transaction, no-op changes write none, values are type-checked.

use serde_json::{json, Value};

use crate::both;
use crate::support::TestApp;

const V1: &str = "/@default/v1";

async fn events(app: &TestApp) -> Vec<Value> {
    let r = app.call("GET", &format!("{V1}/events?limit=1000"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["data"].as_array().unwrap().clone()
}

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.call("POST", &format!("{V1}{path}"), Some(body)).await;
    assert_eq!(r.status, 201, "{path}: {}", r.text);
    r.json["data"].clone()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> crate::support::app::Resp {
    app.call("PATCH", &format!("{V1}{path}"), Some(body)).await
}

both!(project_changes_write_one_event_each, |app: TestApp| async move {
    post(
        &app,
        "/users",
        json!({"accountId": "DUMMY-ACCOUNT-ID-1", "name": "Anna Doe", "email": "anna@x.test"}),
    )
    .await;
    post(&app, "/fields", json!({"name": "Budget", "type": "number"})).await;
    post(
        &app,
        "/fields",
        json!({"name": "Twice", "type": "formula", "formula": "{Budget} * 2"}),
    )
    .await;
    let p = post(
        &app,
        "/projects",
        json!({"key": "DEMO", "name": "Demo project",
        "fields": {"Budget": 25, "Status": "On track", "Stakeholders": ["DUMMY-ACCOUNT-ID-1"]}}),
    )
    .await;
    let id = p["id"].as_i64().unwrap();
    let field = |snap: &Value, name: &str| {
        snap["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(field(&p, "Budget"), json!(25));
    assert_eq!(field(&p, "Twice"), json!(50), "formula computed on save");
    assert_eq!(field(&p, "Stakeholders")[0]["name"], "Anna Doe");

    let r = patch(
        &app,
        &format!("/projects/{id}"),
        json!({"fields": {"Budget": "23", "Status": "Done"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(field(&r.json["data"], "Twice"), json!(46), "formula recomputed");
    // The same values again: no event.
    assert_eq!(
        patch(
            &app,
            &format!("/projects/{id}"),
            json!({"fields": {"Budget": 23}})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        patch(&app, &format!("/projects/{id}"), json!({"name": "Demo project"}))
            .await
            .status,
        200
    );
    assert_eq!(
        app.call("DELETE", &format!("{V1}/projects/{id}"), None)
            .await
            .status,
        204
    );

    let ev = events(&app).await;
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["Project:Created", "Project:Updated", "Project:Deleted"]
    );
    let up = &ev[1];
    assert_eq!(up["changed"], json!(["fields.1", "fields.10001", "fields.10002"]));
    assert_eq!(field(&up["before"], "Budget"), json!(25));
    assert_eq!(field(&up["after"], "Budget"), json!(23));
    assert_eq!(up["project"]["key"], "DEMO");
    assert_eq!(up["actor"]["account_id"], "admin");
    assert_eq!(
        ev.iter()
            .map(|e| e["project_version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(ev[0]["before"].is_null() && ev[2]["after"].is_null());
    assert_eq!(ev[2]["before"]["key"], "DEMO");
    let seqs: Vec<i64> = ev.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        app.call("GET", &format!("{V1}/projects/{id}"), None).await.status,
        404
    );
});

both!(
    stories_comments_tasks_ideas_and_key_dates,
    |app: TestApp| async move {
        post(&app, "/users", json!({"accountId": "leo", "name": "Leo Franchi"})).await;
        let p = post(&app, "/projects", json!({"key": "HC", "name": "Hard Code"})).await;
        let pid = p["id"].as_i64().unwrap();
        let s1 = post(
            &app,
            "/stories",
            json!({"project_id": pid, "name": "Story of the Year", "story_type": "feature"}),
        )
        .await;
        let s2 = post(
            &app,
            "/stories",
            json!({"project_id": pid, "name": "Story that I created", "story_type": "bug",
        "description": "What a description", "owners": ["leo"], "labels": ["x"]}),
        )
        .await;
        let (id1, id2) = (s1["id"].as_i64().unwrap(), s2["id"].as_i64().unwrap());
        let r = patch(&app, &format!("/stories/{id2}"), json!({"estimate": 3})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = patch(&app, &format!("/stories/{id2}"), json!({"before_id": id1})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            patch(
                &app,
                &format!("/stories/{id1}"),
                json!({"current_state": "accepted"})
            )
            .await
            .status,
            200
        );
        let c = post(
            &app,
            "/comments",
            json!({"story_id": id1, "text": "A comment on the story"}),
        )
        .await;
        assert_eq!(
            patch(&app, &format!("/comments/{}", c["id"]), json!({"text": "edited"}))
                .await
                .status,
            200
        );
        let t = post(&app, "/tasks", json!({"project_id": pid, "name": "Create a test environment",
        "group": {"name": "Backlog", "color": "#6a6b6d"}, "start_date": "2022-02-14", "due_date": "2022-02-24",
        "duration": 9, "progress": 50, "assigned_to": ["leo"]})).await;
        let idea = post(
            &app,
            "/ideas",
            json!({"name": "Dog Shelter Charity", "tags": ["#shelter"], "stage": 0,
        "custom": {"Idea’s sponsor": {"FullName": "Brian Adams"}}}),
        )
        .await;
        assert_eq!(
            patch(&app, &format!("/ideas/{}", idea["id"]), json!({"stage": 1}))
                .await
                .status,
            200
        );
        let kd = post(
            &app,
            "/key-dates",
            json!({"project_id": pid, "name": "Release 1.0", "date": "2022-02-13", "status": 1}),
        )
        .await;
        assert_eq!(
            patch(
                &app,
                &format!("/key-dates/{}", kd["id"]),
                json!({"is_complete": true, "status": 10})
            )
            .await
            .status,
            200
        );
        assert_eq!(
            app.call("DELETE", &format!("{V1}/tasks/{}", t["id"]), None)
                .await
                .status,
            204
        );
        assert_eq!(
            app.call("DELETE", &format!("{V1}/stories/{id2}"), None)
                .await
                .status,
            204
        );

        let ev = events(&app).await;
        let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            vec![
                "Project:Created",
                "Story:Created",
                "Story:Created",
                "Story:Updated",
                "Story:Updated",
                "Story:Updated",
                "Comment:Created",
                "Comment:Updated",
                "Task:Created",
                "Idea:Created",
                "Idea:Updated",
                "KeyDate:Created",
                "KeyDate:Updated",
                "Task:Deleted",
                "Story:Deleted",
            ]
        );
        assert_eq!(ev[3]["changed"], json!(["estimate"]));
        assert_eq!(
            ev[4]["changed"],
            json!(["after_id", "before_id"]),
            "a move changes only the position"
        );
        assert_eq!(ev[4]["after"]["before_id"], json!(id1));
        assert_eq!(ev[5]["changed"], json!(["accepted_at", "current_state"]));
        assert!(ev[5]["after"]["accepted_at"].is_i64());
        let comment = &ev[6];
        assert_eq!(comment["parent"]["id"], json!(id1));
        assert_eq!(
            comment["parent_after"]["updated_at"], comment["occurred_at"],
            "a comment bumps its story"
        );
        // Not `!=`: the story's last change and the comment can share a millisecond.
        assert!(
            comment["parent_before"]["updated_at"].as_i64() <= comment["parent_after"]["updated_at"].as_i64()
        );
        assert_eq!(ev[10]["changed"], json!(["stage"]));
        assert_eq!(ev[12]["changed"], json!(["is_complete", "status"]));
        assert_eq!(ev[12]["parent"]["kind"], "project");
        // Every change in the project counted once; ideas have no project.
        let versions: Vec<Value> = ev.iter().map(|e| e["project_version"].clone()).collect();
        assert_eq!(versions[..9], (1..=9).map(|v| json!(v)).collect::<Vec<_>>()[..]);
        assert!(versions[9].is_null() && versions[10].is_null());
        assert_eq!(versions[11], json!(10));
    }
);

both!(
    invalid_values_are_422_naming_the_field,
    |app: TestApp| async move {
        post(&app, "/fields", json!({"name": "Milestone", "type": "milestone"})).await;
        let p = post(&app, "/projects", json!({"key": "K", "name": "N"})).await;
        let path = format!("{V1}/projects/{}", p["id"]);
        for (body, field) in [
            (json!({"fields": {"Status": "Nope"}}), "fields.Status"),
            (
                json!({"fields": {"Start date": "2023-02-30"}}),
                "fields.Start date",
            ),
            (
                json!({"fields": {"Stakeholders": ["ghost"]}}),
                "fields.Stakeholders",
            ),
            (
                json!({"fields": {"Related projects": [999999]}}),
                "fields.Related projects",
            ),
            (json!({"fields": {"Unknown": 1}}), "fields.Unknown"),
            (
                json!({"fields": {"Milestone": {"id": 1, "date": "nope", "name": "m"}}}),
                "fields.Milestone",
            ),
            (
                json!({"fields": {"Estimated time": "forever"}}),
                "fields.Estimated time",
            ),
            (json!({"start_date": "2021-13-01"}), "start_date"),
            (json!({"manager": ["ghost"]}), "manager"),
            (json!({"budget": "lots"}), "budget"),
            (json!({"name": ""}), "name"),
            (json!({"colour": "red"}), "colour"),
        ] {
            app.call("PATCH", &path, Some(body))
                .await
                .assert_problem(422, Some(field));
        }
        let r = app
            .call(
                "POST",
                &format!("{V1}/stories"),
                Some(json!({"name": "no parent"})),
            )
            .await;
        r.assert_problem(422, Some("project_id"));
        let r = app
            .call(
                "POST",
                &format!("{V1}/stories"),
                Some(json!({"project_id": p["id"], "name": "s", "story_type": "epic"})),
            )
            .await;
        r.assert_problem(422, Some("story_type"));
        let r = app
            .call(
                "POST",
                &format!("{V1}/stories"),
                Some(json!({"project_id": 424242, "name": "s"})),
            )
            .await;
        // The URL was fine; the body names a project that does not exist (named as sent).
        r.assert_problem(422, Some("project_id"));
        let r = app
            .call(
                "POST",
                &format!("{V1}/stories"),
                Some(json!({"projectId": 424242, "name": "s"})),
            )
            .await;
        r.assert_problem(422, Some("projectId"));
        assert_eq!(
            events(&app).await.len(),
            1,
            "only the project creation became an event"
        );
    }
);

both!(
    a_failed_transaction_leaves_neither_change_nor_event,
    |app: TestApp| async move {
        let p = post(&app, "/projects", json!({"key": "ONE", "name": "One"})).await;
        post(&app, "/projects", json!({"key": "TWO", "name": "Two"})).await;
        // The unique key is checked inside the transaction, after the lock and the diff.
        let r = app
            .call(
                "PATCH",
                &format!("{V1}/projects/{}", p["id"]),
                Some(json!({"key": "TWO", "name": "Renamed"})),
            )
            .await;
        r.assert_problem(409, None);
        let r = app
            .call(
                "POST",
                &format!("{V1}/projects"),
                Some(json!({"key": "ONE", "name": "Dup"})),
            )
            .await;
        r.assert_problem(409, None);
        // A story positioned before a story of another project fails after its row was planned.
        let s = post(&app, "/stories", json!({"project_id": p["id"], "name": "s"})).await;
        let r = app
            .call(
                "POST",
                &format!("{V1}/stories"),
                Some(json!({"project_id": p["id"], "name": "t", "before_id": 999})),
            )
            .await;
        r.assert_problem(422, Some("before_id"));
        let got = app.call("GET", &format!("{V1}/projects/{}", p["id"]), None).await;
        assert_eq!(got.json["data"]["name"], "One");
        assert_eq!(
            app.call("GET", &format!("{V1}/stories?project_id={}", p["id"]), None)
                .await
                .json["data"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let ev = events(&app).await;
        assert_eq!(ev.len(), 3, "two project creations and one story: {ev:?}");
        assert_eq!(ev[2]["entity_id"], s["id"]);
    }
);

both!(
    concurrent_patches_get_distinct_project_versions,
    |app: TestApp| async move {
        let p = post(&app, "/projects", json!({"key": "C", "name": "C"})).await;
        let path = format!("{V1}/projects/{}", p["id"]);
        let calls = (0..16).map(|i| app.call("PATCH", &path, Some(json!({"budget": i + 1}))));
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let ev = events(&app).await;
        let mut versions: Vec<i64> = ev
            .iter()
            .map(|e| e["project_version"].as_i64().unwrap())
            .collect();
        assert_eq!(ev.len(), 17);
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(
            versions,
            (1..=17).collect::<Vec<_>>(),
            "no two events share a project_version"
        );
        // Each update's `before` is the previous update's `after`: no lost updates.
        for w in ev.windows(2).skip(1) {
            assert_eq!(w[0]["after"]["budget"], w[1]["before"]["budget"]);
        }
    }
);

both!(acting_user_and_users_api, |app: TestApp| async move {
    let u = post(
        &app,
        "/users",
        json!({"accountId": "relay-user", "name": "Relay User"}),
    )
    .await;
    assert_eq!(u["initials"], "RU");
    app.call(
        "POST",
        &format!("{V1}/users"),
        Some(json!({"accountId": "relay-user"})),
    )
    .await
    .assert_problem(409, None);
    app.call("POST", &format!("{V1}/users"), Some(json!({"name": "x"})))
        .await
        .assert_problem(422, Some("accountId"));
    let r = patch(
        &app,
        &format!("/users/{}", u["id"]),
        json!({"email": "relay@x.test"}),
    )
    .await;
    assert_eq!(r.json["data"]["email"], "relay@x.test");

    let relay = app
        .token("default", "integration", "entities:write,events:write")
        .await;
    let plain = app.token("default", "editor", "entities:write").await;
    let with_actor = |token: String, who: &'static str| {
        let c = app.client.clone();
        let url = app.url(&format!("{V1}/projects"));
        async move {
            let r = c
                .post(url)
                .bearer_auth(token)
                .header("Herald-Acting-User", who)
                .json(&json!({"key": format!("K{}", who.len()), "name": "n"}))
                .send()
                .await
                .unwrap();
            crate::support::app::Resp::from(r).await
        }
    };
    assert_eq!(with_actor(relay.clone(), "relay-user").await.status, 201);
    with_actor(relay, "nobody")
        .await
        .assert_problem(422, Some("Herald-Acting-User"));
    with_actor(plain, "relay-user")
        .await
        .assert_problem(422, Some("Herald-Acting-User"));
    let ev = events(&app).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["actor"]["account_id"], "relay-user");
    assert_eq!(ev[0]["actor"]["email"], "relay@x.test");
});

both!(fields_api_rules, |app: TestApp| async move {
    let list = app.call("GET", &format!("{V1}/fields"), None).await;
    let names: Vec<&str> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for n in [
        "Status",
        "Priority",
        "Start date",
        "End date",
        "Estimated time",
        "Related projects",
        "Stakeholders",
        "What are we doing?",
        "Why are we doing it?",
        "What will success look like?",
    ] {
        assert!(names.contains(&n), "system field {n}");
    }
    let a = post(&app, "/fields", json!({"name": "A", "type": "number"})).await;
    assert_eq!(a["id"], 10001);
    app.call(
        "POST",
        &format!("{V1}/fields"),
        Some(json!({"name": "a", "type": "text"})),
    )
    .await
    .assert_problem(409, None);
    app.call(
        "POST",
        &format!("{V1}/fields"),
        Some(json!({"name": "B", "type": "colour"})),
    )
    .await
    .assert_problem(422, Some("type"));
    app.call(
        "POST",
        &format!("{V1}/fields"),
        Some(json!({"name": "L", "type": "list"})),
    )
    .await
    .assert_problem(422, Some("options"));
    app.call(
        "POST",
        &format!("{V1}/fields"),
        Some(json!({"name": "F", "type": "formula", "formula": "{Nope} + 1"})),
    )
    .await
    .assert_problem(422, Some("formula"));
    app.call(
        "POST",
        &format!("{V1}/fields"),
        Some(json!({"name": "F", "type": "formula", "formula": "({A} + "})),
    )
    .await
    .assert_problem(422, Some("formula"));
    let f = post(
        &app,
        "/fields",
        json!({"name": "F", "type": "formula", "formula": "{A} / 2"}),
    )
    .await;
    app.call("DELETE", &format!("{V1}/fields/{}", a["id"]), None)
        .await
        .assert_problem(409, None);
    app.call("DELETE", &format!("{V1}/fields/1"), None)
        .await
        .assert_problem(409, None);
    app.call(
        "PATCH",
        &format!("{V1}/fields/{}", a["id"]),
        Some(json!({"type": "text"})),
    )
    .await
    .assert_problem(422, Some("type"));
    // Each refusal names what was sent: renaming a field another formula reads, a
    // system field's formula.
    let r = app
        .call(
            "PATCH",
            &format!("{V1}/fields/{}", a["id"]),
            Some(json!({"name": "A2"})),
        )
        .await;
    r.assert_problem(422, Some("name"));
    assert!(r.text.contains("renaming breaks a formula"), "{}", r.text);
    app.call(
        "PATCH",
        &format!("{V1}/fields/1"),
        Some(json!({"formula": "1 + 1"})),
    )
    .await
    .assert_problem(422, Some("formula"));
    app.call(
        "PATCH",
        &format!("{V1}/fields/1"),
        Some(json!({"name": "Renamed"})),
    )
    .await
    .assert_problem(422, Some("name"));
    assert_eq!(
        app.call("DELETE", &format!("{V1}/fields/{}", f["id"]), None)
            .await
            .status,
        204
    );
    assert_eq!(
        app.call("DELETE", &format!("{V1}/fields/{}", a["id"]), None)
            .await
            .status,
        204
    );
    let r = app
        .call(
            "PATCH",
            &format!("{V1}/fields/1"),
            Some(json!({"options": ["Green", "Red"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
});

both!(ingest_is_validated_and_idempotent, |app: TestApp| async move {
    let body = json!({"entity": {"kind": "Project", "id": 13647}, "project": {"id": 13647, "key": "DEMO", "name": "Demo project"},
        "before": {"name": "Demo", "budget": 25}, "after": {"name": "Demo", "budget": 23},
        "occurredAt": 1675182117615i64, "idempotencyKey": "change-1"});
    let r = app
        .call("POST", &format!("{V1}/events"), Some(body.clone()))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = &r.json["data"];
    assert_eq!(e["type"], "Project:Updated");
    assert_eq!(e["changed"], json!(["budget"]));
    assert_eq!(e["project_version"], 1);
    assert_eq!(e["occurred_at"], 1675182117615i64);
    let again = app.call("POST", &format!("{V1}/events"), Some(body)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["data"]["id"], e["id"], "same key, same event");
    let noop = json!({"entity": {"kind": "idea", "id": 1}, "before": {"stage": 1}, "after": {"stage": 1}});
    let r = app.call("POST", &format!("{V1}/events"), Some(noop)).await;
    assert_eq!((r.status, r.json["data"].clone()), (200, Value::Null));
    for (b, field) in [
        (
            json!({"entity": {"kind": "rocket", "id": 1}, "after": {}}),
            "entity.kind",
        ),
        (json!({"entity": {"kind": "task", "id": 1}}), "after"),
        (
            json!({"entity": {"kind": "task", "id": 1}, "after": {}, "type": "Task:Deleted"}),
            "type",
        ),
        (json!({"entity": {"kind": "task", "id": 1}, "after": []}), "after"),
        (
            json!({"entity": {"kind": "task", "id": 1}, "after": {}, "occurredAt": "yesterday"}),
            "occurredAt",
        ),
        (
            json!({"entity": {"kind": "task", "id": 1}, "after": {}, "actor": "ghost"}),
            "actor",
        ),
        (
            json!({"entity": {"kind": "portfolio", "id": 1}, "after": {}}),
            "entity.kind",
        ),
        (json!({"entity": {"kind": "task"}, "after": {}}), "entity.id"),
        (
            json!({"entity": {"kind": "task", "id": 1}, "after": {}, "occurredAt": "1969-12-31T23:59:59Z"}),
            "occurredAt",
        ),
        // Checked whether or not a project is named, and on a change that changes nothing.
        (
            json!({"entity": {"kind": "task", "id": 1}, "after": {}, "projectVersion": -5}),
            "projectVersion",
        ),
        (
            json!({"entity": {"kind": "idea", "id": 1}, "before": {"stage": 1}, "after": {"stage": 1}, "projectVersion": 0}),
            "projectVersion",
        ),
    ] {
        app.call("POST", &format!("{V1}/events"), Some(b))
            .await
            .assert_problem(422, Some(field));
    }
    // An actor named by the header is reported as the header.
    let r = app
        .client
        .post(app.url(&format!("{V1}/events")))
        .bearer_auth(app.token("default", "relay", "events:write").await)
        .header("Herald-Acting-User", "ghost")
        .json(&json!({"entity": {"kind": "task", "id": 1}, "after": {}}))
        .send()
        .await
        .unwrap();
    crate::support::app::Resp::from(r)
        .await
        .assert_problem(422, Some("Herald-Acting-User"));
    let reader = app.token("default", "r", "webhooks:read").await;
    app.call_as(&reader, "POST", &format!("{V1}/events"), Some(json!({})))
        .await
        .assert_problem(403, None);
    assert_eq!(events(&app).await.len(), 1);
});

both!(event_log_pages_and_filters, |app: TestApp| async move {
    for i in 0..5 {
        post(&app, "/ideas", json!({"name": format!("idea {i}")})).await;
    }
    post(&app, "/projects", json!({"key": "P", "name": "P"})).await;
    let page = app.call("GET", &format!("{V1}/events?limit=2"), None).await;
    assert_eq!(page.json["data"].as_array().unwrap().len(), 2);
    let next = page.json["next"].as_i64().unwrap();
    let rest = app
        .call("GET", &format!("{V1}/events?after={next}&limit=100"), None)
        .await;
    assert_eq!(rest.json["data"].as_array().unwrap().len(), 4);
    let only = app
        .call("GET", &format!("{V1}/events?type=Project:Created"), None)
        .await;
    assert_eq!(only.json["data"].as_array().unwrap().len(), 1);
    app.call("GET", &format!("{V1}/events?type=Nope"), None)
        .await
        .assert_problem(400, Some("type"));
    app.call("GET", &format!("{V1}/events?limit=0"), None)
        .await
        .assert_problem(400, Some("limit"));
    let other = app.token("acme", "x", "admin").await;
    assert_eq!(
        app.call_as(&other, "GET", "/@acme/v1/events", None).await.json["data"],
        json!([]),
        "tenants are isolated"
    );
    let entities_only = app.token("default", "e", "entities:write").await;
    app.call_as(&entities_only, "GET", &format!("{V1}/events"), None)
        .await
        .assert_problem(403, None);
});

/// SQLite has one writer. When the API is offered more changes than it can take, the
/// delivery engine's writes (outcomes, claims, lease releases) must not wait behind every
/// queued change: a long enough wait lets leases expire and deliveries go out twice (the
/// bench's `steady` scenario, 1,000 changes/s offered, once sent 696 duplicates that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_writes_wait_behind_a_few_changes_not_the_whole_queue() {
    engine_write_waits_behind_a_few_changes(async |app: &TestApp| {
        app.store
            .release_leases(&[(uuid::Uuid::nil(), "no-such-lease".into())])
            .await
            .unwrap();
    })
    .await;
}

/// Claims take the writer connection from the pool, which the writer task keeps between
/// its batches (statements prepared) until someone asks for it: a claim asking while
/// changes flow waits behind a few batches, not the queue, and one asking while the task
/// waits for work with the connection gets it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_wait_behind_a_few_changes_and_never_for_an_idle_writer() {
    let claim = || herald::store::ClaimRequest {
        token: "claim-test".into(),
        lease_until: herald::timefmt::now_ms() + 60_000,
        now: herald::timefmt::now_ms(),
        limit: 10,
        per_webhook: 10,
        exclude: Vec::new(),
        one_each: Vec::new(),
    };
    engine_write_waits_behind_a_few_changes(async move |app: &TestApp| {
        app.store.claim_due(&claim()).await.unwrap();
    })
    .await;
    // The task now keeps the connection with nothing to do.
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite).await else {
        return;
    };
    post(&app, "/projects", json!({"key": "I", "name": "Idle"})).await;
    for i in 0..3 {
        tokio::time::timeout(crate::support::WAIT, app.store.claim_due(&claim()))
            .await
            .expect("a claim got the writer connection the idle task kept")
            .unwrap();
        // And the task takes it back for the next change.
        post(&app, "/projects", json!({"key": format!("N{i}"), "name": "Next"})).await;
    }
}

/// SQLite: another process (the `herald` CLI, say) may hold the database's write lock
/// when a batch of changes starts. The batch waits for it (the busy timeout) instead of
/// failing: a deferred `BEGIN` read first and then asked for the lock, which SQLite
/// refuses at once inside a transaction that has read, failing every change in the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waits_for_another_process_holding_the_write_lock() {
    use std::sync::Arc;
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite).await else {
        return;
    };
    let p = post(&app, "/projects", json!({"key": "W", "name": "Waits"})).await;
    let path = format!("/projects/{}", p["id"]);
    let app = Arc::new(app);
    let change = {
        let app = Arc::clone(&app);
        async move { patch(&app, &path, json!({"budget": 7})).await }
    };
    let r = crate::support::app::while_another_process_holds_the_write_lock(&app, change).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"]["budget"].as_f64(), Some(7.0), "{}", r.text);
}

/// Attempt outcomes are written by the writer task itself, inside its open batch: they
/// go ahead of the changes queued before them, and are answered once durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_outcomes_go_ahead_of_queued_changes() {
    use herald::store::AutoDisable;
    engine_write_waits_behind_a_few_changes(async move |app: &TestApp| {
        let record = crate::support::attempt(uuid::Uuid::nil(), 1, 200);
        let id = record.delivery_id;
        let auto = AutoDisable {
            failures: 100,
            after_ms: 1,
        };
        let disabled = app
            .store
            .record_attempts(std::sync::Arc::new([record]), auto, 2)
            .await
            .unwrap();
        assert!(disabled.is_empty());
        // Answered means committed: a reader of its own sees the attempt.
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(app.sqlite_path().unwrap());
        let mut reader: sqlx::SqliteConnection = sqlx::Connection::connect_with(&opts).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM delivery_attempts WHERE delivery_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(n, 1, "the attempt is durable once answered");
    })
    .await;
}

/// Queues 300 changes of one project, and once they flow runs `write`: at most three
/// batches of changes may commit while it waits.
async fn engine_write_waits_behind_a_few_changes(write: impl AsyncFnOnce(&TestApp)) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite).await else {
        return;
    };
    let app = Arc::new(app);
    let p = post(&app, "/projects", json!({"key": "Q", "name": "Queue"})).await;
    let path = format!("{V1}/projects/{}", p["id"]);
    let done = Arc::new(AtomicUsize::new(0));
    const CHANGES: usize = 300;
    let calls: Vec<_> = (0..CHANGES)
        .map(|i| {
            let (app, path, done) = (Arc::clone(&app), path.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let r = app.call("PATCH", &path, Some(json!({"budget": i + 1}))).await;
                assert_eq!(r.status, 200, "{}", r.text);
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Changes are flowing; most of the rest are queued for the writer by now.
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    while done.load(Ordering::SeqCst) < 10 {
        assert!(std::time::Instant::now() < deadline, "no change finished");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Count what is committed (a reader of its own: WAL readers never wait for the
    // writer), not what was answered: answers still on their way to a loaded test
    // process would count as written during the write.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(app.sqlite_path().unwrap());
    let mut reader: sqlx::SqliteConnection = sqlx::Connection::connect_with(&opts).await.unwrap();
    let mut committed = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut reader)
            .await
            .unwrap()
    };
    let before = committed().await;
    write(&app).await;
    let ahead = committed().await - before;
    for c in calls {
        c.await.unwrap();
    }
    // At most three batches of 32 (the writer's cap, `MAX_GROUP`): the one holding the
    // writer when the write queued, perhaps the next, and one more of slack for a
    // loaded machine. Not the rest of the queue (over two hundred).
    assert!(
        ahead <= 96,
        "{ahead} of {} queued changes were written before one engine write",
        CHANGES as i64 + 1 - before
    );
}

both!(
    concurrent_changes_that_fail_or_change_nothing_roll_back_alone,
    |app: TestApp| async move {
        // On SQLite concurrent changes share one transaction (group commit), each in a
        // savepoint: a change that fails, or turns out to change nothing, must undo only
        // its own writes and leave the others to commit with their events.
        let a = post(&app, "/projects", json!({"key": "GA", "name": "A"})).await;
        let b = post(&app, "/projects", json!({"key": "GB", "name": "B"})).await;
        let (pa, pb) = (
            format!("{V1}/projects/{}", a["id"]),
            format!("{V1}/projects/{}", b["id"]),
        );
        let calls = (0..48).map(|i| {
            let (path, body, want) = match i % 3 {
                0 => (&pa, json!({"budget": i + 1}), 200),
                // B's key is taken by A: the write fails inside the change.
                1 => (&pb, json!({"key": "GA", "budget": i + 1}), 409),
                // No-op: same name as stored.
                _ => (&pb, json!({"name": "B"}), 200),
            };
            let app = &app;
            async move { (app.call("PATCH", path, Some(body)).await, want) }
        });
        for (r, want) in futures::future::join_all(calls).await {
            assert_eq!(r.status, want, "{}", r.text);
        }
        let ev = events(&app).await;
        let updated = |id: &Value| {
            ev.iter()
                .filter(|e| e["type"] == "Project:Updated" && e["entity_id"] == *id)
                .count()
        };
        assert_eq!(updated(&a["id"]), 16, "every budget change wrote its event");
        assert_eq!(updated(&b["id"]), 0, "failed and no-op changes wrote none");
        let b_now = app.call("GET", &pb, None).await;
        assert_eq!(b_now.json["data"]["key"], "GB", "{}", b_now.text);
        assert_eq!(b_now.json["data"]["budget"], 0, "{}", b_now.text);
        let a_now = app.call("GET", &pa, None).await;
        let versions: Vec<i64> = ev
            .iter()
            .filter(|e| e["entity_id"] == a["id"])
            .map(|e| e["project_version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions.len(), 17);
        assert_eq!(versions.iter().max(), Some(&17), "{}", a_now.text);
    }
);

/// A change through the store (not the API) that sets project `id`'s `budget` in the
/// default tenant, as a request would; `budget` 13 panics when `panics_on_13`.
fn set_budget(tenant_id: i64, id: i64, budget: i64, panics_on_13: bool) -> herald::store::ChangeRequest {
    use herald::domain::event::UserRef;
    use herald::domain::event_type::EntityKind;
    use herald::store::{ChangeOp, ChangeRequest};
    use std::sync::Arc;
    let compute = move |cur: Option<&serde_json::Map<String, Value>>| {
        assert!(!(panics_on_13 && budget == 13), "a bug in a change");
        let mut m = cur.cloned().unwrap_or_default();
        m.insert("budget".into(), json!(budget));
        Ok(m)
    };
    ChangeRequest {
        tenant_id,
        tenant: "default".into(),
        kind: EntityKind::Project,
        op: ChangeOp::Update { id },
        position: None,
        actor: UserRef {
            id: 1,
            uuid: uuid::Uuid::nil(),
            account_id: "tester".into(),
            name: "Tester".into(),
            initials: "T".into(),
            email: String::new(),
        },
        now: 1,
        webhooks_version: None,
        known: None,
        compute: Arc::new(compute),
        normalize: None,
    }
}

/// Requests can be dropped at any await (a client that hangs up). On SQLite a dropped
/// change may be queued for the writer, running in the shared transaction, or waiting for
/// it to commit: in no case may it leave the writer held or a change half-written (an
/// entity version bumped without its event, or the reverse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_changes_neither_hold_the_writer_nor_leave_half_a_change() {
    use std::sync::Arc;
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite).await else {
        return;
    };
    let p = post(&app, "/projects", json!({"key": "X", "name": "Dropped"})).await;
    let id = p["id"].as_i64().unwrap();
    let tenant = app.store.tenant_by_slug("default").await.unwrap().unwrap();
    let change = |budget: i64| {
        let store = Arc::clone(&app.store);
        let req = set_budget(tenant.id, id, budget, false);
        async move { store.apply_change(req).await.map(|_| ()) }
    };
    // Each change is dropped after a different delay: some while queued for the writer,
    // some inside the shared transaction, some waiting for its commit, some not at all.
    for round in 0..8u64 {
        let calls = (0..24u64).map(|i| {
            let after = std::time::Duration::from_micros((round * 24 + i) * 37 % 3000);
            tokio::time::timeout(after, change((round * 100 + i + 1) as i64))
        });
        // Elapsed ones were dropped; every change that finished must have succeeded.
        for applied in futures::future::join_all(calls).await.into_iter().flatten() {
            applied.unwrap();
        }
    }
    // The writer is free: a change and an engine write both get through.
    tokio::time::timeout(crate::support::WAIT, change(10_000))
        .await
        .expect("a change after the dropped ones got the writer")
        .unwrap();
    tokio::time::timeout(
        crate::support::WAIT,
        app.store.release_leases(&[(uuid::Uuid::nil(), "none".into())]),
    )
    .await
    .expect("an engine write after the dropped ones got the writer")
    .unwrap();
    let row = stored_project(&app, tenant.id, id).await;
    let ev = events(&app).await;
    let mut versions: Vec<i64> = ev
        .iter()
        .map(|e| e["project_version"].as_i64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=row.version).collect::<Vec<_>>(),
        "one event per version, none missing, none extra"
    );
    assert_eq!(row.data["budget"], json!(10_000));
}

// Field definitions are kept in memory per tenant under the version read with each token,
// and the token's user is read with the token: a change to either — through this server's
// API or through another store on the same database (what a second node or the CLI is) —
// shows in the very next change.
both!(
    changes_see_field_and_user_edits_made_just_before,
    |app: TestApp| async move {
        post(&app, "/fields", json!({"name": "Budget", "type": "number"})).await;
        let p = post(
            &app,
            "/projects",
            json!({"key": "FC", "name": "Cached", "fields": {"Budget": 1}}),
        )
        .await;
        let path = format!("/projects/{}", p["id"]);
        let set = |fields: Value| patch(&app, &path, json!({ "fields": fields }));
        assert_eq!(set(json!({"Budget": 2})).await.status, 200, "definitions cached");

        // Renamed through the API.
        let r = app
            .call(
                "PATCH",
                &format!("{V1}/fields/10001"),
                Some(json!({"name": "Cost"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        set(json!({"Budget": 3}))
            .await
            .assert_problem(422, Some("fields.Budget"));
        assert_eq!(set(json!({"Cost": 3})).await.status, 200);

        // Added, then deleted, by another store on the same database.
        let other = herald::store::connect(&app.settings.database).await.unwrap();
        let tenant = app.tenant_id("default").await;
        let def = herald::domain::field::FieldDef::custom(
            10002,
            "Risk",
            herald::domain::field::FieldType::Text,
            Vec::new(),
            None,
        )
        .unwrap();
        let risk = other.insert_field(tenant, &def, 1).await.unwrap();
        let r = set(json!({"Risk": "low"})).await;
        assert_eq!(
            r.status, 200,
            "a field another node added is known at once: {}",
            r.text
        );
        assert!(other.delete_field(tenant, risk.id).await.unwrap());
        set(json!({"Risk": "high"}))
            .await
            .assert_problem(422, Some("fields.Risk"));

        // The token's user renamed by another store: the next event names them anew.
        let me = &other
            .users_by_account_ids(tenant, &["admin".to_owned()])
            .await
            .unwrap()[0];
        let renamed = herald::store::NewUser {
            account_id: me.account_id.clone(),
            name: "Renamed Admin".into(),
            initials: "RA".into(),
            email: "ra@x.test".into(),
        };
        other
            .update_user(tenant, me.id, &renamed, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(set(json!({"Cost": 4})).await.status, 200);
        let last = events(&app).await.into_iter().last().unwrap();
        assert_eq!(last["actor"]["name"], "Renamed Admin", "{last}");
        assert_eq!(last["actor"]["email"], "ra@x.test");
    }
);

/// PostgreSQL only (SQLite's one writer commits events in `seq` order by itself): changes
/// of one tenant commit in parallel, so an event can commit after one with a higher `seq`;
/// the feed must then wait for it rather than list past it and lose it for good. Here an
/// ingested event draws its `seq` and is held before committing (the table of its deliveries'
/// bodies is locked from outside); a project created meanwhile commits a higher `seq` without
/// waiting for it; the feed read waits for the held event and lists both, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_waits_for_an_event_with_a_lower_seq_still_committing() {
    use crate::support::hooks::{eventually, rig};
    use crate::support::{Backend, WAIT};
    let Some(rig) = rig(Backend::Postgres, &[]).await else {
        return;
    };
    rig.webhook("standard", &["Idea:Created"], json!({})).await;
    // The tenant's first change also sets up its system fields: done before the test.
    rig.create("/projects", json!({"key": "FIRST", "name": "First"}))
        .await;
    // Only a fan-out writes shared bodies (readers are not held): the ingest's is the
    // only one in this test.
    let mut blocker = rig.app.pg_lock("delivery_bodies", "EXCLUSIVE").await;
    let held = {
        let (base, token) = (rig.app.base.clone(), rig.app.token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}{V1}/events"))
                .bearer_auth(token)
                .json(&json!({"entity": {"kind": "idea", "id": 7}, "after": {"name": "held"}}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Other tests share the server: find our backends by who blocks whom.
    let watcher = sqlx::PgPool::connect(&crate::support::app::postgres_url().unwrap())
        .await
        .unwrap();
    let blocked_by = |pid: i32, query: &'static str| {
        let w = watcher.clone();
        async move {
            sqlx::query_scalar::<_, i32>(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE $2",
            )
            .bind(pid)
            .bind(query)
            .fetch_optional(&w)
            .await
            .unwrap()
        }
    };
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await
        .unwrap();
    // The ingest has drawn its `seq` (the event row exists, uncommitted) and waits to
    // insert its delivery's body.
    let ingest_pid = eventually("the ingest to wait for the bodies table", WAIT, || {
        blocked_by(blocker_pid, "INSERT INTO delivery_bodies%")
    })
    .await;
    let later = tokio::time::timeout(
        WAIT,
        rig.create("/projects", json!({"key": "LATE", "name": "Later"})),
    )
    .await;
    let Ok(later) = later else {
        let rows: Vec<(i32, Option<String>, Vec<i32>, String)> = sqlx::query_as(
            "SELECT pid, wait_event_type, pg_blocking_pids(pid), left(query, 150) FROM pg_stat_activity WHERE state <> 'idle'",
        )
        .fetch_all(&watcher)
        .await
        .unwrap();
        panic!("a change waited for another change of the tenant to commit: blocker {blocker_pid}, ingest {ingest_pid}: {rows:#?}");
    };
    let feed = {
        let (base, token) = (rig.app.base.clone(), rig.app.token.clone());
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .get(format!("{base}{V1}/events?limit=100"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        })
    };
    eventually("the feed to wait for the event in flight", WAIT, || {
        blocked_by(ingest_pid, "%pg_advisory_xact_lock(%")
    })
    .await;
    assert!(
        !feed.is_finished(),
        "the feed answered while an event below its top was in flight"
    );
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    assert_eq!(held.await.unwrap(), 201);
    let page = feed.await.unwrap();
    let types: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Project:Created", "Idea:Created", "Project:Created"],
        "{page}"
    );
    assert_eq!(page["data"][2]["entity_id"], later["id"], "{page}");
}

/// SQLite's writer runs changes on its own thread, synchronously and in a shared
/// transaction: a change that panics there must be answered with an error and undone
/// alone, while the changes batched with it commit and the writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_panics_on_the_writer_is_undone_alone() {
    use std::sync::Arc;
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite).await else {
        return;
    };
    let p = post(&app, "/projects", json!({"key": "PN", "name": "Panics"})).await;
    let id = p["id"].as_i64().unwrap();
    let tenant = app.store.tenant_by_slug("default").await.unwrap().unwrap();
    let change = |budget: i64| {
        let store = Arc::clone(&app.store);
        let req = set_budget(tenant.id, id, budget, true);
        async move { store.apply_change(req).await.map(|_| ()) }
    };
    let results = futures::future::join_all((10..18).map(change)).await;
    for (budget, r) in (10..18).zip(&results) {
        assert_eq!(r.is_err(), budget == 13, "change {budget}: {r:?}");
    }
    change(99).await.expect("the writer goes on after a panic");
    let ev = events(&app).await;
    let budgets: Vec<i64> = ev
        .iter()
        .filter(|e| e["type"] == "Project:Updated")
        .map(|e| e["after"]["budget"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(
        budgets.len(),
        8,
        "seven batched changes and the last one: {budgets:?}"
    );
    assert!(!budgets.contains(&13), "{budgets:?}");
    let row = stored_project(&app, tenant.id, id).await;
    assert_eq!(row.data["budget"], json!(99));
    assert_eq!(row.version, 9, "one version per kept change and the create");
}

/// Project `id` of tenant `tenant_id` as stored (it must exist).
async fn stored_project(app: &TestApp, tenant_id: i64, id: i64) -> herald::store::EntityRow {
    use herald::domain::event_type::EntityKind;
    app.store
        .get_entity(tenant_id, EntityKind::Project, id)
        .await
        .unwrap()
        .expect("the project is stored")
}

/// A PostgreSQL app with one project (made through the API) in its default tenant: the
/// app, the tenant and the project's id; `None` without PostgreSQL.
async fn pg_project() -> Option<(TestApp, herald::store::Tenant, i64)> {
    let app = TestApp::spawn(crate::support::Backend::Postgres).await?;
    let (tenant, id) = project_of(&app).await;
    Some((app, tenant, id))
}

/// One project made through the API in `app`'s default tenant: the tenant and its id.
async fn project_of(app: &TestApp) -> (herald::store::Tenant, i64) {
    let p = post(app, "/projects", json!({"key": "X", "name": "Kept"})).await;
    let id = p["id"].as_i64().unwrap();
    let tenant = app.store.tenant_by_slug("default").await.unwrap().unwrap();
    (tenant, id)
}

// A PostgreSQL node starts a project's update from the project as it last wrote it
// (`src/store/project_cache.rs`). When something else changed the project since
// (another node; on SQLite, which reads it each time, another process writing the same
// file), the update is still made against the stored project: a value set back to what
// this store last wrote is a change (not "unchanged"), and the event says from what.
both!(
    a_project_changed_by_another_store_is_updated_from_what_is_stored,
    |app: TestApp| async move {
        let (tenant, id) = project_of(&app).await;
        let here = |budget: i64| app.store.apply_change(set_budget(tenant.id, id, budget, false));
        let updates = || async {
            events(&app)
                .await
                .into_iter()
                .filter(|e| e["type"] == "Project:Updated")
                .count()
        };
        here(1).await.unwrap();
        here(2).await.unwrap(); // kept by this store as written
        let other = herald::store::connect(&app.settings.database).await.unwrap();
        other
            .apply_change(set_budget(tenant.id, id, 5, false))
            .await
            .unwrap();

        // Back to what this store last wrote: a change, from 5.
        let outcome = here(2).await.unwrap();
        assert!(
            matches!(outcome, herald::store::ChangeOutcome::Applied { .. }),
            "taken for unchanged: {outcome:?}"
        );
        let row = stored_project(&app, tenant.id, id).await;
        assert_eq!(row.data["budget"], json!(2));
        let last = events(&app)
            .await
            .into_iter()
            .max_by_key(|e| e["project_version"].as_i64())
            .unwrap();
        assert_eq!(last["before"]["budget"], json!(5), "{last}");
        assert_eq!(last["project_version"].as_i64(), Some(row.version));

        // And again from this store's own write, then from the other's once more.
        here(3).await.unwrap();
        other
            .apply_change(set_budget(tenant.id, id, 7, false))
            .await
            .unwrap();
        here(8).await.unwrap();
        let row = stored_project(&app, tenant.id, id).await;
        assert_eq!(row.data["budget"], json!(8));
        assert_eq!(row.version, 8, "one version per change and the create");
        assert_eq!(updates().await, 7, "one event per change, none lost");
    }
);

// A project's updates around a change to something in it (which raises the project's
// version too) each get a version of their own, the next after the last (Tracker's guid
// needs one per change), also where a PostgreSQL node kept the project's row from its
// update before that change.
both!(
    a_change_inside_a_kept_project_is_seen_by_its_next_update,
    |app: TestApp| async move {
        let (tenant, id) = project_of(&app).await;
        let here = |budget: i64| app.store.apply_change(set_budget(tenant.id, id, budget, false));
        here(1).await.unwrap(); // kept
        post(&app, "/stories", json!({"project_id": id, "name": "Inside"})).await;
        here(2).await.unwrap();
        here(3).await.unwrap();
        let versions: Vec<i64> = events(&app)
            .await
            .iter()
            .filter_map(|e| e["project_version"].as_i64())
            .collect();
        let row = stored_project(&app, tenant.id, id).await;
        assert_eq!(row.version, 5, "{versions:?}");
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), versions.len(), "a version per change: {versions:?}");
        assert_eq!(sorted.last(), Some(&5), "{versions:?}");
        assert_eq!(row.data["budget"], json!(3));
    }
);

/// PostgreSQL: a node's updates of a project it last wrote start from the row it kept
/// (`src/store/project_cache.rs`) instead of reading the project: one index look-up on
/// `entities` per update (its write), not two.
#[tokio::test]
async fn a_nodes_project_updates_do_not_read_the_project_again() {
    let Some((app, tenant, id)) = pg_project().await else {
        return;
    };
    // A node of its own whose sessions can be ended to hand in their statistics.
    let (node, name) = app.pg_node("kept").await;
    let scans = "SELECT COALESCE(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'entities'::regclass";
    let before = app.db_count(scans).await;
    for budget in 1..=21 {
        node.apply_change(set_budget(tenant.id, id, budget, false))
            .await
            .unwrap();
    }
    app.end_pg_sessions(&name).await;
    let used = app.db_count(scans).await - before;
    // 21 updates: one read (the first) and 21 writes, plus a few look-ups of others (the
    // API's own sessions hand theirs in when they please). Reading the project for each
    // update makes 42.
    assert!(
        (22..34).contains(&used),
        "{used} index look-ups on entities for 21 updates"
    );
}

/// PostgreSQL: a project's changes leave their tenant's row unlocked. The event's
/// reference to its tenant was checked with a `FOR KEY SHARE` lock of the tenant row in
/// every change, which PostgreSQL marks on the row (and, with changes in parallel, turned
/// into a multixact that every reader of the row looked up); migration 0012 drops the
/// check.
#[tokio::test]
async fn a_projects_changes_leave_the_tenant_row_unlocked() {
    let Some((app, tenant, id)) = pg_project().await else {
        return;
    };
    // The row's last locker or updater (set-up wrote fields, which reference it).
    let sql = format!("SELECT xmax::text::bigint FROM tenants WHERE id = {}", tenant.id);
    let last_locker = || app.db_count(&sql);
    let before = last_locker().await;
    for name in ["one", "two"] {
        let r = patch(&app, &format!("/projects/{id}"), json!({"name": name})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(last_locker().await, before, "a change locked the tenant row");
    assert_eq!(events(&app).await.len(), 3);
}

both!(story_pages_list_every_story_once, |app: TestApp| async move {
    // Two projects' stories: each project's first story sits at the same position, and
    // a story moved to the front of its project sorts before older ones.
    let a = post(&app, "/projects", json!({"key": "PGA", "name": "A"})).await;
    let b = post(&app, "/projects", json!({"key": "PGB", "name": "B"})).await;
    let mut ids = Vec::new();
    for p in [&a, &a, &b, &b] {
        ids.push(post(&app, "/stories", json!({"project_id": p["id"], "name": "s"})).await["id"].clone());
    }
    let front = post(
        &app,
        "/stories",
        json!({"project_id": a["id"], "name": "first", "before_id": ids[0]}),
    )
    .await;
    ids.push(front["id"].clone());
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let r = app
            .call("GET", &format!("{V1}/stories?limit=2&after={after}"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(r.json["data"].as_array().unwrap().iter().map(|s| s["id"].clone()));
        match r.json["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, ids, "every story once, in id order");
});

both!(
    bad_query_strings_methods_and_nul_characters_are_problems,
    |app: TestApp| async move {
        for (path, field) in [
            ("/events?limit=abc", "limit"),
            ("/stories?after=1.5", "after"),
            ("/stories?project_id=x", "project_id"),
            ("/events?type=%00", "type"),
        ] {
            let r = app.call("GET", &format!("{V1}{path}"), None).await;
            r.assert_problem(400, Some(field));
        }
        // A route that exists, with a method it does not have.
        let r = app.call("PUT", &format!("{V1}/events"), Some(json!({}))).await;
        r.assert_problem(405, None);
        // PostgreSQL refuses NUL in text: a 422 naming the field on both backends, and
        // nothing written.
        let r = app
            .call(
                "POST",
                &format!("{V1}/projects"),
                Some(json!({"key": "NUL", "name": "a\u{0}b"})),
            )
            .await;
        r.assert_problem(422, Some("name"));
        let r = app
            .call(
                "POST",
                &format!("{V1}/Webhooks"),
                Some(json!({"eventTypes": ["Project:Created"], "url": "https://example.com/h", "headers": [{"name": "X-A", "value": "\u{0}"}]})),
            )
            .await;
        r.assert_problem(422, Some("headers[0].value"));
        assert!(events(&app).await.is_empty());
    }
);
