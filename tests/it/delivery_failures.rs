//! When receivers misbehave: retries with the same `webhook-id`, `Retry-After`, 410,
//! timeouts, refused connections, redirects, the SSRF guard, auto-disable.

use std::time::Duration;

use serde_json::{json, Value};

use crate::rig_test;
use crate::support::hooks::{eventually, id, Rig, V1};
use crate::support::{Reply, WAIT};

fn statuses(d: &Value) -> Vec<Value> {
    d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect()
}

fn outcomes(d: &Value) -> Vec<Value> {
    d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].clone())
        .collect()
}

async fn only_delivery(rig: &Rig, hook: &Value) -> Value {
    let list = rig.wait_deliveries(hook, 1).await;
    rig.settled(&id(&list[0])).await
}

rig_test!(
    server_errors_are_retried_with_the_same_id,
    &[("HERALD_RETRY_SCHEDULE", "1s,1s,1s")],
    |rig: Rig| async move {
        rig.rx.enqueue(Reply::status(500));
        rig.rx.enqueue(Reply::status(500).body("busy"));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("RTY").await;
        // Between attempts the webhook shows the failure…
        rig.rx.wait_for(1, WAIT).await;
        eventually("lastExecution ERROR", WAIT, || async {
            let w = rig.get_webhook(&hook).await;
            (w["lastExecution"]["status"] == "ERROR" && w["lastExecution"]["statusCode"] == 500).then_some(())
        })
        .await;
        let d = only_delivery(&rig, &hook).await;
        // …and OK once the retry got through.
        assert_eq!(rig.get_webhook(&hook).await["lastExecution"]["status"], "OK");
        assert_eq!(d["status"], "succeeded");
        assert_eq!(statuses(&d), [json!(500), json!(500), json!(200)]);
        assert_eq!(outcomes(&d), [json!("retry"), json!("retry"), json!("succeeded")]);
        assert_eq!(d["attempts"][1]["responseBody"], "busy");
        let reqs = rig.rx.requests();
        assert_eq!(reqs.len(), 3);
        assert!(
            reqs.iter().all(|r| r.header("webhook-id") == d["id"].as_str()),
            "stable webhook-id"
        );
        assert!(
            reqs.iter().all(|r| r.body == reqs[0].body),
            "same body every time"
        );
    }
);

rig_test!(
    retry_after_is_honoured_on_429,
    &[("HERALD_RETRY_SCHEDULE", "50ms,5s")],
    |rig: Rig| async move {
        rig.rx.enqueue(Reply::status(429).header("Retry-After", "1"));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("RAF").await;
        let reqs = rig.rx.wait_for(2, WAIT).await;
        let gap = reqs[1].received_at - reqs[0].received_at;
        assert!(
            gap >= Duration::from_millis(950),
            "retried after {gap:?}, not after Retry-After: 1"
        );
        assert!(gap < Duration::from_secs(4), "retried after {gap:?}");
        assert_eq!(only_delivery(&rig, &hook).await["status"], "succeeded");
    }
);

rig_test!(gone_disables_the_webhook_at_once, &[], |rig: Rig| async move {
    rig.rx.reply_with(Reply::status(410));
    let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
    rig.project("GON").await;
    let d = only_delivery(&rig, &hook).await;
    assert_eq!(
        (d["status"].clone(), statuses(&d)),
        (json!("failed"), vec![json!(410)])
    );
    let w = rig.get_webhook(&hook).await;
    assert_eq!(w["enabled"], false);
    assert!(w["disabledReason"].as_str().unwrap().contains("410"), "{w}");
    // Disabled: later events create no deliveries.
    rig.project("GON2").await;
    assert_eq!(rig.deliveries(&hook).await.len(), 1);
    assert_eq!(rig.rx.requests().len(), 1);
    // Re-enabling clears the reason and resumes delivery.
    rig.rx.reply_with(Reply::ok());
    let w = rig
        .update(&format!("/Webhooks/{}", id(&hook)), json!({"enabled": true}))
        .await;
    assert_eq!(w["disabledReason"], Value::Null);
    rig.project("GON3").await;
    rig.rx.wait_for(2, WAIT).await;
});

