//! The admin UI in a real headless Chromium, driven through chromedriver: what a person
//! does with a mouse and keyboard, checked the way they would see it. Screenshots of each
//! page land in `target/ui-screenshots/`. Runs on SQLite only (the HTML-level tests cover
//! both backends); `HERALD_SKIP_BROWSER_TESTS=1` skips it, a missing browser fails it.

mod deliveries;
mod driver;

use driver::Browser;

use crate::support::{Backend, TestApp, TestReceiver};

const SECURED: &str = "Bearer browser-secured-9931";

/// Starts Herald trusting the receiver's CA, and a browser signed in with the admin token.
async fn signed_in(receiver: &TestReceiver, ca: &tempfile::NamedTempFile) -> (TestApp, Browser) {
    let ca_path = ca.path().display().to_string();
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HERALD_EXTRA_CA_FILE", ca_path.as_str())])
        .await
        .expect("SQLite is always available");
    let _ = receiver;
    let b = Browser::start(&app.base).await;
    b.goto("/admin/webhooks").await;
    b.wait_path("the sign-in page", |p| p == "/admin/sign-in").await;
    b.screenshot("sign-in", 1280).await;
    b.fill("#token", &app.token).await;
    b.click("main form button[type=submit]").await;
    b.wait_path("the webhooks list after signing in", |p| p == "/admin/webhooks")
        .await;
    (app, b)
}

/// Fills and submits the create form for a webhook to `url` with a secured header, in
/// `format` (`ppm`: Project:Created and Project:Updated; `projectrak`: Project:Updated).
async fn create_webhook(b: &Browser, name: &str, url: &str, format_name: &str) -> String {
    b.goto("/admin/webhooks/new").await;
    let format = b.find("#format").await;
    // The event type list follows the format: Projectrak carries only Project:Updated.
    format
        .select_by_value("projectrak")
        .await
        .expect("choose projectrak");
    b.wait_until("Task:Created to disappear for projectrak", || async {
        let task = b
            .client
            .find(fantoccini::Locator::Css("#et-Task-Created"))
            .await
            .ok()?;
        (!task.is_displayed().await.ok()?).then_some(())
    })
    .await;
    assert!(b.find("#et-Project-Updated").await.is_displayed().await.unwrap());
    format.select_by_value("ppm").await.expect("choose ppm");
    b.wait_until("Task:Created to come back for ppm", || async {
        let task = b
            .client
            .find(fantoccini::Locator::Css("#et-Task-Created"))
            .await
            .ok()?;
        task.is_displayed().await.ok()?.then_some(())
    })
    .await;
    format
        .select_by_value(format_name)
        .await
        .expect("choose the format");
    b.fill("#name", name).await;
    b.fill("#url", url).await;
    if format_name == "ppm" {
        b.click("#et-Project-Created").await;
    }
    b.click("#et-Project-Updated").await;
    b.fill("#hn0", "Authorization").await;
    b.fill("#hv0", SECURED).await;
    b.click("#hs0").await;
    b.fill("#hn1", "X-Team").await;
    b.fill("#hv1", "platform").await;
    b.screenshot("webhook-form", 1280).await;
    b.click(".webhook-form button.primary[type=submit]").await;
    let secret = b.find("#secret").await;
    let value = secret.prop("value").await.unwrap().unwrap_or_default();
    assert!(
        value.starts_with("whsec_"),
        "the signing secret is shown once: {value}"
    );
    b.screenshot("webhook-created", 1280).await;
    let link = b
        .find("a.button.primary")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    link.trim_start_matches("/admin/webhooks/").to_owned()
}

