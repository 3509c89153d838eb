//! The admin UI at the HTML level: authentication, CSRF, escaping and secrecy, through
//! real HTTP against the real server (no browser). Every test runs on SQLite and PostgreSQL.

use std::collections::HashMap;

use herald::crypto::MasterKey;
use serde_json::json;

use crate::both;

mod projects;
use crate::support::app::Resp;
use crate::support::TestApp;

/// A signed-in browser stand-in: keeps the session cookie and the page's CSRF token.
struct Ui<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of cookie `name` in the response's `Set-Cookie` headers.
fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The value of the first hidden `csrf` input in a page.
fn csrf_in(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("page has a CSRF field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn location(r: &Resp) -> &str {
    r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// GET /admin/sign-in then POST the token; returns the POST's response and the session cookie.
async fn try_sign_in(app: &TestApp, token: &str) -> (Resp, Option<String>) {
    let client = no_redirects();
    let page = Resp::from(client.get(app.url("/admin/sign-in")).send().await.unwrap()).await;
    assert_eq!(page.status, 200);
    let pre = set_cookie(&page, "herald_signin").expect("sign-in cookie");
    let form = [("csrf", csrf_in(&page.text)), ("token", token.to_owned()), ("next", String::new())];
    let r = client
        .post(app.url("/admin/sign-in"))
        .header("cookie", pre)
        .form(&form)
        .send()
        .await
        .unwrap();
    let r = Resp::from(r).await;
    let session = set_cookie(&r, "herald_session").filter(|c| c != "herald_session=");
    (r, session)
}

impl<'a> Ui<'a> {
    async fn sign_in(app: &'a TestApp, token: &str) -> Ui<'a> {
        let (r, cookie) = try_sign_in(app, token).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(location(&r), "/admin/webhooks");
        let mut ui = Ui {
            app,
            client: no_redirects(),
            cookie: cookie.expect("session cookie"),
            csrf: String::new(),
        };
        let list = ui.get("/admin/webhooks").await;
        assert_eq!(list.status, 200, "{}", list.text);
        ui.csrf = csrf_in(&list.text);
        ui
    }

    async fn get(&self, path: &str) -> Resp {
        let r = self.client.get(self.app.url(path)).header("cookie", &self.cookie).send().await.unwrap();
        Resp::from(r).await
    }

    /// POSTs `pairs` as a form, with the session's CSRF token unless `pairs` has one.
    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let mut form: Vec<(&str, &str)> = pairs.to_vec();
        if !pairs.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf", self.csrf.as_str()));
        }
        let r = self
            .client
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        Resp::from(r).await
    }
}

/// Creates a webhook through the JSON API; returns its id.
async fn api_webhook(app: &TestApp, body: serde_json::Value) -> String {
    let r = app.call("POST", "/@default/v1/Webhooks", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["data"]["id"].as_str().unwrap().to_owned()
}

fn hook(name: &str) -> serde_json::Value {
    json!({"name": name, "url": "https://example.com/hook", "eventTypes": ["Project:Updated"],
           "headers": [{"name": "Authorization", "value": "Bearer api-secured-7731", "secured": true}]})
}

fn webhook_form<'a>(url: &'a str, secured_value: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "Ops"),
        ("url", url),
        ("format", "ppm"),
        ("event_types", "Project:Created"),
        ("event_types", "Project:Updated"),
        ("project_ids", ""),
        ("header_name_0", "Authorization"),
        ("header_value_0", secured_value),
        ("header_secured_0", "on"),
        ("header_name_1", "X-Team"),
        ("header_value_1", "ops"),
        ("enabled", "on"),
        ("http_verb", "POST"),
        ("ordering", "none"),
    ]
}

both!(pages_redirect_to_sign_in_without_a_session, |app: TestApp| async move {
    let id = api_webhook(&app, hook("a")).await;
    let client = no_redirects();
    let paths = [
        "/admin".to_owned(),
        "/admin/webhooks".to_owned(),
        "/admin/webhooks/new".to_owned(),
        format!("/admin/webhooks/{id}"),
        format!("/admin/webhooks/{id}/edit"),
    ];
    for cookie in ["", "herald_session=forged-session-id"] {
        for p in &paths {
            let r = Resp::from(client.get(app.url(p)).header("cookie", cookie).send().await.unwrap()).await;
            assert_eq!(r.status, 303, "{p}: {}", r.text);
            let to = location(&r);
            assert!(to.starts_with("/admin/sign-in") || to == "/admin/webhooks", "{p} → {to}");
            if p != "/admin" {
                assert!(to.starts_with("/admin/sign-in?next="), "{p} → {to}");
            }
        }
        let r = Resp::from(client.get(app.url("/admin/webhooks/status.json")).header("cookie", cookie).send().await.unwrap()).await;
        assert_eq!(r.status, 401);
        let r = Resp::from(
            client.post(app.url("/admin/webhooks/delete-all")).header("cookie", cookie)
                .form(&[("csrf", "x"), ("confirmed", "yes")]).send().await.unwrap(),
        ).await;
        assert_eq!(r.status, 303);
        assert_eq!(location(&r), "/admin/sign-in");
    }
    let r = app.call("GET", &format!("/@default/v1/Webhooks/{id}"), None).await;
    assert_eq!(r.status, 200, "nothing was deleted");
});

