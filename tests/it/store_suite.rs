//! The store contract, run against both backends through the same trait object.

use herald::domain::event_type::EventType;
use herald::domain::webhook::{HttpVerb, Ordering};
use herald::formats::Format;
use herald::store::{NewWebhook, StoreError, StoredHeader, WebhookConfig};
use uuid::Uuid;

use crate::both;
use crate::support::TestApp;
use herald::config::DatabaseConfig;

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        name: "n".into(),
        description: String::new(),
        url: url.into(),
        http_verb: HttpVerb::Post,
        format: Format::Standard,
        event_types: vec![EventType::PROJECT_UPDATED, EventType::STORY_CREATED],
        project_ids: vec![3, 7],
        headers: vec![StoredHeader {
            name: "X-A".into(),
            secured: false,
            value: Some("1".into()),
            sealed: None,
        }],
        enabled: true,
        ordering: Ordering::PerEntity,
    }
}

both!(tenants_users_and_tokens, |app: TestApp| async move {
    let s = app.store.as_ref();
    assert_eq!(s.tenant_count().await.unwrap(), 1, "bootstrap created `default`");
    let (t, created) = s.ensure_tenant("acme", 5).await.unwrap();
    assert!(created);
    let (again, created) = s.ensure_tenant("acme", 6).await.unwrap();
    assert!(!created);
    assert_eq!(t, again);
    assert!(s.tenant_by_slug("nope").await.unwrap().is_none());

    let u1 = s.ensure_user(t.id, "DUMMY-ACCOUNT-ID-1", 7).await.unwrap();
    let u2 = s.ensure_user(t.id, "DUMMY-ACCOUNT-ID-1", 8).await.unwrap();
    assert_eq!(u1, u2, "ensure_user is idempotent");
    assert_eq!(u1.initials, "DA");

    let tokens = s.list_tokens(Some(t.id)).await.unwrap();
    assert!(tokens.is_empty());
    let all = s.list_tokens(None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].tenant_slug, "default");
    // One token read by id (SQLite's is inline, on connections of its own) is the same
    // record as the list's (sqlx's pool), column for column.
    assert_eq!(s.token_by_id(&all[0].id).await.unwrap().as_ref(), Some(&all[0]));
    assert!(s.token_by_id("no-such-token").await.unwrap().is_none());
    assert!(s.revoke_token(&all[0].id, 9).await.unwrap());
    assert!(!s.revoke_token(&all[0].id, 10).await.unwrap(), "already revoked");
    let revoked = s.token_by_id(&all[0].id).await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(9),
        "the revocation is seen by the next read"
    );
    assert_eq!(s.list_tokens(None).await.unwrap()[0], revoked);
});

// Many requests read their tokens at once. PostgreSQL reads the tokens asked for while
// one read is in flight as one statement (`store/read_batch.rs`): each request must
// still get its own token, a revoked one as revoked, and a missing one as missing.
// Polled together on one thread, every read after the first waits for it, so the
// rest go as batches.
both!(
    concurrent_token_reads_each_get_their_own_token,
    |app: TestApp| async move {
        let s = app.store.as_ref();
        let (t, _) = s.ensure_tenant("acme", 5).await.unwrap();
        for i in 0..6_i64 {
            let u = s.ensure_user(t.id, &format!("ACCOUNT-{i}"), 7).await.unwrap();
            s.insert_token(&herald::store::NewTokenRecord {
                id: format!("tok{i}"),
                tenant_id: t.id,
                user_id: u.id,
                name: format!("token {i}"),
                scopes: if i % 2 == 0 { "admin" } else { "read" }.into(),
                secret_hash: format!("{i:064x}"),
                created_at: 100 + i,
            })
            .await
            .unwrap();
        }
        assert!(s.revoke_token("tok3", 200).await.unwrap());
        let listed: std::collections::HashMap<String, herald::store::TokenRecord> = s
            .list_tokens(Some(t.id))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        assert_eq!(listed.len(), 6);
        let keys: Vec<String> = (0..70)
            .map(|n| match n % 7 {
                6 => format!("missing-{n}"),
                k => format!("tok{k}"),
            })
            .collect();
        let got = futures::future::join_all(keys.iter().map(|k| s.token_by_id(k))).await;
        for (k, g) in keys.iter().zip(got) {
            assert_eq!(g.unwrap().as_ref(), listed.get(k), "token {k}");
        }
        assert_eq!(listed["tok3"].revoked_at, Some(200));
    }
);

