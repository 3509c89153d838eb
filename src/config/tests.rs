//! Settings: layering, validation and the errors that name their key.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Overrides naming a config file holding `toml` (the directory lives as long as the
/// returned guard).
fn with_file(toml: &str) -> (tempfile::TempDir, Overrides) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, toml).unwrap();
    let o = Overrides {
        config_file: Some(file),
        ..Default::default()
    };
    (dir, o)
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
    let (_dir, o) =
        with_file("listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\nmax_webhooks_per_tenant = 7\n");
    let o = Overrides {
        data_dir: Some("/from-flag".into()),
        ..o
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

#[test]
fn workers_takes_a_boolean_and_nothing_else() {
    let workers = |v: &str| {
        Settings::load_from(&Overrides::default(), &env(&[("HERALD_WORKERS", v)]))
            .map(|s| s.delivery.workers_enabled)
    };
    for (v, want) in [
        ("false", false),
        ("False ", false),
        ("0", false),
        ("no", false),
        ("on", true),
        ("TRUE", true),
    ] {
        assert_eq!(workers(v).unwrap(), want, "{v}");
    }
    let e = workers("nope").unwrap_err().to_string();
    assert!(e.contains("HERALD_WORKERS") && e.contains("nope"), "{e}");
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
    let (_dir, o) = with_file("database_url = \"postgres://h@localhost/h\"\ndatabase_max_connections = 8\n");
    assert_eq!(max(Settings::load_from(&o, &[]).unwrap()), 8);
}

#[test]
fn unknown_file_keys_are_refused() {
    let (_dir, o) = with_file("lisen = \"x\"\n");
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
    let e = Settings::load_from(&Overrides::default(), &env(&[("HERALD_RETRY_SCHEDULE", "5x")])).unwrap_err();
    assert!(e.to_string().contains("retry_schedule"), "{e}");
}
