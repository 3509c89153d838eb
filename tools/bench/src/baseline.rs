//! The baseline: the same sink driven by a bare reqwest client (rustls, keep-alive pool)
//! posting the same bodies with the same concurrency Herald may use — no database, no
//! signing, no bookkeeping. Herald ÷ baseline says how much of the machine's loopback
//! HTTPS capacity the delivery engine turns into deliveries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::task::JoinSet;

use crate::metrics::{analyse, Analysis};
use crate::record::{now_ns, SEQ_MARKER};
use crate::sinkctl::Sink;

/// A body with its seq markers cut out, so each request can carry its own seq.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Bytes>,
}

impl Template {
    /// Splits `body` around every `hbseq-<digits>`. A body without a marker is wrapped as
    /// `{"m":"hbseq-N.","b":…}` so that every request still carries its seq.
    pub fn new(body: &[u8]) -> Self {
        let mut parts = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while let Some(pos) = body[i..].windows(SEQ_MARKER.len()).position(|w| w == SEQ_MARKER) {
            let m = i + pos + SEQ_MARKER.len();
            parts.push(Bytes::copy_from_slice(&body[start..m]));
            let digits = body[m..].iter().take_while(|b| b.is_ascii_digit()).count();
            start = m + digits;
            i = start;
        }
        if parts.is_empty() {
            return Self::new(
                format!("{{\"m\":\"hbseq-0.\",\"b\":{}}}", String::from_utf8_lossy(body)).as_bytes(),
            );
        }
        parts.push(Bytes::copy_from_slice(&body[start..]));
        Self { parts }
    }

    /// A PPM-like body of about one kilobyte, for when no Herald body is at hand.
    pub fn synthetic() -> Self {
        let attrs: String = (0..12)
            .map(|i| format!("\"Field {i}\":\"value {i} of a typical project attribute\","))
            .collect();
        let body = format!(
            "{{\"WebhookId\":\"{}\",\"MessageId\":\"{}\",\"Data\":{{\"Id\":\"{}\",\"Attributes\":{{{attrs}\
             \"Bench Seq\":\"hbseq-1.\"}},\"BeforeAttributes\":{{{attrs}\"Bench Seq\":\"hbseq-0.\"}},\
             \"Initiator\":{{\"UserId\":\"bench\",\"FullName\":\"Bench\",\"LogonAccount\":\"bench\"}},\
             \"TimeStamp\":\"2026-01-01T00:00:00.0000000Z\"}}}}",
            uuid::Uuid::nil(),
            uuid::Uuid::nil(),
            uuid::Uuid::nil()
        );
        Self::new(body.as_bytes())
    }

    /// The body for change `seq`.
    pub fn render(&self, seq: u64) -> Vec<u8> {
        let s = seq.to_string();
        let mut out = Vec::with_capacity(self.parts.iter().map(Bytes::len).sum::<usize>() + 24);
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(s.as_bytes());
            }
            out.extend_from_slice(p);
        }
        out
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct BaselineSpec {
    /// Changes; each goes to every hook.
    pub changes: u64,
    /// `/hook/0` … `/hook/{hooks-1}`.
    pub hooks: u32,
    /// Concurrent requests per hook (Herald's `per_webhook_concurrency`).
    pub per_hook_concurrency: usize,
    /// Body template.
    pub template: Template,
}

/// Posts every (change, hook) pair once and analyses what the sink received.
pub async fn run(sink: &Sink, spec: &BaselineSpec) -> anyhow::Result<(Analysis, u64)> {
    sink.reset().await?;
    let mut client = reqwest::Client::builder()
        .use_rustls_tls()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30));
    if let Some(pem) = &sink.ca_pem {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
    }
    let client = client.build().context("baseline client")?;
    let template = Arc::new(spec.template.clone());
    let conc = spec.per_hook_concurrency.max(1) as u64;
    let start_ns = now_ns();
    let mut tasks = JoinSet::new();
    for hook in 0..spec.hooks {
        for lane in 0..conc {
            let (client, template, url) = (client.clone(), Arc::clone(&template), sink.url(hook as usize));
            let changes = spec.changes;
            tasks.spawn(async move {
                let mut errors = 0u64;
                let mut seq = lane + 1;
                while seq <= changes {
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("webhook-id", uuid::Uuid::new_v4().to_string())
                        .body(template.render(seq))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {}
                        _ => errors += 1,
                    }
                    seq += conc;
                }
                errors
            });
        }
    }
    let mut errors = 0;
    while let Some(e) = tasks.join_next().await {
        errors += e.unwrap_or(1);
    }
    let acked: Vec<(u64, u64)> = (1..=spec.changes).map(|s| (s, start_ns)).collect();
    let hooks: Vec<u32> = (0..spec.hooks).collect();
    let records = sink.records().await?;
    Ok((analyse(&records, &acked, &hooks), errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::seq_in;

    #[test]
    fn template_replaces_every_marker() {
        let t = Template::new(br#"{"a":"hbseq-12.","b":"hbseq-11."}"#);
        assert_eq!(t.render(7), br#"{"a":"hbseq-7.","b":"hbseq-7."}"#.to_vec());
        let wrapped = Template::new(b"[1]");
        assert_eq!(seq_in(&wrapped.render(9)), Some(9));
        let synthetic = Template::synthetic().render(123);
        assert_eq!(seq_in(&synthetic), Some(123));
        assert!(synthetic.len() > 900, "{}", synthetic.len());
        serde_json::from_slice::<serde_json::Value>(&synthetic).expect("valid JSON");
    }
}
