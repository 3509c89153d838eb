//! `fanout` (and `fanout-pg`): every change goes to 10 webhooks, changes at max rate; then
//! the bare-client baseline posts the same bodies to the same sink with the same
//! concurrency. Budget: ≥ 15,000 deliveries/s (≥ 8,000/s on PostgreSQL), ≥ 0.35 × baseline,
//! nothing lost.

use anyhow::Context;

use crate::baseline::{self, BaselineSpec, Template};
use crate::driver::{self, Drive};
use crate::herald::{HeraldSpec, ServeOptions};
use crate::metrics::Analysis;
use crate::sinkctl::{Sink, SinkSpec};

use super::common::{
    check_window, collect, max_rate_budget, report_analysis, report_drive, PER_HOOK_CONCURRENCY,
};
use super::rig::{Mark, Rig};
use super::{rig, round, Ctx, Knobs, Outcome, RigSpec};

/// Webhooks per change.
pub const HOOKS: u32 = 10;

/// Webhooks per change in `fanout-wide`.
pub const WIDE_HOOKS: u32 = 50;

/// One fan-out pass: a sink, a Herald with `hooks` webhooks on it, changes at max rate,
/// and what arrived. Also what `slow-endpoint` measures its reference with.
pub struct Pass {
    /// The sink every webhook points at.
    pub sink: Sink,
    /// The running Herald and its API.
    pub rig: Rig,
    /// Cost counters before the drive.
    pub before: Mark,
    /// The changes made.
    pub drive: Drive,
    /// What the sink received of them.
    pub analysis: Analysis,
}

impl Pass {
    /// Reports Herald's costs over the drive and how soon it had recorded every delivery.
    async fn report_costs(&self, out: &mut Outcome) -> anyhow::Result<()> {
        self.rig.usage(out, &self.before, self.analysis.delivered).await?;
        recorded(out, &self.rig.api).await
    }
}

/// Runs one [`Pass`] with [`HOOKS`] webhooks on `spec`'s Herald; the caller stops its rig.
pub async fn pass(spec: &HeraldSpec, k: &Knobs) -> anyhow::Result<Pass> {
    pass_with(spec, k, HOOKS).await
}

/// Runs one [`Pass`] with `hooks` webhooks per change and as many deliveries as a
/// [`HOOKS`] pass makes (`--changes` × [`HOOKS`]), so a wider pass takes no longer.
async fn pass_with(spec: &HeraldSpec, k: &Knobs, hooks: u32) -> anyhow::Result<Pass> {
    let sink = Sink::spawn(&SinkSpec {
        tls: true,
        ..SinkSpec::default()
    })
    .await?;
    let mut budget = max_rate_budget(k);
    budget.changes = (k.changes * u64::from(HOOKS) / u64::from(hooks.max(1))).max(1);
    let hooks: Vec<u32> = (0..hooks).collect();
    let rig = rig(
        spec,
        RigSpec {
            sinks: vec![&sink],
            hooks: hooks.iter().map(|&h| sink.url(h as usize)).collect(),
            projects: 64,
            format: "ppm",
            serve: ServeOptions::default(),
        },
    )
    .await?;
    let before = rig.mark().await?;
    let drive = driver::max_rate(&rig.api, &rig.projects, k.api_concurrency, budget).await;
    let analysis = collect(&sink, &drive, &hooks, std::time::Duration::from_secs(20)).await?;
    Ok(Pass {
        sink,
        rig,
        before,
        drive,
        analysis,
    })
}

/// Runs `fanout` on SQLite (or whatever the run's database is) or, with `postgres`, on
/// the `--pg-url` database.
pub async fn run(ctx: &Ctx, postgres: bool) -> anyhow::Result<Outcome> {
    let name = if postgres { "fanout-pg" } else { "fanout" };
    let mut out = Outcome::new(name);
    let mut spec = ctx.herald.clone();
    if postgres {
        let url = ctx.pg_url.clone().context("fanout-pg needs --pg-url")?;
        let socket = if ctx.pg_tcp {
            None
        } else {
            crate::herald::local_socket(&url).await
        };
        out.notes.push(match &socket {
            Some(dir) => {
                format!("PostgreSQL through its Unix socket in {dir} (`--pg-tcp` for the URL's TCP)")
            }
            None => "PostgreSQL over TCP, as the URL says".into(),
        });
        spec.database_url = Some(match socket {
            Some(dir) => crate::herald::through_socket(&url, &dir),
            None => url,
        });
    }
    let k = &ctx.knobs;
    let p = pass(&spec, k).await?;
    p.report_costs(&mut out).await?;
    let sample = p.sink.sample().await?;
    p.rig.finish().await?;
    let (sink, drive, a) = (p.sink, p.drive, p.analysis);
    report_drive(&mut out, &drive);
    report_analysis(&mut out, &a);
    check_window(&mut out, &a, !k.min_drive.is_zero());

    let template = match &sample {
        Some(body) => Template::new(body),
        None => {
            out.notes
                .push("no Herald body arrived: baseline used a synthetic 1 KB body".into());
            Template::synthetic()
        }
    };
    // The same number of bodies Herald delivered (all of them when Herald got none through).
    let changes = match drive.acked.len() as u64 {
        0 => k.changes,
        n => n,
    };
    let baseline = baseline::run(
        &sink,
        &BaselineSpec {
            changes,
            hooks: HOOKS,
            per_hook_concurrency: PER_HOOK_CONCURRENCY,
            template,
            min_time: k.min_drive,
        },
    )
    .await?;
    let base = &baseline.analysis;
    out.metric("baseline_deliveries_per_sec", round(base.throughput.per_sec));
    out.metric("baseline_window_secs", round(base.throughput.window_secs));
    out.metric("baseline_rounds", baseline.round_rates.len());
    out.metric("baseline_round_rates", rates_text(&baseline.round_rates));
    out.metric("baseline_errors", baseline.errors);
    if base.lost > 0 || base.duplicates > 0 {
        out.notes.push(format!(
            "baseline: {} lost and {} duplicates of {} (the sink or the client misbehaved)",
            base.lost, base.duplicates, base.expected
        ));
    }
    let ratio = if base.throughput.per_sec > 0.0 {
        a.throughput.per_sec / base.throughput.per_sec
    } else {
        0.0
    };
    out.metric("herald_over_baseline", round(ratio));

    let (floor, label) = if postgres {
        (8_000.0, "PostgreSQL fanout ≥ 8,000 deliveries/s")
    } else {
        (15_000.0, "fanout ≥ 15,000 deliveries/s")
    };
    out.judge(
        label,
        a.throughput.per_sec,
        0,
        |r| r >= floor,
        |v| format!("{v}/s"),
    );
    if !postgres {
        out.judge(
            "fanout ≥ 0.35 × baseline",
            ratio,
            2,
            |r| r >= 0.35,
            |v| format!("{v} ×"),
        );
    }
    out.zero_lost(a.lost, a.expected);
    Ok(out)
}

