//! Running a real `herald serve` process for a scenario: a fresh database (a temporary data
//! directory for SQLite, a fresh schema for PostgreSQL), an admin token from
//! `herald token create`, the settings that let it reach the loopback sink, and a clean
//! SIGTERM stop. [`api`] is the HTTP client for Herald's public API.

pub mod api;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How every Herald process of this run is started.
#[derive(Debug, Clone)]
pub struct HeraldSpec {
    /// The `herald` binary.
    pub bin: PathBuf,
    /// `postgres://…` for PostgreSQL; SQLite in the data directory otherwise.
    pub database_url: Option<String>,
    /// Where Herald's output goes (appended).
    pub log_file: PathBuf,
}

/// One scenario's database: a data directory (always: master key, SQLite file) and, for
/// PostgreSQL, a schema of its own.
pub struct Database {
    dir: tempfile::TempDir,
    url: Option<String>,
    schema: Option<String>,
}

impl Database {
    /// A fresh, empty database for `spec`.
    pub fn fresh(spec: &HeraldSpec) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("herald-bench-").tempdir()?;
        let schema = spec
            .database_url
            .as_ref()
            .map(|_| format!("herald_bench_{}", uuid::Uuid::new_v4().simple()));
        Ok(Self {
            dir,
            url: spec.database_url.clone(),
            schema,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes the database occupies: SQLite files (with WAL) or the schema's tables and
    /// indexes in PostgreSQL (through `psql`; `None` when that is unavailable).
    pub async fn size_bytes(&self) -> Option<u64> {
        match (&self.url, &self.schema) {
            (Some(url), Some(schema)) => {
                let sql = format!(
                    "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = '{schema}' AND c.relkind = 'r'"
                );
                psql(url, &sql).await.ok()?.trim().parse().ok()
            }
            _ => {
                let mut total = 0;
                for entry in std::fs::read_dir(self.dir()).ok()? {
                    let meta = entry.ok()?.metadata().ok()?;
                    if meta.is_file() {
                        total += meta.len();
                    }
                }
                Some(total)
            }
        }
    }

    /// The local PostgreSQL server's postmaster: the parent of its checkpointer (asked
    /// through `psql`). `None` on SQLite, when the server cannot be asked, or when it is
    /// not a process on this machine.
    pub async fn postmaster_pid(&self) -> Option<u32> {
        let url = self.url.as_ref()?;
        let sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'";
        let checkpointer: u32 = psql(url, sql).await.ok()?.trim().parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{checkpointer}/status")).ok()?;
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:"))?;
        ppid.trim().parse().ok()
    }

    /// Bytes in SQLite's write-ahead log (part of [`Self::size_bytes`]; it shrinks only at
    /// checkpoints, so it can dominate short runs). `None` on PostgreSQL.
    pub fn wal_bytes(&self) -> Option<u64> {
        if self.url.is_some() {
            return None;
        }
        let wal = std::fs::read_dir(self.dir())
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with("-wal"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        Some(wal)
    }

    fn args(&self, cmd: &mut Command) {
        cmd.arg("--data-dir").arg(self.dir());
        if let Some(url) = &self.url {
            cmd.arg("--database-url").arg(url);
        }
        if let Some(schema) = &self.schema {
            cmd.env("HERALD_DATABASE_SCHEMA", schema);
        }
    }
}

/// The PostgreSQL schema goes with the database, on every way out of a scenario — finished,
/// failed, or abandoned when the run is interrupted (Ctrl-C, SIGTERM; see `main`) — so runs do
/// not leave schemas behind. Synchronous (`psql` as a blocking child), as `Drop` must be;
/// a Herald still holding locks in the schema makes it wait at most `lock_timeout`.
///
/// Tried up to [`DROP_TRIES`] times: after an interruption the killed Herald's sessions can
/// still be finishing a statement, and the `DROP`, which locks the schema's tables one by
/// one, can deadlock with one of them (seen in CI: PostgreSQL cancelled the `DROP`). That
/// session ends with its statement, so the next try goes through.
impl Drop for Database {
    fn drop(&mut self) {
        let (Some(url), Some(schema)) = (&self.url, &self.schema) else {
            return;
        };
        let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
        for attempt in 1..=DROP_TRIES {
            let why = match psql_command(url, &sql).output() {
                Ok(o) if o.status.success() => return,
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                Err(e) => {
                    eprintln!("note: could not drop schema {schema}: cannot run psql: {e}");
                    return;
                }
            };
            if attempt == DROP_TRIES {
                eprintln!("note: could not drop schema {schema}: {why}");
            } else {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
    }
}

/// Most tries at dropping a scenario's schema.
const DROP_TRIES: u32 = 4;

/// `psql` running `sql` at `url`, printing bare values only.
/// The directory of the server's Unix socket when `url` reaches it over loopback TCP
/// (host `127.0.0.1`, `localhost` or `[::1]`, no `host=` parameter) and that socket is on
/// this machine; `None` otherwise, or when the server cannot be asked. Why: a node on its
/// database's machine connects through the socket (libpq's default without a host);
/// loopback TCP costs both sides a TCP stack per message, which on this VM took ~15 % of
/// `fanout-pg`'s throughput (BENCHMARKS.md).
pub async fn local_socket(url: &str) -> Option<String> {
    if !names_loopback_tcp(url) {
        return None;
    }
    let out = psql(
        url,
        "SELECT split_part(current_setting('unix_socket_directories'), ',', 1) || '|' || current_setting('port')",
    )
    .await
    .ok()?;
    let (dir, port) = out.trim().split_once('|')?;
    let dir = dir.trim();
    let dir = if dir.is_empty() || dir.starts_with('@') {
        return None;
    } else {
        dir
    };
    std::path::Path::new(dir)
        .join(format!(".s.PGSQL.{}", port.trim()))
        .exists()
        .then(|| dir.to_owned())
}

/// Whether `url` (`postgres://[user@]host[:port]/…`) names a loopback host and no `host=`
/// parameter.
fn names_loopback_tcp(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    matches!(host, "127.0.0.1" | "localhost" | "::1") && !query.split('&').any(|kv| kv.starts_with("host="))
}

/// `url` with its connection made through the Unix socket in `dir`.
pub fn through_socket(url: &str, dir: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}host={dir}")
}

fn psql_command(url: &str, sql: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("psql");
    cmd.arg(url).args(["-qtAX", "-c", sql]);
    cmd
}

async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::from(psql_command(url, sql))
        .output()
        .await
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `herald token create … --scopes admin` and returns the token (its last line).
pub async fn create_token(spec: &HeraldSpec, db: &Database, tenant: &str) -> anyhow::Result<String> {
    let mut cmd = Command::new(&spec.bin);
    db.args(&mut cmd);
    cmd.args([
        "token", "create", "--tenant", tenant, "--user", "bench", "--scopes", "admin",
    ])
    .args(["--name", "herald-bench"])
    .env("RUST_LOG", "warn");
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run {}", spec.bin.display()))?;
    if !out.status.success() {
        bail!(
            "herald token create failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.lines().last().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        bail!("herald token create printed no token");
    }
    Ok(token)
}

/// Extra settings for one `serve`.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// CA file trusted for deliveries (`HERALD_EXTRA_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// `HERALD_WORKERS=false` when set: accept changes, deliver nothing (backlog building).
    pub no_workers: bool,
    /// Further `HERALD_*` variables, e.g. a short `HERALD_RETRY_SCHEDULE`.
    pub env: Vec<(String, String)>,
}

/// A running `herald serve`.
pub struct Herald {
    child: Child,
    /// Its process id (for `/proc` readings).
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

impl Herald {
    /// Starts `herald serve` on a free loopback port and waits until it listens.
    pub async fn start(spec: &HeraldSpec, db: &Database, opts: &ServeOptions) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_file)
            .with_context(|| format!("cannot open {}", spec.log_file.display()))?;
        let mut cmd = Command::new(&spec.bin);
        db.args(&mut cmd);
        cmd.arg("serve")
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_ALLOWED_TARGET_NETWORKS", "127.0.0.0/8")
            .env("HERALD_WORKERS", if opts.no_workers { "false" } else { "true" })
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        if let Some(ca) = &opts.ca_file {
            cmd.env("HERALD_EXTRA_CA_FILE", ca);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", spec.bin.display()))?;
        let pid = child.id().context("herald exited at once")?;
        let stdout = child.stdout.take().context("herald stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base_url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some((_, url)) = line.split_once("listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("herald exited before listening (see {})", spec.log_file.display())
        })
        .await
        .context("herald did not start listening within 60 s")??;
        // Keep draining stdout into the log so Herald never blocks on a full pipe.
        let log_path = spec.log_file.clone();
        tokio::spawn(async move {
            let Ok(mut f) = tokio::fs::OpenOptions::new().append(true).open(&log_path).await else {
                return;
            };
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = f.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        Ok(Self { child, pid, base_url })
    }

    /// SIGTERM, then up to 20 s for a clean exit, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("note: herald did not stop within 20 s of SIGTERM; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod socket_tests {
    use super::{names_loopback_tcp, through_socket};

    #[test]
    fn only_loopback_tcp_urls_without_a_host_parameter_go_through_the_socket() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://postgres@localhost/test",
            "postgresql://u:p@[::1]:5433/db?sslmode=disable",
        ] {
            assert!(names_loopback_tcp(url), "{url}");
        }
        for url in [
            "postgres://postgres@db.example:5432/test",
            "postgres://postgres@10.0.0.5/test",
            "postgres://postgres@localhost/test?host=/var/run/postgresql",
            "not a url",
        ] {
            assert!(!names_loopback_tcp(url), "{url}");
        }
    }

    #[test]
    fn the_socket_is_added_as_the_host_parameter() {
        assert_eq!(
            through_socket("postgres://p@127.0.0.1:5432/test", "/var/run/postgresql"),
            "postgres://p@127.0.0.1:5432/test?host=/var/run/postgresql"
        );
        assert_eq!(
            through_socket("postgres://p@localhost/test?sslmode=disable", "/tmp"),
            "postgres://p@localhost/test?sslmode=disable&host=/tmp"
        );
    }
}
