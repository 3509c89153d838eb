//! The sink process on its own: HTTPS with its announced CA, the 500 share, never-answer,
//! down/up, and the ledger (first attempts, retries, duplicates).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Sink {
    _child: Child,
    port: u16,
    control: String,
    client: reqwest::Client,
}

async fn sink(args: &[&str]) -> Sink {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .arg("sink")
        .arg("--tls")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start sink");
    let out = child.stdout.take().expect("stdout");
    let line = BufReader::new(out)
        .lines()
        .next_line()
        .await
        .expect("read announcement")
        .expect("an announcement line");
    let a: Value = serde_json::from_str(&line).expect("announcement is JSON");
    let ca = a["ca_pem"].as_str().expect("CA in the announcement");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM"))
        .timeout(Duration::from_millis(700))
        // A new connection per request: the down/up checks are about the port, and a
        // pooled connection closed by `/down` could be reused before its close is seen.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    Sink {
        _child: child,
        port: a["port"].as_u64().expect("port") as u16,
        control: format!("http://127.0.0.1:{}", a["control_port"]),
        client,
    }
}

impl Sink {
    async fn post(&self, id: &str, seq: u64) -> Result<u16, reqwest::Error> {
        let r = self
            .client
            .post(format!("https://localhost:{}/hook/3", self.port))
            .header("webhook-id", id)
            .body(format!("{{\"v\":\"hbseq-{seq}.\"}}"))
            .send()
            .await?;
        Ok(r.status().as_u16())
    }

    async fn control(&self, method: reqwest::Method, path: &str) -> String {
        let r = self
            .client
            .request(method, format!("{}{path}", self.control))
            .send()
            .await
            .expect("control request");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.text().await.expect("control body")
    }

    async fn stats(&self) -> Value {
        serde_json::from_str(&self.control(reqwest::Method::GET, "/stats").await).expect("stats JSON")
    }
}

#[tokio::test]
async fn fails_the_chosen_share_and_tells_retries_from_duplicates() {
    let s = sink(&["--fail-pct", "50"]).await;
    const IDS: u64 = 100;
    let mut refused = 0;
    for i in 0..IDS {
        if s.post(&format!("msg_{i}"), i).await.expect("answered") == 500 {
            refused += 1;
        }
    }
    // Each request is refused with odds of one half, independently (a pseudo-random pick,
    // the same on every run).
    assert!((35..=65).contains(&refused), "{refused} of {IDS} refused");
    // Repeat every id until each has had a 2xx, then once more: those are duplicates.
    for i in 0..IDS {
        let id = format!("msg_{i}");
        while s.post(&id, i).await.expect("answered") != 200 {}
        s.post(&id, i).await.expect("answered");
    }
    let st = s.stats().await;
    assert_eq!(st["first"], IDS);
    assert_eq!(st["unique_ok"], IDS);
    assert!(st["duplicates"].as_u64() >= Some(IDS), "{st}");
    assert!(st["retries"].as_u64() >= Some(refused), "{st}");
    let records = s.control(reqwest::Method::GET, "/records").await;
    let first = records.lines().next().expect("a record");
    assert!(first.starts_with("0 3 "), "{first}");
}

#[tokio::test]
async fn never_answers_and_goes_down_and_up() {
    let s = sink(&["--never"]).await;
    assert!(s.post("a", 1).await.is_err(), "a never-answering sink answered");
    assert_eq!(s.stats().await["unanswered"], 1);

    s.control(reqwest::Method::POST, "/mode?never=0").await;
    assert_eq!(s.post("b", 2).await.expect("answered"), 200);
    s.control(reqwest::Method::POST, "/down").await;
    let refused = s.post("c", 3).await.expect_err("port is down");
    assert!(refused.is_connect(), "{refused:?}");
    s.control(reqwest::Method::POST, "/up").await;
    assert_eq!(s.post("c", 3).await.expect("answered"), 200);
    assert!(s
        .control(reqwest::Method::GET, "/sample")
        .await
        .contains("hbseq-"));
}
