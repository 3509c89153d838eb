//! Deliveries end to end on a real HTTPS receiver: headers, signatures, bodies identical to
//! the delivery log, one test per format, redelivery, test pings, scopes and metrics.

use serde_json::{json, Value};

use crate::rig_test;
use crate::support::hooks::{eventually, id, Rig, V1};
use crate::support::receiver::RecordedRequest;
use crate::support::{Reply, WAIT};

/// Checks the Standard Webhooks signature with the independent `standardwebhooks` crate.
fn verify(req: &RecordedRequest, secret: &str) {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&req.body, &req.headers)
        .expect("signature verifies");
}

/// The one request the receiver got for `delivery`, and the log's view of it.
async fn delivered(rig: &Rig, hook: &Value) -> (RecordedRequest, Value) {
    let reqs = rig.rx.wait_for(1, WAIT).await;
    let list = rig.wait_deliveries(hook, 1).await;
    let d = rig.settled(&id(&list[0])).await;
    let req = reqs
        .into_iter()
        .find(|r| r.header("webhook-id") == d["id"].as_str())
        .expect("the request carries the delivery id");
    assert_eq!(
        req.body.as_ref(),
        d["body"].as_str().unwrap().as_bytes(),
        "body byte-identical to the log"
    );
    (req, d)
}

rig_test!(
    a_change_arrives_signed_with_the_logged_body,
    &[],
    |rig: Rig| async move {
        let hook = rig
            .webhook(
                "standard",
                &["Project:Created"],
                json!({"headers": [{"name": "X-Api-Key", "value": "sekr3t-value-4711", "secured": true},
                               {"name": "X-Plain", "value": "visible"}]}),
            )
            .await;
        rig.project("SIG").await;
        let (req, d) = delivered(&rig, &hook).await;
        verify(&req, hook["secret"].as_str().unwrap());
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.header("content-length"),
            Some(req.body.len().to_string().as_str())
        );
        assert!(req.header("user-agent").unwrap().starts_with("Herald/"));
        assert_eq!(req.header("herald-event-type"), Some("Project:Created"));
        assert_eq!(
            req.header("x-api-key"),
            Some("sekr3t-value-4711"),
            "secured value sent"
        );
        assert_eq!(req.header("x-plain"), Some("visible"));
        assert_eq!(req.json()["type"], "Project:Created");
        assert_eq!(d["status"], "succeeded");
        let attempt = &d["attempts"][0];
        assert_eq!(
            (attempt["statusCode"].clone(), attempt["outcome"].clone()),
            (json!(200), json!("succeeded"))
        );
        let shown = attempt["requestHeaders"].to_string();
        assert!(
            shown.contains("\"X-Api-Key\"") && shown.contains("********"),
            "{shown}"
        );
        assert!(!shown.contains("sekr3t") && !shown.contains(req.header("webhook-signature").unwrap()));
        let w = rig.get_webhook(&hook).await;
        assert_eq!(w["lastExecution"]["status"], "OK");
        assert_eq!(w["lastExecution"]["statusCode"], 200);

        // The secured value is nowhere but in the receiver's request.
        let listing = rig
            .app
            .call("GET", &format!("{V1}/Webhooks/{}/deliveries", id(&hook)), None)
            .await;
        let detail = rig
            .app
            .call("GET", &format!("{V1}/deliveries/{}", id(&d)), None)
            .await;
        for (what, text) in [
            ("list", listing.text),
            ("detail", detail.text),
            ("logs", crate::support::logs::captured()),
        ] {
            assert!(
                !text.contains("sekr3t-value-4711"),
                "secured value leaked into {what}"
            );
        }
        if let herald::config::DatabaseConfig::Postgres { url, schema, .. } = &rig.app.settings.database {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let schema = schema.as_deref().unwrap();
            for (table, column) in [
                ("webhooks", "headers"),
                ("deliveries", "body"),
                ("deliveries", "headers"),
                ("delivery_attempts", "request_headers"),
            ] {
                // The pattern is bound, not inlined: statements are logged, and the log
                // capture (shared by every test in this process) must never see the value.
                let sql = format!("SELECT COUNT(*) FROM \"{schema}\".{table} WHERE {column} LIKE $1");
                let n: i64 = sqlx::query_scalar(&sql)
                    .bind(format!("%{}%", "sekr3t-value-4711"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!(n, 0, "secured value stored in plaintext in {table}.{column}");
            }
        }
        if let Some(path) = rig.app.sqlite_path() {
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    let hit = bytes.windows(17).any(|w| w == b"sekr3t-value-4711");
                    assert!(!hit, "secured value stored in plaintext in {}", file.display());
                }
            }
        }
    }
);