both!(only_tokens_with_webhook_scopes_sign_in, |app: TestApp| async move {
    let entities = app.token("default", "bob", "entities:write").await;
    let (r, cookie) = try_sign_in(&app, &entities).await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("cannot manage webhooks"), "{}", r.text);
    assert!(cookie.is_none());
    let (r, cookie) = try_sign_in(&app, "hrld_notatoken_xxxxxxxx").await;
    assert_eq!(r.status, 401);
    assert!(cookie.is_none());

    // A read-only token signs in, sees the list, and cannot create.
    let reader = app.token("default", "carol", "webhooks:read").await;
    let ui = Ui::sign_in(&app, &reader).await;
    assert!(!ui.get("/admin/webhooks").await.text.contains("/admin/webhooks/new"));
    assert_eq!(ui.get("/admin/webhooks/new").await.status, 403);
    assert_eq!(ui.post("/admin/webhooks/new", &webhook_form("https://example.com/x", "v")).await.status, 403);

    // Signing out ends the session on the server: the old cookie no longer works.
    let r = ui.post("/admin/sign-out", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(set_cookie(&r, "herald_session").as_deref(), Some("herald_session="));
    assert_eq!(ui.get("/admin/webhooks").await.status, 303);

    // Revoking the token ends its sessions.
    let writer_token = app.token("default", "dave", "webhooks:write").await;
    let ui = Ui::sign_in(&app, &writer_token).await;
    let token_id = writer_token.split('_').nth(1).unwrap();
    assert!(app.store.revoke_token(token_id, herald::timefmt::now_ms()).await.unwrap());
    assert_eq!(ui.get("/admin/webhooks").await.status, 303);
});

both!(session_cookie_is_http_only_strict_and_scoped, |app: TestApp| async move {
    let (r, _) = try_sign_in(&app, &app.token.clone()).await;
    let raw: Vec<&str> = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    let session = raw.iter().find(|c| c.starts_with("herald_session=")).unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Secure"), "plain-HTTP test server: no Secure flag");
    let ui = Ui::sign_in(&app, &app.token).await;
    let page = ui.get("/admin/webhooks").await;
    let csp = page.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers.get("x-content-type-options").unwrap(), "nosniff");
});

both!(forms_without_the_right_csrf_token_are_refused, |app: TestApp| async move {
    let ui = Ui::sign_in(&app, &app.token).await;
    let id = api_webhook(&app, hook("keep me")).await;
    let mut form = webhook_form("https://example.com/new", "v");
    let missing = ui.client.post(app.url("/admin/webhooks/new")).header("cookie", &ui.cookie).form(&form).send().await.unwrap();
    assert_eq!(missing.status(), 403);
    form.push(("csrf", "wrong-token-of-the-right-length-0123456789a"));
    assert_eq!(ui.post("/admin/webhooks/new", &form).await.status, 403);
    for (path, pairs) in [
        ("/admin/webhooks/delete-all".to_owned(), vec![("confirmed", "yes"), ("csrf", "nope")]),
        (format!("/admin/webhooks/{id}/delete"), vec![("confirmed", "yes"), ("csrf", "")]),
        (format!("/admin/webhooks/{id}/rotate"), vec![("csrf", "nope")]),
        (format!("/admin/webhooks/{id}/enabled"), vec![("enabled", "false"), ("csrf", "nope")]),
        ("/admin/sign-out".to_owned(), vec![("csrf", "nope")]),
    ] {
        let r = ui.post(&path, &pairs).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.text.contains("Form expired"), "{path}: {}", r.text);
    }
    // Nothing changed: one webhook, still enabled, still signed in.
    let list = app.call("GET", "/@default/v1/Webhooks", None).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.json["data"][0]["enabled"], true);
    assert_eq!(ui.get("/admin/webhooks").await.status, 200);
    // A sign-in POST without the matching sign-in cookie is refused too (login CSRF).
    let r = no_redirects().post(app.url("/admin/sign-in")).form(&[("csrf", "x"), ("token", app.token.as_str())]).send().await.unwrap();
    let r = Resp::from(r).await;
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r, "herald_session").is_none());
    // The right token works.
    let ok = ui.post("/admin/webhooks/new", &webhook_form("https://example.com/new", "v")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
});

