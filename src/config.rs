//! Typed settings: defaults, then an optional TOML file, then `HERALD_*` environment
//! variables, then command-line flags — validated once at start so a typo fails loudly
//! with the key that caused it instead of surfacing later as a strange runtime error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::domain::retry::{parse_schedule, Schedule};

/// Everything Herald needs to run, already parsed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP API binds to (`127.0.0.1:0` picks a free port, as tests do).
    pub listen: SocketAddr,
    /// Directory for the SQLite file and the generated master key.
    pub data_dir: PathBuf,
    /// Which database to use.
    pub database: DatabaseConfig,
    /// Base URL under which Herald is reachable, for links in payloads and printed URLs.
    pub public_base_url: String,
    /// Master key material (`HERALD_MASTER_KEY`); `None` means "use or create the key file".
    pub master_key: Option<String>,
    /// Networks deliveries may reach although the SSRF guard would refuse them.
    pub allowed_target_networks: Vec<IpNet>,
    /// Extra CA certificates (PEM) trusted for deliveries.
    pub extra_ca_file: Option<PathBuf>,
    /// TLS for Herald's own listener.
    pub tls: Option<TlsConfig>,
    /// Cap on webhooks per tenant (409 past it).
    pub max_webhooks_per_tenant: u32,
    /// Log output format.
    pub log_format: LogFormat,
    /// Delivery engine tuning.
    pub delivery: DeliveryConfig,
}

/// The database backend and its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// An SQLite file (WAL mode).
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A PostgreSQL server shared by any number of Herald nodes.
    Postgres {
        /// `postgres://…` connection URL.
        url: String,
        /// Schema to work in (created if missing); lets tests and operators share one database.
        schema: Option<String>,
        /// Most connections this node's pool opens ([`DEFAULT_PG_MAX_CONNECTIONS`] unless
        /// set): every node's share of the server's `max_connections`.
        max_connections: u32,
    },
}

/// Connections a node's PostgreSQL pool opens at most by default (its `LISTEN` connection
/// included): six nodes fit in a stock server's `max_connections` of 100 (three of them
/// reserved for superusers). A single
/// node serving many concurrent API clients may do better with more: 32 gave `fanout-pg`
/// (32 clients) ~8 % more deliveries per second and ~9 % less of the server's CPU per
/// delivery (BENCHMARKS.md, "PostgreSQL: the pool's size").
pub const DEFAULT_PG_MAX_CONNECTIONS: u32 = 16;

/// Certificate and key for serving the API over HTTPS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Delivery engine tuning knobs (defaults follow the delivery issue).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Retry schedule, one delay per retry (± 20% jitter is applied to each).
    pub retry_schedule: Schedule,
    /// How long a rotated-out signing secret keeps signing.
    pub secret_rotation_overlap: Duration,
    /// Attempt bodies older than this are purged.
    pub attempt_retention: Duration,
    /// Concurrent attempts per webhook.
    pub per_webhook_concurrency: usize,
    /// Concurrent attempts per node.
    pub global_concurrency: usize,
    /// Consecutive failed deliveries that disable a webhook…
    pub auto_disable_failures: u32,
    /// …when they span at least this long.
    pub auto_disable_after: Duration,
    /// Whether `serve` runs delivery workers (turn off for API-only nodes).
    pub workers_enabled: bool,
    /// Fallback poll for due work (retries, expired leases, work written by other
    /// processes); new work normally wakes workers at once.
    pub poll_interval: Duration,
}

impl DeliveryConfig {
    /// How long a claimed delivery stays leased: long enough to wait for a slot, make one
    /// attempt (at most `request_timeout`) and record it; short enough that work held by a
    /// node that died is picked up by others soon.
    pub fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(5)
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let s = |n| Duration::from_secs(n);
        Self {
            connect_timeout: s(5),
            request_timeout: s(15),
            retry_schedule: Schedule::default(),
            secret_rotation_overlap: s(86400),
            attempt_retention: s(30 * 86400),
            per_webhook_concurrency: 8,
            global_concurrency: 256,
            auto_disable_failures: 50,
            auto_disable_after: s(86400),
            workers_enabled: true,
            poll_interval: s(2),
        }
    }
}

