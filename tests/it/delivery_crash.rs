//! Killing nodes loses nothing: the real `herald` binary, `kill -9` mid-run, a restart (or a
//! second node on PostgreSQL), and every (event, webhook) pair received at least once —
//! counted as distinct `webhook-id`s — with no delivery attempted by two nodes at once.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::support::app::{postgres_url, TestSchema};
use crate::support::hooks::eventually;
use crate::support::{Reply, TestReceiver};

const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A `herald serve` process.
struct Node {
    child: Child,
    base: String,
    token: Option<String>,
}

impl Node {
    /// Starts `herald serve` with `env` and waits for its banner.
    fn start(dir: &Path, env: &[(String, String)], log: &str) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .env_remove("HERALD_DATABASE_URL")
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_DATA_DIR", dir)
            .env("HERALD_MASTER_KEY", MASTER_KEY)
            .env("HERALD_ALLOWED_TARGET_NETWORKS", "127.0.0.0/8")
            .env("HERALD_REQUEST_TIMEOUT_SECS", "2")
            .env("HERALD_POLL_INTERVAL_MS", "200")
            .env("HERALD_RETRY_SCHEDULE", "100ms,200ms,500ms,1s,1s,1s")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(log)).expect("log file"));
        let mut child = cmd.spawn().expect("herald starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut base, mut token) = (None, None);
        while base.is_none() || token.is_none() {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(url) = line.split("listening on ").nth(1) {
                base = Some(url.trim().to_owned());
            }
            if line.trim_start().starts_with("hrld_") {
                token = Some(line.trim().to_owned());
            }
            if line.starts_with("API docs:") {
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base: base.expect("herald printed its address"),
            token,
        }
    }

    fn kill(&mut self) {
        // SIGKILL: no graceful shutdown, leases stay behind.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Warnings and errors the nodes logged into `dir`, for failure messages.
fn node_logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                .take(20)
            {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Three receivers, slow for now (so a backlog builds before the kill), and one CA bundle
/// that trusts all of them.
async fn receivers(dir: &Path, delay: Duration) -> (Vec<TestReceiver>, String) {
    let mut rx = Vec::new();
    let mut pem = String::new();
    for _ in 0..3 {
        let r = TestReceiver::start().await;
        r.reply_with(Reply::ok().delay(delay));
        pem.push_str(r.ca_pem());
        rx.push(r);
    }
    let path = dir.join("cas.pem");
    std::fs::write(&path, pem).expect("CA bundle");
    (rx, path.display().to_string())
}

async fn create_webhooks(client: &reqwest::Client, node: &Node, token: &str, rx: &[TestReceiver]) {
    for r in rx {
        let resp = client
            .post(format!("{}/@default/v1/Webhooks", node.base))
            .bearer_auth(token)
            .json(&json!({"url": r.url(), "format": "standard", "eventTypes": ["Project:Created"]}))
            .send()
            .await
            .expect("create webhook");
        assert_eq!(resp.status(), 201);
    }
}

/// Creates projects `range` through `bases` (round robin), 8 at a time; returns how many
/// were acknowledged (an event is only promised once its request succeeded).
async fn send_events(
    client: &reqwest::Client,
    bases: &[&str],
    token: &str,
    range: std::ops::Range<usize>,
) -> usize {
    futures::stream::iter(range)
        .map(|i| {
            let url = format!("{}/@default/v1/projects", bases[i % bases.len()]);
            let req = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"key": format!("K{i}"), "name": format!("Project {i}")}));
            async move {
                match req.send().await {
                    Ok(r) if r.status() == 201 => true,
                    Ok(r) => {
                        eprintln!(
                            "event {i} refused: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        );
                        false
                    }
                    Err(e) => {
                        eprintln!("event {i} not sent: {e}");
                        false
                    }
                }
            }
        })
        .buffer_unordered(8)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

/// Waits until every receiver has seen `n` distinct `webhook-id`s.
async fn all_received(rx: &[TestReceiver], n: usize) {
    eventually(
        &format!("{n} distinct deliveries per receiver"),
        Duration::from_secs(90),
        || async {
            let counts: Vec<usize> = rx
                .iter()
                .map(|r| {
                    let ids: HashSet<String> = r
                        .requests()
                        .iter()
                        .filter_map(|q| q.header("webhook-id").map(str::to_owned))
                        .collect();
                    ids.len()
                })
                .collect();
            counts.iter().all(|c| *c >= n).then_some(())
        },
    )
    .await;
}

async fn crash_and_restart(env: Vec<(String, String)>) {
    const EVENTS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let (rx, ca) = receivers(dir.path(), Duration::from_millis(300)).await;
    let mut env = env;
    env.push(("HERALD_EXTRA_CA_FILE".into(), ca));
    let client = reqwest::Client::new();
    let mut node = Node::start(dir.path(), &env, "node-1.log");
    let token = node.token.clone().expect("first start prints a token");
    create_webhooks(&client, &node, &token, &rx).await;
    let mut acked = send_events(&client, &[&node.base], &token, 0..EVENTS / 2).await;
    node.kill();
    let received = rx.iter().map(|r| r.requests().len()).sum::<usize>();
    assert!(
        received < 3 * acked,
        "the kill happened mid-run ({received} of {} received)",
        3 * acked
    );
    for r in &rx {
        r.reply_with(Reply::ok());
    }
    let node = Node::start(dir.path(), &env, "node-2.log");
    acked += send_events(&client, &[&node.base], &token, EVENTS / 2..EVENTS).await;
    assert_eq!(acked, EVENTS, "{}", node_logs(dir.path()));
    all_received(&rx, acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_loses_nothing_on_sqlite() {
    crash_and_restart(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_loses_nothing_on_postgres() {
    let Some(url) = postgres_url() else {
        eprintln!("HERALD_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    let schema = TestSchema::new(&url);
    crash_and_restart(schema.env()).await;
}

/// Two nodes share one PostgreSQL queue; one is killed; the other finishes its work, and no
/// delivery is ever attempted by both at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_queue_and_survive_a_kill() {
    const EVENTS: usize = 600;
    let Some(url) = postgres_url() else {
        eprintln!("HERALD_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    let schema = TestSchema::new(&url);
    let dir = tempfile::tempdir().unwrap();
    let (rx, ca) = receivers(dir.path(), Duration::from_secs(1)).await;
    let mut env = schema.env();
    env.push(("HERALD_EXTRA_CA_FILE".into(), ca));
    let client = reqwest::Client::new();
    let mut a = Node::start(dir.path(), &env, "node-a.log");
    let token = a.token.clone().expect("first start prints a token");
    let b_dir = tempfile::tempdir().unwrap();
    let b = Node::start(b_dir.path(), &env, "node-b.log");
    assert!(b.token.is_none(), "the second node joins the existing database");
    create_webhooks(&client, &a, &token, &rx).await;
    let mut acked = send_events(&client, &[&a.base, &b.base], &token, 0..EVENTS / 2).await;
    a.kill();
    let received = rx.iter().map(|r| r.requests().len()).sum::<usize>();
    assert!(
        received < 3 * acked,
        "the kill happened mid-run ({received} of {} received)",
        3 * acked
    );
    for r in &rx {
        r.reply_with(Reply::ok());
    }
    acked += send_events(&client, &[&b.base], &token, EVENTS / 2..EVENTS).await;
    assert_eq!(
        acked,
        EVENTS,
        "{}{}",
        node_logs(dir.path()),
        node_logs(b_dir.path())
    );
    all_received(&rx, acked).await;
    for r in &rx {
        assert_eq!(r.overlaps(), 0, "a delivery was attempted by two nodes at once");
    }
}
