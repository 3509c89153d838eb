//! `slow-endpoint`: 10 webhooks, one of which points at a sink that never answers (so each
//! of its attempts holds a connection until Herald's request timeout). Budget: the 9
//! healthy webhooks' throughput ≥ 0.9 × `fanout`'s, nothing lost on them. `fanout`'s
//! throughput is the mean of the run's `fanout` (when it ran; `--suite` runs it just
//! before) and a `fanout` pass right after this scenario, so a drift of the machine's
//! pace over the minutes between them does not decide the line.

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
    rig.usage(&mut out, &before, a.delivered).await?;
    let slow_requests = slow.stats().await?.requests;
    rig.finish().await?;
    report_drive(&mut out, &drive);
    report_analysis(&mut out, &a);
    check_window(&mut out, &a, !k.min_drive.is_zero());
    out.metric("slow_endpoint_requests", slow_requests);
    // `fanout` again, right after: the machine's pace drifts by the minute, so the line
    // compares with the mean of `fanout` before (the run's `fanout`, when it ran) and
    // after this scenario rather than with one pass minutes away.
    drop((healthy, slow));
    let after = super::fanout::pass(&ctx.herald, k).await?;
    after.rig.finish().await?;
    let again = after.analysis.throughput.per_sec;
    out.metric("fanout_after_deliveries_per_sec", round(again));
    if let Some(before) = ctx.fanout_rate {
        out.metric("fanout_before_deliveries_per_sec", round(before));
    }
    let fanout = reference(ctx.fanout_rate, again);
    out.metric("fanout_reference_deliveries_per_sec", round(fanout));
    if fanout > 0.0 {
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
    } else {
        out.notes
            .push("no fanout pass delivered anything to compare with (see its losses)".into());
    }
    let lost = a.lost + after.analysis.lost;
    if after.analysis.lost > 0 {
        out.notes.push(format!(
            "the fanout pass after this scenario lost {} of {}",
            after.analysis.lost, after.analysis.expected
        ));
    }
    out.zero_lost(lost, a.expected + after.analysis.expected);
    Ok(out)
}

/// The fan-out rate the line compares with: the mean of the passes before (if `fanout`
/// ran in this run) and after.
fn reference(before: Option<f64>, after: f64) -> f64 {
    match before {
        Some(b) if b > 0.0 => (b + after) / 2.0,
        _ => after,
    }
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

    #[test]
    fn the_reference_is_the_mean_of_the_passes_before_and_after() {
        assert_eq!(reference(Some(20_000.0), 18_000.0), 19_000.0);
        assert_eq!(reference(None, 18_000.0), 18_000.0);
        assert_eq!(
            reference(Some(0.0), 18_000.0),
            18_000.0,
            "a fanout that delivered nothing"
        );
    }
}