both!(hostile_names_render_inert, |app: TestApp| async move {
    let evil = "<script>alert(1)</script>";
    let id = api_webhook(&app, json!({"name": evil, "url": "https://example.com/a?x=\"><img src=x onerror=alert(2)>",
        "description": "</textarea><script>alert(3)</script>", "eventTypes": ["Project:Updated"],
        "headers": [{"name": "X-Evil", "value": "\"><script>alert(4)</script>"}]})).await;
    let ui = Ui::sign_in(&app, &app.token).await;
    for path in ["/admin/webhooks".to_owned(), format!("/admin/webhooks/{id}"), format!("/admin/webhooks/{id}/edit")] {
        let page = ui.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(page.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path}: name shown escaped");
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
    let created = ui.post("/admin/webhooks/new", &webhook_form("https://example.com/s", SECRET)).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert!(created.text.contains("whsec_"), "the signing secret is shown once");
    assert_eq!(created.headers.get("cache-control").unwrap(), "no-store");
    let list = app.call("GET", "/@default/v1/Webhooks", None).await;
    let id = list.json["data"][0]["id"].as_str().unwrap().to_owned();
    let mut pages: HashMap<String, String> = HashMap::new();
    pages.insert("created".into(), created.text);
    for p in ["/admin/webhooks".to_owned(), format!("/admin/webhooks/{id}"), format!("/admin/webhooks/{id}/edit"),
              "/admin/webhooks/status.json".to_owned()] {
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
    pages.insert("after-save".into(), ui.get(&format!("/admin/webhooks/{id}/edit")).await.text);
    for (p, text) in &pages {
        assert!(!text.contains(SECRET), "{p} leaks the secured value");
    }
    assert!(pages["after-save"].contains("A secured value is set"));
    let rec = app.store.get_webhook(app.tenant_id("default").await, id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(rec.config.name, "Ops renamed");
    let key = MasterKey::parse(app.settings.master_key.as_deref().unwrap()).unwrap();
    let h = &rec.config.headers[0];
    assert!(h.secured && h.value.is_none());
    assert_eq!(key.open(h.sealed.as_deref().unwrap()).unwrap(), SECRET);
});

both!(validation_problems_are_shown_next_to_their_fields, |app: TestApp| async move {
    let ui = Ui::sign_in(&app, &app.token).await;
    let r = ui.post("/admin/webhooks/new", &webhook_form("http://example.com/plain", "v")).await;
    assert_eq!(r.status, 422);
    assert!(r.text.contains(r#"id="url-error""#) && r.text.contains("must use https://"), "{}", r.text);
    assert!(r.text.contains(r#"aria-invalid="true""#));
    let mut f = webhook_form("https://example.com/p", "v");
    f[2] = ("format", "projectrak");
    f[5] = ("project_ids", "12, abc");
    f.push(("header_name_3", "Content-Type"));
    f.push(("header_value_3", "text/plain"));
    let r = ui.post("/admin/webhooks/new", &f).await;
    assert_eq!(r.status, 422);
    assert!(r.text.contains("cannot be expressed in the `projectrak` format"), "{}", r.text);
    assert!(r.text.contains(r#"id="project_ids-error""#));
    assert!(r.text.contains(r#"id="hn3-error""#), "header error sits on row 4");
    assert!(app.call("GET", "/@default/v1/Webhooks", None).await.json["data"].as_array().unwrap().is_empty());
});

both!(deleting_asks_first_and_bad_ids_are_friendly, |app: TestApp| async move {
    let ui = Ui::sign_in(&app, &app.token).await;
    let a = api_webhook(&app, hook("a")).await;
    api_webhook(&app, hook("b")).await;
    let r = ui.post(&format!("/admin/webhooks/{a}/delete"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains(r#"name="confirmed" value="yes""#));
    assert_eq!(app.call("GET", &format!("/@default/v1/Webhooks/{a}"), None).await.status, 200);
    let r = ui.post(&format!("/admin/webhooks/{a}/delete"), &[("confirmed", "yes")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(app.call("GET", &format!("/@default/v1/Webhooks/{a}"), None).await.status, 404);
    let r = ui.post("/admin/webhooks/delete-all", &[]).await;
    assert!(r.text.contains("Delete all 1 webhooks"), "{}", r.text);
    ui.post("/admin/webhooks/delete-all", &[("confirmed", "yes")]).await;
    assert!(app.call("GET", "/@default/v1/Webhooks", None).await.json["data"].as_array().unwrap().is_empty());
    for p in ["/admin/webhooks/not-a-uuid", "/admin/webhooks/00000000-0000-0000-0000-000000000000/edit", "/admin/nowhere"] {
        let r = ui.get(p).await;
        assert_eq!(r.status, 404, "{p}");
        assert!(r.content_type.starts_with("text/html") && r.text.contains("Not found"), "{p}");
    }
    // Another tenant's webhook is "not found" too.
    let other = app.token("other", "eve", "admin").await;
    let theirs = app.call_as(&other, "POST", "/@other/v1/Webhooks", Some(hook("theirs"))).await;
    let theirs = theirs.json["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ui.get(&format!("/admin/webhooks/{theirs}")).await.status, 404);
    assert_eq!(ui.post(&format!("/admin/webhooks/{theirs}/delete"), &[("confirmed", "yes")]).await.status, 404);
});