/// A setting could not be read or is invalid; the message names the key and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML file is malformed or has an unknown key.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Parser message (names the key and line).
        message: String,
    },
    /// One value is invalid.
    #[error("invalid {key} (from {source_name}): {message}")]
    Invalid {
        /// Setting name, e.g. `listen` / `HERALD_LISTEN`.
        key: String,
        /// `default`, the file path, `environment` or `command line`.
        source_name: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// Unvalidated settings as read from one layer; later layers override earlier ones.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    listen: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    database_schema: Option<String>,
    database_max_connections: Option<u32>,
    public_base_url: Option<String>,
    master_key: Option<String>,
    allowed_target_networks: Option<Vec<String>>,
    extra_ca_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    max_webhooks_per_tenant: Option<u32>,
    log_format: Option<String>,
    connect_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    retry_schedule: Option<String>,
    per_webhook_concurrency: Option<usize>,
    global_concurrency: Option<usize>,
    attempt_retention_days: Option<u64>,
    auto_disable_failures: Option<u32>,
    auto_disable_after_secs: Option<u64>,
    poll_interval_ms: Option<u64>,
    workers: Option<bool>,
}

/// Command-line overrides shared by every subcommand.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config FILE`
    pub config_file: Option<PathBuf>,
    /// `--data-dir DIR`
    pub data_dir: Option<PathBuf>,
    /// `--database-url URL`
    pub database_url: Option<String>,
    /// `--listen ADDR` (serve only)
    pub listen: Option<String>,
}

impl Settings {
    /// Loads defaults → file → process environment → overrides, then validates.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(overrides, &env)
    }

    /// [`Settings::load`] with an explicit environment, so tests need not mutate the process's.
    pub fn load_from(overrides: &Overrides, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => Some((path.clone(), read_file(path)?)),
            None => None,
        };
        let env_raw = RawSettings::from_env(env)?;
        let mut cli = RawSettings {
            data_dir: overrides.data_dir.as_ref().map(|p| p.display().to_string()),
            database_url: overrides.database_url.clone(),
            listen: overrides.listen.clone(),
            ..RawSettings::default()
        };
        // Layers in increasing priority, each tagged for error messages.
        let mut layers: Vec<(String, RawSettings)> = Vec::new();
        if let Some((path, raw)) = file {
            layers.push((path.display().to_string(), raw));
        }
        layers.push(("environment".into(), env_raw));
        layers.push(("command line".into(), std::mem::take(&mut cli)));
        build(&layers)
    }
}

fn read_file(path: &Path) -> Result<RawSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

impl RawSettings {
    fn from_env(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let num = |k: &str| -> Result<Option<u64>, ConfigError> {
            get(k)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                        key: k.into(),
                        source_name: "environment".into(),
                        message: format!("`{v}` is not a non-negative integer"),
                    })
                })
                .transpose()
        };
        Ok(Self {
            listen: get("HERALD_LISTEN"),
            data_dir: get("HERALD_DATA_DIR"),
            database_url: get("HERALD_DATABASE_URL"),
            database_schema: get("HERALD_DATABASE_SCHEMA"),
            database_max_connections: num("HERALD_DATABASE_MAX_CONNECTIONS")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            public_base_url: get("HERALD_PUBLIC_BASE_URL"),
            master_key: get("HERALD_MASTER_KEY"),
            allowed_target_networks: get("HERALD_ALLOWED_TARGET_NETWORKS").map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            extra_ca_file: get("HERALD_EXTRA_CA_FILE"),
            tls_cert_file: get("HERALD_TLS_CERT_FILE"),
            tls_key_file: get("HERALD_TLS_KEY_FILE"),
            max_webhooks_per_tenant: num("HERALD_MAX_WEBHOOKS_PER_TENANT")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            log_format: get("HERALD_LOG_FORMAT"),
            connect_timeout_secs: num("HERALD_CONNECT_TIMEOUT_SECS")?,
            request_timeout_secs: num("HERALD_REQUEST_TIMEOUT_SECS")?,
            retry_schedule: get("HERALD_RETRY_SCHEDULE"),
            per_webhook_concurrency: num("HERALD_PER_WEBHOOK_CONCURRENCY")?.map(|n| n as usize),
            global_concurrency: num("HERALD_GLOBAL_CONCURRENCY")?.map(|n| n as usize),
            attempt_retention_days: num("HERALD_ATTEMPT_RETENTION_DAYS")?,
            auto_disable_failures: num("HERALD_AUTO_DISABLE_FAILURES")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            auto_disable_after_secs: num("HERALD_AUTO_DISABLE_AFTER_SECS")?,
            poll_interval_ms: num("HERALD_POLL_INTERVAL_MS")?,
            workers: get("HERALD_WORKERS").map(|v| !matches!(v.as_str(), "0" | "false" | "off")),
        })
    }
}

