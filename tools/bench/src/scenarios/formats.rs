//! `formats`: runs Herald's micro-benchmark `cargo bench --bench formats` (rendering and
//! signing bodies), when the workspace has one, with short criterion timings, and reports
//! each benchmark's median estimate. No budget line: these explain the other numbers.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::process::Command;

use super::{Ctx, Outcome};

/// Runs the scenario (reports a note when the bench does not exist).
pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("formats");
    if !ctx.workspace.join("benches/formats.rs").exists() {
        out.notes
            .push("benches/formats.rs does not exist in this workspace: nothing to run".into());
        return Ok(out);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    crate::run::clean_cargo_env(&mut cmd);
    cmd.current_dir(&ctx.workspace)
        .args(["bench", "-p", "herald", "--bench", "formats", "--"])
        .args(["--warm-up-time", "1", "--measurement-time", "2"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .context("cargo bench --bench formats took over 10 minutes")?
        .context("cannot run cargo bench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        bail!(
            "cargo bench --bench formats failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    for (name, median) in parse_criterion(&stdout) {
        out.metric(&name, Value::String(median));
    }
    if out.metrics.is_empty() {
        out.notes
            .push("cargo bench printed no criterion estimates".into());
    }
    Ok(out)
}

/// `(benchmark, median estimate)` from criterion's text output. A long name is printed on
/// its own line with `time:` on the next one.
pub fn parse_criterion(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut previous = "";
    for line in text.lines() {
        if let Some((head, tail)) = line.split_once("time:") {
            let name = match head.trim() {
                "" => previous.trim(),
                n => n,
            };
            let inner = tail.trim().trim_start_matches('[').trim_end_matches(']');
            let t: Vec<&str> = inner.split_whitespace().collect();
            if t.len() == 6 && !name.is_empty() {
                found.push((name.to_owned(), format!("{} {}", t[2], t[3])));
            }
        } else if !line.trim().is_empty() {
            previous = line;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_short_and_long_names() {
        let text = "Benchmarking ppm/render: Analyzing\n\
                    ppm/render              time:   [1.2 µs 1.3 µs 1.4 µs]\n\
                    \x20                       change: [-1% +0% +1%]\n\
                    formats/projectrak/render_update_with_a_long_name\n\
                    \x20                       time:   [10.5 ns 11.0 ns 11.5 ns]\n";
        let got = super::parse_criterion(text);
        assert_eq!(
            got,
            vec![
                ("ppm/render".to_owned(), "1.3 µs".to_owned()),
                (
                    "formats/projectrak/render_update_with_a_long_name".to_owned(),
                    "11.0 ns".to_owned()
                ),
            ]
        );
    }
}
