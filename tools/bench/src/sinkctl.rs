//! The harness's handle on one sink process: spawn it (`herald-bench sink …` — this same
//! binary), read its announcement, drive its control port, and collect its ledger.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::record::Record;
use crate::sink::book::Stats;
use crate::sink::Announcement;

/// How to start a sink.
#[derive(Debug, Clone, Default)]
pub struct SinkSpec {
    /// HTTPS (Herald only delivers to `https://`); plain HTTP otherwise.
    pub tls: bool,
    /// Share of requests answered `500`.
    pub fail_pct: u32,
    /// Never answer.
    pub never: bool,
    /// Start with the receiving port closed.
    pub down: bool,
}

/// A running sink process (killed when dropped).
pub struct Sink {
    child: Child,
    /// The receiving port.
    pub port: u16,
    /// CA certificate (PEM) when HTTPS.
    pub ca_pem: Option<String>,
    tls: bool,
    control: String,
    http: reqwest::Client,
}

impl Sink {
    /// Starts a sink and waits for its announcement.
    pub async fn spawn(spec: &SinkSpec) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot locate herald-bench itself")?;
        let mut cmd = Command::new(exe);
        cmd.arg("sink").arg("--fail-pct").arg(spec.fail_pct.to_string());
        for (on, flag) in [
            (spec.tls, "--tls"),
            (spec.never, "--never"),
            (spec.down, "--down"),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot start a sink process")?;
        let stdout = child.stdout.take().context("sink stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("sink did not announce itself within 10 s")??
            .context("sink exited before announcing itself")?;
        let a: Announcement =
            serde_json::from_str(&line).with_context(|| format!("bad sink announcement {line:?}"))?;
        Ok(Self {
            child,
            port: a.port,
            ca_pem: a.ca_pem,
            tls: spec.tls,
            control: format!("http://127.0.0.1:{}", a.control_port),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        })
    }

    /// The URL of webhook number `hook` on this sink.
    pub fn url(&self, hook: usize) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/hook/{hook}", self.port)
    }

    /// The sink's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn post(&self, path: &str) -> anyhow::Result<()> {
        let r = self.http.post(format!("{}{path}", self.control)).send().await?;
        if !r.status().is_success() {
            bail!("sink control {path}: {} {}", r.status(), r.text().await?);
        }
        Ok(())
    }

    /// Reopens the receiving port.
    pub async fn up(&self) -> anyhow::Result<()> {
        self.post("/up").await
    }

    /// Forgets all records.
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.post("/reset").await
    }

    /// Current totals.
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let r = self.http.get(format!("{}/stats", self.control)).send().await?;
        Ok(r.error_for_status()?.json().await?)
    }

    /// Every record so far.
    pub async fn records(&self) -> anyhow::Result<Vec<Record>> {
        let r = self.http.get(format!("{}/records", self.control)).send().await?;
        let text = r.error_for_status()?.text().await?;
        text.lines()
            .map(|l| Record::parse_line(l).with_context(|| format!("bad record line {l:?}")))
            .collect()
    }

    /// A body Herald actually sent (for the baseline), if one arrived.
    pub async fn sample(&self) -> anyhow::Result<Option<bytes::Bytes>> {
        let r = self.http.get(format!("{}/sample", self.control)).send().await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(r.error_for_status()?.bytes().await?))
    }

    /// Waits until `unique_ok` distinct deliveries were answered 2xx. Gives up when nothing
    /// new arrived for `stall`, or after `max`, returning the last totals either way: the
    /// caller reports what is missing. (The sink is another process, so this polls.)
    pub async fn wait_for(&self, unique_ok: u64, stall: Duration, max: Duration) -> anyhow::Result<Stats> {
        let start = Instant::now();
        let mut last = self.stats().await?;
        let mut last_change = Instant::now();
        while last.unique_ok < unique_ok && start.elapsed() < max && last_change.elapsed() < stall {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.stats().await?;
            if now.requests != last.requests {
                last_change = Instant::now();
            }
            last = now;
        }
        Ok(last)
    }
}
