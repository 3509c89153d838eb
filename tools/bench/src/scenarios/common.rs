//! Steps several scenarios share: waiting for the sink to catch up, analysing what it got,
//! and reporting drives and analyses in the same words everywhere.

use std::time::Duration;

use crate::driver::{Budget, Drive};
use crate::metrics::{analyse, Analysis, Percentiles};
use crate::sinkctl::Sink;

use super::{round, Knobs, Outcome};

/// Herald's default `per_webhook_concurrency`: the baseline uses as many lanes per hook.
pub const PER_HOOK_CONCURRENCY: usize = 8;

/// Waits until the sink has `expected` unique 2xx deliveries (or stalls for `stall`), then
/// analyses its records against `drive` and `hooks`.
pub async fn collect(sink: &Sink, drive: &Drive, hooks: &[u32], stall: Duration) -> anyhow::Result<Analysis> {
    collect_within(sink, drive, hooks, stall, Duration::from_secs(900)).await
}

/// [`collect`], giving up after `max` even while deliveries still arrive.
pub async fn collect_within(
    sink: &Sink,
    drive: &Drive,
    hooks: &[u32],
    stall: Duration,
    max: Duration,
) -> anyhow::Result<Analysis> {
    let expected = (drive.acked.len() * hooks.len()) as u64;
    sink.wait_for(expected, stall, max).await?;
    let records = sink.records().await?;
    Ok(analyse(&records, &drive.acked, hooks))
}

/// Reports a drive: changes acknowledged, API rate, failures.
pub fn report_drive(out: &mut Outcome, drive: &Drive) {
    out.metric("changes", drive.acked.len() as u64);
    out.metric("api_changes_per_sec", round(drive.rate()));
    out.metric("api_errors", drive.errors);
    if let Some(p) = Percentiles::of(&mut drive.api_latency_ns.clone()) {
        out.metric("api_latency_p50_ms", round(p.p50_ms));
        out.metric("api_latency_p99_ms", round(p.p99_ms));
    }
    if let Some(e) = &drive.first_error {
        out.notes.push(format!("first API error: {e}"));
    }
}

/// Reports an analysis: correctness, throughput, latency.
pub fn report_analysis(out: &mut Outcome, a: &Analysis) {
    out.metric("expected_deliveries", a.expected);
    out.metric("delivered", a.delivered);
    out.metric("lost", a.lost);
    out.metric("duplicates", a.duplicates);
    out.metric("deliveries_per_sec", round(a.throughput.per_sec));
    out.metric("throughput_window_secs", round(a.throughput.window_secs));
    if let Some(l) = a.latency {
        out.metric("latency_p50_ms", round(l.p50_ms));
        out.metric("latency_p95_ms", round(l.p95_ms));
        out.metric("latency_p99_ms", round(l.p99_ms));
        out.metric("latency_max_ms", round(l.max_ms));
    }
    if a.unexpected > 0 {
        out.notes.push(format!(
            "{} requests carried no known seq or hook (not counted as deliveries)",
            a.unexpected
        ));
    }
    if a.arrived_before_ack > 0 {
        out.notes.push(format!(
            "{} deliveries arrived before their API call returned (latency counted as 0)",
            a.arrived_before_ack
        ));
    }
}

/// Notes a throughput window shorter than the 20 s a full run should sustain.
pub fn check_window(out: &mut Outcome, a: &Analysis, full: bool) {
    if full && a.throughput.window_secs < 20.0 {
        out.notes.push(format!(
            "throughput window only {:.1} s (< 20 s): raise --changes or --min-drive",
            a.throughput.window_secs
        ));
    }
}

/// The drive of the max-rate scenarios (`fanout`, `slow-endpoint`, `retry-storm`): at least
/// `--changes` changes over at least `--min-drive`, and a hard stop two minutes after that
/// so a stalled Herald ends the scenario instead of the run.
pub fn max_rate_budget(k: &Knobs) -> Budget {
    Budget {
        changes: k.changes,
        min_time: k.min_drive,
        max_time: k.min_drive + Duration::from_secs(120),
    }
}
