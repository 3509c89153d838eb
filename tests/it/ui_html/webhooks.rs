//! The webhook pages: escaping, secured values, validation messages, deletion.

use std::collections::HashMap;

use herald::crypto::MasterKey;
use serde_json::json;

use super::{api_webhook, hook, webhook_form, Ui};
use crate::both;
use crate::support::TestApp;

both!(hostile_names_render_inert, |app: TestApp| async move {
    let evil = "<script>alert(1)</script>";
    let id = api_webhook(
        &app,
        json!({"name": evil, "url": "https://example.com/a?x=\"><img src=x onerror=alert(2)>",
        "description": "</textarea><script>alert(3)</script>", "eventTypes": ["Project:Updated"],
        "headers": [{"name": "X-Evil", "value": "\"><script>alert(4)</script>"}]}),
    )
    .await;
    let ui = Ui::sign_in(&app, &app.token).await;
    for path in [
        "/admin/webhooks".to_owned(),
        format!("/admin/webhooks/{id}"),
        format!("/admin/webhooks/{id}/edit"),
    ] {
        let page = ui.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: name shown escaped"
        );
        for raw in ["<script>alert", "<img src=x", "</textarea><script>"] {
            assert!(!page.text.contains(raw), "{path} contains raw {raw}");
        }
    }
    let feed = ui.get("/admin/webhooks/status.json").await;
    assert!(!feed.text.contains("<script>"));
});

