//! The queue: which events become deliveries, cancellation, `run_once`, isolation of slow
//! endpoints and per-entity ordering.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::rig_test;
use crate::support::hooks::{eventually, id, rig, rig_with, Rig};
use crate::support::{Backend, Reply, WAIT};

rig_test!(
    fan_out_respects_subscriptions_filters_and_lifecycle,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let first = rig.project("EARLY").await;
        let all = rig
            .webhook("standard", &["Project:Created", "Project:Updated"], json!({}))
            .await;
        let filtered = rig
            .webhook(
                "standard",
                &["Project:Updated"],
                json!({"projectIds": [first["id"]]}),
            )
            .await;
        let disabled = rig
            .webhook("standard", &["Project:Created"], json!({"enabled": false}))
            .await;
        assert!(
            rig.deliveries(&all).await.is_empty(),
            "a webhook created after an event does not get it"
        );
        rig.project("LATE").await;
        rig.update(&format!("/projects/{}", first["id"]), json!({"name": "Renamed"}))
            .await;
        assert_eq!(rig.deliveries(&all).await.len(), 2);
        let f = rig.deliveries(&filtered).await;
        assert_eq!(f.len(), 1);
        assert_eq!(f[0]["eventType"], "Project:Updated");
        assert!(
            rig.deliveries(&disabled).await.is_empty(),
            "a disabled webhook gets no deliveries"
        );
        assert!(rig
            .deliveries(&all)
            .await
            .iter()
            .all(|d| d["status"] == "pending" && d["attempts"] == 0));

        // Workers are off: nothing was sent until the queue is drained explicitly.
        assert!(rig.rx.requests().is_empty());
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 3);
        assert_eq!(rig.rx.requests().len(), 3);
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 0, "nothing left");

        // Deleting a webhook cancels what is still pending.
        rig.project("GONE").await;
        let pending = rig.deliveries(&all).await;
        assert_eq!(pending[0]["status"], "pending");
        let r = rig
            .app
            .call("DELETE", &format!("/@default/v1/Webhooks/{}", id(&all)), None)
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(rig.delivery(&id(&pending[0])).await["status"], "cancelled");
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 0);
        assert_eq!(rig.rx.requests().len(), 3);
    }
);

// A claim takes free rows and rows whose lease expired (their node died), never a row
// another worker still holds. Free and held rows are found through separate indexes, so
// each source is checked here on its own.
rig_test!(
    claims_take_free_rows_and_expired_leases_never_live_ones,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        for key in ["CLA", "CLB", "CLC"] {
            rig.project(key).await;
        }
        let store = rig.app.store.clone();
        let t0 = herald::timefmt::now_ms();
        let claim = |token: &str, now: i64, lease_until: i64| herald::store::ClaimRequest {
            token: token.into(),
            lease_until,
            now,
            limit: 10,
            per_webhook: 10,
            exclude: Vec::new(),
            one_each: Vec::new(),
        };
        let ids = |jobs: &[herald::store::DeliveryJob]| {
            let mut ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
            ids.sort();
            ids
        };
        let one = |token: &str, lease_until: i64| herald::store::ClaimRequest {
            limit: 1,
            ..claim(token, t0, lease_until)
        };
        let live = store.claim_due(&one("live", t0 + 3_600_000)).await.unwrap();
        let dying = store.claim_due(&one("dying", t0 + 1_000)).await.unwrap();
        assert_eq!((live.len(), dying.len()), (1, 1));
        assert_ne!(live[0].id, dying[0].id, "a held row is not claimed twice");

        // Both leases live: only the one free row.
        let free = store
            .claim_due(&claim("free", t0 + 500, t0 + 1_500))
            .await
            .unwrap();
        assert_eq!(free.len(), 1, "only the free row");
        assert!(![&live[0].id, &dying[0].id].contains(&&free[0].id));

        // Later, "dying" and "free" have expired, "live" has not.
        let later = store
            .claim_due(&claim("later", t0 + 2_000, t0 + 60_000))
            .await
            .unwrap();
        assert_eq!(ids(&later), ids(&[dying[0].clone(), free[0].clone()]));
        assert!(later.iter().all(|j| j.lease.token == "later"));
        assert!(later.iter().all(|j| j.target.webhook_id.to_string() == id(&hook)));
        assert!(
            store
                .claim_due(&claim("again", t0 + 2_000, t0 + 60_000))
                .await
                .unwrap()
                .is_empty(),
            "every row is held again"
        );
        let stats = store.queue_stats(t0 + 2_000).await.unwrap();
        assert_eq!(
            (stats.pending, stats.due),
            (3, 3),
            "held rows still count as pending"
        );
    }
);