both!(
    webhooks_are_isolated_per_tenant_and_round_trip,
    |app: TestApp| async move {
        let s = app.store.as_ref();
        let (a, _) = s.ensure_tenant("a", 1).await.unwrap();
        let (b, _) = s.ensure_tenant("b", 1).await.unwrap();
        let id = Uuid::new_v4();
        let rec = s
            .insert_webhook(
                &NewWebhook {
                    id,
                    tenant_id: a.id,
                    config: config("https://x.test/1"),
                    secret_sealed: "v1:s".into(),
                    now: 100,
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(
            rec.config.event_types,
            vec![EventType::PROJECT_UPDATED, EventType::STORY_CREATED]
        );
        assert_eq!(rec.config.project_ids, vec![3, 7]);
        assert_eq!(rec.config.ordering, Ordering::PerEntity);
        assert_eq!(rec.created_at, 100);
        assert!(rec.last_execution.is_none());
        assert!(s.get_webhook(b.id, id).await.unwrap().is_none());
        assert!(!s.delete_webhook(b.id, id).await.unwrap());
        assert!(s
            .update_webhook(b.id, id, &config("https://evil"), 5)
            .await
            .unwrap()
            .is_none());
        assert!(s.delete_all_webhooks(b.id).await.unwrap().is_empty());

        let mut c = config("https://x.test/2");
        c.enabled = false;
        let up = s.update_webhook(a.id, id, &c, 200).await.unwrap().unwrap();
        assert_eq!(up.config.url, "https://x.test/2");
        assert!(!up.config.enabled);
        assert_eq!(up.updated_at, 200);

        let rot = s
            .rotate_secret(a.id, id, "v1:new", 999, 300)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rot.secret_sealed, "v1:new");
        assert_eq!(rot.previous_secret_sealed.as_deref(), Some("v1:s"));
        assert_eq!(rot.previous_secret_until, Some(999));

        let err = s
            .insert_webhook(
                &NewWebhook {
                    id: Uuid::new_v4(),
                    tenant_id: a.id,
                    config: config("https://x.test/3"),
                    secret_sealed: "v1:s".into(),
                    now: 1,
                },
                1,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LimitReached(1)));
        assert_eq!(s.list_webhooks(a.id).await.unwrap().len(), 1);
        assert_eq!(s.delete_all_webhooks(a.id).await.unwrap().len(), 1);
    }
);

both!(ui_sessions_expire_and_end, |app: TestApp| async move {
    let s = app.store.as_ref();
    let tenant_id = app.tenant_id("default").await;
    let token_id = s.list_tokens(Some(tenant_id)).await.unwrap()[0].id.clone();
    let session = |hash: &str, expires_at: i64| herald::store::NewUiSession {
        id_hash: hash.into(),
        tenant_id,
        token_id: token_id.clone(),
        csrf_token: format!("csrf-{hash}"),
        created_at: 100,
        expires_at,
    };
    s.insert_ui_session(&session("live", 1_000)).await.unwrap();
    s.insert_ui_session(&session("old", 500)).await.unwrap();
    let got = s
        .ui_session("live", 900)
        .await
        .unwrap()
        .expect("unexpired session");
    assert_eq!(
        (got.token_id.as_str(), got.csrf_token.as_str()),
        (token_id.as_str(), "csrf-live")
    );
    assert!(
        s.ui_session("live", 1_000).await.unwrap().is_none(),
        "expired at its expiry time"
    );
    assert!(s.ui_session("nope", 0).await.unwrap().is_none());
    assert_eq!(
        s.purge_expired_ui_sessions(900).await.unwrap(),
        1,
        "only `old` had expired"
    );
    assert!(s.delete_ui_session("live").await.unwrap());
    assert!(!s.delete_ui_session("live").await.unwrap());
    assert!(s.ui_session("live", 0).await.unwrap().is_none());
});

