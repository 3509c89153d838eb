//! The delivery pages at the HTML level: attempt logs never show secured values, sending
//! needs `deliveries:write` and a CSRF token, and one webhook's page cannot reach another
//! webhook's deliveries. Runs on both backends against a real HTTPS receiver.

use serde_json::json;

use super::{location, no_redirects, Ui};
use crate::support::app::Resp;
use crate::support::{Backend, Reply, TestApp, TestReceiver, WAIT};

const SECURED: &str = "Bearer delivery-secured-5521";

/// Herald trusting a fresh receiver, a webhook to it with a secured header, and one ping
/// delivered; returns (app, receiver, webhook id, delivery id).
async fn rig(backend: Backend) -> Option<(TestApp, TestReceiver, String, String)> {
    let receiver = TestReceiver::start().await;
    receiver.reply_with(Reply::status(500).body("<b>boom</b> from the receiver"));
    let ca = receiver.ca_file();
    let ca_path = ca.path().display().to_string();
    let app = TestApp::spawn_with(backend, &[("HERALD_EXTRA_CA_FILE", ca_path.as_str())]).await?;
    let hook = json!({"name": "Rx", "url": receiver.url(), "eventTypes": ["Project:Updated"], "format": "projectrak",
        "headers": [{"name": "Authorization", "value": SECURED, "secured": true}]});
    let r = app.call("POST", "/@default/v1/Webhooks", Some(hook)).await;
    let id = r.json["data"]["id"].as_str().unwrap().to_owned();
    let ping = app
        .call("POST", &format!("/@default/v1/Webhooks/{id}/test"), None)
        .await;
    assert!(ping.status == 200 || ping.status == 202, "{}", ping.text);
    let did = ping.json["data"]["id"].as_str().unwrap().to_owned();
    receiver.wait_for(1, WAIT).await;
    Some((app, receiver, id, did))
}

macro_rules! both_rx {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(r) = rig(Backend::Sqlite).await {
                    ($body)(r).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(r) = rig(Backend::Postgres).await {
                    ($body)(r).await;
                }
            }
        }
    };
}

both_rx!(attempt_logs_mask_secrets_and_escape_bodies, |(
    app,
    _rx,
    id,
    did,
): (
    TestApp,
    TestReceiver,
    String,
    String
)| async move {
    let ui = Ui::sign_in(&app, &app.token).await;
    let log = ui.get(&format!("/admin/webhooks/{id}/deliveries/{did}")).await;
    assert_eq!(log.status, 200, "{}", log.text);
    assert!(log.text.contains("Webhook:Ping"));
    assert!(
        log.text.contains("&lt;b&gt;boom&lt;/b&gt; from the receiver"),
        "the receiver's body, escaped"
    );
    assert!(!log.text.contains("<b>boom</b>"));
    for page in [
        log.text,
        ui.get(&format!("/admin/webhooks/{id}")).await.text,
        ui.get(&format!("/admin/webhooks/{id}/deliveries.html"))
            .await
            .text,
    ] {
        assert!(
            !page.contains("delivery-secured-5521"),
            "a page leaks the secured value"
        );
    }
    let frag = ui.get(&format!("/admin/webhooks/{id}/deliveries.html")).await;
    assert!(
        frag.text.contains("ERROR") && frag.text.contains("1 failed"),
        "{}",
        frag.text
    );
    // Without a session the pages redirect to sign-in.
    let r = Resp::from(
        no_redirects()
            .get(app.url(&format!("/admin/webhooks/{id}/deliveries/{did}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with("/admin/sign-in"));
    let path = format!("/admin/webhooks/{id}/deliveries.html");
    let r = no_redirects().get(app.url(&path)).send().await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "the self-refreshing fragment says 401, not a redirect"
    );
});

both_rx!(
    sending_needs_the_scope_and_a_csrf_token,
    |(app, rx, id, did): (TestApp, TestReceiver, String, String)| async move {
        let reader = app.token("default", "rita", "webhooks:read").await;
        let ro = Ui::sign_in(&app, &reader).await;
        let page = ro.get(&format!("/admin/webhooks/{id}")).await;
        assert!(page.text.contains("Attempt log") && !page.text.contains("Send test ping"));
        for p in [
            format!("/admin/webhooks/{id}/test"),
            format!("/admin/webhooks/{id}/redeliver-failed"),
            format!("/admin/webhooks/{id}/deliveries/{did}/redeliver"),
        ] {
            assert_eq!(ro.post(&p, &[]).await.status, 403, "{p}");
        }
        let ui = Ui::sign_in(&app, &app.token).await;
        let before = rx.requests().len();
        for p in [
            format!("/admin/webhooks/{id}/test"),
            format!("/admin/webhooks/{id}/deliveries/{did}/redeliver"),
        ] {
            assert_eq!(ui.post(&p, &[("csrf", "forged")]).await.status, 403, "{p}");
        }
        assert_eq!(rx.requests().len(), before, "nothing was sent");
        // With both, a redelivery goes out at once.
        rx.reply_with(Reply::ok());
        let r = ui
            .post(&format!("/admin/webhooks/{id}/deliveries/{did}/redeliver"), &[])
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        rx.wait_for(before + 1, WAIT).await;
        let r = ui.post(&format!("/admin/webhooks/{id}/test"), &[]).await;
        assert_eq!(r.status, 303);
        assert!(location(&r).starts_with(&format!("/admin/webhooks/{id}/deliveries/")));
    }
);

both_rx!(deliveries_belong_to_their_webhook, |(app, _rx, id, did): (
    TestApp,
    TestReceiver,
    String,
    String
)| async move {
    let other =
        json!({"name": "Other", "url": "https://other.example.com/h", "eventTypes": ["Project:Updated"]});
    let other = app.call("POST", "/@default/v1/Webhooks", Some(other)).await;
    let other = other.json["data"]["id"].as_str().unwrap().to_owned();
    let ui = Ui::sign_in(&app, &app.token).await;
    assert_eq!(
        ui.get(&format!("/admin/webhooks/{other}/deliveries/{did}"))
            .await
            .status,
        404
    );
    assert_eq!(
        ui.post(
            &format!("/admin/webhooks/{other}/deliveries/{did}/redeliver"),
            &[]
        )
        .await
        .status,
        404
    );
    assert_eq!(
        ui.get(&format!("/admin/webhooks/{id}/deliveries/not-a-uuid"))
            .await
            .status,
        404
    );
    // Another tenant cannot see it at all.
    let theirs = app.token("other", "eve", "admin").await;
    let eve = Ui::sign_in(&app, &theirs).await;
    assert_eq!(
        eve.get(&format!("/admin/webhooks/{id}/deliveries/{did}"))
            .await
            .status,
        404
    );
});
