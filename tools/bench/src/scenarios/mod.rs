//! The scenarios, what they share (the [`Ctx`] of a run, a [`rig`] of sinks + Herald +
//! fixtures), and the [`Outcome`] each one reports.

pub mod backlog;
pub mod fanout;
pub mod formats;
pub mod retry;
pub mod slow;
pub mod steady;

mod common;
mod rig;

use std::path::PathBuf;
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::Serialize;
use serde_json::Value;

use crate::herald::HeraldSpec;

pub use rig::{rig, RigSpec};

/// Every scenario, in suite order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Bare reqwest client against the sink only (no Herald): checks the harness itself.
    Baseline,
    /// 1 change → 10 webhooks at max rate, plus the bare-client baseline.
    Fanout,
    /// 1,000 changes/s to 3 webhooks: latency percentiles.
    Steady,
    /// Deliveries queued while the sink is down, then drained.
    Backlog,
    /// One never-answering endpoint among 10: healthy throughput.
    SlowEndpoint,
    /// 30% of responses are 500: first attempts and retries.
    RetryStorm,
    /// `fanout` on PostgreSQL.
    FanoutPg,
    /// 1 change → 50 webhooks at max rate: sending and recording keep up with wide fan-out.
    FanoutWide,
    /// `cargo bench --bench formats`, when that bench exists.
    Formats,
}

impl Scenario {
    /// The scenarios `--suite` runs.
    pub const SUITE: [Scenario; 8] = [
        Scenario::Fanout,
        Scenario::SlowEndpoint,
        Scenario::Steady,
        Scenario::RetryStorm,
        Scenario::Backlog,
        Scenario::FanoutPg,
        Scenario::FanoutWide,
        Scenario::Formats,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Fanout => "fanout",
            Scenario::Steady => "steady",
            Scenario::Backlog => "backlog",
            Scenario::SlowEndpoint => "slow-endpoint",
            Scenario::RetryStorm => "retry-storm",
            Scenario::FanoutPg => "fanout-pg",
            Scenario::FanoutWide => "fanout-wide",
            Scenario::Formats => "formats",
        }
    }
}

/// Scale knobs (small values make a quick run).
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Changes in `fanout`, `slow-endpoint`, `retry-storm` (at least).
    pub changes: u64,
    /// Least driving time of those scenarios, so throughput has a long enough window.
    pub min_drive: Duration,
    /// `steady` duration.
    pub duration: Duration,
    /// Largest `backlog` size in deliveries (the others are ÷100 and ÷10).
    pub backlog: u64,
    /// Webhooks per change in `backlog` (more webhooks queue the same deliveries with fewer
    /// API calls).
    pub backlog_hooks: u32,
    /// Longest wait for one `backlog` level to drain.
    pub drain_cap: Duration,
    /// Concurrent API clients in max-rate drives.
    pub api_concurrency: usize,
}

/// What every scenario gets.
pub struct Ctx {
    /// How to run Herald (SQLite unless the run was given `--database-url`).
    pub herald: HeraldSpec,
    /// PostgreSQL URL for `fanout-pg`.
    pub pg_url: Option<String>,
    /// Keep `fanout-pg` on the URL's TCP connection even where the server's Unix socket is
    /// on this machine (`--pg-tcp`).
    pub pg_tcp: bool,
    /// Scale.
    pub knobs: Knobs,
    /// Workspace root (for `cargo bench`).
    pub workspace: PathBuf,
}

/// One line of the budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetLine {
    /// The rule, e.g. `fanout ≥ 15,000 deliveries/s`.
    pub rule: String,
    /// What was measured, formatted.
    pub measured: String,
    /// Met or missed.
    pub met: bool,
}

/// A named series for a plot.
#[derive(Debug, Clone, Default)]
pub struct Plot {
    /// File-name stem, e.g. `steady-latency`.
    pub stem: String,
    /// Chart title.
    pub title: String,
    /// Axis labels.
    pub x_label: String,
    /// See `x_label`.
    pub y_label: String,
    /// `(label, points)`.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// What one scenario reports.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Metrics (name → value) in the order they were added, for the table and the JSON
    /// file (serialized as an object).
    #[serde(serialize_with = "ordered_map")]
    pub metrics: Vec<(String, Value)>,
    /// Budget lines this scenario decides.
    pub budget: Vec<BudgetLine>,
    /// Caveats worth a reader's attention.
    pub notes: Vec<String>,
    /// Plots to draw.
    #[serde(skip)]
    pub plots: Vec<Plot>,
}

