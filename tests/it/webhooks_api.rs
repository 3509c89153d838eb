//! The webhook management API end to end: PPM Express compatibility, validation, the auth
//! matrix, secret handling and the per-tenant cap — on SQLite and PostgreSQL.

use serde_json::{json, Value};

use crate::both;
use crate::support::{logs, Backend, TestApp};

const HOOKS: &str = "/@default/v1/Webhooks";

fn ppm_body() -> Value {
    json!({
        "eventTypes": ["Project:Created", "Project:Updated", "Project:Deleted", "Idea:Created",
                       "Idea:Updated", "Idea:Deleted", "Task:Created", "Task:Updated", "Task:Deleted",
                       "KeyDate:Created", "KeyDate:Updated", "KeyDate:Deleted"],
        "headers": [{"name": "Authorization", "value": "Bearer token_value"},
                    {"name": "custom_header", "value": "header_value"}],
        "httpVerb": "POST",
        "url": "https://example.com"
    })
}

both!(ppm_express_crud_round_trip, |app: TestApp| async move {
    let created = app.call("POST", HOOKS, Some(ppm_body())).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let data = &created.json["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/@default/v1/Webhooks/{id}")
    );
    assert_eq!(data["url"], "https://example.com");
    assert_eq!(data["httpVerb"], "POST");
    assert_eq!(data["eventTypes"].as_array().unwrap().len(), 12);
    // PPM Express returns unsecured header values as given.
    assert_eq!(
        data["headers"][0],
        json!({"name": "Authorization", "value": "Bearer token_value", "secured": false})
    );
    assert_eq!(data["format"], "ppm");
    assert_eq!(data["enabled"], true);
    assert_eq!(data["lastExecution"], Value::Null);
    assert!(data["secret"].as_str().unwrap().starts_with("whsec_"));

    let list = app.call("GET", HOOKS, None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1);
    assert!(
        list.json["data"][0].get("secret").is_none(),
        "secret is shown only once"
    );

    // `/v1.0/` is accepted as PPM Express accepts it.
    let one = app
        .call("GET", &format!("/@default/v1.0/Webhooks/{id}"), None)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json["data"]["id"], id.as_str());

    let patched = app
        .call(
            "PATCH",
            &format!("{HOOKS}/{id}"),
            Some(json!({"name": "CRM", "enabled": false})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json["data"]["name"], "CRM");
    assert_eq!(patched.json["data"]["enabled"], false);
    assert_eq!(
        patched.json["data"]["eventTypes"].as_array().unwrap().len(),
        12,
        "PATCH keeps other fields"
    );
    assert_eq!(patched.json["data"]["headers"].as_array().unwrap().len(), 2);

    let put = app
        .call(
            "PUT",
            &format!("{HOOKS}/{id}"),
            Some(
                json!({"url": "https://example.org/in", "eventTypes": ["Project:Updated"],
                        "format": "projectrak", "httpVerb": "PUT"}),
            ),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let d = &put.json["data"];
    assert_eq!(d["format"], "projectrak");
    assert_eq!(d["httpVerb"], "PUT");
    assert_eq!(d["headers"], json!([]), "PUT replaces the whole configuration");
    assert_eq!(d["name"], "example.org");
    assert_eq!(d["enabled"], true);

    assert_eq!(
        app.call("DELETE", &format!("{HOOKS}/{id}"), None).await.status,
        204
    );
    app.call("DELETE", &format!("{HOOKS}/{id}"), None)
        .await
        .assert_problem(404, None);
    app.call("GET", &format!("{HOOKS}/{id}"), None)
        .await
        .assert_problem(404, None);
    app.call("GET", &format!("{HOOKS}/not-a-uuid"), None)
        .await
        .assert_problem(404, None);

    for _ in 0..3 {
        assert_eq!(app.call("POST", HOOKS, Some(ppm_body())).await.status, 201);
    }
    assert_eq!(app.call("DELETE", HOOKS, None).await.status, 204);
    assert_eq!(app.call("GET", HOOKS, None).await.json["data"], json!([]));
});