/// Asserts the secured header value is in none of these pages' sources.
async fn assert_no_secret_in(b: &Browser, paths: &[String]) {
    for p in paths {
        b.goto(p).await;
        b.find("main").await;
        let src = b.source().await;
        assert!(
            !src.contains(SECURED) && !src.contains("browser-secured-9931"),
            "{p} leaks the secured value"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_create_a_webhook_and_see_it_listed() {
    if driver::skip() {
        return;
    }
    let receiver = TestReceiver::start().await;
    let ca = receiver.ca_file();
    let (_app, b) = signed_in(&receiver, &ca).await;
    // Plain HTTP is refused with a message next to the URL field (server-side check).
    b.goto("/admin/webhooks/new").await;
    b.fill("#url", "http://example.com/hook").await;
    b.click("#et-Project-Updated").await;
    b.click(".webhook-form button.primary[type=submit]").await;
    let msg = b.find("#url-error").await.text().await.unwrap();
    assert!(msg.contains("must use https://"), "{msg}");
    assert_eq!(
        b.find("#url")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    b.screenshot("webhook-form-errors", 1280).await;
    let id = create_webhook(&b, "Browser receiver", &receiver.url(), "ppm").await;

    b.goto("/admin/webhooks").await;
    // Keyboard: the first Tab lands on the skip link, which is then visible.
    b.find("body")
        .await
        .send_keys("\u{e004}")
        .await
        .expect("press Tab");
    let focused = b.client.active_element().await.expect("focused element");
    assert_eq!(focused.text().await.unwrap(), "Skip to content");
    assert!(focused.is_displayed().await.unwrap());
    let row = b.find(&format!("tr[data-id='{id}']")).await;
    let text = row.text().await.unwrap();
    assert!(
        text.contains("Browser receiver") && text.contains(&receiver.url()),
        "{text}"
    );
    assert!(text.contains("NOT RUN"), "no delivery yet: {text}");
    // The filter narrows the list as one types.
    b.fill("#q", "no-such-webhook").await;
    b.wait_until("the row to be filtered out", || async {
        (!row.is_displayed().await.ok()?).then_some(())
    })
    .await;
    b.fill("#q", "browser").await;
    b.wait_until("the row to come back", || async {
        row.is_displayed().await.ok()?.then_some(())
    })
    .await;
    b.screenshot("webhooks", 1280).await;
    b.screenshot("webhooks-phone", 390).await;

    b.goto(&format!("/admin/webhooks/{id}")).await;
    let props = b.find("dl.props").await.text().await.unwrap();
    assert!(
        props.contains("secured") && props.contains("value set, hidden"),
        "{props}"
    );
    b.screenshot("webhook-detail-new", 1280).await;
    b.screenshot("webhook-detail-phone", 390).await;
    b.goto(&format!("/admin/webhooks/{id}/edit")).await;
    let placeholder = b
        .find("#hv0")
        .await
        .attr("placeholder")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(placeholder.contains("leave empty to keep"), "{placeholder}");
    b.screenshot("webhook-edit", 1280).await;
    // Rotating asks first (a native dialog), then shows the new secret once.
    b.goto(&format!("/admin/webhooks/{id}")).await;
    b.click("form[action$='/rotate'] button").await;
    b.client.accept_alert().await.expect("confirm the rotation");
    let secret = b
        .find("#secret")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{secret}");
    b.screenshot("secret-rotated", 1280).await;
    b.goto("/admin/webhooks/not-a-webhook").await;
    b.find("main h1").await;
    b.screenshot("not-found", 1280).await;
    assert_no_secret_in(
        &b,
        &[
            "/admin/webhooks".into(),
            format!("/admin/webhooks/{id}"),
            format!("/admin/webhooks/{id}/edit"),
        ],
    )
    .await;
    // Deleting asks first: dismissing the dialog keeps the webhook, accepting deletes it.
    b.goto(&format!("/admin/webhooks/{id}")).await;
    b.click("form[action$='/delete'] button").await;
    b.client.dismiss_alert().await.expect("dismiss the dialog");
    assert_eq!(
        b.wait_path("the webhook page", |p| p.ends_with(&id)).await,
        format!("/admin/webhooks/{id}")
    );
    b.click("form[action$='/delete'] button").await;
    b.client.accept_alert().await.expect("accept the dialog");
    b.wait_path("the list after deleting", |p| p == "/admin/webhooks")
        .await;
    b.find(".empty").await;
}

/// A project with a number field `Budget`, made through the JSON API; returns its id.
async fn api_project(app: &TestApp) -> i64 {
    let f = serde_json::json!({"name": "Budget", "type": "number"});
    assert_eq!(app.call("POST", "/@default/v1/fields", Some(f)).await.status, 201);
    let p = serde_json::json!({"key": "DEMO", "name": "Demo project", "fields": {"Budget": 25000}});
    let r = app.call("POST", "/@default/v1/projects", Some(p)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["data"]["id"].as_i64().unwrap()
}

/// Changes the Budget field on the project page and waits for the "saved" notice.
async fn change_budget(b: &Browser, project: i64, value: &str) {
    b.goto(&format!("/admin/projects/{project}")).await;
    b.fill("#f-10001", value).await;
    b.click("form.webhook-form button.primary[type=submit]").await;
    b.wait_until("the saved notice", || async {
        let n = b.client.find(fantoccini::Locator::Css(".notice-ok")).await.ok()?;
        n.text().await.ok()?.contains("Project:Updated").then_some(())
    })
    .await;
}
