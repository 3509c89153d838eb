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
    /// Rounds of `changes` are posted until this long has passed (at least one round).
    /// Why: Herald's throughput is sustained over ≥ 20 s in a full run, and a single round
    /// of the same number of bodies takes the bare client only a few seconds — a sample of
    /// whatever else the shared machine did in those seconds. Measured back to back on
    /// one hour: 45–66k/s for 3–4 s rounds, 62.7–67.4k/s over 20 s windows.
    pub min_time: Duration,
}

/// What the bare client achieved.
#[derive(Debug)]
pub struct BaselineRun {
    /// Every round's analysis together: counts summed, throughput over the rounds'
    /// windows together (deliveries ÷ seconds), no latency.
    pub analysis: Analysis,
    /// Requests that failed or were not answered 2xx.
    pub errors: u64,
    /// Each round's sustained rate, deliveries/s.
    pub round_rates: Vec<f64>,
}

/// Posts every (change, hook) pair once per round, in rounds until `spec.min_time` has
/// passed, and analyses what the sink received.
pub async fn run(sink: &Sink, spec: &BaselineSpec) -> anyhow::Result<BaselineRun> {
    let client = client(sink)?;
    let template = Arc::new(spec.template.clone());
    let started = std::time::Instant::now();
    let mut rounds = Vec::new();
    let mut errors = 0;
    loop {
        let (analysis, round_errors) = round(sink, &client, &template, spec).await?;
        rounds.push(analysis);
        errors += round_errors;
        if started.elapsed() >= spec.min_time {
            break;
        }
    }
    Ok(BaselineRun {
        round_rates: rounds.iter().map(|a| a.throughput.per_sec).collect(),
        analysis: sum_rounds(&rounds),
        errors,
    })
}

/// The rounds as one run: counts added up, and the throughput of all their sustained
/// windows together, so a long round weighs more than a short one.
fn sum_rounds(rounds: &[Analysis]) -> Analysis {
    let mut total = Analysis::default();
    for a in rounds {
        total.expected += a.expected;
        total.delivered += a.delivered;
        total.lost += a.lost;
        total.duplicates += a.duplicates;
        total.first_attempts += a.first_attempts;
        total.retries += a.retries;
        total.answered_err += a.answered_err;
        total.unexpected += a.unexpected;
        total.throughput.deliveries += a.throughput.deliveries;
        total.throughput.window_secs += a.throughput.window_secs;
    }
    if total.throughput.window_secs > 0.0 {
        total.throughput.per_sec = total.throughput.deliveries as f64 / total.throughput.window_secs;
    }
    total
}

/// The bare client: rustls with the sink's CA, a keep-alive pool as large as any lane count.
fn client(sink: &Sink) -> anyhow::Result<reqwest::Client> {
    let mut client = reqwest::Client::builder()
        .use_rustls_tls()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30));
    if let Some(pem) = &sink.ca_pem {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
    }
    client.build().context("baseline client")
}

/// One round: every (change, hook) pair posted once, with `per_hook_concurrency` requests
/// in flight per hook, on a freshly reset sink.
async fn round(
    sink: &Sink,
    client: &reqwest::Client,
    template: &Arc<Template>,
    spec: &BaselineSpec,
) -> anyhow::Result<(Analysis, u64)> {
    sink.reset().await?;
    let conc = spec.per_hook_concurrency.max(1) as u64;
    let start_ns = now_ns();
    let mut tasks = JoinSet::new();
    for hook in 0..spec.hooks {
        for lane in 0..conc {
            let (client, template, url) = (client.clone(), Arc::clone(template), sink.url(hook as usize));
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

    fn round_of(delivered: u64, secs: f64, lost: u64) -> Analysis {
        Analysis {
            expected: delivered + lost,
            delivered,
            lost,
            throughput: crate::metrics::Throughput {
                per_sec: delivered as f64 / secs,
                window_secs: secs,
                deliveries: delivered,
            },
            ..Analysis::default()
        }
    }

    #[test]
    fn rounds_add_up_and_their_rate_weighs_each_by_its_window() {
        // 60k/s for 10 s and 40k/s for 5 s: 800k in 15 s, not the rates' mean of 50k/s.
        let total = sum_rounds(&[round_of(600_000, 10.0, 0), round_of(200_000, 5.0, 3)]);
        assert_eq!(total.delivered, 800_000);
        assert_eq!(total.expected, 800_003);
        assert_eq!(total.lost, 3);
        assert_eq!(total.throughput.window_secs, 15.0);
        assert!((total.throughput.per_sec - 800_000.0 / 15.0).abs() < 1e-6);
        assert!(total.latency.is_none());
        assert_eq!(sum_rounds(&[]).throughput.per_sec, 0.0);
    }
}