rig_test!(
    timeouts_are_retried,
    &[("HERALD_REQUEST_TIMEOUT_SECS", "1")],
    |rig: Rig| async move {
        rig.rx.enqueue(Reply::never());
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("TMO").await;
        let d = only_delivery(&rig, &hook).await;
        assert_eq!(d["status"], "succeeded");
        assert_eq!(d["attempts"][0]["errorKind"], "timeout");
        assert_eq!(d["attempts"][0]["outcome"], "retry");
        let w = rig.get_webhook(&hook).await;
        assert_eq!(w["lastExecution"]["status"], "OK");
    }
);

rig_test!(
    refused_connections_are_retried_until_the_schedule_ends,
    &[],
    |rig: Rig| async move {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://127.0.0.1:{}/hook", closed.local_addr().unwrap().port());
        drop(closed);
        let hook = rig
            .webhook_to(&url, "standard", &["Project:Created"], json!({}))
            .await;
        rig.project("CON").await;
        let d = only_delivery(&rig, &hook).await;
        assert_eq!(d["status"], "failed");
        let kinds: Vec<Value> = d["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["errorKind"].clone())
            .collect();
        assert_eq!(kinds, vec![json!("connect"); 4], "first try plus three retries");
        assert!(
            d["lastError"]
                .as_str()
                .unwrap()
                .contains("gave up after 4 attempts"),
            "{d}"
        );
        let w = rig.get_webhook(&hook).await;
        assert_eq!(w["lastExecution"]["status"], "ERROR");
        assert!(
            w["lastExecution"]["error"]
                .as_str()
                .unwrap()
                .contains("could not connect"),
            "{w}"
        );
    }
);

rig_test!(
    redirects_are_not_followed,
    &[("HERALD_RETRY_SCHEDULE", "50ms")],
    |rig: Rig| async move {
        let elsewhere = format!("https://127.0.0.1:{}/elsewhere", rig.rx.addr().port());
        rig.rx
            .reply_with(Reply::status(302).header("Location", &elsewhere));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("RDR").await;
        let d = only_delivery(&rig, &hook).await;
        assert_eq!(d["status"], "failed");
        assert_eq!(statuses(&d), [json!(302), json!(302)]);
        let error = d["attempts"][0]["error"].as_str().unwrap();
        assert!(
            error.contains("not followed") && error.contains("/elsewhere"),
            "{error}"
        );
        assert!(
            rig.rx.requests().iter().all(|r| r.path == "/hook"),
            "the redirect target was never called"
        );
    }
);

rig_test!(
    auto_disable_after_a_failure_streak,
    &[
        ("HERALD_RETRY_SCHEDULE", "50ms"),
        ("HERALD_AUTO_DISABLE_FAILURES", "4"),
        ("HERALD_AUTO_DISABLE_AFTER_SECS", "0")
    ],
    |rig: Rig| async move {
        rig.rx.reply_with(Reply::status(503));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        for k in ["AD1", "AD2", "AD3", "AD4"] {
            rig.project(k).await;
        }
        let w = eventually("the webhook to be disabled", WAIT, || async {
            let w = rig.get_webhook(&hook).await;
            (w["enabled"] == false).then_some(w)
        })
        .await;
        assert!(
            w["disabledReason"]
                .as_str()
                .unwrap()
                .contains("disabled automatically"),
            "{w}"
        );
        rig.rx.reply_with(Reply::ok());
        rig.update(&format!("/Webhooks/{}", id(&hook)), json!({"enabled": true}))
            .await;
        let before = rig.rx.requests().len();
        rig.project("AD5").await;
        rig.rx.wait_for(before + 1, WAIT).await;
        eventually("lastExecution OK", WAIT, || async {
            (rig.get_webhook(&hook).await["lastExecution"]["status"] == "OK").then_some(())
        })
        .await;
    }
);

// Every refused category: an address written in the URL is refused when the webhook is
// created or changed (its every attempt would be); a host name resolving to one is
// refused at connect time, end to end: the attempt is recorded with the reason and never
// retried, and nothing is connected to.
rig_test!(
    the_ssrf_guard_refuses_private_targets,
    &[("HERALD_ALLOWED_TARGET_NETWORKS", "")],
    |rig: Rig| async move {
        let port = rig.rx.addr().port();
        let literals = [
            (format!("https://127.0.0.1:{port}/hook"), "loopback"),
            ("https://10.1.2.3/hook".to_owned(), "private"),
            ("https://192.168.0.10/hook".to_owned(), "private"),
            ("https://169.254.169.254/latest/meta-data/".to_owned(), "metadata"),
            ("https://169.254.1.1/hook".to_owned(), "link-local"),
            ("https://100.64.0.1/hook".to_owned(), "shared"),
            ("https://[::1]/hook".to_owned(), "loopback"),
            ("https://[::ffff:10.0.0.1]/hook".to_owned(), "IPv4-mapped"),
            ("https://0.0.0.0/hook".to_owned(), "unspecified"),
        ];
        for (url, category) in &literals {
            let body = json!({"url": url, "format": "standard", "eventTypes": ["Project:Created"]});
            let r = rig.app.call("POST", &format!("{V1}/Webhooks"), Some(body)).await;
            r.assert_problem(422, Some("url"));
            let detail = r.json["detail"].as_str().unwrap();
            assert!(
                detail.contains("refused by policy") && detail.contains(category),
                "{url}: {detail}"
            );
        }
        let url = format!("https://localhost:{port}/hook");
        let hook = rig
            .webhook_to(&url, "standard", &["Project:Created"], json!({}))
            .await;
        // Changing a webhook's URL to such an address is refused the same way.
        let r = rig
            .app
            .call(
                "PATCH",
                &format!("{V1}/Webhooks/{}", id(&hook)),
                Some(json!({"url": "https://10.0.0.1/hook"})),
            )
            .await;
        r.assert_problem(422, Some("url"));
        rig.project("SSRF").await;
        let d = only_delivery(&rig, &hook).await;
        assert_eq!(d["status"], "failed", "{url}");
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{url}: refused targets are not retried");
        assert_eq!(attempts[0]["errorKind"], "refused", "{url}");
        let error = attempts[0]["error"].as_str().unwrap();
        assert!(
            error.contains("refused by policy") && error.contains("loopback"),
            "{url}: {error}"
        );
        assert_eq!(rig.rx.connections(), 0, "nothing connected to the receiver");
        let listing = rig
            .app
            .call("GET", &format!("{V1}/Webhooks/{}", id(&hook)), None)
            .await;
        assert_eq!(listing.json["data"]["lastExecution"]["status"], "ERROR");
        // A webhook stored with such an address (before this check, or before the allowed
        // networks were narrowed) stays editable: it can be disabled, or renamed.
        let tenant = rig.app.tenant_id("default").await;
        let mut rec = rig
            .app
            .store
            .get_webhook(tenant, id(&hook).parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        rec.config.url = "https://10.0.0.1/hook".into();
        rig.app
            .store
            .update_webhook(tenant, rec.id, &rec.config, herald::timefmt::now_ms())
            .await
            .unwrap();
        let r = rig
            .app
            .call(
                "PATCH",
                &format!("{V1}/Webhooks/{}", id(&hook)),
                Some(json!({"enabled": false, "name": "old"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
);

rig_test!(
    untrusted_certificates_are_reported_and_retried,
    &[("HERALD_RETRY_SCHEDULE", "50ms")],
    |rig: Rig| async move {
        // A receiver whose CA Herald was not told to trust.
        let stranger = crate::support::TestReceiver::start().await;
        let hook = rig
            .webhook_to(&stranger.url(), "standard", &["Project:Created"], json!({}))
            .await;
        rig.project("TLS").await;
        let d = only_delivery(&rig, &hook).await;
        assert_eq!(d["status"], "failed");
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "TLS failures are retried");
        assert_eq!(attempts[0]["errorKind"], "tls");
        let error = attempts[0]["error"].as_str().unwrap();
        // Both throwaway CAs share a name, so rustls reports the chain's signature.
        assert!(
            error.starts_with("TLS failed: the receiver's certificate"),
            "{error}"
        );
        assert!(stranger.requests().is_empty());
    }
);