/// `fanout-wide`: as `fanout`, but every change goes to [`WIDE_HOOKS`] webhooks (the
/// number of deliveries stays `--changes` × [`HOOKS`]). No budget line of its own besides
/// nothing lost; what it shows is whether Herald sends and records deliveries as fast as
/// a wide fan-out asks for them: `deliveries_over_asked` is deliveries/s over
/// (changes/s × webhooks), ≈ 1 when they keep up, and the delivery latency stays in
/// milliseconds. Why: recording once fell behind there (SQLite's recorder wrote at most
/// 256 attempts per turn of the writer: 0.38 of what was asked, latency p99 25 s;
/// BENCHMARKS.md, "The recorder's batch on SQLite"), which the 10-webhook `fanout` never
/// showed.
pub async fn wide(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("fanout-wide");
    let p = pass_with(&ctx.herald, &ctx.knobs, WIDE_HOOKS).await?;
    p.report_costs(&mut out).await?;
    p.rig.finish().await?;
    let (drive, a) = (&p.drive, &p.analysis);
    out.metric("webhooks_per_change", WIDE_HOOKS);
    report_drive(&mut out, drive);
    report_analysis(&mut out, a);
    check_window(&mut out, a, !ctx.knobs.min_drive.is_zero());
    let asked = drive.rate() * f64::from(WIDE_HOOKS);
    if asked > 0.0 {
        out.metric("deliveries_over_asked", round(a.throughput.per_sec / asked));
    }
    out.zero_lost(a.lost, a.expected);
    Ok(out)
}

/// Longest wait, after the sink has every delivery, for Herald to have recorded them all.
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Checks that Herald recorded what the sink received: its queue (read from its
/// database) empties soon after the last receipt. A sink can count deliveries a node has
/// sent but not yet recorded — and such a backlog grows in memory and is sent again after
/// a crash or an expired lease (PostgreSQL's recorder once fell behind by half the rate
/// unseen). Reports how long the queue took to empty, or what was left.
async fn recorded(out: &mut Outcome, api: &crate::herald::api::Api) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let mut left = api.queue_pending().await?;
    while left > 0 && start.elapsed() < RECORD_WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = api.queue_pending().await?;
    }
    out.metric("unrecorded_after_wait", left);
    if left == 0 {
        out.metric("recorded_within_secs", round(start.elapsed().as_secs_f64()));
    } else {
        out.notes.push(format!(
            "{left} deliveries still pending in Herald {} s after the sink had them all \
             (sent but not recorded)",
            RECORD_WAIT.as_secs()
        ));
    }
    Ok(())
}

/// `baseline`: the sink and the bare client only, no Herald — the harness's own check.
pub async fn baseline_only(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = Outcome::new("baseline");
    let sink = Sink::spawn(&SinkSpec {
        tls: true,
        ..SinkSpec::default()
    })
    .await?;
    let baseline = baseline::run(
        &sink,
        &BaselineSpec {
            changes: ctx.knobs.changes,
            hooks: HOOKS,
            per_hook_concurrency: PER_HOOK_CONCURRENCY,
            template: Template::synthetic(),
            min_time: ctx.knobs.min_drive,
        },
    )
    .await?;
    let base = &baseline.analysis;
    report_analysis(&mut out, base);
    out.metric("rounds", baseline.round_rates.len());
    out.metric("round_rates", rates_text(&baseline.round_rates));
    out.metric("baseline_errors", baseline.errors);
    if let Some(pid) = sink.pid() {
        if let Ok(s) = crate::procstat::sample(pid) {
            out.metric("sink_cpu_secs", round(s.cpu_secs));
        }
    }
    out.zero_lost(base.lost, base.expected);
    Ok(out)
}

/// Round rates for the report, e.g. `62667/s, 64427/s`.
pub(super) fn rates_text(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|r| format!("{r:.0}/s"))
        .collect::<Vec<_>>()
        .join(", ")
}