/// PostgreSQL: reads asked together go as fewer statements than reads, and each still
/// gets its own token (`store/read_batch.rs`). Polled together on one thread, every read
/// after the first waits for it, so the rest go as batches.
#[tokio::test]
async fn postgres_batches_token_reads_asked_together() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Postgres).await else {
        return;
    };
    let (url, schema) = app.pg_target();
    let node = herald::store::postgres::PgStore::open(url, Some(schema))
        .await
        .unwrap();
    let s = app.store.as_ref();
    let listed = s.list_tokens(None).await.unwrap();
    let id = listed[0].id.clone();
    let before = node.token_read_statements();
    let keys: Vec<String> = (0..40)
        .map(|n| {
            if n % 4 == 3 {
                format!("nosuchtoken{}", n % 10)
            } else {
                id.clone()
            }
        })
        .collect();
    let got = futures::future::join_all(
        keys.iter()
            .map(|k| herald::store::TokenStore::token_by_id(&node, k)),
    )
    .await;
    for (k, g) in keys.iter().zip(got) {
        let want = listed.iter().find(|t| &t.id == k);
        assert_eq!(g.unwrap().as_ref(), want, "token {k}");
    }
    let statements = node.token_read_statements() - before;
    assert!(
        (1..=3).contains(&statements),
        "40 reads asked together took {statements} statements"
    );
}

/// `database_max_connections` bounds a node's PostgreSQL sessions: ten reads at once on a
/// pool of two open two sessions (the default pool would open one for each).
#[tokio::test]
async fn postgres_pool_opens_at_most_database_max_connections() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Postgres).await else {
        return;
    };
    let (node, name) = app.pg_node_pooled("pool2", 2).await;
    let reads = (0..10).map(|_| node.list_tokens(None));
    for r in futures::future::join_all(reads).await {
        assert_eq!(r.unwrap().len(), 1);
    }
    let sessions = app
        .db_count(&format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = '{name}'"
        ))
        .await;
    assert!((1..=2).contains(&sessions), "{sessions} sessions");
}

/// Operators find Herald's PostgreSQL sessions by name unless the URL names them itself
/// (the other tests' URLs do: `TestSchema::env`).
#[tokio::test]
async fn postgres_sessions_are_named_herald() {
    let Some(url) = crate::support::app::postgres_url() else {
        eprintln!("HERALD_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    let app = TestApp::spawn_with(
        crate::support::Backend::Postgres,
        &[("HERALD_DATABASE_URL", &url)],
    )
    .await
    .expect("PostgreSQL is configured");
    let sql = |name: &str| {
        format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = '{name}' \
             AND pid <> pg_backend_pid() AND datname = current_database()"
        )
    };
    assert!(
        app.db_count(&sql("herald")).await >= 1,
        "Herald's pool keeps a session named herald"
    );
    let tagged = TestApp::spawn(crate::support::Backend::Postgres).await.unwrap();
    let DatabaseConfig::Postgres { schema: Some(s), .. } = &tagged.settings.database else {
        panic!("tests run in a schema of their own");
    };
    assert!(
        tagged.db_count(&sql(s)).await >= 1,
        "a URL's application_name wins"
    );
}

/// A pooled PostgreSQL connection the server dropped while it sat idle is replaced before
/// it is used, not handed to a request: sqlx's check before every use now runs only on
/// connections idle for `CHECK_AFTER_IDLE` (src/store/postgres.rs says why).
#[tokio::test]
async fn a_connection_dropped_while_idle_is_replaced_before_use() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Postgres).await else {
        return;
    };
    let (s, name) = app.pg_node("idle").await;
    s.tenant_count().await.unwrap();
    let dropped = app.end_pg_sessions(&name).await;
    assert!(dropped >= 1, "the pool held a connection");
    // What is tested is what happens after this much idle time.
    tokio::time::sleep(herald::store::postgres::CHECK_AFTER_IDLE + std::time::Duration::from_millis(200))
        .await;
    for _ in 0..20 {
        s.tenant_count().await.expect("a live connection");
    }
}