rig_test!(
    a_change_for_more_webhooks_than_one_insert_holds_reaches_each_once,
    &[],
    |rig: Rig| async move {
        // More webhooks than one delivery `INSERT` takes (40 rows): the change's deliveries
        // span several statements in its last batch (several `WITH` parts on PostgreSQL).
        let mut hooks = Vec::new();
        for _ in 0..45 {
            hooks.push(rig.webhook("standard", &["Project:Updated"], json!({})).await);
        }
        let p = rig.project("MANY").await;
        rig.update(&format!("/projects/{}", p["id"]), json!({"name": "Renamed"}))
            .await;
        let reqs = rig.rx.wait_for(45, WAIT).await;
        for hook in &hooks {
            let list = rig.wait_deliveries(hook, 1).await;
            assert_eq!(list.len(), 1, "one delivery per webhook");
            let d = rig.settled(&id(&list[0])).await;
            assert_eq!(d["status"], "succeeded", "{d}");
            let sent: Vec<_> = reqs
                .iter()
                .filter(|r| r.header("webhook-id") == d["id"].as_str())
                .collect();
            assert_eq!(sent.len(), 1, "sent once");
            assert_eq!(
                sent[0].body.as_ref(),
                d["body"].as_str().unwrap().as_bytes(),
                "body byte-identical to the log"
            );
            verify(sent[0], hook["secret"].as_str().unwrap());
        }
        assert_eq!(rig.rx.requests().len(), 45, "nothing sent twice");
    }
);

rig_test!(
    projectrak_gets_project_field_changes,
    &[],
    |rig: Rig| async move {
        rig.create("/fields", json!({"name": "Budget", "type": "number"}))
            .await;
        let p = rig
            .create(
                "/projects",
                json!({"key": "PRK", "name": "Fields", "fields": {"Budget": 1}}),
            )
            .await;
        let hook = rig
            .webhook("projectrak", &["Project:Updated"], json!({"httpVerb": "PUT"}))
            .await;
        rig.update(
            &format!("/projects/{}", p["id"]),
            json!({"fields": {"Budget": 2}}),
        )
        .await;
        let (req, _) = delivered(&rig, &hook).await;
        verify(&req, hook["secret"].as_str().unwrap());
        let body = req.json();
        assert_eq!(body["data"]["event"], "updated", "{body}");
        assert_eq!(req.header("herald-format"), Some("projectrak"));
        assert_eq!(req.method, "PUT", "the webhook's httpVerb is used");
    }
);

rig_test!(tracker_gets_story_changes, &[], |rig: Rig| async move {
    let p = rig.project("TRK").await;
    let hook = rig
        .webhook("tracker-v5", &["Story:Created", "Story:Updated"], json!({}))
        .await;
    let s = rig
        .create(
            "/stories",
            json!({"project_id": p["id"], "name": "A story", "story_type": "feature"}),
        )
        .await;
    rig.rx.wait_for(1, WAIT).await;
    rig.update(
        &format!("/stories/{}", s["id"]),
        json!({"current_state": "started"}),
    )
    .await;
    let reqs = rig.rx.wait_for(2, WAIT).await;
    let kinds: Vec<Value> = reqs.iter().map(|r| r.json()["kind"].clone()).collect();
    assert_eq!(
        kinds,
        [json!("story_create_activity"), json!("story_update_activity")]
    );
    for r in &reqs {
        verify(r, hook["secret"].as_str().unwrap());
    }
});

rig_test!(
    ppm_gets_key_date_changes_with_the_delivery_id_as_message_id,
    &[],
    |rig: Rig| async move {
        let p = rig.project("PPM").await;
        let kd = rig
            .create(
                "/key-dates",
                json!({"project_id": p["id"], "name": "Go live", "type": 0, "date": "2030-01-01"}),
            )
            .await;
        let hook = rig.webhook("ppm", &["KeyDate:Updated"], json!({})).await;
        rig.update(&format!("/key-dates/{}", kd["id"]), json!({"is_complete": true}))
            .await;
        let (req, d) = delivered(&rig, &hook).await;
        verify(&req, hook["secret"].as_str().unwrap());
        let body = req.json();
        assert_eq!(body["MessageId"], d["id"], "{body}");
        assert_eq!(body["WebhookId"], hook["id"]);
    }
);

