//! The run's report: one JSON file and one markdown file per run under the results
//! directory, with the budget table first (every line marked met or missed), then each
//! scenario's metrics and notes.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::scenarios::Outcome;

/// A scenario that could not finish.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Scenario name.
    pub scenario: String,
    /// The error, with its causes.
    pub error: String,
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `YYYYmmdd-HHMMSS` (UTC), the file-name stem.
    pub run_id: String,
    /// RFC 3339 start time.
    pub date: String,
    /// Cores the machine has (`nproc`).
    pub nproc: usize,
    /// `/proc/loadavg` when the run started and when it ended: the machine is shared, and
    /// other work running alongside shows up here.
    pub load: [String; 2],
    /// Herald binary used.
    pub herald_bin: String,
    /// `sqlite` or the PostgreSQL URL's host part.
    pub database: String,
    /// The scale knobs, as given.
    pub knobs: Value,
    /// Finished scenarios.
    pub outcomes: Vec<Outcome>,
    /// Scenarios that failed.
    pub failures: Vec<Failure>,
}

impl RunReport {
    /// Budget lines met and missed (a failed scenario counts as one missed line).
    pub fn tally(&self) -> (usize, usize) {
        let lines = self.outcomes.iter().flat_map(|o| &o.budget);
        let met = lines.clone().filter(|l| l.met).count();
        let missed = lines.filter(|l| !l.met).count() + self.failures.len();
        (met, missed)
    }
}

/// The markdown rendering.
pub fn markdown(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### herald-bench run {} — {}, nproc {}, {}\n",
        r.run_id, r.date, r.nproc, r.database
    );
    let _ = writeln!(s, "Knobs: `{}`\n", r.knobs);
    let _ = writeln!(
        s,
        "Load average at start / end: `{}` / `{}`\n",
        r.load[0], r.load[1]
    );
    let (met, missed) = r.tally();
    let _ = writeln!(s, "**Budget: {met} met, {missed} missed.**\n");
    let _ = writeln!(s, "| budget line | measured | verdict |\n|---|---|---|");
    for o in &r.outcomes {
        for l in &o.budget {
            let verdict = if l.met { "met" } else { "**missed**" };
            let _ = writeln!(s, "| {} | {} | {verdict} |", l.rule, l.measured);
        }
    }
    for f in &r.failures {
        let _ = writeln!(
            s,
            "| {}: scenario finished | failed (see below) | **missed** |",
            f.scenario
        );
    }
    for o in &r.outcomes {
        let _ = writeln!(s, "\n#### {}\n\n| metric | value |\n|---|---|", o.scenario);
        for (k, v) in &o.metrics {
            let shown = match v {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(s, "| {k} | {shown} |");
        }
        for n in &o.notes {
            let _ = writeln!(s, "\n- {n}");
        }
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\n#### Failed scenarios\n");
        for f in &r.failures {
            let _ = writeln!(s, "- **{}**: {}", f.scenario, f.error.replace('\n', " / "));
        }
    }
    s
}

/// Writes `<run_id>.json` and `<run_id>.md` into `dir`; returns their paths.
pub fn write(r: &RunReport, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = dir.join(format!("{}.json", r.run_id));
    let md = dir.join(format!("{}.md", r.run_id));
    std::fs::write(&json, serde_json::to_vec_pretty(r)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    std::fs::write(&md, markdown(r)).with_context(|| format!("cannot write {}", md.display()))?;
    Ok((json, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_marks_every_line() {
        let mut o = Outcome::new("fanout");
        o.metric("deliveries_per_sec", 123);
        o.rule("fanout ≥ 15,000 deliveries/s", "123/s".into(), false);
        o.rule("fanout: zero lost deliveries", "0 lost of 10".into(), true);
        let r = RunReport {
            run_id: "x".into(),
            date: "d".into(),
            nproc: 2,
            load: Default::default(),
            herald_bin: "h".into(),
            database: "sqlite".into(),
            knobs: Value::Null,
            outcomes: vec![o],
            failures: vec![Failure {
                scenario: "steady".into(),
                error: "boom".into(),
            }],
        };
        let md = markdown(&r);
        assert!(md.contains("| fanout ≥ 15,000 deliveries/s | 123/s | **missed** |"));
        assert!(md.contains("| fanout: zero lost deliveries | 0 lost of 10 | met |"));
        assert!(md.contains("steady: scenario finished"));
        assert_eq!(r.tally(), (1, 2));
    }
}
