//! Delivery test rig: a running Herald that trusts a `TestReceiver`'s CA, with fast retries,
//! plus helpers to create webhooks and changes and to read the delivery log.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Backend, TestApp, TestReceiver, WAIT};

/// Tenant API prefix of the bootstrap tenant.
pub const V1: &str = "/@default/v1";

/// Herald + one receiver (and maybe more).
pub struct Rig {
    pub app: TestApp,
    pub rx: TestReceiver,
    /// Further receivers Herald trusts, from [`rig_with`].
    pub others: Vec<TestReceiver>,
    _ca: tempfile::NamedTempFile,
}

/// Starts a receiver and Herald on `backend` (retries every 50 ms, three times, unless
/// `env` says otherwise); `None` when the backend is not configured.
pub async fn rig(backend: Backend, env: &[(&str, &str)]) -> Option<Rig> {
    rig_with(backend, env, 0).await
}

/// [`rig`] with `others` more receivers, all trusted through one CA bundle.
pub async fn rig_with(backend: Backend, env: &[(&str, &str)], others: usize) -> Option<Rig> {
    let rx = TestReceiver::start().await;
    let mut more = Vec::new();
    for _ in 0..others {
        more.push(TestReceiver::start().await);
    }
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    let bundle: String = std::iter::once(&rx).chain(&more).map(|r| r.ca_pem()).collect();
    std::fs::write(ca.path(), bundle).expect("write CA bundle");
    let ca_path = ca.path().display().to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("HERALD_EXTRA_CA_FILE", &ca_path),
        ("HERALD_RETRY_SCHEDULE", "50ms,50ms,50ms"),
        ("HERALD_POLL_INTERVAL_MS", "200"),
    ];
    all.extend_from_slice(env);
    let app = TestApp::spawn_with(backend, &all).await?;
    Some(Rig {
        app,
        rx,
        others: more,
        _ca: ca,
    })
}

/// Runs a delivery test on SQLite and on PostgreSQL:
/// `rig_test!(name, &[("HERALD_X", "y")], |rig: Rig| async move { … })`.
#[macro_export]
macro_rules! rig_test {
    ($name:ident, $env:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(r) = $crate::support::hooks::rig($crate::support::Backend::Sqlite, $env).await {
                    ($body)(r).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(r) = $crate::support::hooks::rig($crate::support::Backend::Postgres, $env).await {
                    ($body)(r).await;
                }
            }
        }
    };
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Rig {
    /// Creates a webhook to the receiver (`extra` is merged into the body); returns its
    /// `data` (with the one-time `secret`).
    pub async fn webhook(&self, format: &str, types: &[&str], extra: Value) -> Value {
        self.webhook_to(&self.rx.url(), format, types, extra).await
    }

    /// Like [`Rig::webhook`] to any URL.
    pub async fn webhook_to(&self, url: &str, format: &str, types: &[&str], extra: Value) -> Value {
        let mut body = json!({"url": url, "format": format, "eventTypes": types});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let r = self.app.call("POST", &format!("{V1}/Webhooks"), Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["data"].clone()
    }

    /// `POST {V1}{path}` expecting 201; returns `data`.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let r = self.app.call("POST", &format!("{V1}{path}"), Some(body)).await;
        assert_eq!(r.status, 201, "{path}: {}", r.text);
        r.json["data"].clone()
    }

    /// `PATCH {V1}{path}` expecting 200; returns `data`.
    pub async fn update(&self, path: &str, body: Value) -> Value {
        let r = self.app.call("PATCH", &format!("{V1}{path}"), Some(body)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        r.json["data"].clone()
    }

    /// Creates a project (a `Project:Created` event).
    pub async fn project(&self, key: &str) -> Value {
        self.create("/projects", json!({"key": key, "name": format!("Project {key}")}))
            .await
    }

    /// A webhook's delivery log (newest first, first page of 200).
    pub async fn deliveries(&self, webhook_id: &Value) -> Vec<Value> {
        let r = self
            .app
            .call(
                "GET",
                &format!("{V1}/Webhooks/{}/deliveries?limit=200", id(webhook_id)),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["data"].as_array().cloned().unwrap_or_default()
    }

    /// One delivery with its attempts.
    pub async fn delivery(&self, delivery_id: &str) -> Value {
        let r = self
            .app
            .call("GET", &format!("{V1}/deliveries/{delivery_id}"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["data"].clone()
    }

    /// One webhook.
    pub async fn get_webhook(&self, webhook_id: &Value) -> Value {
        let r = self
            .app
            .call("GET", &format!("{V1}/Webhooks/{}", id(webhook_id)), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["data"].clone()
    }

    /// Waits until delivery `id` is no longer pending; returns it with its attempts.
    pub async fn settled(&self, delivery_id: &str) -> Value {
        eventually("the delivery to settle", WAIT, || async {
            let d = self.delivery(delivery_id).await;
            (d["status"] != "pending").then_some(d)
        })
        .await
    }

    /// Waits until the webhook has `n` deliveries; returns them (newest first).
    pub async fn wait_deliveries(&self, webhook_id: &Value, n: usize) -> Vec<Value> {
        eventually(&format!("{n} deliveries"), WAIT, || async {
            let d = self.deliveries(webhook_id).await;
            (d.len() >= n).then_some(d)
        })
        .await
    }
}

/// The `id` of a JSON object, or the string itself.
pub fn id(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| other["id"].to_string()),
    }
}