rig_test!(
    a_claim_takes_one_row_of_each_webhook_run_one_at_a_time,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let silent = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let healthy = rig.webhook("standard", &["Project:Created"], json!({})).await;
        for key in ["ONA", "ONB", "ONC"] {
            rig.project(key).await;
        }
        let silent_id: uuid::Uuid = id(&silent).parse().unwrap();
        let claim = |token: &str| herald::store::ClaimRequest {
            token: token.into(),
            lease_until: i64::MAX,
            now: herald::timefmt::now_ms(),
            limit: 100,
            per_webhook: 10,
            exclude: Vec::new(),
            one_each: vec![silent_id],
        };
        let store = rig.app.store.clone();
        let first = store.claim_due(&claim("first")).await.unwrap();
        let of = |jobs: &[herald::store::DeliveryJob], hook: &Value| {
            jobs.iter()
                .filter(|j| j.target.webhook_id.to_string() == id(hook))
                .count()
        };
        assert_eq!(
            (of(&first, &silent), of(&first, &healthy)),
            (1, 3),
            "one row of the webhook run one at a time, every row of the other"
        );
        let second = store.claim_due(&claim("second")).await.unwrap();
        assert_eq!(
            (of(&second, &silent), of(&second, &healthy)),
            (1, 0),
            "the next claim takes its next row"
        );
    }
);

rig_test!(
    a_claim_leaves_out_and_limits_more_webhooks_than_a_statement_has_parameters,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        // A node with this many saturated or silent webhooks is large, not broken: its
        // claims must still work (one parameter per id would pass SQLite's 32,766 and
        // PostgreSQL's 65,535 and fail every claim).
        let skipped = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let silent = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let healthy = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let store = rig.app.store.clone();
        let claim = |exclude: Vec<uuid::Uuid>, one_each: Vec<uuid::Uuid>| {
            let now = herald::timefmt::now_ms();
            herald::store::ClaimRequest {
                token: format!("many-{}-{}", exclude.len(), one_each.len()),
                // Expired at once: the next claim can take the same rows again, from the
                // expired-lease side of the claim.
                lease_until: now - 1,
                now,
                limit: 100,
                per_webhook: 10,
                exclude,
                one_each,
            }
        };
        // Two rows per webhook held by a lease that expired, then two free ones: each
        // claim below reads both sides (the free rows only in its first round).
        for key in ["MANYA", "MANYB"] {
            rig.project(key).await;
        }
        assert_eq!(store.claim_due(&claim(vec![], vec![])).await.unwrap().len(), 6);
        for key in ["MANYC", "MANYD"] {
            rig.project(key).await;
        }
        let others = |n: usize| (0..n).map(|_| uuid::Uuid::new_v4());
        let (skipped_id, silent_id) = (id(&skipped).parse().unwrap(), id(&silent).parse().unwrap());
        // Each list long (one JSON parameter) or short (one per id), and both around the
        // boundary: 256 ids one parameter each, 257 one JSON array.
        let per_id = herald::store::INLINE_IDS;
        for (n_exclude, n_one_each) in [(70_000, 10), (10, 70_000), (70_000, 70_000), (per_id - 1, per_id)] {
            let mut exclude: Vec<uuid::Uuid> = others(n_exclude).collect();
            exclude.push(skipped_id);
            let mut one_each: Vec<uuid::Uuid> = others(n_one_each).collect();
            one_each.insert(0, silent_id);
            let jobs = store.claim_due(&claim(exclude, one_each)).await.unwrap();
            let of = |hook: &Value| {
                jobs.iter()
                    .filter(|j| j.target.webhook_id.to_string() == id(hook))
                    .count()
            };
            assert_eq!(
                (of(&skipped), of(&silent), of(&healthy)),
                (0, 1, 4),
                "{n_exclude} + 1 excluded, {n_one_each} + 1 one each: the excluded webhook is \
                 left out, the silent one gives one row, the other all"
            );
        }
    }
);

/// A receiver that reads requests and never answers fills only its own lane: a healthy
/// webhook's deliveries go through as if it were not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_does_not_hold_up_a_healthy_one() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let env = [("HERALD_REQUEST_TIMEOUT_SECS", "30")];
        let Some(rig) = rig_with(backend, &env, 1).await else {
            continue;
        };
        let dead = &rig.others[0];
        dead.reply_with(Reply::never());
        let dead_hook = rig
            .webhook_to(&dead.url(), "standard", &["Project:Created"], json!({}))
            .await;
        let ok = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let start = Instant::now();
        for i in 0..20 {
            rig.project(&format!("ISO{i}")).await;
        }
        rig.rx.wait_for(20, WAIT).await;
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{backend:?}: healthy deliveries took {took:?}"
        );
        // The dead receiver holds exactly its lane's worth of attempts, no more.
        assert_eq!(dead.wait_for(8, WAIT).await.len(), 8);
        assert!(rig
            .deliveries(&dead_hook)
            .await
            .iter()
            .all(|d| d["status"] == "pending"));
        assert_eq!(rig.deliveries(&ok).await.len(), 20);
    }
}