/// PostgreSQL: the large columns every change writes are compressed with lz4 where the
/// server has it (migration 0010), and with pglz, as before, where it does not.
#[tokio::test]
async fn postgres_compresses_what_changes_write_with_lz4() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Postgres).await else {
        return;
    };
    let has_lz4 = app
        .db_count(
            "SELECT COUNT(*) FROM pg_settings WHERE name = 'default_toast_compression' \
             AND 'lz4' = ANY(enumvals)",
        )
        .await
        == 1;
    let lz4_columns = app
        .db_count(
            "SELECT COUNT(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() \
             AND (c.relname, a.attname) IN (('events', 'data'), ('delivery_bodies', 'body'), \
             ('entities', 'data'), ('deliveries', 'body')) AND a.attcompression = 'l'",
        )
        .await;
    assert_eq!(lz4_columns, if has_lz4 { 4 } else { 0 });
}

/// PostgreSQL: a delivery's outcome rewrites its row on the row's own page, where the
/// WAL records only what changed (migration 0011 leaves half of each new page free for
/// this); with full pages the new version moved to another page.
#[tokio::test]
async fn postgres_writes_an_outcome_on_its_deliverys_page() {
    use herald::store::AutoDisable;
    let Some(app) = TestApp::spawn(crate::support::Backend::Postgres).await else {
        return;
    };
    let s = app.store.as_ref();
    let (t, _) = s.ensure_tenant("pages", 1).await.unwrap();
    let hook = webhook_of(s, t.id, "pages").await;
    // Rows the size of real ones (a few hundred bytes), leased, as fan-out writes them:
    // more than a whole page of them.
    let ids: Vec<Uuid> = (0..60).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        app.db_count(&format!(
            "WITH ins AS (INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_seq, event_type, \
             headers, status, next_attempt_at, lease_token, lease_until, created_at, updated_at) \
             VALUES ('{id}', {tid}, '{hook}', gen_random_uuid()::text, 1, 'project.updated', repeat('h', 300), \
             'pending', 1, 't', 9000000000000, 1, 1) RETURNING 1) SELECT COUNT(*) FROM ins",
            tid = t.id
        ))
        .await;
    }
    let page_of = |id: Uuid| {
        let app = &app;
        async move {
            app.db_count(&format!(
                "SELECT (ctid::text::point)[0]::bigint FROM deliveries WHERE id = '{id}'"
            ))
            .await
        }
    };
    let first = ids[0];
    assert_eq!(page_of(first).await, 0);
    assert!(page_of(ids[59]).await >= 1, "the rows fill more than one page");
    let mut attempt = crate::support::attempt(hook, 1_000, 200);
    attempt.delivery_id = first;
    let auto = AutoDisable {
        failures: 100,
        after_ms: 1,
    };
    s.record_attempts(std::sync::Arc::new([attempt]), auto, 2_000)
        .await
        .unwrap();
    let status = app
        .db_count(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE id = '{first}' AND status = 'succeeded'"
        ))
        .await;
    assert_eq!(status, 1, "the outcome was written");
    assert_eq!(
        page_of(first).await,
        0,
        "the outcome moved the row to another page"
    );
}

/// PostgreSQL: the attempt log keeps one B-tree (its primary key, which also finds a
/// delivery's attempts in order) and a BRIN index on `started_at` for retention
/// (migration 0011).
#[tokio::test]
async fn postgres_keeps_the_attempt_log_lean() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Postgres).await else {
        return;
    };
    let indexes = app
        .db_count(
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'delivery_attempts'",
        )
        .await;
    assert_eq!(indexes, 2);
    let expected = app
        .db_count(
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'delivery_attempts' \
             AND (indexdef LIKE '%USING btree (delivery_id, number, id)' AND indexname = 'delivery_attempts_pkey' \
             OR indexdef LIKE '%USING brin (started_at)%')",
        )
        .await;
    assert_eq!(expected, 2);
}

