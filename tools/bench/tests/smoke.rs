//! A small end-to-end run of the harness so it cannot rot: a few hundred deliveries per
//! scenario, no timing assertions — only that every scenario finished, wrote its report,
//! and lost nothing.
//!
//! Herald's binary cannot be named with `env!("CARGO_BIN_EXE_herald")` from this package, so
//! the test uses the `herald` next to `herald-bench` in the same target directory and
//! profile, building it first with `cargo build -p herald --bin herald` (a no-op when
//! `cargo test --workspace` already built it, which it does for Herald's own tests).

use std::path::{Path, PathBuf};
use std::process::Command;

fn herald_bin() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_herald-bench"));
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
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["build", "-p", "herald", "--bin", "herald"])
        .status()
        .expect("run cargo build -p herald");
    assert!(status.success(), "cargo build -p herald failed");
    let bin = bench.with_file_name("herald");
    assert!(bin.exists(), "no herald binary at {}", bin.display());
    bin
}

#[test]
fn small_run_of_the_harness_loses_nothing() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args(["--scenario", "baseline,fanout,retry-storm,backlog"])
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
    assert_eq!(outcomes.len(), 4, "{stdout}");
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
