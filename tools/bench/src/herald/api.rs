//! A thin client for the parts of Herald's public API the scenarios use: fields, projects
//! (the change that triggers every delivery) and webhooks. One keep-alive connection pool,
//! bearer token, `{"data": …}` envelopes.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::record::marker;

/// The name of the text field (and of the PPM custom attribute) that carries each change's
/// seq marker.
pub const SEQ_FIELD: &str = "Bench Seq";

/// The attributes of change `seq`: the marker goes into the Projectrak field *and* a PPM
/// custom attribute, because each format reports only its own kind of attribute (a change
/// to Projectrak fields alone renders nothing in `ppm`), so every format carries the seq.
fn seq_attributes(seq: u64) -> Value {
    json!({"fields": {SEQ_FIELD: marker(seq)}, "custom": {SEQ_FIELD: marker(seq)}})
}

/// An API client bound to one tenant.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    root: String,
    base: String,
    token: String,
}

impl Api {
    /// A client for `{base_url}/@{tenant}/v1`.
    pub fn new(base_url: &str, tenant: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()?,
            root: base_url.to_owned(),
            base: format!("{base_url}/@{tenant}/v1"),
            token: token.to_owned(),
        })
    }

    /// Deliveries Herald still has pending (`herald_delivery_queue_pending` on `/metrics`,
    /// read from its database): sent deliveries count only once their outcome is recorded.
    pub async fn queue_pending(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.root))
            .send()
            .await
            .context("GET /metrics")?
            .error_for_status()?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("herald_delivery_queue_pending "))
            .context("/metrics has no herald_delivery_queue_pending")?
            .trim()
            .parse::<f64>()
            .map(|v| v as u64)
            .context("herald_delivery_queue_pending is not a number")
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: response is not JSON"))
    }

    /// Creates a text field named `name`; returns its id.
    pub async fn create_field(&self, name: &str) -> anyhow::Result<Value> {
        let v = self
            .send(
                reqwest::Method::POST,
                "/fields",
                &json!({"name": name, "type": "text"}),
            )
            .await?;
        id_of(&v)
    }

    /// Creates a project with `key` and `name`; returns its id.
    pub async fn create_project(&self, key: &str, name: &str) -> anyhow::Result<Value> {
        let mut body = seq_attributes(0);
        body["key"] = key.into();
        body["name"] = name.into();
        let v = self.send(reqwest::Method::POST, "/projects", &body).await?;
        id_of(&v)
    }

    /// The change behind every measured delivery: sets the project's seq to `seq`.
    pub async fn change_project(&self, id: &Value, seq: u64) -> anyhow::Result<()> {
        let body = seq_attributes(seq);
        self.send(reqwest::Method::PATCH, &format!("/projects/{}", plain(id)), &body)
            .await?;
        Ok(())
    }

    /// Creates a webhook for `Project:Updated` to `url` in `format`; returns its id.
    pub async fn create_webhook(&self, url: &str, format: &str) -> anyhow::Result<Value> {
        let body = json!({
            "url": url,
            "eventTypes": ["Project:Updated"],
            "httpVerb": "POST",
            "format": format,
        });
        let v = self.send(reqwest::Method::POST, "/Webhooks", &body).await?;
        id_of(&v)
    }
}

/// `data.id` (or a top-level `id`) of a create response.
fn id_of(v: &Value) -> anyhow::Result<Value> {
    v.get("data")
        .and_then(|d| d.get("id"))
        .or_else(|| v.get("id"))
        .cloned()
        .with_context(|| format!("no id in response {v}"))
}

/// An id as it appears in a path (numbers and strings alike, without quotes).
fn plain(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