// Every validation rule, each answered with 422 problem+json naming the field.
both!(validation_failures_name_the_field, |app: TestApp| async move {
    let long_url = format!("https://example.com/{}", "a".repeat(2048));
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("X-{i}"), "value": "v"}))
        .collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"eventTypes": ["Project:Created"]}), "url"),
        (json!({"url": "https://example.com"}), "eventTypes"),
        (
            json!({"url": "https://example.com", "eventTypes": []}),
            "eventTypes",
        ),
        (
            json!({"url": "http://example.com", "eventTypes": ["Project:Created"]}),
            "url",
        ),
        (
            json!({"url": "example.com", "eventTypes": ["Project:Created"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com", "eventTypes": ["Project:Created"]}),
            "url",
        ),
        (json!({"url": long_url, "eventTypes": ["Project:Created"]}), "url"),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"], "headers": six}),
            "headers",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"],
                "headers": [{"name": "Bad Name", "value": "v"}]}),
            "headers[0].name",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"],
                "headers": [{"name": "X-A", "value": "a\r\nX-Injected: 1"}]}),
            "headers[0].value",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"],
                "headers": [{"name": "X-A", "value": "a\u{0}b"}]}),
            "headers[0].value",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"],
                "headers": [{"name": "X-A", "value": "v".repeat(4097)}]}),
            "headers[0].value",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"], "httpVerb": "GET"}),
            "httpVerb",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Exploded"]}),
            "eventTypes[0]",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Task:Created"], "format": "projectrak"}),
            "eventTypes[0]",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"], "format": "xml"}),
            "format",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": "Project:Created"}),
            "eventTypes",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"], "enabled": "yes"}),
            "enabled",
        ),
        (
            json!({"url": "https://example.com", "eventTypes": ["Project:Created"], "ordering": "global"}),
            "ordering",
        ),
    ];
    for (body, field) in cases {
        let r = app.call("POST", HOOKS, Some(body.clone())).await;
        r.assert_problem(422, Some(field));
        assert_eq!(
            r.json["errors"][0]["fieldName"], field,
            "PPM-style errors list: {}",
            r.text
        );
    }
    for name in [
        "Content-Type",
        "content-length",
        "Host",
        "User-Agent",
        "Transfer-Encoding",
        "Connection",
        "webhook-id",
        "Webhook-Signature",
        "Herald-Event-Type",
    ] {
        let r = app
            .call(
                "POST",
                HOOKS,
                Some(
                    json!({"url": "https://example.com", "eventTypes": ["Project:Created"],
                                             "headers": [{"name": name, "value": "x"}]}),
                ),
            )
            .await;
        r.assert_problem(422, Some("headers[0].name"));
    }
    let r = app
        .call(
            "POST",
            HOOKS,
            Some(json!({"url": "https://example.com", "eventTypes": ["Story:Created"], "format": "ppm"})),
        )
        .await;
    r.assert_problem(422, Some("eventTypes[0]"));
    assert!(r.json["detail"].as_str().unwrap().contains("Story:Created"));
    assert_eq!(
        app.call("GET", HOOKS, None).await.json["data"],
        json!([]),
        "nothing was stored"
    );
});

both!(
    malformed_and_oversized_bodies_are_refused,
    |app: TestApp| async move {
        let send = |body: Vec<u8>, ct: &'static str| {
            app.client
                .post(app.url(HOOKS))
                .bearer_auth(&app.token)
                .header("content-type", ct)
                .body(body)
                .send()
        };
        let r =
            crate::support::app::Resp::from(send(b"{\"url\": ".to_vec(), "application/json").await.unwrap())
                .await;
        r.assert_problem(400, None);
        let big = format!(
            "{{\"url\": \"https://example.com\", \"description\": \"{}\"}}",
            "a".repeat(1024 * 1024 + 10)
        );
        let r =
            crate::support::app::Resp::from(send(big.into_bytes(), "application/json").await.unwrap()).await;
        r.assert_problem(413, None);
        let r = crate::support::app::Resp::from(
            send(b"url=x".to_vec(), "application/x-www-form-urlencoded")
                .await
                .unwrap(),
        )
        .await;
        r.assert_problem(415, None);
    }
);

