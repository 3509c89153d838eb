//! The real `herald` binary: token management, migrate, and the first-start banner.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub(crate) fn herald(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("HERALD_DATABASE_URL")
        .env(
            "HERALD_MASTER_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .output()
        .expect("herald runs")
}

pub(crate) fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn commands_that_read_refuse_a_database_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["token", "list"][..],
        &[
            "deliveries",
            "list",
            "--tenant",
            "default",
            "--webhook",
            "00000000-0000-0000-0000-000000000000",
        ][..],
    ] {
        let o = herald(dir.path(), args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no Herald database at"), "{args:?}: {err}");
    }
    assert!(!dir.path().join("herald.db").exists(), "nothing was created");
}

#[test]
fn token_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    assert!(stdout(&herald(dir.path(), &["migrate"])).contains("up to date"));
    let out = stdout(&herald(
        dir.path(),
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--user",
            "DUMMY-ACCOUNT-ID-1",
            "--scopes",
            "webhooks:read,webhooks:write",
            "--name",
            "ci",
        ],
    ));
    let token = out.lines().last().unwrap().trim();
    assert!(token.starts_with("hrld_"), "token is the last line: {out}");
    let id = token.split('_').nth(1).unwrap();
    let list = stdout(&herald(dir.path(), &["token", "list", "--tenant", "acme"]));
    assert!(
        list.contains(id) && list.contains("active") && list.contains("webhooks:write"),
        "{list}"
    );
    assert!(!list.contains(token), "list never shows secrets");
    assert!(stdout(&herald(dir.path(), &["token", "revoke", id])).contains("Revoked"));
    assert!(stdout(&herald(dir.path(), &["token", "list"])).contains("revoked"));
    let again = herald(dir.path(), &["token", "revoke", id]);
    assert!(!again.status.success());

    let bad = herald(
        dir.path(),
        &[
            "token", "create", "--tenant", "Acme!", "--user", "u", "--scopes", "admin",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--tenant"));
    let bad = herald(
        dir.path(),
        &[
            "token", "create", "--tenant", "acme", "--user", "u", "--scopes", "root",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope `root`"));
}

#[test]
fn first_serve_prints_an_admin_token_and_the_docs_url_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("Webhooks API:");
        seen.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("hrld_"), "{text}");
    assert!(text.contains("/docs"), "{text}");
    assert!(text.contains("/admin"), "the admin UI URL is printed too: {text}");
    let key = dir.path().join("master.key");
    assert!(key.exists(), "a master key file is created on first start");

    // Second start: no new token.
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        text.push_str(&line);
        if line.starts_with("Webhooks API:") {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(!text.contains("hrld_"), "{text}");
}

#[test]
fn invalid_configuration_fails_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("migrate")
        .env("HERALD_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("listen") && err.contains("environment"), "{err}");
}
