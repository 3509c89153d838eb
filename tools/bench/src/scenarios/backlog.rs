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
use super::{rig, round, Ctx, Outcome, Plot, RigSpec};

/// One size's results.
struct Level {
    size: u64,
    drain: Throughput,
    drain_rss_mib: f64,
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
    for size in [top / 100, top / 10, top] {
        let level = one_level(ctx, size, &mut out, &mut throughput, &mut rss_plot).await?;
        levels.push(level);
    }
    out.plots.push(throughput);
    out.plots.push(rss_plot);
    let (small, large) = (&levels[0], &levels[levels.len() - 1]);
    let ratio = if small.drain.per_sec > 0.0 {
        large.drain.per_sec / small.drain.per_sec
    } else {
        0.0
    };
    out.metric("drain_ratio_largest_over_smallest", round(ratio));
    let (large_rate, small_rate) = (large.drain.per_sec, small.drain.per_sec);
    out.judge(
        &format!(
            "backlog drain at {} ≥ 0.9 × at {}",
            label(large.size),
            label(small.size)
        ),
        ratio,
        2,
        |r| r >= 0.9,
        |v| format!("{large_rate:.0}/s vs {small_rate:.0}/s = {v} ×"),
    );
    out.rule(
        &format!("backlog RSS ≤ 150 MiB with {} queued", label(large.size)),
        format!("{:.1} MiB", large.drain_rss_mib),
        large.drain_rss_mib > 0.0 && large.drain_rss_mib <= 150.0,
    );
    Ok(out)
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
    out: &mut Outcome,
    throughput: &mut Plot,
    rss_plot: &mut Plot,
) -> anyhow::Result<Level> {
    let tag = label(size);
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
    if a.lost > 0 && waited >= ctx.knobs.drain_cap {
        out.notes.push(format!(
            "{tag}: not drained within the {} s cap ({} of {} delivered); the rest were still \
             queued in Herald, so they are undelivered rather than known lost",
            ctx.knobs.drain_cap.as_secs(),
            a.delivered,
            a.expected
        ));
        out.rule(
            &format!("backlog {tag}: everything delivered (zero lost)"),
            format!(
                "{} of {} within {} s",
                a.delivered,
                a.expected,
                ctx.knobs.drain_cap.as_secs()
            ),
            false,
        );
    } else {
        out.zero_lost(a.lost, a.expected);
        if let Some(r) = out.budget.last_mut() {
            r.rule = format!("backlog {tag}: everything delivered (zero lost)");
        }
    }
    throughput
        .series
        .push((format!("{tag} queued"), per_second(&a.ok_times_ns, up_ns)));
    let secs = |ns: u64| ns.saturating_sub(up_ns) as f64 / 1e9;
    rss_plot.series.push((
        format!("{tag} queued"),
        rss.points()
            .iter()
            .map(|&(t, kib)| (secs(t), kib as f64 / 1024.0))
            .collect(),
    ));
    Ok(Level {
        size,
        drain,
        drain_rss_mib,
    })
}
