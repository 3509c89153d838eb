//! `retry-storm`: the sink answers `500` to 30% of requests (spread evenly, retries
//! included) and Herald retries on a short schedule. Reports the rates of first attempts,
//! retries and completed deliveries. Budget: nothing lost (the schedule has enough steps
//! that exhausting it is practically impossible: 21 attempts, all refused with odds
//! 0.3²¹ ≈ 10⁻¹¹ per delivery, ≈ 3·10⁻⁶ per run of ~260,000 deliveries).

use std::time::Duration;

use crate::driver;
use crate::herald::ServeOptions;
use crate::metrics::{analyse, Throughput};
use crate::record::Kind;
use crate::sinkctl::{Sink, SinkSpec};

use super::common::{check_window, max_rate_budget, report_analysis, report_drive};
use super::{rig, round, Ctx, Outcome, RigSpec};

/// Webhooks per change.
pub const HOOKS: u32 = 10;
/// Share of requests answered `500`.
pub const FAIL_PCT: u32 = 30;
/// `HERALD_RETRY_SCHEDULE` for this scenario: 20 retries. Twelve (13 attempts) left a
/// run ~4 % odds of one delivery refused on every attempt (0.3¹³ × ~260,000); the steps
/// after the twelfth are almost never reached, so they change none of the rates.
pub const SCHEDULE: &str = "100ms,200ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("retry-storm");
    let sink = Sink::spawn(&SinkSpec {
        tls: true,
        fail_pct: FAIL_PCT,
        ..SinkSpec::default()
    })
    .await?;
    let hooks: Vec<u32> = (0..HOOKS).collect();
    let serve = ServeOptions {
        env: vec![("HERALD_RETRY_SCHEDULE".into(), SCHEDULE.into())],
        ..ServeOptions::default()
    };
    let rig = rig(
        &ctx.herald,
        RigSpec {
            sinks: vec![&sink],
            hooks: hooks.iter().map(|&h| sink.url(h as usize)).collect(),
            projects: 64,
            format: "ppm",
            serve,
        },
    )
    .await?;
    let before = rig.mark().await?;
    let k = &ctx.knobs;
    let budget = max_rate_budget(k);
    let drive = driver::max_rate(&rig.api, &rig.projects, k.api_concurrency, budget).await;
    let expected = (drive.acked.len() * hooks.len()) as u64;
    sink.wait_for(expected, Duration::from_secs(20), Duration::from_secs(900))
        .await?;
    let records = sink.records().await?;
    let a = analyse(&records, &drive.acked, &hooks);
    rig.usage(&mut out, &before, a.delivered).await?;
    rig.finish().await?;
    report_drive(&mut out, &drive);
    report_analysis(&mut out, &a);
    check_window(&mut out, &a, !k.min_drive.is_zero());

    let times = |kind: Kind| -> Vec<u64> {
        records
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.recv_ns)
            .collect()
    };
    let first = Throughput::sustained(&mut times(Kind::First));
    let retries = Throughput::sustained(&mut times(Kind::Retry));
    let mut all: Vec<u64> = records.iter().map(|r| r.recv_ns).collect();
    let requests = Throughput::sustained(&mut all);
    out.metric("first_attempts", a.first_attempts);
    out.metric("retries", a.retries);
    out.metric("answered_500", a.answered_err);
    out.metric("first_attempts_per_sec", round(first.per_sec));
    out.metric("retries_per_sec", round(retries.per_sec));
    out.metric("requests_per_sec", round(requests.per_sec));
    out.metric("retry_schedule", SCHEDULE);
    out.zero_lost(a.lost, a.expected);
    Ok(out)
}