/// Picks, for each key, the value of the highest layer that sets it, remembering its source.
macro_rules! pick {
    ($layers:expr, $field:ident) => {{
        let mut found = None;
        for (src, raw) in $layers.iter() {
            if let Some(v) = &raw.$field {
                found = Some((v.clone(), src.clone()));
            }
        }
        found
    }};
}

fn invalid(key: &str, source_name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        source_name: source_name.into(),
        message: message.into(),
    }
}

fn build(layers: &[(String, RawSettings)]) -> Result<Settings, ConfigError> {
    let listen = match pick!(layers, listen) {
        Some((v, src)) => v.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "listen",
                &src,
                format!("`{v}` is not an address like 127.0.0.1:8080"),
            )
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let data_dir = pick!(layers, data_dir)
        .map(|(v, _)| PathBuf::from(v))
        .unwrap_or_else(|| PathBuf::from("./herald-data"));
    let schema = pick!(layers, database_schema).map(|(v, _)| v);
    if let Some(s) = &schema {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(invalid(
                "database_schema",
                "settings",
                "use 1-63 characters a-z, 0-9 and _, not starting with a digit",
            ));
        }
    }
    let max_connections = match pick!(layers, database_max_connections) {
        // One connection is the work channel's `LISTEN`, held while the node runs: a pool
        // of one would leave every other statement waiting for it.
        Some((n, src)) if !(2..=10_000).contains(&n) => {
            return Err(invalid(
                "database_max_connections",
                &src,
                "must be between 2 and 10000 (one connection listens for work)",
            ))
        }
        Some((n, _)) => n,
        None => DEFAULT_PG_MAX_CONNECTIONS,
    };
    let database = match pick!(layers, database_url) {
        None => DatabaseConfig::Sqlite {
            path: data_dir.join("herald.db"),
        },
        Some((url, src)) => {
            parse_database_url(&url, schema, max_connections).map_err(|m| invalid("database_url", &src, m))?
        }
    };
    let public_base_url = match pick!(layers, public_base_url) {
        Some((v, src)) => {
            let v = v.trim_end_matches('/').to_owned();
            if !(v.starts_with("http://") || v.starts_with("https://")) || v.len() > 2048 {
                return Err(invalid("public_base_url", &src, "expected an http(s):// URL"));
            }
            v
        }
        None => format!("http://{listen}"),
    };
    let master_key = pick!(layers, master_key).map(|(v, _)| v);
    let mut allowed_target_networks = Vec::new();
    if let Some((nets, src)) = pick!(layers, allowed_target_networks) {
        for n in nets {
            let net = n.parse::<IpNet>().map_err(|_| {
                invalid(
                    "allowed_target_networks",
                    &src,
                    format!("`{n}` is not a CIDR like 10.0.0.0/8"),
                )
            })?;
            allowed_target_networks.push(net.trunc());
        }
    }
    let extra_ca_file = match pick!(layers, extra_ca_file) {
        Some((v, src)) => {
            let p = PathBuf::from(&v);
            if !p.is_file() {
                return Err(invalid(
                    "extra_ca_file",
                    &src,
                    format!("{v} is not a readable file"),
                ));
            }
            Some(p)
        }
        None => None,
    };
    let tls = match (pick!(layers, tls_cert_file), pick!(layers, tls_key_file)) {
        (None, None) => None,
        (Some((c, _)), Some((k, _))) => Some(TlsConfig {
            cert_file: c.into(),
            key_file: k.into(),
        }),
        (Some((_, src)), None) | (None, Some((_, src))) => {
            return Err(invalid("tls_cert_file/tls_key_file", &src, "set both or neither"))
        }
    };
    let max_webhooks_per_tenant = match pick!(layers, max_webhooks_per_tenant) {
        Some((0, src)) => return Err(invalid("max_webhooks_per_tenant", &src, "must be at least 1")),
        Some((n, _)) => n,
        None => 100,
    };
    let log_format = match pick!(layers, log_format) {
        None => LogFormat::Text,
        Some((v, src)) => match v.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(invalid("log_format", &src, "expected `text` or `json`")),
        },
    };
    let delivery = build_delivery(layers)?;
    Ok(Settings {
        listen,
        data_dir,
        database,
        public_base_url,
        master_key,
        allowed_target_networks,
        extra_ca_file,
        tls,
        max_webhooks_per_tenant,
        log_format,
        delivery,
    })
}

