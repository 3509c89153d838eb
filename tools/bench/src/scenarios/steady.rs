//! `steady`: 1,000 changes/s (open loop) for `--duration` seconds to 3 webhooks; latency
//! from each API response to receipt at the sink. Budget: p50 ≤ 5 ms, p99 ≤ 25 ms, nothing
//! lost. Plots latency over time and deliveries per second.

use std::time::Duration;

use crate::driver;
use crate::herald::ServeOptions;
use crate::metrics::{latency_buckets, per_second};
use crate::sinkctl::{Sink, SinkSpec};

use super::common::{report_analysis, report_drive};
use super::{rig, Ctx, Outcome, Plot, RigSpec};

/// Changes per second.
pub const RATE: u64 = 1_000;
/// Webhooks per change.
pub const HOOKS: u32 = 3;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("steady");
    let sink = Sink::spawn(&SinkSpec {
        tls: true,
        ..SinkSpec::default()
    })
    .await?;
    let hooks: Vec<u32> = (0..HOOKS).collect();
    let rig = rig(
        &ctx.herald,
        RigSpec {
            sinks: vec![&sink],
            hooks: hooks.iter().map(|&h| sink.url(h as usize)).collect(),
            projects: 200,
            format: "ppm",
            serve: ServeOptions::default(),
        },
    )
    .await?;
    let before = rig.mark().await?;
    let drive = driver::paced(&rig.api, &rig.projects, RATE, ctx.knobs.duration).await;
    let a = super::common::collect(&sink, &drive, &hooks, Duration::from_secs(20)).await?;
    rig.usage(&mut out, &before, a.delivered).await?;
    rig.finish().await?;
    report_drive(&mut out, &drive);
    report_analysis(&mut out, &a);
    let achieved = drive.rate();
    out.rule(
        &format!("steady: Herald's API sustains {RATE} changes/s"),
        format!("{achieved:.0} changes/s"),
        achieved >= RATE as f64 * 0.95,
    );
    if achieved < RATE as f64 * 0.95 {
        out.notes.push(format!(
            "Herald's API took only {achieved:.0} of the {RATE} changes/s asked for; delivery latency \
             is measured from each response, so the queueing at the API shows in api_latency_*, not in it"
        ));
    }
    match a.latency {
        Some(l) => {
            out.judge(
                "steady p50 ≤ 5 ms",
                l.p50_ms,
                2,
                |v| v <= 5.0,
                |v| format!("{v} ms"),
            );
            out.judge(
                "steady p99 ≤ 25 ms",
                l.p99_ms,
                2,
                |v| v <= 25.0,
                |v| format!("{v} ms"),
            );
        }
        None => {
            out.rule("steady p50 ≤ 5 ms", "no deliveries".into(), false);
            out.rule("steady p99 ≤ 25 ms", "no deliveries".into(), false);
        }
    }
    out.zero_lost(a.lost, a.expected);

    let origin = drive.start_ns;
    let [p50, p99, max] = latency_buckets(&a.latency_points, origin, 0.5);
    out.plots.push(Plot {
        stem: "steady-latency".into(),
        title: format!("steady: latency, API response → sink ({RATE} changes/s × {HOOKS} webhooks)"),
        x_label: "seconds since the first change (0.5 s buckets)".into(),
        y_label: "latency (ms)".into(),
        series: vec![("p50".into(), p50), ("p99".into(), p99), ("max".into(), max)],
    });
    out.plots.push(Plot {
        stem: "steady-throughput".into(),
        title: "steady: deliveries received per second".into(),
        x_label: "seconds since the first change".into(),
        y_label: "deliveries/s".into(),
        series: vec![("received".into(), per_second(&a.ok_times_ns, origin))],
    });
    Ok(out)
}