/// A webhook of tenant `tenant_id` (made with [`config`]) whose attempts a test records
/// directly; returns its id.
async fn webhook_of(s: &dyn herald::store::Store, tenant_id: i64, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    s.insert_webhook(
        &NewWebhook {
            id,
            tenant_id,
            config: config(&format!("https://x.test/{name}")),
            secret_sealed: "v1:s".into(),
            now: 1,
        },
        10,
    )
    .await
    .unwrap();
    id
}

both!(
    a_batch_written_late_does_not_set_the_last_execution_back,
    |app: TestApp| async move {
        use herald::store::AutoDisable;
        let s = app.store.as_ref();
        let (t, _) = s.ensure_tenant("late", 1).await.unwrap();
        let id = webhook_of(s, t.id, "late").await;
        let auto = AutoDisable {
            failures: 100,
            after_ms: 1,
        };
        // Records one attempt (5 ms long) and reads back the webhook's last execution.
        let record = async |started_at: i64, status: i64| {
            let batch = std::sync::Arc::new([crate::support::attempt(id, started_at, status)]);
            s.record_attempts(batch, auto, started_at + 1_000).await.unwrap();
            let w = s.get_webhook(t.id, id).await.unwrap().unwrap();
            let last = w.last_execution.unwrap();
            (last.at, last.status_code)
        };
        assert_eq!(record(2_000, 200).await, (2_005, Some(200)));
        // PostgreSQL writes recorder batches in parallel: an older one may commit last.
        assert_eq!(record(1_000, 500).await, (2_005, Some(200)), "set back");
        assert_eq!(
            record(4_000, 503).await,
            (4_005, Some(503)),
            "a newer one moves it"
        );
    }
);

both!(
    late_batches_count_no_failures_and_still_end_a_streak,
    |app: TestApp| async move {
        use herald::store::AutoDisable;
        use std::sync::Arc;
        let s = app.store.as_ref();
        let (t, _) = s.ensure_tenant("streak", 1).await.unwrap();
        let hook = async |name: &str| webhook_of(s, t.id, name).await;
        // Two failed deliveries in a row disable, whatever the span.
        let auto = AutoDisable {
            failures: 2,
            after_ms: 0,
        };
        // Writes one batch of attempts (`(start, status)`, each its delivery's first) at
        // `now`; returns whether it disabled the webhook.
        let record = async |id: Uuid, attempts: &[(i64, i64)], now: i64| {
            let batch: Arc<[_]> = attempts
                .iter()
                .map(|&(at, status)| crate::support::attempt(id, at, status))
                .collect();
            !s.record_attempts(batch, auto, now).await.unwrap().is_empty()
        };

        // PostgreSQL writes recorder batches in parallel: an older one may commit last.
        // Older failures committed after a newer success do not count.
        let answers_again = hook("answers-again").await;
        assert!(!record(answers_again, &[(2_000, 200)], 3_000).await);
        assert!(
            !record(answers_again, &[(1_000, 500), (1_010, 500)], 3_000).await,
            "failures before a newer success disabled the webhook"
        );
        assert!(
            record(answers_again, &[(4_000, 500), (4_010, 500)], 5_000).await,
            "two newer failures in a row disable it"
        );

        // An older success committed after a newer failure still ends the streak (the
        // side of not disabling), like any 2xx.
        let late_success = hook("late-success").await;
        assert!(!record(late_success, &[(2_000, 500)], 3_000).await);
        assert!(!record(late_success, &[(1_000, 200)], 3_000).await);
        assert!(
            !record(late_success, &[(4_000, 500)], 5_000).await,
            "a failure before a success still counted"
        );
        assert!(
            record(late_success, &[(5_000, 500)], 6_000).await,
            "two newer failures in a row disable it"
        );
    }
);

