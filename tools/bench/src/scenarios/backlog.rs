//! `backlog`: deliveries pile up while the sink is down, then the sink comes up and Herald
//! drains them. Run at three sizes (`--backlog` ÷ 100, ÷ 10, and itself; 10k / 100k / 1M
//! by default). Budget: drain rate at the largest ≥ 0.9 × at the smallest; Herald's RSS
//! ≤ 150 MiB with the largest queued; everything delivered.
//!
//! Each change fans out to `--backlog-hooks` webhooks (100 by default, Herald's default cap
//! per tenant), so a million deliveries take 10,000 API calls rather than 100,000. A level
//! that has not drained after `--drain-cap` is reported as incomplete, with the rate so far.
//!
//! The queue is built by a Herald running with `HERALD_WORKERS=false` (it accepts changes
//! and writes deliveries but sends nothing), so every size starts draining from exactly the
//! same state: N due deliveries, none attempted. The drain is then done by a fresh Herald
//! with workers, on the same database, the moment the sink is up: that is the restart and
//! "receiver back after an outage" path (claims from the database, no in-process hand-off).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::driver::{self, Budget};
use crate::herald::ServeOptions;
use crate::metrics::{per_second, Throughput};
use crate::procstat::{self, watch_rss};
use crate::record::now_ns;
use crate::sinkctl::{Sink, SinkSpec};

use super::common::collect_within;
use super::{rig, round, zero_lost_line, BudgetLine, Ctx, Outcome, Plot, RigSpec};

/// One size's results.
struct Level {
    size: u64,
    drain: Throughput,
    drain_rss_mib: f64,
    /// Its "everything delivered" budget line, added by the caller: the smallest size's
    /// drains share one.
    delivered: BudgetLine,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("backlog");
    let top = ctx.knobs.backlog.max(u64::from(ctx.knobs.backlog_hooks) * 100);
    let mut levels = Vec::new();
    let mut throughput = Plot {
        stem: "backlog-throughput".into(),
        title: "backlog: deliveries received per second after the sink comes up".into(),
        x_label: "seconds since the sink came up".into(),
        y_label: "deliveries/s".into(),
        series: Vec::new(),
    };
    let mut rss_plot = Plot {
        stem: "backlog-rss".into(),
        title: "backlog: Herald RSS while draining".into(),
        x_label: "seconds since the sink came up".into(),
        y_label: "RSS (MiB)".into(),
        series: Vec::new(),
    };
    let smallest = top / 100;
    let small_tag = |repeat: usize| match repeat {
        1 => label(smallest),
        n => format!("{}_repeat{n}", label(smallest)),
    };
    // The order the drains run in: the reference level `SMALLEST_BEFORE` times, the
    // larger levels, then the reference's remaining repeats (`true`: a reference drain).
    let reference = |repeat: usize| (smallest, small_tag(repeat), true);
    let order: Vec<(u64, String, bool)> = (1..=SMALLEST_BEFORE)
        .map(reference)
        .chain([top / 10, top].map(|size| (size, label(size), false)))
        .chain((SMALLEST_BEFORE + 1..=SMALLEST_REPEATS).map(reference))
        .collect();
    let mut small_runs = Vec::new();
    // The smallest size's "everything delivered" line goes ahead of the larger sizes'
    // lines, though its last drain runs after them.
    let small_line_at = out.budget.len();
    for (size, tag, is_reference) in order {
        let level = one_level(ctx, size, &tag, &mut out, &mut throughput, &mut rss_plot).await?;
        if is_reference {
            small_runs.push(level);
        } else {
            out.budget.push(level.delivered.clone());
            levels.push(level);
        }
    }
    out.budget.insert(
        small_line_at,
        all_delivered(small_runs.iter().map(|l| l.delivered.clone()).collect()),
    );
    let rates: Vec<f64> = small_runs.iter().map(|l| l.drain.per_sec).collect();
    let small_rate = bracketing(&rates, SMALLEST_BEFORE);
    out.metric(
        &format!("{}_drain_reference_per_sec", label(smallest)),
        round(small_rate),
    );
    out.plots.push(throughput);
    out.plots.push(rss_plot);
    let large = &levels[levels.len() - 1];
    let ratio = if small_rate > 0.0 {
        large.drain.per_sec / small_rate
    } else {
        0.0
    };
    out.metric("drain_ratio_largest_over_smallest", round(ratio));
    let large_rate = large.drain.per_sec;
    out.judge(
        &format!(
            "backlog drain at {} ≥ 0.9 × at {}",
            label(large.size),
            label(smallest)
        ),
        ratio,
        2,
        |r| r >= 0.9,
        |v| format!("{large_rate:.0}/s vs {small_rate:.0}/s (the {SMALLEST_BEFORE} drains before it and the {} after, each side's mean averaged) = {v} ×", SMALLEST_REPEATS - SMALLEST_BEFORE),
    );
    out.rule(
        &format!("backlog RSS ≤ 150 MiB with {} queued", label(large.size)),
        format!("{:.1} MiB", large.drain_rss_mib),
        large.drain_rss_mib > 0.0 && large.drain_rss_mib <= 150.0,
    );
    Ok(out)
}

