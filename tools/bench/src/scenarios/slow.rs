//! `slow-endpoint`: 10 webhooks, one of which points at a sink that never answers (so each
//! of its attempts holds a connection until Herald's request timeout). Budget: the 9
//! healthy webhooks' throughput ≥ 0.9 × this run's `fanout`, nothing lost on them.

use std::time::Duration;

use crate::driver;
use crate::herald::ServeOptions;
use crate::sinkctl::{Sink, SinkSpec};

use super::common::{check_window, collect, max_rate_budget, report_analysis, report_drive};
use super::{rig, round, Ctx, Outcome, RigSpec};

/// Healthy webhooks (`/hook/0…8`); `/hook/9` is the slow one.
pub const HEALTHY: u32 = 9;

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("slow-endpoint");
    let healthy = Sink::spawn(&SinkSpec {
        tls: true,
        ..SinkSpec::default()
    })
    .await?;
    let slow = Sink::spawn(&SinkSpec {
        tls: true,
        never: true,
        ..SinkSpec::default()
    })
    .await?;
    let hooks: Vec<u32> = (0..HEALTHY).collect();
    let mut urls: Vec<String> = hooks.iter().map(|&h| healthy.url(h as usize)).collect();
    urls.push(slow.url(HEALTHY as usize));
    let rig = rig(
        &ctx.herald,
        RigSpec {
            sinks: vec![&healthy, &slow],
            hooks: urls,
            projects: 64,
            format: "ppm",
            serve: ServeOptions::default(),
        },
    )
    .await?;
    let before = rig.mark().await?;
    let k = &ctx.knobs;
    let budget = max_rate_budget(k);
    let drive = driver::max_rate(&rig.api, &rig.projects, k.api_concurrency, budget).await;
    let a = collect(&healthy, &drive, &hooks, Duration::from_secs(20)).await?;
    rig.usage(&mut out, before, a.delivered).await?;
    let slow_requests = slow.stats().await?.requests;
    rig.finish().await?;
    report_drive(&mut out, &drive);
    report_analysis(&mut out, &a);
    check_window(&mut out, &a, !k.min_drive.is_zero());
    out.metric("slow_endpoint_requests", slow_requests);
    match ctx.fanout_rate {
        Some(fanout) if fanout > 0.0 => {
            let ratio = a.throughput.per_sec / fanout;
            out.metric("healthy_over_fanout", round(ratio));
            // The line compares totals, and 9 of this scenario's 10 webhooks count against
            // fanout's 10: when Herald's API sets the pace of both, the line sits at ≈ 0.9 ×
            // by construction. Per webhook shows whether the slow one cost the others anything.
            let per_hook = per_hook_ratio(a.throughput.per_sec, fanout);
            out.metric("per_healthy_hook_over_fanout_per_hook", round(per_hook));
            out.notes.push(format!(
                "per webhook: {:.0}/s to each healthy webhook vs {:.0}/s to each of fanout's = {per_hook:.2} ×",
                a.throughput.per_sec / f64::from(HEALTHY),
                fanout / f64::from(super::fanout::HOOKS),
            ));
            let healthy = a.throughput.per_sec;
            out.judge(
                "slow-endpoint healthy throughput ≥ 0.9 × fanout",
                ratio,
                2,
                |r| r >= 0.9,
                |v| format!("{healthy:.0}/s vs {fanout:.0}/s = {v} ×"),
            );
        }
        _ => out
            .notes
            .push("no fanout throughput in this run to compare with (run `fanout` first)".into()),
    }
    out.zero_lost(a.lost, a.expected);
    Ok(out)
}

/// What each healthy webhook received per second, over what each of `fanout`'s received.
fn per_hook_ratio(healthy_per_sec: f64, fanout_per_sec: f64) -> f64 {
    (healthy_per_sec / f64::from(HEALTHY)) / (fanout_per_sec / f64::from(super::fanout::HOOKS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_pace_per_webhook_is_one_even_though_the_totals_differ() {
        // Run Q: both scenarios ran ~2,105 changes/s.
        assert!((per_hook_ratio(18_945.0, 21_050.0) - 1.0).abs() < 1e-9);
        assert!((per_hook_ratio(9_000.0, 20_000.0) - 0.5).abs() < 1e-9);
    }
}