both!(
    failed_retries_keep_the_failure_streak_going,
    |app: TestApp| async move {
        use herald::store::AutoDisable;
        use std::sync::Arc;
        let s = app.store.as_ref();
        let (t, _) = s.ensure_tenant("retries", 1).await.unwrap();
        // Two failed deliveries in a row, failing for at least 1.5 s.
        let auto = AutoDisable {
            failures: 2,
            after_ms: 1_500,
        };
        // Writes one failed attempt (the delivery's `tries`-th) of `id`'s at `now`;
        // returns whether it disabled the webhook.
        let record = async |id: Uuid, at: i64, tries: i64, now: i64| {
            let mut a = crate::support::attempt(id, at, 500);
            a.tries = tries;
            a.number = tries;
            let batch: Arc<[_]> = Arc::new([a]);
            !s.record_attempts(batch, auto, now).await.unwrap().is_empty()
        };
        // A delivery fails at 1.0 s (the streak starts), another's retry fails at 1.1 s
        // (a retry neither counts nor restarts it), a second delivery fails at 2.0 s: two
        // in a row, failing since 1.005 s, at least 1.5 s before 3.0 s (2.005 s would not be).
        let id = webhook_of(s, t.id, "retries").await;
        assert!(!record(id, 1_000, 1, 1_100).await);
        assert!(!record(id, 1_100, 2, 1_200).await);
        assert!(
            record(id, 2_000, 1, 3_000).await,
            "a batch of failed retries restarted the streak's span"
        );

        // Two deliveries fail at once, too soon to disable; then only their retries fail,
        // past the span: the webhook is disabled by a retry, with no new delivery.
        let id = webhook_of(s, t.id, "only-retries").await;
        assert!(!record(id, 1_000, 1, 1_100).await);
        assert!(!record(id, 1_010, 1, 1_100).await);
        assert!(!record(id, 1_200, 2, 1_300).await, "too soon");
        assert!(
            record(id, 3_000, 2, 3_100).await,
            "failed retries past the span did not disable the webhook"
        );
    }
);

/// A finished attempt of webhook `w`, answered `status` (410 asks for the webhook to be
/// disabled), for a delivery the test does not need to exist.
fn attempt(w: Uuid, status: i64) -> herald::store::AttemptRecord {
    herald::store::AttemptRecord {
        delivery_id: Uuid::new_v4(),
        webhook_id: w,
        lease_token: "t".into(),
        number: 1,
        tries: 1,
        started_at: 1_000,
        duration_ms: 1,
        request_headers: "[]".into(),
        status_code: Some(status),
        response_headers: None,
        response_body: None,
        response_truncated: false,
        error_kind: None,
        error: None,
        next: herald::store::NextState::Succeeded,
        disable_reason: (status == 410).then(|| "gone".to_owned()),
    }
}

