//! Headless Chromium through chromedriver, for the browser tests: a chromedriver process
//! on a free port (killed on drop), a fantoccini session with a fresh profile, and helpers
//! that wait on conditions with deadlines (never fixed sleeps) and write screenshots.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page may take to show what a step waits for.
pub const STEP: Duration = Duration::from_secs(15);

/// A running chromedriver and one browser session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
    session: Option<String>,
    _profile: tempfile::TempDir,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver alone would orphan Chromium: end the WebDriver session first
        // (chromedriver then quits the browser), then kill chromedriver's process group
        // (its own, see `start`) in case a browser process is still around, e.g. after a
        // panic mid-command.
        if let Some(id) = &self.session {
            quit_session(self.port, id);
        }
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` over a blocking socket (Drop cannot await); waits for the answer,
/// which chromedriver sends once the browser has quit.
fn quit_session(port: u16, id: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(STEP));
    let req = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
    }
}

/// `true` (with a notice) when browser tests are switched off with
/// `HERALD_SKIP_BROWSER_TESTS=1`; otherwise a missing chromedriver or Chromium fails the
/// test with a message saying how to install them.
pub fn skip() -> bool {
    if std::env::var("HERALD_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("HERALD_SKIP_BROWSER_TESTS=1: skipping the browser test");
        return true;
    }
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing: install them with \
         `apt-get install chromium chromium-driver` (bash .ci/run does), or set \
         HERALD_SKIP_BROWSER_TESTS=1 to skip the browser tests"
    );
    false
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session for pages under `base`.
    pub async fn start(base: &str) -> Self {
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Its own process group, so Drop can end it and every browser it started.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + STEP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = driver.kill();
                panic!("chromedriver did not listen on port {port} within {STEP:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                panic!("cannot start a Chromium session through chromedriver: {e}");
            }
        };
        let session = client.session_id().await.ok().flatten();
        Self {
            client,
            driver,
            port,
            session,
            _profile: profile,
            base: base.to_owned(),
        }
    }

    /// Opens `path` (relative to Herald's base URL).
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` within {STEP:?}: {e}"))
    }

    /// Waits until the path of the current URL satisfies `ok`.
    pub async fn wait_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, || async {
            let url = self.client.current_url().await.ok()?;
            ok(url.path()).then(|| url.path().to_owned())
        })
        .await
    }

    /// Polls `probe` until it yields a value or [`STEP`] passes (then fails naming `what`).
    pub async fn wait_until<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            if Instant::now() > deadline {
                let src = self.client.source().await.unwrap_or_default();
                panic!("timed out after {STEP:?} waiting for {what}; page:\n{src}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into the field matching `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Saves a full-page screenshot to `target/ui-screenshots/{name}.png` at `width`.
    pub async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        let _ = self.client.set_window_size(width, 900).await;
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(900);
        let h = u32::try_from(height).unwrap_or(900).clamp(600, 4000);
        let _ = self.client.set_window_size(width, h + 120).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        let _ = self.client.set_window_size(1280, 900).await;
        path
    }

    /// The page's HTML source as the browser has it.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }
}
