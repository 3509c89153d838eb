//! Building and sending one request. The headers follow design §3: ours first
//! (`Content-Type`, `Content-Length`, `User-Agent`, the three Standard Webhooks headers),
//! then the format's own, then the webhook's custom headers, whose secured values exist in
//! plaintext only in memory, only here. The attempt log gets a copy of the headers with
//! secured values and signatures masked.

use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT as USER_AGENT_HEADER};
use http::Method;

use super::client::{DeliveryClient, ErrorKind, Target, USER_AGENT};
use super::outcome::{Reply, Response, Sent};
use crate::crypto::MasterKey;
use crate::domain::webhook::{HttpVerb, MASK};
use crate::formats::signing::{signature_header, SigningSecret};
use crate::store::{DeliveryJob, StoredHeader, TargetRow};
use crate::timefmt::now_ms;

/// Most response headers kept for the attempt log.
const MAX_LOGGED_HEADERS: usize = 64;

/// A webhook's target made ready to send to: URL parsed, secrets and secured header
/// values opened. Built once per webhook configuration and cached by the worker.
pub struct Prepared {
    target: Target,
    method: Method,
    secret: SigningSecret,
    previous: Option<(SigningSecret, i64)>,
    /// `(name as configured, name, value, secured)`.
    custom: Vec<(String, HeaderName, HeaderValue, bool)>,
}

/// Why a target could not be prepared (a corrupt row or a changed master key); recorded
/// as the attempt's error, never with the value that failed.
pub fn prepare(target: &TargetRow, key: &MasterKey) -> Result<Prepared, String> {
    let url = Target::parse(&target.url).map_err(|e| format!("stored URL is invalid: {e}"))?;
    let open_secret = |sealed: &str| {
        key.open(sealed)
            .ok()
            .and_then(|s| SigningSecret::parse(&s).ok())
            .ok_or_else(|| "the signing secret cannot be opened with this master key".to_owned())
    };
    let secret = open_secret(&target.secret_sealed)?;
    let previous = match (&target.previous_secret_sealed, target.previous_secret_until) {
        (Some(sealed), Some(until)) => Some((open_secret(sealed)?, until)),
        _ => None,
    };
    let stored: Vec<StoredHeader> = serde_json::from_str(&target.headers_json)
        .map_err(|_| "stored custom headers are corrupt".to_owned())?;
    let mut custom = Vec::with_capacity(stored.len());
    for h in stored {
        let value = match (&h.sealed, h.value) {
            (Some(sealed), _) => key
                .open(sealed)
                .map_err(|_| format!("secured header {} cannot be opened with this master key", h.name))?,
            (None, v) => v.unwrap_or_default(),
        };
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("custom header name {} is invalid", h.name))?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("custom header {} has an invalid value", h.name))?;
        value.set_sensitive(h.secured);
        custom.push((h.name, name, value, h.secured));
    }
    Ok(Prepared {
        target: url,
        method: match target.http_verb {
            HttpVerb::Post => Method::POST,
            HttpVerb::Put => Method::PUT,
            HttpVerb::Patch => Method::PATCH,
        },
        secret,
        previous,
        custom,
    })
}

/// Sends `job` once and reports what happened. Never fails: every problem is a [`Reply`].
pub async fn send(client: &DeliveryClient, prepared: Result<&Prepared, &str>, job: &DeliveryJob) -> Sent {
    let started_at = now_ms();
    let clock = Instant::now();
    let (request_headers, reply) = match prepared {
        Ok(p) => attempt(client, p, job, started_at).await,
        Err(why) => (
            "[]".to_owned(),
            Reply::Failed(ErrorKind::Other {
                detail: why.to_owned(),
            }),
        ),
    };
    Sent {
        started_at,
        duration_ms: i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX),
        request_headers,
        reply,
    }
}

async fn attempt(client: &DeliveryClient, p: &Prepared, job: &DeliveryJob, now: i64) -> (String, Reply) {
    let id = job.id.to_string();
    let ts = now.div_euclid(1000);
    let previous = p
        .previous
        .as_ref()
        .filter(|(_, until)| *until > now)
        .map(|(s, _)| s);
    let signature = signature_header(&p.secret, previous, &id, ts, &job.body);

    let mut headers = HeaderMap::with_capacity(8 + job.format_headers.len() + p.custom.len());
    let mut logged: Vec<(&str, String)> = Vec::with_capacity(headers.capacity());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
    logged.push(("Content-Type", "application/json".into()));
    logged.push(("Content-Length", job.body.len().to_string()));
    logged.push(("User-Agent", USER_AGENT.into()));
    for (name, value) in [
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", &ts.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
        logged.push((name, value.to_owned()));
    }
    if let Ok(v) = HeaderValue::from_str(&signature) {
        headers.insert(HeaderName::from_static("webhook-signature"), v);
    }
    logged.push(("webhook-signature", masked_signature(&signature)));
    for (name, value) in job.format_headers.iter() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
            logged.push((name, value.clone()));
        }
    }
    for (shown_name, name, value, secured) in &p.custom {
        headers.insert(name.clone(), value.clone());
        let shown = if *secured {
            MASK.to_owned()
        } else {
            // Values may hold UTF-8 beyond ASCII (sent as raw bytes); `to_str` refuses
            // those, and the log showed such a header as empty.
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        logged.push((shown_name.as_str(), shown));
    }
    let logged = serde_json::to_string(&logged).unwrap_or_else(|_| "[]".into());

    let reply = match client
        .send(p.method.clone(), &p.target, headers, job.body.clone())
        .await
    {
        Ok(received) => Reply::Response(Response {
            status: received.status,
            headers: received
                .headers
                .iter()
                .take(MAX_LOGGED_HEADERS)
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: received.body,
        }),
        Err(kind) => Reply::Failed(kind),
    };
    (logged, reply)
}

/// `v1,********` for each signature in the header: the log shows how many were sent (one,
/// or two during a rotation) without the values.
fn masked_signature(header: &str) -> String {
    header
        .split(' ')
        .map(|s| format!("{},{MASK}", s.split(',').next().unwrap_or("v1")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_masked_but_counted() {
        assert_eq!(masked_signature("v1,abc"), "v1,********");
        assert_eq!(masked_signature("v1,abc v1,def"), "v1,******** v1,********");
    }
}