both!(secured_values_never_reach_a_page, |app: TestApp| async move {
    const SECRET: &str = "sv-SECRET-4481";
    let ui = Ui::sign_in(&app, &app.token).await;
    let created = ui
        .post(
            "/admin/webhooks/new",
            &webhook_form("https://example.com/s", SECRET),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert!(
        created.text.contains("whsec_"),
        "the signing secret is shown once"
    );
    assert_eq!(created.headers.get("cache-control").unwrap(), "no-store");
    let list = app.call("GET", "/@default/v1/Webhooks", None).await;
    let id = list.json["data"][0]["id"].as_str().unwrap().to_owned();
    let mut pages: HashMap<String, String> = HashMap::new();
    pages.insert("created".into(), created.text);
    for p in [
        "/admin/webhooks".to_owned(),
        format!("/admin/webhooks/{id}"),
        format!("/admin/webhooks/{id}/edit"),
        "/admin/webhooks/status.json".to_owned(),
    ] {
        pages.insert(p.clone(), ui.get(&p).await.text);
    }
    // A form that comes back with errors does not echo the secured value either.
    let mut bad = webhook_form("http://example.com/plain", SECRET);
    bad[0] = ("name", "second");
    let invalid = ui.post("/admin/webhooks/new", &bad).await;
    assert_eq!(invalid.status, 422);
    pages.insert("invalid".into(), invalid.text);
    // Saving the edit form with the secured box left empty keeps the stored value.
    let mut edit = webhook_form("https://example.com/s2", "");
    edit[0] = ("name", "Ops renamed");
    let saved = ui.post(&format!("/admin/webhooks/{id}/edit"), &edit).await;
    assert_eq!(saved.status, 303, "{}", saved.text);
    pages.insert(
        "after-save".into(),
        ui.get(&format!("/admin/webhooks/{id}/edit")).await.text,
    );
    for (p, text) in &pages {
        assert!(!text.contains(SECRET), "{p} leaks the secured value");
    }
    assert!(
        !crate::support::logs::captured().contains(SECRET),
        "the logs carry the secured value"
    );
    assert!(pages["after-save"].contains("A secured value is set"));
    let rec = app
        .store
        .get_webhook(app.tenant_id("default").await, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.config.name, "Ops renamed");
    let key = MasterKey::parse(app.settings.master_key.as_deref().unwrap()).unwrap();
    let h = &rec.config.headers[0];
    assert!(h.secured && h.value.is_none());
    assert_eq!(key.open(h.sealed.as_deref().unwrap()).unwrap(), SECRET);
});

both!(
    validation_problems_are_shown_next_to_their_fields,
    |app: TestApp| async move {
        let ui = Ui::sign_in(&app, &app.token).await;
        let r = ui
            .post(
                "/admin/webhooks/new",
                &webhook_form("http://example.com/plain", "v"),
            )
            .await;
        assert_eq!(r.status, 422);
        assert!(
            r.text.contains(r#"id="url-error""#) && r.text.contains("must use https://"),
            "{}",
            r.text
        );
        assert!(r.text.contains(r#"aria-invalid="true""#));
        let mut f = webhook_form("https://example.com/p", "v");
        f[2] = ("format", "projectrak");
        f[5] = ("project_ids", "12, abc");
        f.push(("header_name_3", "Content-Type"));
        f.push(("header_value_3", "text/plain"));
        let r = ui.post("/admin/webhooks/new", &f).await;
        assert_eq!(r.status, 422);
        assert!(
            r.text.contains("cannot be expressed in the `projectrak` format"),
            "{}",
            r.text
        );
        assert!(r.text.contains(r#"id="project_ids-error""#));
        assert!(r.text.contains(r#"id="hn3-error""#), "header error sits on row 4");
        assert!(app.call("GET", "/@default/v1/Webhooks", None).await.json["data"]
            .as_array()
            .unwrap()
            .is_empty());
    }
);

both!(
    deleting_asks_first_and_bad_ids_are_friendly,
    |app: TestApp| async move {
        let ui = Ui::sign_in(&app, &app.token).await;
        let a = api_webhook(&app, hook("a")).await;
        api_webhook(&app, hook("b")).await;
        let r = ui.post(&format!("/admin/webhooks/{a}/delete"), &[]).await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains(r#"name="confirmed" value="yes""#));
        assert_eq!(
            app.call("GET", &format!("/@default/v1/Webhooks/{a}"), None)
                .await
                .status,
            200
        );
        let r = ui
            .post(&format!("/admin/webhooks/{a}/delete"), &[("confirmed", "yes")])
            .await;
        assert_eq!(r.status, 303);
        assert_eq!(
            app.call("GET", &format!("/@default/v1/Webhooks/{a}"), None)
                .await
                .status,
            404
        );
        let r = ui.post("/admin/webhooks/delete-all", &[]).await;
        assert!(r.text.contains("Delete all 1 webhooks"), "{}", r.text);
        ui.post("/admin/webhooks/delete-all", &[("confirmed", "yes")])
            .await;
        assert!(app.call("GET", "/@default/v1/Webhooks", None).await.json["data"]
            .as_array()
            .unwrap()
            .is_empty());
        for p in [
            "/admin/webhooks/not-a-uuid",
            "/admin/webhooks/00000000-0000-0000-0000-000000000000/edit",
            "/admin/nowhere",
        ] {
            let r = ui.get(p).await;
            assert_eq!(r.status, 404, "{p}");
            assert!(
                r.content_type.starts_with("text/html") && r.text.contains("Not found"),
                "{p}"
            );
        }
        // Another tenant's webhook is "not found" too.
        let other = app.token("other", "eve", "admin").await;
        let theirs = app
            .call_as(&other, "POST", "/@other/v1/Webhooks", Some(hook("theirs")))
            .await;
        let theirs = theirs.json["data"]["id"].as_str().unwrap().to_owned();
        assert_eq!(ui.get(&format!("/admin/webhooks/{theirs}")).await.status, 404);
        assert_eq!(
            ui.post(
                &format!("/admin/webhooks/{theirs}/delete"),
                &[("confirmed", "yes")]
            )
            .await
            .status,
            404
        );
    }
);

both!(
    disable_enable_and_rotate_from_the_webhook_page,
    |app: TestApp| async move {
        let ui = Ui::sign_in(&app, &app.token).await;
        let id = api_webhook(&app, hook("toggle me")).await;
        let page = format!("/admin/webhooks/{id}");
        let r = ui.post(&format!("{page}/enabled"), &[("enabled", "false")]).await;
        assert_eq!(r.status, 303);
        let shown = ui.get(&format!("{page}?notice=disabled")).await.text;
        assert!(
            shown.contains("Webhook disabled") && shown.contains(">Enable<"),
            "{shown}"
        );
        let api = app
            .call("GET", &format!("/@default/v1/Webhooks/{id}"), None)
            .await;
        assert_eq!(api.json["data"]["enabled"], false);
        assert_eq!(
            api.json["data"]["headers"][0]["secured"], true,
            "the toggle keeps secured headers"
        );
        ui.post(&format!("{page}/enabled"), &[("enabled", "true")]).await;
        let api = app
            .call("GET", &format!("/@default/v1/Webhooks/{id}"), None)
            .await;
        assert_eq!(api.json["data"]["enabled"], true);
        let rotated = ui.post(&format!("{page}/rotate"), &[]).await;
        assert_eq!(rotated.status, 200);
        assert!(rotated.text.contains("Signing secret rotated") && rotated.text.contains("whsec_"));
        assert_eq!(rotated.headers.get("cache-control").unwrap(), "no-store");
        // Reloading the webhook page never shows a secret.
        assert!(!ui.get(&page).await.text.contains("whsec_"));
    }
);
