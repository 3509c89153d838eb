//! The whole loop in a browser: edit a project field, watch the webhook's status turn green
//! `OK` without reloading; make the receiver fail, redeliver, watch it turn red `ERROR`,
//! and read the receiver's answer in the attempt log — with the secured header value in
//! no page source.

use super::driver::Browser;
use super::{api_project, assert_no_secret_in, change_budget, create_webhook, signed_in, SECURED};
use std::time::Duration;

use crate::support::{Reply, TestReceiver, WAIT};

/// Waits (without reloading) until the list shows `label` for webhook `id`.
async fn wait_for_status(b: &Browser, id: &str, label: &str) {
    let css = format!("tr[data-id='{id}'] [data-cell=status] .badge");
    b.wait_until(&format!("status {label}"), || async {
        let badge = b.client.find(fantoccini::Locator::Css(&css)).await.ok()?;
        badge.text().await.ok()?.starts_with(label).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_change_fires_the_webhook_and_a_failed_redelivery_shows_in_the_log() {
    if super::driver::skip() {
        return;
    }
    let receiver = TestReceiver::start().await;
    let ca = receiver.ca_file();
    let (app, b) = signed_in(&receiver, &ca).await;
    let project = api_project(&app).await;
    let id = create_webhook(&b, "Field watcher", &receiver.url(), "projectrak").await;
    // Two more, so the list shows every status: one that also receives the change in
    // Herald's standard format, and one that nothing triggers.
    for (name, url, format, types) in [
        ("Audit trail", receiver.url(), "standard", ["Project:Updated"]),
        (
            "PPM sync",
            "https://ppm.example.com/hooks".to_owned(),
            "ppm",
            ["Project:Deleted"],
        ),
    ] {
        let body = serde_json::json!({"name": name, "url": url, "format": format, "eventTypes": types});
        assert_eq!(
            app.call("POST", "/@default/v1/Webhooks", Some(body)).await.status,
            201
        );
    }

    // Edit a field on the project page, then watch the list turn green on its own. The
    // receiver takes a few seconds to answer, so the list is open before the status
    // changes and must update in place (a marker in the page proves there was no reload).
    receiver.reply_with(Reply::ok().delay(Duration::from_secs(5)));
    b.goto("/admin/projects").await;
    b.screenshot("projects", 1280).await;
    b.click(&format!("a[href='/admin/projects/{project}']")).await;
    b.wait_path("the project page", |p| p == format!("/admin/projects/{project}"))
        .await;
    change_budget(&b, project, "30000").await;
    b.goto("/admin/webhooks").await;
    wait_for_status(&b, &id, "NOT RUN").await;
    b.client
        .execute("window.heraldMarker = 42;", vec![])
        .await
        .unwrap();
    let seen = receiver.wait_for(2, WAIT).await;
    let ours = seen
        .iter()
        .find(|r| r.header("herald-format") == Some("projectrak"))
        .expect("the projectrak webhook was called");
    assert_eq!(
        ours.header("authorization"),
        Some(SECURED),
        "the secured value is sent"
    );
    assert_eq!(ours.header("herald-event-type"), Some("Project:Updated"));
    wait_for_status(&b, &id, "OK").await;
    let marker = b
        .client
        .execute("return window.heraldMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(
        marker,
        serde_json::json!(42),
        "the status changed without a reload"
    );
    receiver.reply_with(Reply::ok());
    b.goto(&format!("/admin/projects/{project}")).await;
    b.screenshot("project", 1280).await;
    b.screenshot("project-phone", 390).await;

    // A test ping from the webhook page lands in the log too.
    b.goto(&format!("/admin/webhooks/{id}")).await;
    b.click("form[action$='/test'] button").await;
    b.wait_path("the ping's attempt log", |p| p.contains("/deliveries/"))
        .await;
    let log = b.find("main").await.text().await.unwrap();
    assert!(log.contains("Webhook:Ping") && log.contains("succeeded"), "{log}");

    // The receiver starts failing; redeliver the field change from its attempt log.
    receiver.reply_with(Reply::status(503).body("receiver says no: maintenance"));
    b.goto(&format!("/admin/webhooks/{id}")).await;
    let update_row = b.find("#deliveries tbody tr:last-child").await;
    let row_text = update_row.text().await.unwrap();
    assert!(
        row_text.contains("Project:Updated") && row_text.contains("OK"),
        "{row_text}"
    );
    b.screenshot("webhook-detail-ok", 1280).await;
    update_row
        .find(fantoccini::Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_path("the attempt log", |p| p.contains("/deliveries/"))
        .await;
    let before = receiver.requests().len();
    b.click("main form[action$='/redeliver'] button").await;
    receiver.wait_for(before + 1, WAIT).await;
    b.goto("/admin/webhooks").await;
    wait_for_status(&b, &id, "ERROR").await;
    let title = b
        .find(&format!("tr[data-id='{id}'] .badge"))
        .await
        .attr("title")
        .await
        .unwrap();
    assert_eq!(title.as_deref(), Some("HTTP 503"));
    b.screenshot("webhooks-error", 1280).await;

    // The attempt log shows the failed attempt with the receiver's answer.
    b.goto(&format!("/admin/webhooks/{id}")).await;
    b.click("#deliveries tbody tr:last-child a").await;
    let body = b.find("#attempt-2 .response-body").await.text().await.unwrap();
    assert!(body.contains("receiver says no: maintenance"), "{body}");
    let head = b.find("#attempt-2 h3").await.text().await.unwrap();
    assert!(head.contains("ERROR"), "{head}");
    b.screenshot("attempt-log", 1280).await;
    let log_path = b.client.current_url().await.unwrap().path().to_owned();
    b.goto(&format!("/admin/webhooks/{id}")).await;
    b.find("figure.chart svg").await;
    b.screenshot("webhook-detail", 1280).await;
    assert_no_secret_in(
        &b,
        &[
            "/admin/webhooks".into(),
            format!("/admin/webhooks/{id}"),
            format!("/admin/webhooks/{id}/edit"),
            log_path,
            format!("/admin/projects/{project}"),
        ],
    )
    .await;
}
