//! A small end-to-end run of the harness so it cannot rot: a few hundred deliveries per
//! scenario (ten thousand queued in `backlog`), no timing assertions — only that every
//! scenario finished, wrote its report, and lost nothing. Left out: `steady` (it runs for
//! its `--duration`), `formats` (criterion's own run) and `fanout-pg` (`fanout` on PostgreSQL;
//! the test below runs it and interrupts it).
//!
//! Herald's binary cannot be named with `env!("CARGO_BIN_EXE_herald")` from this package, so
//! the test uses the `herald` next to `herald-bench` in the same target directory and
//! profile. `cargo test --workspace` has just built it (for Herald's own integration tests);
//! when it is missing or older than Herald's sources (e.g. under `cargo test -p
//! herald-bench`), the test builds it with `cargo build -p herald --bin herald` first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The newest modification time under `path` (files and directories, recursively).
fn newest(path: &Path) -> SystemTime {
    let own = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let children = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| newest(&e.path()));
    children.fold(own, SystemTime::max)
}

fn herald_bin() -> PathBuf {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let bin = Path::new(env!("CARGO_BIN_EXE_herald-bench")).with_file_name("herald");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let sources = ["src", "migrations", "assets", "Cargo.toml", "Cargo.lock"]
        .iter()
        .map(|p| newest(&root.join(p)))
        .fold(SystemTime::UNIX_EPOCH, SystemTime::max);
    if built.is_some_and(|b| b >= sources) {
        return bin;
    }
    let mut cargo = Command::new(env!("CARGO"));
    // `cargo test` sets these for us; ring's build script tracks CARGO_MANIFEST_DIR, so an
    // inner cargo that inherits them would rebuild ring and everything above it.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_BIN_") || k.starts_with("CARGO_MANIFEST_") {
            cargo.env_remove(&key);
        }
    }
    for key in ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR"] {
        cargo.env_remove(key);
    }
    let status = cargo
        .current_dir(root)
        .args(["build", "-p", "herald", "--bin", "herald"])
        .status()
        .expect("run cargo build -p herald");
    assert!(status.success(), "cargo build -p herald failed");
    assert!(bin.exists(), "no herald binary at {}", bin.display());
    bin
}

#[test]
fn small_run_of_the_harness_loses_nothing() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args([
            "--scenario",
            "baseline,fanout,slow-endpoint,retry-storm,backlog,fanout-wide",
        ])
        .args([
            "--changes",
            "30",
            "--min-drive",
            "0",
            "--backlog",
            "10000",
            "--drain-cap",
            "120",
        ])
        .args(["--api-concurrency", "4"])
        .arg("--herald-bin")
        .arg(herald_bin())
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run herald-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "herald-bench failed\n{stdout}\n{stderr}");

    let json = std::fs::read_dir(out.path())
        .expect("results dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("read report")).expect("report is JSON");
    assert_eq!(report["failures"], serde_json::json!([]), "{stdout}");
    let outcomes = report["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 6, "{stdout}");
    for o in outcomes {
        let lost: Vec<_> = o["budget"]
            .as_array()
            .expect("budget lines")
            .iter()
            .filter(|l| l["rule"].as_str().is_some_and(|r| r.contains("zero lost")))
            .collect();
        assert!(!lost.is_empty(), "{} has no zero-lost line", o["scenario"]);
        for l in lost {
            assert_eq!(l["met"], true, "{}: {}", o["scenario"], l["measured"]);
        }
    }
    assert!(
        stdout.contains("| budget line | measured | verdict |"),
        "{stdout}"
    );
}

/// The PostgreSQL schemas the server at `url` holds for bench runs.
fn bench_schemas(url: &str) -> Vec<String> {
    let out = Command::new("psql")
        .arg(url)
        .args([
            "-qtAX",
            "-c",
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'herald\\_bench\\_%'",
        ])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A run stopped half-way (SIGTERM; Ctrl-C takes the same path) stops its Herald and drops
/// the PostgreSQL schema it made, instead of leaving both behind.
#[test]
fn an_interrupted_run_leaves_no_schema_behind() {
    let Some(url) = std::env::var("HERALD_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("HERALD_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    let before = bench_schemas(&url);
    let out = tempfile::tempdir().expect("tempdir");
    let mut run = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args([
            "--scenario",
            "fanout-pg",
            "--changes",
            "1000000",
            "--min-drive",
            "0",
        ])
        .args(["--api-concurrency", "2", "--pg-url", &url])
        .arg("--herald-bin")
        .arg(herald_bin())
        .arg("--out")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start herald-bench");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let schema = loop {
        if let Some(s) = bench_schemas(&url).into_iter().find(|s| !before.contains(s)) {
            break s;
        }
        assert!(
            run.try_wait().expect("poll herald-bench").is_none(),
            "herald-bench ended early"
        );
        assert!(std::time::Instant::now() < deadline, "no schema appeared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let status = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let ended = run.wait().expect("wait for herald-bench");
    assert!(!ended.success(), "an interrupted run does not report success");
    assert!(!bench_schemas(&url).contains(&schema), "{schema} was left behind");
}