both!(auth_matrix, |app: TestApp| async move {
    let created = app.call("POST", HOOKS, Some(ppm_body())).await;
    let id = created.json["data"]["id"].as_str().unwrap().to_owned();
    let one = format!("{HOOKS}/{id}");

    // No token, garbage, a well-formed but unknown token → 401.
    app.call_as("", "GET", HOOKS, None)
        .await
        .assert_problem(401, None);
    app.call_as("garbage", "GET", HOOKS, None)
        .await
        .assert_problem(401, None);
    app.call_as("hrld_AAAAAAAAAAAA_nope", "GET", HOOKS, None)
        .await
        .assert_problem(401, None);
    let mut forged = app.token.clone();
    forged.push('x');
    app.call_as(&forged, "GET", HOOKS, None)
        .await
        .assert_problem(401, None);

    // Wrong scope → 403; the right one works.
    let reader = app.token("default", "reader", "webhooks:read").await;
    assert_eq!(app.call_as(&reader, "GET", HOOKS, None).await.status, 200);
    app.call_as(&reader, "POST", HOOKS, Some(ppm_body()))
        .await
        .assert_problem(403, None);
    app.call_as(&reader, "DELETE", &one, None)
        .await
        .assert_problem(403, None);
    let entities = app.token("default", "ent", "entities:write").await;
    app.call_as(&entities, "GET", HOOKS, None)
        .await
        .assert_problem(403, None);

    // Another tenant: its token cannot see our tenant, and our webhook ids are unknown to it.
    let other = app.token("acme", "bob", "admin").await;
    app.call_as(&other, "GET", HOOKS, None)
        .await
        .assert_problem(404, None);
    app.call_as(&other, "GET", &format!("/@acme/v1/Webhooks/{id}"), None)
        .await
        .assert_problem(404, None);
    app.call_as(&other, "DELETE", &format!("/@acme/v1/Webhooks/{id}"), None)
        .await
        .assert_problem(404, None);
    assert_eq!(
        app.call_as(&other, "GET", "/@acme/v1/Webhooks", None).await.json["data"],
        json!([])
    );
    // Deleting "all" in acme leaves default's webhook alone.
    assert_eq!(
        app.call_as(&other, "DELETE", "/@acme/v1/Webhooks", None)
            .await
            .status,
        204
    );
    assert_eq!(app.call("GET", &one, None).await.status, 200);
    // A path without the @ is not a tenant path.
    app.call("GET", "/default/v1/Webhooks", None)
        .await
        .assert_problem(404, None);

    // Revoked tokens stop working at once.
    let tid = reader.split('_').nth(1).unwrap().to_owned();
    assert!(app.store.revoke_token(&tid, 1).await.unwrap());
    app.call_as(&reader, "GET", HOOKS, None)
        .await
        .assert_problem(401, None);
});