/// How many times the smallest level is queued and drained. Why: at 10k its drain takes
/// under half a second, so one sample is at the mercy of whatever else the shared machine
/// did in that half second — measured: 22.5k–28.0k/s across four runs of the same binary
/// within ten minutes, while the 1M drain (40 s) stayed within 24.5–24.8k/s, so the
/// budget line swung between 0.87 × and 1.09 × on noise alone. Every drain is reported.
const SMALLEST_REPEATS: usize = 3;

/// How many of those drains run before the larger sizes; the rest run after them, and
/// the line compares with [`bracketing`] of them. Why: the machine's speed drifts within
/// a minute, and three back-to-back drains before the 1M one measured the machine's speed
/// at one moment only — in run AR the three 10k drains gave 34.0–35.6k/s, the 1M drain a
/// minute later 30.5k/s, and the same binary's next run 27.7–30.4k/s against 29.8k/s.
const SMALLEST_BEFORE: usize = 2;

/// The reference rate of drains of which the first `before` ran before the measured one
/// and the rest after it: the mean of the two sides' means, so that it sits between the
/// machine's pace before and after, as `fanout` before and after brackets
/// `slow-endpoint`. (A median of the three would be one of the drains before whenever
/// the machine drifted steadily one way.) One side missing: the other side's mean.
fn bracketing(rates: &[f64], before: usize) -> f64 {
    let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    let (b, a) = rates.split_at(before.min(rates.len()));
    match (mean(b), mean(a)) {
        (Some(b), Some(a)) => (b + a) / 2.0,
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 0.0,
    }
}

/// The smallest size's drains as one "everything delivered" line: the first drain's,
/// met only if every drain met it, with each miss's measurement kept.
fn all_delivered(lines: Vec<BudgetLine>) -> BudgetLine {
    let mut lines = lines.into_iter();
    let Some(mut first) = lines.next() else {
        return zero_lost_line("backlog: everything delivered (zero lost)", 0, 0);
    };
    for line in lines {
        if !line.met {
            first.measured = format!("{}; repeat: {}", first.measured, line.measured);
        }
        first.met &= line.met;
    }
    first
}

/// A plot's legend for a level's `tag`: `10k queued`, `10k queued (repeat 2)`.
fn series_label(tag: &str) -> String {
    match tag.split_once("_repeat") {
        Some((size, n)) => format!("{size} queued (repeat {n})"),
        None => format!("{tag} queued"),
    }
}

/// `10k`, `100k`, `1M`…
fn label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