rig_test!(
    redelivery_resends_the_same_id_and_body,
    &[],
    |rig: Rig| async move {
        let hook = rig.webhook("ppm", &["Project:Created"], json!({})).await;
        rig.project("RED").await;
        let (first, d) = delivered(&rig, &hook).await;
        let r = rig
            .app
            .call("POST", &format!("{V1}/deliveries/{}/redeliver", id(&d)), None)
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let reqs = rig.rx.wait_for(2, WAIT).await;
        assert_eq!(reqs[1].header("webhook-id"), first.header("webhook-id"));
        assert_eq!(reqs[1].body, first.body);
        verify(&reqs[1], hook["secret"].as_str().unwrap());
        let d = eventually("a second attempt", WAIT, || async {
            let d = rig.delivery(&id(&d)).await;
            (d["attempts"].as_array().map_or(0, Vec::len) == 2 && d["status"] == "succeeded").then_some(d)
        })
        .await;
        assert_eq!(d["attempts"][1]["number"], 2);
        let missing = rig
            .app
            .call(
                "POST",
                &format!("{V1}/deliveries/{}/redeliver", uuid::Uuid::new_v4()),
                None,
            )
            .await;
        missing.assert_problem(404, None);
    }
);

rig_test!(
    bulk_replay_requeues_failed_deliveries,
    &[("HERALD_RETRY_SCHEDULE", "50ms")],
    |rig: Rig| async move {
        rig.rx.reply_with(Reply::status(500));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        for k in ["BA", "BB", "BC"] {
            rig.project(k).await;
        }
        eventually("three failed deliveries", WAIT, || async {
            let d = rig.deliveries(&hook).await;
            (d.len() == 3 && d.iter().all(|d| d["status"] == "failed")).then_some(())
        })
        .await;
        rig.rx.reply_with(Reply::ok());
        let r = rig
            .app
            .call(
                "POST",
                &format!("{V1}/Webhooks/{}/redeliver?status=failed", id(&hook)),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.json["data"]["queued"].clone()),
            (202, json!(3)),
            "{}",
            r.text
        );
        eventually("three succeeded deliveries", WAIT, || async {
            let d = rig.deliveries(&hook).await;
            d.iter().all(|d| d["status"] == "succeeded").then_some(())
        })
        .await;
        let bad = rig
            .app
            .call(
                "POST",
                &format!("{V1}/Webhooks/{}/redeliver?since=yesterday", id(&hook)),
                None,
            )
            .await;
        bad.assert_problem(400, Some("since"));
    }
);