fn build_delivery(layers: &[(String, RawSettings)]) -> Result<DeliveryConfig, ConfigError> {
    let mut d = DeliveryConfig::default();
    let positive = |key: &str, v: Option<(u64, String)>, max: u64| -> Result<Option<u64>, ConfigError> {
        match v {
            Some((n, src)) if n == 0 || n > max => {
                Err(invalid(key, &src, format!("must be between 1 and {max}")))
            }
            other => Ok(other.map(|(n, _)| n)),
        }
    };
    if let Some(n) = positive("connect_timeout_secs", pick!(layers, connect_timeout_secs), 600)? {
        d.connect_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive("request_timeout_secs", pick!(layers, request_timeout_secs), 3600)? {
        d.request_timeout = Duration::from_secs(n);
    }
    if let Some(n) = positive(
        "per_webhook_concurrency",
        pick!(layers, per_webhook_concurrency).map(|(n, s)| (n as u64, s)),
        1024,
    )? {
        d.per_webhook_concurrency = n as usize;
    }
    if let Some(n) = positive(
        "global_concurrency",
        pick!(layers, global_concurrency).map(|(n, s)| (n as u64, s)),
        65536,
    )? {
        d.global_concurrency = n as usize;
    }
    if let Some(n) = positive(
        "attempt_retention_days",
        pick!(layers, attempt_retention_days),
        3650,
    )? {
        d.attempt_retention = Duration::from_secs(n * 86400);
    }
    if let Some((v, src)) = pick!(layers, retry_schedule) {
        d.retry_schedule = parse_schedule(&v).map_err(|e| invalid("retry_schedule", &src, e.to_string()))?;
    }
    if let Some(n) = positive(
        "auto_disable_failures",
        pick!(layers, auto_disable_failures).map(|(n, s)| (u64::from(n), s)),
        1_000_000,
    )? {
        d.auto_disable_failures = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some((n, _)) = pick!(layers, auto_disable_after_secs) {
        d.auto_disable_after = Duration::from_secs(n);
    }
    if let Some(n) = positive("poll_interval_ms", pick!(layers, poll_interval_ms), 3_600_000)? {
        d.poll_interval = Duration::from_millis(n);
    }
    if let Some((w, _)) = pick!(layers, workers) {
        d.workers_enabled = w;
    }
    Ok(d)
}

fn parse_database_url(
    url: &str,
    schema: Option<String>,
    max_connections: u32,
) -> Result<DatabaseConfig, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseConfig::Postgres {
            url: url.to_owned(),
            schema,
            max_connections,
        })
    } else if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() {
            return Err("sqlite URL has no file path".into());
        }
        Ok(DatabaseConfig::Sqlite { path: path.into() })
    } else {
        Err("expected postgres://… or sqlite:PATH".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_usable() {
        let s = Settings::load_from(&Overrides::default(), &[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database,
            DatabaseConfig::Sqlite {
                path: PathBuf::from("./herald-data/herald.db")
            }
        );
        assert_eq!(s.max_webhooks_per_tenant, 100);
        assert_eq!(s.delivery.retry_schedule.steps().len(), 10);
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\nmax_webhooks_per_tenant = 7\n",
        )
        .unwrap();
        let o = Overrides {
            config_file: Some(file),
            data_dir: Some("/from-flag".into()),
            ..Default::default()
        };
        let s = Settings::load_from(&o, &env(&[("HERALD_LISTEN", "127.0.0.1:9100")])).unwrap();
        assert_eq!(s.listen.port(), 9100);
        assert_eq!(s.data_dir, PathBuf::from("/from-flag"));
        assert_eq!(s.max_webhooks_per_tenant, 7);
    }

    #[test]
    fn errors_name_the_key_and_source() {
        let e = Settings::load_from(&Overrides::default(), &env(&[("HERALD_LISTEN", "nope")])).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("listen") && m.contains("environment"), "{m}");
        let e = Settings::load_from(
            &Overrides::default(),
            &env(&[("HERALD_ALLOWED_TARGET_NETWORKS", "127.0.0.0/8, banana")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("banana"));
        let e = Settings::load_from(
            &Overrides::default(),
            &env(&[("HERALD_DATABASE_URL", "mysql://x")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("database_url"));
    }

    /// The PostgreSQL pool's size: the default, from the environment or a file, and a
    /// clear error naming the key when it is out of range.
    #[test]
    fn database_max_connections_sizes_the_postgres_pool() {
        let pg = |extra: &[(&str, &str)]| {
            let mut e = env(&[("HERALD_DATABASE_URL", "postgres://h@localhost/h")]);
            e.extend(env(extra));
            Settings::load_from(&Overrides::default(), &e)
        };
        let max = |s: Settings| match s.database {
            DatabaseConfig::Postgres { max_connections, .. } => max_connections,
            other => panic!("{other:?}"),
        };
        assert_eq!(max(pg(&[]).unwrap()), DEFAULT_PG_MAX_CONNECTIONS);
        assert_eq!(max(pg(&[("HERALD_DATABASE_MAX_CONNECTIONS", "32")]).unwrap()), 32);
        for bad in ["0", "1", "10001", "many"] {
            let m = pg(&[("HERALD_DATABASE_MAX_CONNECTIONS", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                m.contains("database_max_connections") || m.contains("HERALD_DATABASE_MAX_CONNECTIONS"),
                "{m}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(
            &file,
            "database_url = \"postgres://h@localhost/h\"\ndatabase_max_connections = 8\n",
        )
        .unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        assert_eq!(max(Settings::load_from(&o, &[]).unwrap()), 8);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let m = Settings::load_from(&o, &[]).unwrap_err().to_string();
        assert!(m.contains("lisen"), "{m}");
    }

    #[test]
    fn schedules_use_the_retry_module_parser() {
        let s = Settings::load_from(
            &Overrides::default(),
            &env(&[("HERALD_RETRY_SCHEDULE", "50ms, 2m,1h")]),
        )
        .unwrap();
        assert_eq!(s.delivery.retry_schedule.to_string(), "50ms,2m,1h");
        let e =
            Settings::load_from(&Overrides::default(), &env(&[("HERALD_RETRY_SCHEDULE", "5x")])).unwrap_err();
        assert!(e.to_string().contains("retry_schedule"), "{e}");
    }
}