async fn one_level(
    ctx: &Ctx,
    size: u64,
    tag: &str,
    out: &mut Outcome,
    throughput: &mut Plot,
    rss_plot: &mut Plot,
) -> anyhow::Result<Level> {
    let sink = Sink::spawn(&SinkSpec {
        tls: true,
        down: true,
        ..SinkSpec::default()
    })
    .await?;
    let n_hooks = ctx.knobs.backlog_hooks;
    let hooks: Vec<u32> = (0..n_hooks).collect();
    let cap_env = vec![(
        "HERALD_MAX_WEBHOOKS_PER_TENANT".to_owned(),
        n_hooks.max(100).to_string(),
    )];
    let queueing = ServeOptions {
        no_workers: true,
        env: cap_env.clone(),
        ..ServeOptions::default()
    };
    let rig = rig(
        &ctx.herald,
        RigSpec {
            sinks: vec![&sink],
            hooks: hooks.iter().map(|&h| sink.url(h as usize)).collect(),
            projects: 64,
            format: "ppm",
            serve: queueing,
        },
    )
    .await?;
    let db_before = rig.db.size_bytes().await;
    let budget = Budget {
        changes: size / u64::from(n_hooks),
        min_time: Duration::ZERO,
        max_time: Duration::from_secs(900),
    };
    let drive = driver::max_rate(&rig.api, &rig.projects, ctx.knobs.api_concurrency, budget).await;
    let queued_rss = procstat::sample(rig.herald.pid)?.hwm_kib as f64 / 1024.0;
    let db_after = rig.db.size_bytes().await;
    out.metric(&format!("{tag}_enqueue_changes_per_sec"), round(drive.rate()));
    out.metric(&format!("{tag}_api_errors"), drive.errors);
    if let Some(e) = &drive.first_error {
        out.notes.push(format!("{tag}: first API error: {e}"));
    }
    out.metric(&format!("{tag}_rss_while_queueing_mib"), round(queued_rss));
    if let (Some(a), Some(b)) = (db_before, db_after) {
        out.metric(
            &format!("{tag}_db_growth_mib"),
            round((b as f64 - a as f64) / 1048576.0),
        );
    }

    sink.up().await?;
    let up_ns = now_ns();
    let draining = ServeOptions {
        env: cap_env,
        ..ServeOptions::default()
    };
    let rig = rig.restart(&ctx.herald, draining).await?;
    let stop = CancellationToken::new();
    let rss = watch_rss(rig.herald.pid, Duration::from_millis(250), stop.clone());
    let cpu0 = procstat::sample(rig.herald.pid)?.cpu_secs;
    let a = collect_within(
        &sink,
        &drive,
        &hooks,
        Duration::from_secs(30),
        ctx.knobs.drain_cap,
    )
    .await?;
    let end = procstat::sample(rig.herald.pid)?;
    stop.cancel();
    rig.finish().await?;

    let last = a.ok_times_ns.last().copied().unwrap_or(up_ns);
    let overall = Throughput::between(a.delivered, up_ns, last);
    // An incomplete drain's 5–95% window is meaningless; use the rate so far.
    let drain = if a.delivered < a.expected {
        overall
    } else {
        a.throughput
    };
    let drain_rss_mib = end.hwm_kib as f64 / 1024.0;
    out.metric(&format!("{tag}_delivered"), a.delivered);
    out.metric(&format!("{tag}_lost"), a.lost);
    out.metric(&format!("{tag}_duplicates"), a.duplicates);
    out.metric(&format!("{tag}_drain_per_sec"), round(drain.per_sec));
    out.metric(&format!("{tag}_drain_overall_per_sec"), round(overall.per_sec));
    out.metric(&format!("{tag}_drain_secs"), round(overall.window_secs));
    out.metric(&format!("{tag}_drain_peak_rss_mib"), round(drain_rss_mib));
    if a.delivered > 0 {
        out.metric(
            &format!("{tag}_cpu_secs_per_1000_deliveries"),
            round((end.cpu_secs - cpu0) * 1000.0 / a.delivered as f64),
        );
    }
    let waited = Duration::from_nanos(now_ns().saturating_sub(up_ns));
    let rule = format!("backlog {}: everything delivered (zero lost)", label(size));
    let delivered = if a.lost > 0 && waited >= ctx.knobs.drain_cap {
        out.notes.push(format!(
            "{tag}: not drained within the {} s cap ({} of {} delivered); the rest were still \
             queued in Herald, so they are undelivered rather than known lost",
            ctx.knobs.drain_cap.as_secs(),
            a.delivered,
            a.expected
        ));
        BudgetLine {
            rule,
            measured: format!(
                "{} of {} within {} s",
                a.delivered,
                a.expected,
                ctx.knobs.drain_cap.as_secs()
            ),
            met: false,
        }
    } else {
        zero_lost_line(&rule, a.lost, a.expected)
    };
    throughput
        .series
        .push((series_label(tag), per_second(&a.ok_times_ns, up_ns)));
    let secs = |ns: u64| ns.saturating_sub(up_ns) as f64 / 1e9;
    rss_plot.series.push((
        series_label(tag),
        rss.points()
            .iter()
            .map(|&(t, kib)| (secs(t), kib as f64 / 1024.0))
            .collect(),
    ));
    Ok(Level {
        size,
        drain,
        drain_rss_mib,
        delivered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(rule: &str, measured: &str, met: bool) -> BudgetLine {
        BudgetLine {
            rule: rule.to_owned(),
            measured: measured.to_owned(),
            met,
        }
    }

    #[test]
    fn the_reference_sits_between_the_drains_before_and_after() {
        // A machine slowing down steadily: the median would be the slower drain before.
        assert_eq!(bracketing(&[34_000.0, 35_000.0, 30_000.0], 2), 32_250.0);
        assert_eq!(bracketing(&[20_000.0, 30_000.0, 40_000.0], 2), 32_500.0);
        assert_eq!(bracketing(&[1.0, 3.0], 2), 2.0, "no drain after: the mean before");
        assert_eq!(bracketing(&[5.0], 0), 5.0, "no drain before: the mean after");
        assert_eq!(bracketing(&[], 2), 0.0);
    }

    #[test]
    fn repeats_fold_into_the_first_drains_line_and_a_miss_is_kept() {
        let rule = "backlog 10k: everything delivered (zero lost)";
        let ok = all_delivered(vec![
            line(rule, "0 lost of 10000", true),
            line(rule, "0 lost of 10000", true),
        ]);
        assert!(ok.met);
        assert_eq!(ok.measured, "0 lost of 10000");

        let missed = all_delivered(vec![
            line(rule, "0 lost of 10000", true),
            line(rule, "0 lost of 10000", true),
            line(rule, "9990 of 10000 within 90 s", false),
        ]);
        assert!(!missed.met);
        assert_eq!(missed.rule, "backlog 10k: everything delivered (zero lost)");
        assert!(
            missed.measured.contains("repeat: 9990 of 10000 within 90 s"),
            "{}",
            missed.measured
        );
        assert!(!all_delivered(Vec::new()).met);
    }

    #[test]
    fn repeat_drains_are_named_as_repeats_in_the_plots() {
        assert_eq!(series_label("10k"), "10k queued");
        assert_eq!(series_label("10k_repeat2"), "10k queued (repeat 2)");
    }
}
