//! `TestApp`: the real Herald, built exactly as `main` builds it, on a fresh database.

use std::path::PathBuf;

use herald::config::{DatabaseConfig, Overrides, Settings};
use herald::startup::Application;
use herald::store::Store;
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL URL for tests. `None` (the PostgreSQL variant is skipped with a notice)
/// only when `HERALD_TEST_POSTGRES_URL` is unset; `.ci/run` always sets it, so CI fails
/// rather than skips when PostgreSQL is unreachable.
pub fn postgres_url() -> Option<String> {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A unique schema name per test.
pub fn unique_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// `HERALD_DATABASE_URL` and `HERALD_DATABASE_SCHEMA` for `schema` at `url`. The URL sets
/// `application_name` to the schema's name, so [`TestSchema`] can find (and end) the
/// connections of the test that works in it.
fn schema_env(url: &str, schema: &str) -> Vec<(String, String)> {
    let sep = if url.contains('?') { '&' } else { '?' };
    vec![
        (
            "HERALD_DATABASE_URL".into(),
            format!("{url}{sep}application_name={schema}"),
        ),
        ("HERALD_DATABASE_SCHEMA".into(), schema.to_owned()),
    ]
}

/// A test's PostgreSQL schema, dropped with everything in it when the guard goes, so
/// test runs do not pile schemas up in the shared database (~80 per run).
pub struct TestSchema {
    url: String,
    pub name: String,
}

impl TestSchema {
    /// A fresh name in the database at `url` (Herald creates the schema on start).
    pub fn new(url: &str) -> Self {
        Self::adopt(url, &unique_schema())
    }

    /// The settings that point a Herald at this schema, its sessions named after it.
    pub fn env(&self) -> Vec<(String, String)> {
        schema_env(&self.url, &self.name)
    }

    /// Takes charge of dropping `name`.
    pub fn adopt(url: &str, name: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs on the test's runtime, which must not be blocked on from inside: the
        // statements run on a thread with a runtime of its own. A failure only leaves the
        // schema behind.
        let dropped = std::thread::spawn(move || -> Result<(), sqlx::Error> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(drop_schema(&url, &name))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("test schema {} left behind: {e}", self.name);
        }
    }
}

/// Drops schema `name`, ending the connections that work in it first. The test's server
/// may still hold a transaction open (a current-thread test runtime cannot run it while
/// the guard's drop waits), and a server still shutting down on a multi-thread runtime
/// reconnects and can deadlock with `DROP SCHEMA … CASCADE` (which locks table after
/// table): its connections carry the schema's name as their `application_name`, so each
/// try ends them and drops with a short `lock_timeout`, for up to a minute.
async fn drop_schema(url: &str, name: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query("SET lock_timeout = '2s'").execute(&mut c).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut c)
        .await?;
        match sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .execute(&mut c)
            .await
        {
            Ok(_) => return c.close().await,
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// Settings for a test instance on `backend`, with a fresh data directory.
pub fn test_settings(
    backend: Backend,
    dir: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> Option<Settings> {
    let mut env: Vec<(String, String)> = vec![
        ("HERALD_LISTEN".into(), "127.0.0.1:0".into()),
        ("HERALD_DATA_DIR".into(), dir.display().to_string()),
        (
            "HERALD_MASTER_KEY".into(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
        ),
        ("HERALD_ALLOWED_TARGET_NETWORKS".into(), "127.0.0.0/8".into()),
    ];
    if backend == Backend::Postgres {
        let Some(url) = postgres_url() else {
            eprintln!("HERALD_TEST_POSTGRES_URL is not set: skipping the PostgreSQL variant");
            return None;
        };
        env.extend(schema_env(&url, &unique_schema()));
    }
    for (k, v) in extra_env {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    Some(Settings::load_from(&Overrides::default(), &env).expect("test settings are valid"))
}

/// A running Herald; stopped when dropped.
pub struct TestApp {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    /// Keeps the data directory alive for the test.
    pub _dir: tempfile::TempDir,
    pub settings: Settings,
    /// The delivery engine (drain it with `run_once` when workers are off).
    pub delivery: herald::delivery::DeliveryEngine,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Last, so it goes after the server was told to stop.
    _schema: Option<TestSchema>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    /// Starts Herald on `backend`; `None` if that backend is not configured for tests.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts Herald with extra `HERALD_*` settings.
    pub async fn spawn_with(backend: Backend, env: &[(&str, &str)]) -> Option<Self> {
        super::logs::install();
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = test_settings(backend, dir.path(), env)?;
        let app = Application::build(settings.clone())
            .await
            .expect("application builds");
        let token = app
            .bootstrap_token()
            .expect("first start bootstraps a token")
            .token
            .clone();
        let base = app.base_url();
        let store = app.store();
        let delivery = app.delivery();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move { app.run_until_stopped(s).await });
        let schema = match &settings.database {
            DatabaseConfig::Postgres {
                url,
                schema: Some(name),
                ..
            } => Some(TestSchema::adopt(url, name)),
            _ => None,
        };
        Some(Self {
            base,
            token,
            client: reqwest::Client::new(),
            store,
            _dir: dir,
            settings,
            delivery,
            stop,
            task: Some(task),
            _schema: schema,
        })
    }

    /// A second node on this one's database (PostgreSQL; its own port and engine, the
    /// same settings, this node's token), stopped when dropped.
    pub async fn join(&self) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = Application::build(self.settings.clone())
            .await
            .expect("second node builds");
        assert!(
            app.bootstrap_token().is_none(),
            "the second node joins the database"
        );
        let (base, store, delivery) = (app.base_url(), app.store(), app.delivery());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move { app.run_until_stopped(s).await });
        Self {
            base,
            token: self.token.clone(),
            client: reqwest::Client::new(),
            store,
            _dir: dir,
            settings: self.settings.clone(),
            delivery,
            stop,
            task: Some(task),
            _schema: None,
        }
    }

    /// Stops the server and its delivery engine gracefully and waits until both are down.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops cleanly");
        }
    }

    /// Path of the SQLite file (SQLite backend only).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.settings.database {
            DatabaseConfig::Sqlite { path } => Some(path.clone()),
            DatabaseConfig::Postgres { .. } => None,
        }
    }

    /// Runs `sql` (one integer result) on the app's database directly, past Herald: for
    /// tests of what is stored rather than what the API shows.
    pub async fn db_count(&self, sql: &str) -> i64 {
        match &self.settings.database {
            DatabaseConfig::Sqlite { path } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
            DatabaseConfig::Postgres { .. } => {
                let mut c = self.pg_conn().await;
                let n = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
                sqlx::Connection::close(c).await.unwrap();
                n
            }
        }
    }

    /// A connection of its own holding `table` locked in `mode` (`LOCK TABLE … IN mode
    /// MODE`) inside an open transaction, until it rolls back or is dropped (PostgreSQL
    /// backend only): for tests of what waits for a table and what does not.
    pub async fn pg_lock(&self, table: &str, mode: &str) -> sqlx::PgConnection {
        let mut c = self.pg_conn().await;
        sqlx::query("BEGIN").execute(&mut c).await.unwrap();
        sqlx::query(&format!("LOCK TABLE {table} IN {mode} MODE"))
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    /// A store of its own on the app's PostgreSQL schema (PostgreSQL backend only): another
    /// node without an engine, nothing else using its pool. Its sessions are named
    /// `{schema}_{suffix}` (returned) so that a test can end just them, e.g. to drop its
    /// connections, or to have them hand in their table statistics, which an ended
    /// session does before it leaves `pg_stat_activity`.
    pub async fn pg_node(&self, suffix: &str) -> (Arc<dyn Store>, String) {
        self.pg_node_pooled(suffix, herald::config::DEFAULT_PG_MAX_CONNECTIONS)
            .await
    }

    /// [`TestApp::pg_node`] with a pool of at most `max_connections`.
    pub async fn pg_node_pooled(&self, suffix: &str, max_connections: u32) -> (Arc<dyn Store>, String) {
        let (url, schema) = self.pg_target();
        let name = format!("{schema}_{suffix}");
        let sep = if url.contains('?') { '&' } else { '?' };
        let store = herald::store::connect(&DatabaseConfig::Postgres {
            url: format!("{url}{sep}application_name={name}"),
            schema: Some(schema.to_owned()),
            max_connections,
        })
        .await
        .unwrap();
        (store, name)
    }

    /// The app's PostgreSQL URL and schema (PostgreSQL backend only).
    pub fn pg_target(&self) -> (&str, &str) {
        let DatabaseConfig::Postgres {
            url,
            schema: Some(schema),
            ..
        } = &self.settings.database
        else {
            panic!("needs the PostgreSQL backend, in a schema of the test's own");
        };
        (url, schema)
    }

    /// Ends the PostgreSQL sessions named `name` (see [`TestApp::pg_node`]) and waits until
    /// they have left `pg_stat_activity` (by then each has handed in its table
    /// statistics); returns how many were ended.
    pub async fn end_pg_sessions(&self, name: &str) -> i64 {
        let ended = self
            .db_count(&format!(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{name}'"
            ))
            .await;
        let left = format!("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = '{name}'");
        crate::support::hooks::eventually("the sessions to end", crate::support::WAIT, || async {
            (self.db_count(&left).await == 0).then_some(())
        })
        .await;
        ended
    }

    /// A connection of its own to the app's PostgreSQL schema (PostgreSQL backend only),
    /// for tests that hold locks or read what is stored past Herald.
    pub async fn pg_conn(&self) -> sqlx::PgConnection {
        let DatabaseConfig::Postgres { url, schema, .. } = &self.settings.database else {
            panic!("pg_conn needs the PostgreSQL backend");
        };
        let mut c: sqlx::PgConnection = sqlx::Connection::connect(url).await.unwrap();
        if let Some(s) = schema {
            sqlx::query(&format!("SET search_path TO \"{s}\""))
                .execute(&mut c)
                .await
                .unwrap();
        }
        c
    }

    /// Issues a token in `tenant` with `scopes` through the library (as the CLI does).
    pub async fn token(&self, tenant: &str, user: &str, scopes: &str) -> String {
        let slug = herald::domain::tenant::TenantSlug::parse(tenant).unwrap();
        let scopes = herald::domain::scope::Scopes::parse(scopes).unwrap();
        herald::admin::issue_token(self.store.as_ref(), &slug, user, &scopes, "test")
            .await
            .unwrap()
            .token
    }

    /// The internal id of tenant `slug`.
    pub async fn tenant_id(&self, slug: &str) -> i64 {
        self.store
            .tenant_by_slug(slug)
            .await
            .unwrap()
            .expect("tenant exists")
            .id
    }

    /// Absolute URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with the admin token; returns status, content type and JSON (or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    /// Like [`TestApp::call`] with another token (empty = no Authorization header).
    pub async fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request sent")).await
    }
}