/// Once a dead endpoint's lane is full, its new deliveries are written unleased instead of
/// leased, handed over and given back (a write per delivery): they are claimable the
/// moment their change is answered, by any node; this node's own claims skip them (its
/// lane is spilling) until the lane has drained to half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lane_leaves_new_work_unleased_in_the_database() {
    use futures::{stream, StreamExt};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let env = [
            ("HERALD_PER_WEBHOOK_CONCURRENCY", "1"),
            ("HERALD_REQUEST_TIMEOUT_SECS", "30"),
        ];
        let Some(rig) = rig(backend, &env).await else {
            continue;
        };
        rig.rx.reply_with(Reply::never());
        rig.webhook("standard", &["Project:Created"], json!({})).await;
        // One attempt runs (and hangs), the lane queues the next ones up to its cap. The
        // last few one at a time: on PostgreSQL a change leases its deliveries before it
        // commits and hands them over after, so concurrent changes at the brim all see
        // room, one of them is given back (released later, claimable then), and a claim
        // below could take it too.
        let fill = 1 + herald::delivery::worker::MAX_QUEUED_PER_LANE;
        let brim = fill - 32;
        stream::iter(0..brim)
            .for_each_concurrent(16, |i| {
                let rig = &rig;
                async move {
                    rig.project(&format!("FULL{i}")).await;
                }
            })
            .await;
        for i in brim..fill {
            rig.project(&format!("FULL{i}")).await;
        }
        rig.rx.wait_for(1, WAIT).await;
        let claim = |n: &str| herald::store::ClaimRequest {
            token: format!("test.{n}"),
            lease_until: i64::MAX,
            now: herald::timefmt::now_ms(),
            limit: 100,
            per_webhook: 100,
            exclude: Vec::new(),
            one_each: Vec::new(),
        };
        let store = rig.app.store.clone();
        assert!(
            store.claim_due(&claim("before")).await.unwrap().is_empty(),
            "{backend:?}: everything so far is leased to the lane"
        );
        for i in 0..3 {
            let p = rig.project(&format!("OVER{i}")).await;
            let claimed = store.claim_due(&claim(&i.to_string())).await.unwrap();
            assert_eq!(
                claimed.len(),
                1,
                "{backend:?}: the delivery of {} was claimable as soon as it was answered",
                p["key"]
            );
        }
        assert_eq!(
            rig.rx.requests().len(),
            1,
            "{backend:?}: still the one hung attempt"
        );
    }
}

rig_test!(
    per_entity_ordering_holds_under_retries,
    &[("HERALD_RETRY_SCHEDULE", "100ms,100ms,100ms")],
    |rig: Rig| async move {
        rig.rx.enqueue(Reply::status(500));
        rig.rx.enqueue(Reply::status(503));
        let hook = rig
            .webhook(
                "standard",
                &["Project:Created", "Project:Updated"],
                json!({"ordering": "per-entity"}),
            )
            .await;
        let p = rig.project("ORD").await;
        let mut expected = vec![json!("Project:Created")];
        for i in 0..4 {
            rig.update(
                &format!("/projects/{}", p["id"]),
                json!({"name": format!("Name {i}")}),
            )
            .await;
            expected.push(json!("Project:Updated"));
        }
        let reqs = rig.rx.wait_for(7, WAIT).await;
        // The first delivery is tried three times before anything else is sent.
        let ids: Vec<&str> = reqs.iter().map(|r| r.header("webhook-id").unwrap()).collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[1], ids[2]);
        let mut seen: Vec<Value> = Vec::new();
        let mut last_id = "";
        for (r, id) in reqs.iter().zip(&ids) {
            if *id != last_id {
                seen.push(r.json()["id"].clone());
                last_id = id;
            }
        }
        // Events arrive in the order they happened, each once after its retries.
        let events = rig.app.call("GET", "/@default/v1/events?limit=100", None).await;
        let order: Vec<Value> = events.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(seen, order);
        let kinds: Vec<Value> = reqs.iter().skip(2).map(|r| r.json()["type"].clone()).collect();
        assert_eq!(kinds, expected);
        eventually("all delivered", WAIT, || async {
            rig.deliveries(&hook)
                .await
                .iter()
                .all(|d| d["status"] == "succeeded")
                .then_some(())
        })
        .await;
    }
);

