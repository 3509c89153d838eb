//! The projects pages at the HTML level: sessions, escaping, CSRF, scopes, and that saving
//! a form records exactly the events the change warrants (none for an unchanged form).

use serde_json::{json, Value};

use super::{location, no_redirects, Ui};
use crate::both;
use crate::support::app::Resp;
use crate::support::TestApp;

const V1: &str = "/@default/v1";

async fn events(app: &TestApp) -> Vec<Value> {
    let r = app.call("GET", &format!("{V1}/events?limit=1000"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["data"].as_array().cloned().unwrap_or_default()
}

fn types(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A project with a custom number field `Budget`; returns (project id, field id).
async fn project(app: &TestApp, name: &str) -> (i64, i64) {
    let f = app
        .call(
            "POST",
            &format!("{V1}/fields"),
            Some(json!({"name": "Budget", "type": "number"})),
        )
        .await;
    let fid = f.json["data"]["id"].as_i64().unwrap_or(10001);
    let p = app
        .call(
            "POST",
            &format!("{V1}/projects"),
            Some(json!({"key": "DEMO", "name": name, "fields": {"Budget": 25000, "Status": "On track"}})),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text);
    (p.json["data"]["id"].as_i64().unwrap(), fid)
}

both!(
    project_pages_need_a_session_and_render_names_inert,
    |app: TestApp| async move {
        let (id, _) = project(&app, "<img src=x onerror=alert(1)>").await;
        let client = no_redirects();
        for p in ["/admin/projects".to_owned(), format!("/admin/projects/{id}")] {
            let r = Resp::from(client.get(app.url(&p)).send().await.unwrap()).await;
            assert_eq!(r.status, 303, "{p}");
            assert!(location(&r).starts_with("/admin/sign-in"));
        }
        let ui = Ui::sign_in(&app, &app.token).await;
        for p in ["/admin/projects".to_owned(), format!("/admin/projects/{id}")] {
            let page = ui.get(&p).await;
            assert_eq!(page.status, 200, "{p}");
            assert!(page.text.contains("&lt;img src=x onerror=alert(1)&gt;"), "{p}");
            assert!(!page.text.contains("<img src=x"), "{p}");
        }
        assert_eq!(ui.get("/admin/projects/999999").await.status, 404);
        assert_eq!(ui.get("/admin/projects/abc").await.status, 404);
    }
);

both!(
    saving_fields_records_one_event_per_real_change,
    |app: TestApp| async move {
        let (id, fid) = project(&app, "Demo").await;
        let ui = Ui::sign_in(&app, &app.token).await;
        let page = ui.get(&format!("/admin/projects/{id}")).await;
        assert!(
            page.text.contains(&format!(r#"name="f_{fid}" value="25000""#)),
            "budget shown"
        );
        let before = events(&app).await.len();
        let (fp, f) = (format!("fp_{fid}"), format!("f_{fid}"));
        let path = format!("/admin/projects/{id}");

        let r = ui
            .post(&path, &[("name", "Demo"), (&fp, "1"), (&f, "30000")])
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(location(&r), format!("/admin/projects/{id}?notice=saved"));
        let evs = events(&app).await;
        assert_eq!(types(&evs[before..]), vec!["Project:Updated"]);
        let changed = evs.last().unwrap()["changed"].to_string();
        assert!(
            changed.contains(&format!("fields.{fid}")) && !changed.contains("fields.1\""),
            "{changed}"
        );

        // The same form again changes nothing and records nothing.
        let r = ui
            .post(&path, &[("name", "Demo"), (&fp, "1"), (&f, "30000")])
            .await;
        assert_eq!(location(&r), format!("/admin/projects/{id}?notice=unchanged"));
        // A bad value comes back next to its field, and nothing is recorded.
        let r = ui
            .post(&path, &[("name", "Demo"), (&fp, "1"), (&f, "lots")])
            .await;
        assert_eq!(r.status, 422);
        assert!(r.text.contains(&format!(r#"id="f-{fid}-error""#)), "{}", r.text);
        assert!(r.text.contains(r#"value="lots""#), "the typed value comes back");
        // Without the right CSRF token nothing happens either.
        let r = ui
            .post(
                &path,
                &[("name", "Demo"), (&fp, "1"), (&f, "1"), ("csrf", "forged")],
            )
            .await;
        assert_eq!(r.status, 403);
        assert_eq!(events(&app).await.len(), before + 1);
    }
);

both!(
    stories_and_key_dates_are_edited_in_place,
    |app: TestApp| async move {
        let (id, _) = project(&app, "Demo").await;
        let ui = Ui::sign_in(&app, &app.token).await;
        let before = events(&app).await.len();
        let base = format!("/admin/projects/{id}");
        let story = [
            ("name", "Login page"),
            ("story_type", "feature"),
            ("current_state", "unstarted"),
            ("estimate", "3"),
        ];
        let r = ui.post(&format!("{base}/stories/new"), &story).await;
        assert_eq!(location(&r), format!("{base}?notice=story"), "{}", r.text);
        let sid = events(&app).await.last().unwrap()["entity_id"].as_i64().unwrap();
        let mut started = story;
        started[2] = ("current_state", "started");
        ui.post(&format!("{base}/stories/{sid}"), &started).await;
        let r = ui
            .post(
                &format!("{base}/key-dates/new"),
                &[("name", "Beta"), ("date", "2026-02-30")],
            )
            .await;
        assert_eq!(r.status, 422, "an impossible date is refused");
        assert!(r.text.contains("Key date:"), "{}", r.text);
        ui.post(
            &format!("{base}/key-dates/new"),
            &[("name", "Beta"), ("date", "2026-12-01"), ("is_complete", "on")],
        )
        .await;
        let ask = ui.post(&format!("{base}/stories/{sid}/delete"), &[]).await;
        assert_eq!(
            ask.status, 200,
            "without confirmation a confirmation page comes back"
        );
        assert!(ask.text.contains(r#"name="confirmed" value="yes""#));
        ui.post(&format!("{base}/stories/{sid}/delete"), &[("confirmed", "yes")])
            .await;
        let evs = events(&app).await;
        assert_eq!(
            types(&evs[before..]),
            vec![
                "Story:Created",
                "Story:Updated",
                "KeyDate:Created",
                "Story:Deleted"
            ]
        );
        // Another project's story is not reachable through this project.
        let other = app
            .call(
                "POST",
                &format!("{V1}/projects"),
                Some(json!({"key": "OTHER", "name": "Other"})),
            )
            .await;
        let oid = other.json["data"]["id"].as_i64().unwrap();
        let s2 = app
            .call(
                "POST",
                &format!("{V1}/stories"),
                Some(json!({"project_id": oid, "name": "Theirs"})),
            )
            .await;
        let s2 = s2.json["data"]["id"].as_i64().unwrap();
        assert_eq!(
            ui.post(&format!("{base}/stories/{s2}/delete"), &[("confirmed", "yes")])
                .await
                .status,
            404
        );
    }
);

both!(
    read_only_tokens_see_projects_but_cannot_change_them,
    |app: TestApp| async move {
        let (id, fid) = project(&app, "Demo").await;
        let reader = app.token("default", "rita", "webhooks:read").await;
        let ui = Ui::sign_in(&app, &reader).await;
        let page = ui.get(&format!("/admin/projects/{id}")).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("<fieldset disabled"), "inputs are disabled");
        assert!(page.text.contains("entities:write"));
        let (fp, f) = (format!("fp_{fid}"), format!("f_{fid}"));
        let r = ui
            .post(&format!("/admin/projects/{id}"), &[(&fp, "1"), (&f, "1")])
            .await;
        assert_eq!(r.status, 403);
        let r = ui
            .post("/admin/projects", &[("key", "NEW"), ("name", "New")])
            .await;
        assert_eq!(r.status, 403);
    }
);

both!(projects_are_created_from_the_list, |app: TestApp| async move {
    let ui = Ui::sign_in(&app, &app.token).await;
    let r = ui
        .post(
            "/admin/projects",
            &[("key", "NEW"), ("name", "New <i>project</i>")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let to = location(&r).to_owned();
    assert!(
        to.starts_with("/admin/projects/") && to.ends_with("?notice=created"),
        "{to}"
    );
    let page = ui.get(&to).await;
    assert!(page.text.contains("Project created") && page.text.contains("New &lt;i&gt;project&lt;/i&gt;"));
    assert_eq!(types(&events(&app).await), vec!["Project:Created"]);
    // A missing name comes back on the list with the problem shown.
    let r = ui
        .post("/admin/projects", &[("key", "NONAME"), ("name", "")])
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.text.contains(r#"name="key" value="NONAME""#),
        "the typed key comes back"
    );
    assert_eq!(events(&app).await.len(), 1);
});
