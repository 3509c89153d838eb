//! Tests of the format module as a whole: golden comparisons with the vendor examples,
//! the docs-are-the-code check, and property tests. Per-module unit tests live beside the
//! code they test.

mod behaviour;
mod docs;
mod golden;
mod props;
mod shape;

use std::path::PathBuf;

use crate::formats::Body;

/// Whether this run should rewrite generated files (`HERALD_BLESS=1`) instead of checking
/// them.
fn bless() -> bool {
    std::env::var("HERALD_BLESS").is_ok_and(|v| v == "1")
}

/// A path inside the repository.
fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The body pretty-printed with its wire key order, newline-terminated.
fn pretty(body: &Body<'_>) -> String {
    let mut s = serde_json::to_string_pretty(body).expect("serialisable");
    s.push('\n');
    s
}