/// Graceful shutdown waits for running attempts and gives the leases of queued work back at
/// once, so another node (or a restart) resumes without waiting for them to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_leases_of_queued_work() {
    let env = [
        ("HERALD_PER_WEBHOOK_CONCURRENCY", "1"),
        ("HERALD_REQUEST_TIMEOUT_SECS", "5"),
    ];
    let Some(mut rig) = rig(Backend::Sqlite, &env).await else {
        return;
    };
    rig.rx
        .reply_with(Reply::status(200).delay(Duration::from_millis(300)));
    let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
    for i in 0..5 {
        rig.project(&format!("SD{i}")).await;
    }
    rig.rx.wait_for(1, WAIT).await;
    rig.app.stop().await;
    let store = rig.app.store.clone();
    let tenant = rig.app.tenant_id("default").await;
    let all = herald::store::DeliveryFilter {
        limit: 100,
        ..Default::default()
    };
    let rows = store.list_deliveries(tenant, None, &all).await.unwrap();
    let done = rows
        .iter()
        .filter(|d| d.status == herald::store::DeliveryStatus::Succeeded)
        .count();
    assert!(
        (1..5).contains(&done),
        "the running attempt finished, the queue did not: {done}"
    );
    assert_eq!(
        done,
        rig.rx.requests().len(),
        "every finished attempt was recorded"
    );
    let claim = herald::store::ClaimRequest {
        token: "test.1".into(),
        lease_until: i64::MAX,
        now: herald::timefmt::now_ms(),
        limit: 100,
        per_webhook: 100,
        exclude: Vec::new(),
        one_each: Vec::new(),
    };
    let claimable = store.claim_due(&claim).await.unwrap();
    assert_eq!(claimable.len() + done, 5, "unfinished work is claimable at once");
    assert!(claimable
        .iter()
        .all(|j| j.target.webhook_id.to_string() == id(&hook)));
}

rig_test!(
    retention_purges_old_bodies,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        rig.rx.reply_with(Reply::ok().body("thanks"));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("RET").await;
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 1);
        let d = rig.deliveries(&hook).await.remove(0);
        let before = rig.delivery(&id(&d)).await;
        assert!(before["body"].is_string());
        assert_eq!(before["attempts"][0]["responseBody"], "thanks");
        let future = herald::timefmt::now_ms() + 1000;
        assert_eq!(rig.app.store.purge_bodies(future).await.unwrap(), 2);
        let after = rig.delivery(&id(&d)).await;
        assert_eq!(after["body"], Value::Null);
        assert_eq!(after["attempts"][0]["responseBody"], Value::Null);
        assert_eq!(after["attempts"][0]["statusCode"], 200, "metadata is kept");
        let r = rig
            .app
            .call(
                "POST",
                &format!("/@default/v1/deliveries/{}/redeliver", id(&d)),
                None,
            )
            .await;
        r.assert_problem(409, None);
        assert!(r.text.contains("purged"), "{}", r.text);
    }
);

rig_test!(
    an_event_keeps_one_body_per_format_and_each_delivery_gets_its_own_ids,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let ppm_a = rig.webhook("ppm", &["Project:Created"], json!({})).await;
        let ppm_b = rig.webhook("ppm", &["Project:Created"], json!({})).await;
        let standard = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("SHR1").await;
        // Stored: no delivery keeps a copy; one shared body per format.
        let copies = "SELECT COUNT(*) FROM deliveries WHERE body IS NOT NULL";
        let shared = "SELECT COUNT(*) FROM delivery_bodies";
        assert_eq!(rig.app.db_count(copies).await, 0);
        assert_eq!(rig.app.db_count(shared).await, 2);
        // The log shows each delivery's own body; PPM's names its webhook and itself.
        let mut shown = std::collections::HashMap::new();
        for hook in [&ppm_a, &ppm_b, &standard] {
            let d = rig.deliveries(hook).await.remove(0);
            let body = rig.delivery(&id(&d)).await["body"].as_str().unwrap().to_owned();
            shown.insert(id(&d), body);
        }
        for hook in [&ppm_a, &ppm_b] {
            let d = rig.deliveries(hook).await.remove(0);
            let body: Value = serde_json::from_str(&shown[&id(&d)]).unwrap();
            assert_eq!(body["WebhookId"], id(hook));
            assert_eq!(body["MessageId"], id(&d));
        }
        // Claimed from the database (workers off: no hand-over), each is sent exactly as
        // shown.
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 3);
        let sent = rig.rx.requests();
        assert_eq!(sent.len(), 3);
        for r in &sent {
            let delivery = r.header("webhook-id").unwrap();
            assert_eq!(std::str::from_utf8(&r.body).unwrap(), shown[delivery]);
        }

        // Retention: a shared body goes once no delivery names it, not before.
        rig.project("SHR2").await;
        let future = herald::timefmt::now_ms() + 1000;
        rig.app.store.purge_bodies(future).await.unwrap();
        assert_eq!(
            rig.app.db_count(shared).await,
            2,
            "the first event's bodies went; the pending second's stayed"
        );
        let done = rig.deliveries(&ppm_a).await;
        assert_eq!(rig.delivery(&id(&done[1])).await["body"], Value::Null);
        let pending = rig.delivery(&id(&done[0])).await;
        assert!(pending["body"].as_str().unwrap().contains(&id(&ppm_a)));
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 3);
        assert_eq!(rig.rx.requests().len(), 6);
        rig.app
            .store
            .purge_bodies(herald::timefmt::now_ms() + 1000)
            .await
            .unwrap();
        assert_eq!(rig.app.db_count(shared).await, 0);
    }
);