impl Outcome {
    /// An empty outcome for `scenario`.
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            metrics: Vec::new(),
            budget: Vec::new(),
            notes: Vec::new(),
            plots: Vec::new(),
        }
    }

    /// Adds a metric.
    pub fn metric(&mut self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.metrics.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.metrics.push((name.to_owned(), value)),
        }
    }

    /// Adds a budget line.
    pub fn rule(&mut self, rule: &str, measured: String, met: bool) {
        self.budget.push(BudgetLine {
            rule: rule.to_owned(),
            measured,
            met,
        });
    }

    /// Adds a budget line whose verdict is `ok(value)`, with `value` printed by `shown` (so
    /// the two cannot disagree) inside `describe`'s text, e.g. `|v| format!("{v} ms")`.
    pub fn judge(
        &mut self,
        rule: &str,
        value: f64,
        decimals: usize,
        ok: impl Fn(f64) -> bool,
        describe: impl FnOnce(&str) -> String,
    ) {
        let measured = describe(&shown(value, decimals, &ok));
        self.rule(rule, measured, ok(value));
    }

    /// Adds the "zero lost deliveries" line for this scenario.
    pub fn zero_lost(&mut self, lost: u64, expected: u64) {
        let line = zero_lost_line(
            &format!("{}: zero lost deliveries", self.scenario),
            lost,
            expected,
        );
        self.budget.push(line);
    }
}

/// A "nothing lost" budget line named `rule`: met when something was expected and
/// nothing of it was lost.
pub fn zero_lost_line(rule: &str, lost: u64, expected: u64) -> BudgetLine {
    BudgetLine {
        rule: rule.to_owned(),
        measured: format!("{lost} lost of {expected}"),
        met: lost == 0 && expected > 0,
    }
}

/// Rounds for display: whole numbers above 100, two decimals below.
pub fn round(x: f64) -> Value {
    let r = if x.abs() >= 100.0 {
        x.round()
    } else {
        (x * 100.0).round() / 100.0
    };
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

/// `x` with `decimals` decimals, or with more where rounding would show a value that
/// contradicts the verdict `ok` gives for `x` itself: run P's fan-out, a hair under
/// 15,000 deliveries/s, was printed as "15000/s" next to "missed". Widened until the
/// printed value tells the same story (14,999.6 → "14999.6").
fn shown(x: f64, decimals: usize, ok: impl Fn(f64) -> bool) -> String {
    let verdict = ok(x);
    (decimals..decimals + 8)
        .map(|d| format!("{x:.d$}"))
        .find(|s| s.parse::<f64>().is_ok_and(|v| ok(v) == verdict))
        .unwrap_or_else(|| x.to_string())
}

/// Serializes `(key, value)` pairs as a JSON object, keeping their order.
fn ordered_map<S: serde::Serializer>(pairs: &[(String, Value)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::{shown, Outcome};

    #[test]
    fn a_judged_line_prints_its_value_as_its_verdict_reads_it() {
        let mut o = Outcome::new("fanout");
        o.judge(
            "fanout ≥ 15,000 deliveries/s",
            14_999.6,
            0,
            |r| r >= 15_000.0,
            |v| format!("{v}/s"),
        );
        o.judge(
            "steady p99 ≤ 25 ms",
            3.621,
            2,
            |v| v <= 25.0,
            |v| format!("{v} ms"),
        );
        let lines: Vec<_> = o.budget.iter().map(|b| (b.measured.as_str(), b.met)).collect();
        assert_eq!(lines, [("14999.6/s", false), ("3.62 ms", true)]);
    }

    #[test]
    fn a_shown_value_never_contradicts_its_verdict() {
        let fast = |r: f64| r >= 15_000.0;
        assert_eq!(shown(14_999.6, 0, fast), "14999.6");
        assert_eq!(shown(14_999.96, 0, fast), "14999.96");
        assert_eq!(shown(15_000.4, 0, fast), "15000");
        assert_eq!(shown(12_345.6, 0, fast), "12346");
        let flat = |r: f64| r >= 0.9;
        // "0.90" and "0.900" both read as met.
        assert_eq!(shown(0.8996, 2, flat), "0.8996");
        assert_eq!(shown(0.91, 2, flat), "0.91");
        let quick = |ms: f64| ms <= 25.0;
        assert_eq!(shown(25.004, 2, quick), "25.004");
        assert_eq!(shown(3.62, 2, quick), "3.62");
    }
}