/// Runs `request` while another connection to `app`'s SQLite file (another process, as
/// the `herald` CLI would be) holds the database's write lock with a write of its own:
/// the request must still be waiting after half a second (a write that failed instead of
/// waiting answers at once), and is answered once the lock is released.
pub async fn while_another_process_holds_the_write_lock(
    app: &TestApp,
    request: impl std::future::Future<Output = Resp> + Send + 'static,
) -> Resp {
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(app.sqlite_path().expect("a SQLite app"));
    let mut outside: sqlx::SqliteConnection = Connection::connect_with(&opts).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut outside)
        .await
        .unwrap();
    sqlx::query("UPDATE tenants SET slug = slug")
        .execute(&mut outside)
        .await
        .unwrap();
    let mut call = tokio::spawn(request);
    // Nothing to wait for but time: the request must still be waiting for the lock.
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), &mut call).await;
    assert!(
        early.is_err(),
        "answered while another process held the write lock: {early:?}"
    );
    sqlx::query("COMMIT").execute(&mut outside).await.unwrap();
    outside.close().await.unwrap();
    call.await.unwrap()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            content_type,
            headers,
            text,
            json,
        }
    }

    /// Asserts a problem+json response with `status` naming `field`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(self.json["status"], status);
        if let Some(f) = field {
            assert_eq!(self.json["field"], f, "body: {}", self.text);
        }
    }
}

/// Runs a test body on SQLite and on PostgreSQL: `both!(name, |app| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::support::TestApp::spawn($crate::support::Backend::Sqlite).await {
                    ($body)(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::support::TestApp::spawn($crate::support::Backend::Postgres).await {
                    ($body)(app).await;
                }
            }
        }
    };
}