rig_test!(
    the_delivery_log_pages_and_filters,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let hook = rig
            .webhook("standard", &["Project:Created", "Project:Updated"], json!({}))
            .await;
        let p = rig.project("PG1").await;
        rig.project("PG2").await;
        rig.project("PG3").await;
        rig.update(&format!("/projects/{}", p["id"]), json!({"name": "Renamed"}))
            .await;
        let base = format!("/@default/v1/Webhooks/{}/deliveries", id(&hook));
        let page = |q: String| {
            let url = format!("{base}?{q}");
            let app = &rig.app;
            async move {
                let r = app.call("GET", &url, None).await;
                assert_eq!(r.status, 200, "{}", r.text);
                r.json
            }
        };
        let first = page("limit=3".into()).await;
        assert_eq!(first["data"].as_array().unwrap().len(), 3);
        assert_eq!(first["data"][0]["eventType"], "Project:Updated", "newest first");
        let cursor = first["nextCursor"].as_str().unwrap().to_owned();
        let second = page(format!("limit=3&cursor={cursor}")).await;
        assert_eq!(second["data"].as_array().unwrap().len(), 1);
        assert!(second.get("nextCursor").is_none(), "last page");
        let updated = page("eventType=Project:Updated".into()).await;
        assert_eq!(updated["data"].as_array().unwrap().len(), 1);
        let pending = page("status=pending".into()).await;
        assert_eq!(pending["data"].as_array().unwrap().len(), 4);
        let future = page("since=2999-01-01T00:00:00Z".into()).await;
        assert_eq!(future["data"], json!([]));
        let past = page("until=2000-01-01T00:00:00Z".into()).await;
        assert_eq!(past["data"], json!([]));
        let bad = rig.app.call("GET", &format!("{base}?limit=0"), None).await;
        bad.assert_problem(400, Some("limit"));
        let bad = rig.app.call("GET", &format!("{base}?cursor=abc"), None).await;
        bad.assert_problem(400, Some("cursor"));
    }
);

// A backlog behind a per-webhook cap drains as lanes free up, not one batch per poll:
// with one slot per webhook and a 3 s poll, ten retries one-per-poll would take ~27 s;
// they must finish well inside the 10 s wait (a rare missed wake costs one poll).
rig_test!(
    a_capped_backlog_drains_without_waiting_for_the_poll,
    &[
        ("HERALD_PER_WEBHOOK_CONCURRENCY", "1"),
        ("HERALD_POLL_INTERVAL_MS", "3000"),
        // Enough retries that the ten refusals below cannot use up one delivery's.
        (
            "HERALD_RETRY_SCHEDULE",
            "50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms"
        )
    ],
    |rig: Rig| async move {
        // Exactly the first ten attempts are refused, whatever the machine's speed (the
        // test switching replies after it saw ten requests let a loaded machine's retries
        // use up a delivery's schedule first, and it failed for good).
        for _ in 0..10 {
            rig.rx.enqueue(Reply::status(503));
        }
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let started = Instant::now();
        for i in 0..10 {
            rig.project(&format!("B{i}")).await;
        }
        eventually("every delivery succeeds", WAIT, || async {
            let d = rig.deliveries(&hook).await;
            (d.len() == 10 && d.iter().all(|d| d["status"] == "succeeded")).then_some(())
        })
        .await;
        assert!(started.elapsed() < WAIT, "drained in {:?}", started.elapsed());
        assert_eq!(
            rig.rx.requests().len(),
            20,
            "ten refused attempts and ten accepted"
        );
    }
);