rig_test!(test_ping_reports_the_first_attempt, &[], |rig: Rig| async move {
    let hook = rig.webhook("tracker-v5", &["Story:Created"], json!({})).await;
    let r = rig
        .app
        .call("POST", &format!("{V1}/Webhooks/{}/test", id(&hook)), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"]["eventType"], "Webhook:Ping");
    assert_eq!(r.json["data"]["attempts"][0]["statusCode"], 200);
    let req = &rig.rx.wait_for(1, WAIT).await[0];
    assert_eq!(req.header("herald-event-type"), Some("Webhook:Ping"));
    verify(req, hook["secret"].as_str().unwrap());
});

rig_test!(
    delivery_routes_check_scopes_and_tenants,
    &[],
    |rig: Rig| async move {
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("SCP").await;
        let (_, d) = delivered(&rig, &hook).await;
        let reader = rig.app.token("default", "reader", "webhooks:read").await;
        let list = format!("{V1}/Webhooks/{}/deliveries", id(&hook));
        assert_eq!(rig.app.call_as(&reader, "GET", &list, None).await.status, 200);
        let redeliver = format!("{V1}/deliveries/{}/redeliver", id(&d));
        rig.app
            .call_as(&reader, "POST", &redeliver, None)
            .await
            .assert_problem(403, None);
        rig.app
            .call_as("", "GET", &list, None)
            .await
            .assert_problem(401, None);
        let other = rig.app.token("other", "someone", "admin").await;
        let foreign = format!("/@other/v1/deliveries/{}", id(&d));
        rig.app
            .call_as(&other, "GET", &foreign, None)
            .await
            .assert_problem(404, None);
        let bad = rig.app.call("GET", &format!("{list}?status=lost"), None).await;
        bad.assert_problem(400, Some("status"));
        let filtered = rig.app.call("GET", &format!("{list}?status=failed"), None).await;
        assert_eq!(filtered.json["data"], json!([]));
    }
);

rig_test!(
    metrics_count_attempts_and_show_the_queue,
    &[],
    |rig: Rig| async move {
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("MET").await;
        delivered(&rig, &hook).await;
        let r = rig.app.client.get(rig.app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        for needle in [
            "herald_delivery_attempts_total{result=\"succeeded\"} 1",
            "herald_deliveries_total{outcome=\"succeeded\"} 1",
            "herald_delivery_attempt_duration_seconds_bucket",
            "herald_delivery_queue_pending 0",
            "herald_delivery_oldest_due_age_seconds 0",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
    }
);

rig_test!(
    outcomes_of_many_webhooks_recorded_at_once_all_land,
    &[],
    |rig: Rig| async move {
        // A batch of outcomes updates the status of up to twenty webhooks in one statement
        // (on PostgreSQL after locking their rows in id order, so batches written at the
        // same time cannot deadlock): every webhook's status must land, every attempt be
        // logged, and no write fail.
        const HOOKS: usize = 20;
        const PROJECTS: usize = 30;
        let mut hooks = Vec::new();
        for _ in 0..HOOKS {
            hooks.push(rig.webhook("standard", &["Project:Created"], json!({})).await);
        }
        let rig = &rig;
        futures::future::join_all(
            (0..PROJECTS).map(|i| async move { rig.project(&format!("MANY{i}")).await }),
        )
        .await;
        let total = (HOOKS * PROJECTS) as i64;
        eventually("every outcome recorded", WAIT, || async {
            let n = rig
                .app
                .db_count("SELECT COUNT(*) FROM deliveries WHERE status = 'succeeded'")
                .await;
            (n == total).then_some(())
        })
        .await;
        assert_eq!(
            rig.app.db_count("SELECT COUNT(*) FROM delivery_attempts").await,
            total
        );
        for hook in &hooks {
            let w = rig.get_webhook(hook).await;
            assert_eq!(w["lastExecution"]["status"], "OK", "{w}");
        }
        let text = rig
            .app
            .client
            .get(rig.app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for then in ["retried", "given_up"] {
            let line = format!("herald_recorder_write_failures_total{{then=\"{then}\"}} 0");
            assert!(text.contains(&line), "missing {line}:\n{text}");
        }
    }
);

rig_test!(delivery_routes_are_documented, &[], |rig: Rig| async move {
    let doc = rig.app.call_as("", "GET", "/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    for path in [
        "/@{tenant}/v1/Webhooks/{id}/deliveries",
        "/@{tenant}/v1/Webhooks/{id}/redeliver",
        "/@{tenant}/v1/Webhooks/{id}/test",
        "/@{tenant}/v1/deliveries/{id}",
        "/@{tenant}/v1/deliveries/{id}/redeliver",
        "/metrics",
    ] {
        assert!(doc.json["paths"].get(path).is_some(), "{path} documented");
    }
    let params = &doc.json["paths"]["/@{tenant}/v1/Webhooks/{id}/deliveries"]["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in ["status", "eventType", "since", "until", "cursor", "limit"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
});

rig_test!(during_a_rotation_both_secrets_sign, &[], |rig: Rig| async move {
    let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
    let old = hook["secret"].as_str().unwrap().to_owned();
    let r = rig
        .app
        .call(
            "POST",
            &format!("{V1}/Webhooks/{}/secret/rotate", id(&hook)),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.json["data"]["secret"].as_str().unwrap().to_owned();
    rig.project("ROT").await;
    let (req, _) = delivered(&rig, &hook).await;
    assert_eq!(req.header("webhook-signature").unwrap().split(' ').count(), 2);
    verify(&req, &new);
    verify(&req, &old);
});

/// PostgreSQL: a webhook disabled, enabled again or deleted through another node (here
/// another store on the same database), or disabled by an operator's own SQL, counts from
/// this node's very next change — the guard for the webhooks each node keeps in memory
/// (`src/store/subscriber_cache.rs`: the tenant's `webhooks_version`, raised by a trigger
/// and read with every token). Deleting while an attempt of the webhook is being
/// recorded once deadlocked here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_changes_made_on_another_node_count_from_the_next_change() {
    let Some(rig) = crate::support::hooks::rig(crate::support::Backend::Postgres, &[]).await else {
        return;
    };
    let w1 = rig.webhook("standard", &["Project:Updated"], json!({})).await;
    let w2 = rig.webhook("standard", &["Project:Updated"], json!({})).await;
    let p = rig.project("GEN").await;
    let path = format!("/projects/{}", p["id"]);
    let rows = |w: &Value| {
        let sql = format!("SELECT COUNT(*) FROM deliveries WHERE webhook_id = '{}'", id(w));
        let app = &rig.app;
        async move { app.db_count(&sql).await }
    };
    let mut budget = 0;
    let mut change = async || {
        budget += 1;
        rig.update(&path, json!({"fields": {"Budget": budget}})).await;
    };
    rig.create("/fields", json!({"name": "Budget", "type": "number"}))
        .await;
    change().await; // both webhooks were read (and would be cached) here
    assert_eq!((rows(&w1).await, rows(&w2).await), (1, 1));

    let other = herald::store::connect(&rig.app.settings.database).await.unwrap();
    let tenant = rig.app.tenant_id("default").await;
    let w1_id: uuid::Uuid = id(&w1).parse().unwrap();
    let mut cfg = other.get_webhook(tenant, w1_id).await.unwrap().unwrap().config;
    for (enabled, now, expected, what) in [
        (false, 1, (1, 2), "w1 disabled elsewhere"),
        (true, 2, (2, 3), "w1 enabled elsewhere"),
    ] {
        cfg.enabled = enabled;
        other
            .update_webhook(tenant, w1_id, &cfg, now)
            .await
            .unwrap()
            .unwrap();
        change().await;
        assert_eq!((rows(&w1).await, rows(&w2).await), expected, "{what}");
    }

    assert!(other
        .delete_webhook(tenant, id(&w2).parse().unwrap())
        .await
        .unwrap());
    change().await;
    assert_eq!((rows(&w1).await, rows(&w2).await), (3, 3), "w2 deleted elsewhere");

    let mut sql = rig.app.pg_conn().await;
    sqlx::query("UPDATE webhooks SET enabled = FALSE WHERE id = $1")
        .bind(id(&w1))
        .execute(&mut sql)
        .await
        .unwrap();
    change().await;
    assert_eq!((rows(&w1).await, rows(&w2).await), (3, 3), "w1 disabled by SQL");
}

/// PostgreSQL: once a node has read a tenant's webhooks, a change whose token shows the
/// same webhooks version fans out from the list it kept (`src/store/subscriber_cache.rs`)
/// without reading them again — it completes while another session holds the `webhooks`
/// table locked against every read — and its delivery is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_fans_out_from_the_webhooks_kept_in_memory() {
    let Some(rig) = crate::support::hooks::rig(crate::support::Backend::Postgres, &[]).await else {
        return;
    };
    let w = rig.webhook("standard", &["Project:Updated"], json!({})).await;
    let p = rig.project("MEM").await;
    let path = format!("/projects/{}", p["id"]);
    rig.update(&path, json!({"name": "read"})).await; // reads the webhooks and keeps them

    let mut lock = rig.app.pg_lock("webhooks", "ACCESS EXCLUSIVE").await;
    let change = tokio::time::timeout(WAIT, rig.update(&path, json!({"name": "kept"}))).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert!(change.is_ok(), "the change waited for the webhooks table");

    let sql = format!("SELECT COUNT(*) FROM deliveries WHERE webhook_id = '{}'", id(&w));
    assert_eq!(rig.app.db_count(&sql).await, 2, "both updates fanned out");
    eventually("both deliveries succeed", WAIT, || async {
        let all = rig.deliveries(&w).await;
        (all.len() == 2 && all.iter().all(|d| d["status"] == "succeeded")).then_some(())
    })
    .await;
}
