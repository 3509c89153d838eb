//! Reading the layers settings come from — an optional TOML file, `HERALD_*` environment
//! variables, command-line flags — into unvalidated [`RawSettings`], and picking each
//! key's value from the highest layer that sets it. Validation is `config.rs`'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{build, ConfigError, Settings};

/// Unvalidated settings as read from one layer; later layers override earlier ones.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<String>,
    pub(super) database_url: Option<String>,
    pub(super) database_schema: Option<String>,
    pub(super) database_max_connections: Option<u32>,
    pub(super) public_base_url: Option<String>,
    pub(super) master_key: Option<String>,
    pub(super) allowed_target_networks: Option<Vec<String>>,
    pub(super) extra_ca_file: Option<String>,
    pub(super) tls_cert_file: Option<String>,
    pub(super) tls_key_file: Option<String>,
    pub(super) max_webhooks_per_tenant: Option<u32>,
    pub(super) log_format: Option<String>,
    pub(super) connect_timeout_secs: Option<u64>,
    pub(super) request_timeout_secs: Option<u64>,
    pub(super) retry_schedule: Option<String>,
    pub(super) per_webhook_concurrency: Option<usize>,
    pub(super) global_concurrency: Option<usize>,
    pub(super) attempt_retention_days: Option<u64>,
    pub(super) auto_disable_failures: Option<u32>,
    pub(super) auto_disable_after_secs: Option<u64>,
    pub(super) poll_interval_ms: Option<u64>,
    pub(super) workers: Option<bool>,
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
            workers: get("HERALD_WORKERS")
                .map(|v| {
                    // Strict, as the file's boolean is: `no` or `False ` must not leave a
                    // node delivering that was meant to serve the API only.
                    match v.trim().to_ascii_lowercase().as_str() {
                        "1" | "true" | "on" | "yes" => Ok(true),
                        "0" | "false" | "off" | "no" => Ok(false),
                        _ => Err(ConfigError::Invalid {
                            key: "HERALD_WORKERS".into(),
                            source_name: "environment".into(),
                            message: format!("`{v}` is not a boolean (true/false, 1/0, on/off, yes/no)"),
                        }),
                    }
                })
                .transpose()?,
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

pub(super) use pick;