rig_test!(
    bursts_to_one_receiver_reuse_their_connections,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        // 20 webhooks × 8 lanes: 160 attempts at once to one receiver, more than the 128
        // idle connections the client used to keep per host — so every burst closed 32
        // connections and the next one paid a TLS handshake for each again.
        const HOOKS: usize = 20;
        const PER_BURST: usize = HOOKS * 8;
        rig.rx.reply_with(Reply::ok().delay(Duration::from_millis(200)));
        for _ in 0..HOOKS {
            rig.webhook("standard", &["Project:Created"], json!({})).await;
        }
        for i in 0..3 * 8 {
            rig.project(&format!("B{i}")).await;
        }
        for burst in 1..=3 {
            let n = rig.app.delivery.run_once().await.unwrap();
            assert_eq!(n, PER_BURST, "burst {burst}");
        }
        rig.rx.wait_for(3 * PER_BURST, WAIT).await;
        // The old pool closed what it could not keep (32 per burst) and the next burst
        // opened them again: 193–224 connections. Counting openings alone is racy — a
        // connection whose response was read is back in the pool only once its connection
        // task has run, and under the full suite's load a few are not yet when the next
        // burst starts (191 seen once) — so the test also checks, exactly, that none
        // was closed, and bounds the openings loosely.
        let (connections, closed) = (rig.rx.connections(), rig.rx.closed_connections());
        assert_eq!(
            closed, 0,
            "the client closed {closed} of {connections} connections between bursts"
        );
        assert!(
            connections <= PER_BURST + PER_BURST / 4,
            "{connections} connections for three bursts of {PER_BURST} attempts"
        );
    }
);

/// A dead endpoint's queue does not stop the claims that start everything fan-out does
/// not hand over (a retry, here): its queued jobs take none of the room a claim has. They
/// used to count, and with more than twice the global cap queued behind the hung attempt
/// the node claimed nothing until that lane drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoints_queue_does_not_hold_up_another_webhooks_retry() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let env = [
            ("HERALD_PER_WEBHOOK_CONCURRENCY", "1"),
            ("HERALD_GLOBAL_CONCURRENCY", "2"),
            ("HERALD_REQUEST_TIMEOUT_SECS", "60"),
            ("HERALD_RETRY_SCHEDULE", "50ms"),
        ];
        let Some(rig) = rig_with(backend, &env, 1).await else {
            continue;
        };
        let dead = &rig.others[0];
        dead.reply_with(Reply::never());
        rig.webhook_to(&dead.url(), "standard", &["Project:Created"], json!({}))
            .await;
        let first = rig.project("DEAD0").await;
        for i in 1..6 {
            rig.project(&format!("DEAD{i}")).await;
        }
        // One attempt hangs; five jobs queue behind it, more than twice the global cap.
        assert_eq!(dead.wait_for(1, WAIT).await.len(), 1);
        let healthy = rig.webhook("standard", &["Project:Updated"], json!({})).await;
        rig.rx.enqueue(Reply::status(500));
        rig.update(&format!("/projects/{}", first["id"]), json!({"name": "Renamed"}))
            .await;
        let got = rig.rx.wait_for(2, WAIT).await;
        assert_eq!(
            got.len(),
            2,
            "{backend:?}: the retry after the 500 was claimed while the dead lane was full"
        );
        eventually("the retried delivery recorded as succeeded", WAIT, || async {
            let ds = rig.deliveries(&healthy).await;
            (ds.len() == 1 && ds[0]["status"] == "succeeded").then_some(())
        })
        .await;
        assert_eq!(
            dead.requests().len(),
            1,
            "{backend:?}: still the one hung attempt"
        );
    }
}

