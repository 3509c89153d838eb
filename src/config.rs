//! Typed settings: defaults, then an optional TOML file, then `HERALD_*` environment
//! variables, then command-line flags — validated once at start so a typo fails loudly
//! with the key that caused it instead of surfacing later as a strange runtime error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::retry::{parse_schedule, Schedule};

mod layers;

use layers::pick;
pub use layers::{Overrides, RawSettings};

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
mod tests;