both!(secured_values_are_never_shown_again, |app: TestApp| async move {
    const SECRET: &str = "Bearer sk_live_NEVER_LEAK_4242";
    let body = json!({"url": "https://example.com/hook", "eventTypes": ["Project:Updated"],
                      "headers": [{"name": "Authorization", "value": SECRET, "secured": true},
                                  {"name": "X-Plain", "value": "visible"}]});
    let created = app.call("POST", HOOKS, Some(body)).await;
    assert_eq!(created.status, 201);
    assert!(!created.text.contains(SECRET));
    let h = &created.json["data"]["headers"];
    assert_eq!(
        h[0],
        json!({"name": "Authorization", "value": "********", "secured": true})
    );
    assert_eq!(h[1]["value"], "visible");
    let id = created.json["data"]["id"].as_str().unwrap().to_owned();
    let one = format!("{HOOKS}/{id}");

    // Sending the mask back (or omitting the value) keeps the stored secret.
    let r = app
        .call(
            "PATCH",
            &one,
            Some(
                json!({"headers": [{"name": "Authorization", "value": "********", "secured": true},
                                                     {"name": "X-Plain", "value": "changed"}]}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .call(
            "PATCH",
            &one,
            Some(json!({"headers": [{"name": "Authorization", "secured": true}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = app
        .store
        .get_webhook(app.tenant_id("default").await, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let key = herald::crypto::MasterKey::parse(app.settings.master_key.as_deref().unwrap()).unwrap();
    assert_eq!(
        key.open(rec.config.headers[0].sealed.as_ref().unwrap()).unwrap(),
        SECRET
    );

    // A validation error about a secured header never echoes its value.
    let bad = format!("{SECRET}\r\n");
    let r = app
        .call(
            "PATCH",
            &one,
            Some(json!({"headers": [{"name": "Authorization", "value": bad, "secured": true}]})),
        )
        .await;
    r.assert_problem(422, Some("headers[0].value"));
    assert!(!r.text.contains("NEVER_LEAK"));

    for path in [HOOKS.to_owned(), one.clone()] {
        assert!(!app.call("GET", &path, None).await.text.contains("NEVER_LEAK"));
    }
    assert!(
        !logs::captured().contains("NEVER_LEAK"),
        "secret reached the logs"
    );
    if let Some(db) = app.sqlite_path() {
        let _ = app.store.ping().await;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            if let Ok(bytes) = std::fs::read(&p) {
                let hay = String::from_utf8_lossy(&bytes);
                assert!(!hay.contains("NEVER_LEAK"), "secret in {p:?}");
                assert!(!hay.contains("whsec_"), "signing secret in {p:?}");
            }
        }
    }
});

both!(the_mask_is_never_stored_as_a_value, |app: TestApp| async move {
    let body = json!({"url": "https://example.com/hook", "eventTypes": ["Project:Updated"],
                          "headers": [{"name": "Authorization", "value": "Bearer kept", "secured": true}]});
    let created = app.call("POST", HOOKS, Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let one = format!("{HOOKS}/{}", created.json["data"]["id"].as_str().unwrap());
    // The mask without a stored secured value under that name: nothing to keep.
    let r = app
        .call(
            "PATCH",
            &one,
            Some(
                json!({"headers": [{"name": "Authorization", "value": "********", "secured": true},
                                        {"name": "X-Other", "value": "********"}]}),
            ),
        )
        .await;
    r.assert_problem(422, Some("headers[1].value"));
    // PATCHes the one header; returns it as shown.
    let shown_after = |header: Value| {
        let (app, one) = (&app, &one);
        async move {
            let r = app.call("PATCH", one, Some(json!({ "headers": [header] }))).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json["data"]["headers"][0].clone()
        }
    };
    // The mask sent back without `secured` keeps the value secured (a client that does
    // not know the flag must not reveal it); an explicit false un-secures it.
    assert_eq!(
        shown_after(json!({"name": "Authorization", "value": "********"})).await,
        json!({"name": "Authorization", "value": "********", "secured": true})
    );
    assert_eq!(
        shown_after(json!({"name": "Authorization", "value": "********", "secured": false})).await,
        json!({"name": "Authorization", "value": "Bearer kept", "secured": false})
    );
    shown_after(json!({"name": "Authorization", "value": "Bearer two", "secured": true})).await;
    assert_eq!(
        shown_after(json!({"name": "Authorization", "secured": false})).await["value"],
        "Bearer two"
    );
    // A new value for a header stored secured, `secured` omitted: sealed too.
    shown_after(json!({"name": "Authorization", "value": "Bearer three", "secured": true})).await;
    assert_eq!(
        shown_after(json!({"name": "Authorization", "value": "Bearer four"})).await,
        json!({"name": "Authorization", "value": "********", "secured": true})
    );
});

both!(
    rotating_the_secret_keeps_the_old_one_for_a_while,
    |app: TestApp| async move {
        let created = app.call("POST", HOOKS, Some(ppm_body())).await;
        let id = created.json["data"]["id"].as_str().unwrap().to_owned();
        let first = created.json["data"]["secret"].as_str().unwrap().to_owned();
        let r = app
            .call("POST", &format!("{HOOKS}/{id}/secret/rotate"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let second = r.json["data"]["secret"].as_str().unwrap().to_owned();
        assert!(second.starts_with("whsec_") && second != first);
        let rec = app
            .store
            .get_webhook(app.tenant_id("default").await, id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let key = herald::crypto::MasterKey::parse(app.settings.master_key.as_deref().unwrap()).unwrap();
        assert_eq!(key.open(&rec.secret_sealed).unwrap(), second);
        assert_eq!(
            key.open(rec.previous_secret_sealed.as_ref().unwrap()).unwrap(),
            first
        );
        let until = rec.previous_secret_until.unwrap();
        let day = 24 * 3600 * 1000;
        assert!(
            (until - rec.updated_at - day).abs() < 5_000,
            "old secret valid for 24 h"
        );
        app.call(
            "POST",
            &format!("{HOOKS}/{}/secret/rotate", uuid::Uuid::new_v4()),
            None,
        )
        .await
        .assert_problem(404, None);
    }
);

async fn cap_is_enforced(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("HERALD_MAX_WEBHOOKS_PER_TENANT", "3")]).await else {
        return;
    };
    // Concurrent creates never overshoot the cap.
    let calls = (0..6).map(|_| app.call("POST", HOOKS, Some(ppm_body())));
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 3);
    for r in results.iter().filter(|r| r.status != 201) {
        r.assert_problem(409, None);
    }
    // Another tenant has its own allowance.
    let other = app.token("acme", "bob", "webhooks:write").await;
    assert_eq!(
        app.call_as(&other, "POST", "/@acme/v1/Webhooks", Some(ppm_body()))
            .await
            .status,
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_sqlite() {
    cap_is_enforced(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_postgres() {
    cap_is_enforced(Backend::Postgres).await;
}

both!(operations_endpoints, |app: TestApp| async move {
    assert_eq!(app.call_as("", "GET", "/healthz", None).await.status, 200);
    let ready = app.call_as("", "GET", "/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json["status"], "ready");
    let doc = app.call_as("", "GET", "/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.json["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/@{tenant}/v1/Webhooks",
        "/@{tenant}/v1/Webhooks/{id}",
        "/@{tenant}/v1/Webhooks/{id}/secret/rotate",
    ] {
        assert!(doc.json["paths"].get(path).is_some(), "{path} documented");
    }
    for path in [
        "/@{tenant}/v1/projects",
        "/@{tenant}/v1/stories/{id}",
        "/@{tenant}/v1/events",
        "/@{tenant}/v1/fields",
        "/@{tenant}/v1/users",
        "/@{tenant}/v1/key-dates",
    ] {
        assert!(doc.json["paths"].get(path).is_some(), "{path} documented");
    }
    let story = &doc.json["components"]["schemas"]["StoryIn"];
    assert_eq!(
        story["properties"]["story_type"]["enum"][3], "release",
        "schemas follow the attribute tables"
    );
    assert_eq!(
        doc.json["paths"]["/@{tenant}/v1/projects"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/ProjectIn"
    );
    // PUT on an entity is documented (it merges, as PATCH), with the same body schema.
    assert_eq!(
        doc.json["paths"]["/@{tenant}/v1/stories/{id}"]["put"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/StoryIn"
    );
    let ui = app.call_as("", "GET", "/docs", None).await;
    assert!(
        ui.text.contains("swagger-ui-bundle.js")
            && !ui.text.contains("http://")
            && !ui.text.contains("https://")
    );
    let js = app.call_as("", "GET", "/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(js.status, 200);
    assert!(js.text.len() > 100_000);
    app.call_as("", "GET", "/nope", None)
        .await
        .assert_problem(404, None);
});

/// SQLite: a write transaction that reads first (a webhook's insert counts the tenant's
/// webhooks against the cap) waits for another process holding the write lock (the
/// `herald` CLI, say) instead of failing: SQLite refuses the lock at once to a deferred
/// transaction that has read, so the store begins its write transactions `IMMEDIATE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_write_waits_for_another_process_holding_the_write_lock() {
    use std::sync::Arc;
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let app = Arc::new(app);
    let create = {
        let app = Arc::clone(&app);
        async move { app.call("POST", HOOKS, Some(ppm_body())).await }
    };
    let r = crate::support::app::while_another_process_holds_the_write_lock(&app, create).await;
    assert_eq!(r.status, 201, "{}", r.text);
}