/// An endpoint that stops answering gets one attempt at a time: each hung attempt holds a
/// slot for the whole request timeout, and at full concurrency a few dead endpoints held
/// every slot of the node. The first answer (any status) restores full concurrency.
/// Lanes live in the engine, not the store, so SQLite covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_stops_answering_gets_one_attempt_at_a_time_until_it_answers() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let env = [
        ("HERALD_PER_WEBHOOK_CONCURRENCY", "4"),
        ("HERALD_REQUEST_TIMEOUT_SECS", "1"),
        // Enough attempts that none gives up before the endpoint answers again, however
        // the first attempts and the retries interleave in the lane.
        ("HERALD_RETRY_SCHEDULE", "50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms"),
    ];
    let Some((rig, hook)) = silent_endpoint_rig(&env).await else {
        return;
    };
    let dead = &rig.others[0];
    for i in 0..8 {
        rig.project(&format!("SILENT{i}")).await;
    }
    // Nothing known yet: four attempts at once, all of which hang.
    let first = dead.wait_for(4, WAIT).await;
    assert!(
        first[3].received_at - first[0].received_at < TIMEOUT / 2,
        "the first four started together"
    );
    // From the first timeouts on, the next attempt starts only when the one before gave
    // up: a request timeout apart, never several at once (they all queued at the start).
    let probes = dead.wait_for(7, WAIT).await;
    for pair in probes[4..7].windows(2) {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(
            gap >= TIMEOUT / 2,
            "two attempts to the silent endpoint {gap:?} apart: {:?}",
            probes
                .iter()
                .map(|r| r.received_at - probes[0].received_at)
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(not_answering(&rig).await.as_deref(), Some("1"));
    // It answers again: everything pending goes through, and the gauge clears.
    dead.reply_with(Reply::ok());
    eventually(
        "every delivery to the recovered endpoint succeeded",
        WAIT,
        || async {
            let ds = rig.deliveries(&hook).await;
            (ds.len() == 8 && ds.iter().all(|d| d["status"] == "succeeded")).then_some(())
        },
    )
    .await;
    assert_eq!(not_answering(&rig).await.as_deref(), Some("0"));
}

/// A SQLite rig with `env` whose second receiver never answers, and a webhook for
/// `Project:Created` pointing at it.
async fn silent_endpoint_rig(env: &[(&str, &str)]) -> Option<(Rig, Value)> {
    let rig = rig_with(Backend::Sqlite, env, 1).await?;
    let dead = &rig.others[0];
    dead.reply_with(Reply::never());
    let hook = rig
        .webhook_to(&dead.url(), "standard", &["Project:Created"], json!({}))
        .await;
    Some((rig, hook))
}

/// `herald_delivery_webhooks_not_answering` as `/metrics` shows it now.
async fn not_answering(rig: &Rig) -> Option<String> {
    let r = rig.app.client.get(rig.app.url("/metrics")).send().await.unwrap();
    r.text()
        .await
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("herald_delivery_webhooks_not_answering "))
        .map(str::to_owned)
}

/// A test ping to a webhook whose endpoint went silent is attempted at once and answered
/// with its outcome, like any ping: it is what an admin sends right after fixing the
/// endpoint. (Fan-out leaves a silent endpoint's new deliveries to claims; a ping must
/// not wait for one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_ping_to_a_silent_endpoint_is_sent_at_once() {
    let env = [
        ("HERALD_REQUEST_TIMEOUT_SECS", "1"),
        ("HERALD_RETRY_SCHEDULE", "1h"),
    ];
    let Some((rig, hook)) = silent_endpoint_rig(&env).await else {
        return;
    };
    let dead = &rig.others[0];
    rig.project("PINGED").await;
    eventually(
        "the first attempt timed out and the endpoint counts as silent",
        WAIT,
        || async { (not_answering(&rig).await.as_deref() == Some("1")).then_some(()) },
    )
    .await;
    dead.reply_with(Reply::ok());
    let r = rig
        .app
        .call(
            "POST",
            &format!("{}/Webhooks/{}/test", crate::support::hooks::V1, id(&hook)),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["data"]["attempts"][0]["statusCode"], 200,
        "the ping was attempted while the request waited: {}",
        r.text
    );
}

// A retry goes ahead of the fresh deliveries that fan-out keeps handing to its lane.
// Claims used to skip a lane holding as many jobs as it may run at once, so while changes
// kept that lane full, its retries (and redeliveries, and what fan-out left in the
// database) waited until the changes stopped. Here the lane runs one attempt at a time,
// each held 300 ms by the receiver, and six fresh deliveries queue behind the first
// delivery's refused attempt; its retry, due after 500 ms, must arrive before the last
// of them (it came last of all before claims brought due rows ahead of fresh ones).
rig_test!(
    a_retry_goes_ahead_of_fresh_deliveries_in_its_full_lane,
    &[
        ("HERALD_PER_WEBHOOK_CONCURRENCY", "1"),
        ("HERALD_RETRY_SCHEDULE", "500ms")
    ],
    |rig: Rig| async move {
        rig.rx.enqueue(Reply::status(500));
        rig.rx.reply_with(Reply::ok().delay(Duration::from_millis(300)));
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("RETRIED").await;
        let refused = rig.rx.wait_for(1, WAIT).await[0]
            .header("webhook-id")
            .unwrap()
            .to_owned();
        for i in 0..6 {
            rig.project(&format!("FRESH{i}")).await;
        }
        let reqs = rig.rx.wait_for(8, WAIT).await;
        let ids: Vec<&str> = reqs.iter().map(|r| r.header("webhook-id").unwrap()).collect();
        let retry = ids
            .iter()
            .skip(1)
            .position(|id| *id == refused)
            .expect("the refused delivery was retried")
            + 1;
        assert!(
            retry < 7,
            "the retry was sent after every fresh delivery (request {} of 8): {ids:?}",
            retry + 1
        );
        eventually("every delivery succeeds", WAIT, || async {
            let d = rig.deliveries(&hook).await;
            (d.len() == 7 && d.iter().all(|d| d["status"] == "succeeded")).then_some(())
        })
        .await;
    }
);