both!(
    every_webhook_change_raises_the_tenants_webhooks_version,
    |app: TestApp| async move {
        // Nodes keep a tenant's webhooks in memory under the version read with each token
        // (src/store/subscriber_cache.rs): any change fan-out would see must raise it,
        // the recorder's status writes must not (they would empty every node's cache).
        let s = app.store.as_ref();
        let token = s.list_tokens(None).await.unwrap().remove(0);
        let tenant = token.tenant_id;
        let (other, _) = s.ensure_tenant("other", 1).await.unwrap();
        let version = async |tenant_id: i64| {
            let all = s.list_tokens(None).await.unwrap();
            all.iter()
                .find(|t| t.tenant_id == tenant_id)
                .map(|t| t.webhooks_version)
                .unwrap()
        };
        let other_token = herald::store::NewTokenRecord {
            id: "other-token".into(),
            tenant_id: other.id,
            user_id: token.user.id,
            name: "o".into(),
            scopes: "admin".into(),
            secret_hash: "x".into(),
            created_at: 1,
        };
        s.insert_token(&other_token).await.unwrap();
        let other_before = version(other.id).await;
        let last = std::cell::Cell::new(version(tenant).await);
        let raised = async |what: &str| {
            let now = version(tenant).await;
            assert!(now > last.get(), "{what}: version {now}, was {}", last.get());
            last.set(now);
        };
        let id = webhook_of(s, tenant, "1").await;
        raised("created").await;
        s.update_webhook(tenant, id, &config("https://x.test/2"), 200)
            .await
            .unwrap()
            .unwrap();
        raised("updated").await;
        s.rotate_secret(tenant, id, "v1:new", 999, 300)
            .await
            .unwrap()
            .unwrap();
        raised("secret rotated").await;
        // Each column fan-out reads, written alone (as an operator's own SQL might).
        for col in [
            "id",
            "tenant_id",
            "url",
            "http_verb",
            "format",
            "event_types",
            "project_ids",
            "headers",
            "enabled",
            "ordering",
            "secret",
            "previous_secret",
            "previous_secret_until",
            "created_at",
            "updated_at",
        ] {
            let sql =
                format!("UPDATE webhooks SET {col} = {col} WHERE id = '{id}' RETURNING CAST(1 AS BIGINT)");
            assert_eq!(app.db_count(&sql).await, 1);
            raised(col).await;
        }

        let auto = herald::store::AutoDisable {
            failures: 1_000,
            after_ms: 1_000_000,
        };
        let records: std::sync::Arc<[_]> = vec![attempt(id, 200), attempt(id, 500)].into();
        assert!(s.record_attempts(records, auto, 2_000).await.unwrap().is_empty());
        let hook = s.get_webhook(tenant, id).await.unwrap().unwrap();
        assert!(hook.last_execution.is_some(), "the status was recorded");
        assert_eq!(
            version(tenant).await,
            last.get(),
            "status writes leave the version alone"
        );

        let records: std::sync::Arc<[_]> = vec![attempt(id, 410)].into();
        assert_eq!(s.record_attempts(records, auto, 3_000).await.unwrap(), vec![id]);
        raised("disabled by a 410").await;
        assert!(s.delete_webhook(tenant, id).await.unwrap());
        raised("deleted").await;
        assert_eq!(version(other.id).await, other_before, "another tenant's version");
        if let DatabaseConfig::Postgres { .. } = app.settings.database {
            // A TRUNCATE fires no row trigger; a statement trigger raises every tenant's.
            sqlx::query("TRUNCATE webhooks")
                .execute(&mut app.pg_conn().await)
                .await
                .unwrap();
            raised("truncated").await;
            assert!(version(other.id).await > other_before, "truncated: every tenant");
        }
    }
);

both!(
    a_node_with_another_master_key_refuses_to_start,
    |app: TestApp| async move {
        // The same database, another key (a second node that generated its own).
        let mut other = app.settings.clone();
        other.master_key = Some("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".into());
        let err = match herald::startup::Application::build(other).await {
            Ok(_) => panic!("a node with another master key started"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("master key is not the one"), "{err}");
        // Without a key of its own in a fresh data directory, it generates one, is refused
        // and leaves no key file behind to copy over.
        let dir = tempfile::tempdir().unwrap();
        let mut fresh = app.settings.clone();
        fresh.master_key = None;
        fresh.data_dir = dir.path().to_owned();
        assert!(herald::startup::Application::build(fresh).await.is_err());
        assert!(!dir.path().join("master.key").exists());
        // The right key still starts.
        assert!(herald::startup::Application::build(app.settings.clone())
            .await
            .is_ok());

        // A database from before the check (webhook secrets sealed, no check value): the
        // first start pins its key only if that key opens them.
        let hook = serde_json::json!({"url": "https://example.com/h", "eventTypes": ["Project:Created"]});
        assert_eq!(
            app.call("POST", "/@default/v1/Webhooks", Some(hook)).await.status,
            201
        );
        let forget = "DELETE FROM herald_meta WHERE name = 'master_key_check' RETURNING CAST(1 AS BIGINT)";
        assert_eq!(app.db_count(forget).await, 1);
        let mut wrong = app.settings.clone();
        wrong.master_key = Some("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".into());
        assert!(herald::startup::Application::build(wrong).await.is_err());
        let pinned = "SELECT COUNT(*) FROM herald_meta";
        assert_eq!(
            app.db_count(pinned).await,
            0,
            "a key that opens nothing is not pinned"
        );
        assert!(herald::startup::Application::build(app.settings.clone())
            .await
            .is_ok());
        assert_eq!(app.db_count(pinned).await, 1);
    }
);