rig_test!(
    retention_cancels_pending_deliveries_of_a_webhook_that_is_gone,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("GONE").await;
        let pending = "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'";
        assert_eq!(rig.app.db_count(pending).await, 1);
        // A webhook that exists keeps its pending delivery through retention.
        rig.app.store.purge_bodies(0).await.unwrap();
        assert_eq!(rig.app.db_count(pending).await, 1);
        // Deleted past Herald (as by hand, or by a delete that a change's fan-out raced
        // on PostgreSQL): its delivery would be pending for ever, never claimed.
        let gone = format!(
            "DELETE FROM webhooks WHERE id = '{}' RETURNING CAST(1 AS BIGINT)",
            id(&hook)
        );
        assert_eq!(rig.app.db_count(&gone).await, 1);
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 0);
        rig.app.store.purge_bodies(0).await.unwrap();
        assert_eq!(rig.app.db_count(pending).await, 0);
        let cancelled = "SELECT COUNT(*) FROM deliveries WHERE status = 'cancelled'";
        assert_eq!(rig.app.db_count(cancelled).await, 1);
    }
);

rig_test!(
    a_disabled_webhooks_pending_deliveries_keep_only_their_own_bodies,
    &[("HERALD_WORKERS", "false")],
    |rig: Rig| async move {
        let paused = rig.webhook("standard", &["Project:Created"], json!({})).await;
        let _live = rig.webhook("standard", &["Project:Created"], json!({})).await;
        rig.project("KEEP1").await;
        let r = rig
            .app
            .call(
                "PATCH",
                &format!("/@default/v1/Webhooks/{}", id(&paused)),
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            rig.app.delivery.run_once().await.unwrap(),
            1,
            "the live webhook's"
        );
        rig.project("KEEP2").await;
        rig.project("KEEP3").await;
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 2);
        let shared = "SELECT COUNT(*) FROM delivery_bodies";
        assert_eq!(rig.app.db_count(shared).await, 3);
        // Past retention: the paused webhook's pending delivery keeps the first event's
        // body, and only that one (its oldest pending delivery held back every later body).
        rig.app
            .store
            .purge_bodies(herald::timefmt::now_ms() + 1000)
            .await
            .unwrap();
        assert_eq!(rig.app.db_count(shared).await, 1);
        let pending = rig.deliveries(&paused).await.remove(0);
        let body = rig.delivery(&id(&pending)).await["body"].clone();
        assert!(body.as_str().is_some_and(|b| b.contains("KEEP1")), "{body}");
        // Enabled again, it is delivered as it was.
        let r = rig
            .app
            .call(
                "PATCH",
                &format!("/@default/v1/Webhooks/{}", id(&paused)),
                Some(json!({"enabled": true})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(rig.app.delivery.run_once().await.unwrap(), 1);
        let sent = rig.rx.requests();
        assert!(std::str::from_utf8(&sent.last().unwrap().body)
            .unwrap()
            .contains("KEEP1"));
    }
);

/// On PostgreSQL, deleting a webhook on one node drops the jobs another node has queued
/// for it (a `NOTIFY`), instead of that node sending them for up to a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_deleted_on_one_node_is_not_sent_by_another() {
    let env = [("HERALD_PER_WEBHOOK_CONCURRENCY", "1")];
    let Some(rig) = rig(Backend::Postgres, &env).await else {
        return;
    };
    // Node B's first attempt is held long enough for the rest of the test's steps up to
    // the delete (a few requests), however busy the machine.
    rig.rx
        .reply_with(Reply::status(200).delay(Duration::from_secs(3)));
    let hook = rig.webhook("standard", &["Project:Created"], json!({})).await;
    let b = rig.app.join().await;
    // Changes through node B: its engine gets the deliveries, one running, four queued.
    for i in 0..5 {
        let body = json!({"key": format!("NB{i}"), "name": "n"});
        let r = b.call("POST", "/@default/v1/projects", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    rig.rx.wait_for(1, WAIT).await;
    let r = rig
        .app
        .call("DELETE", &format!("/@default/v1/Webhooks/{}", id(&hook)), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Node B's lanes empty out once its running attempt ends; nothing queued is sent.
    eventually("node B's queue to empty", WAIT, || async {
        let m = b.delivery.render_metrics().await;
        m.lines()
            .any(|l| l == "herald_delivery_in_flight 0")
            .then_some(())
    })
    .await;
    assert_eq!(rig.rx.requests().len(), 1, "only the attempt already running");
}
