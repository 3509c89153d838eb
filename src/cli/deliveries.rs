//! `herald deliveries list|show|redeliver`: the delivery log and replay from the command
//! line, straight against the database (like `token`). A running `serve` picks re-queued
//! deliveries up on its next poll (SQLite) or at once (PostgreSQL `NOTIFY`).

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::store::{DeliveryFilter, DeliveryStatus, RedeliverMatch, RedeliverRefusal, Store};
use crate::timefmt::{now_ms, parse_rfc3339_ms, rfc3339_ms};

/// Rows re-queued per transaction during a bulk replay (one progress step).
const CHUNK: i64 = 200;

/// `herald deliveries …`
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List a webhook's deliveries, newest first.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Webhook id.
        #[arg(long)]
        webhook: Uuid,
        /// Only this status: pending, succeeded, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one delivery with every attempt.
    Show {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Delivery id.
        id: Uuid,
    },
    /// Queue a new attempt of one delivery, or (with --webhook) replay many.
    Redeliver {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Delivery id (omit with --webhook).
        #[arg(required_unless_present = "webhook", conflicts_with = "webhook")]
        id: Option<Uuid>,
        /// Replay this webhook's deliveries.
        #[arg(long)]
        webhook: Option<Uuid>,
        /// Deliveries in this state (failed or succeeded).
        #[arg(long, default_value = "failed", requires = "webhook")]
        status: String,
        /// Only deliveries created at or after this RFC 3339 time.
        #[arg(long, requires = "webhook")]
        since: Option<String>,
    },
}

fn parse_status(s: &str) -> anyhow::Result<DeliveryStatus> {
    DeliveryStatus::parse(s)
        .with_context(|| format!("unknown status `{s}` (pending, succeeded, failed, cancelled)"))
}

/// Runs a `deliveries` command.
pub async fn run(store: &dyn Store, cmd: DeliveriesCommand) -> anyhow::Result<()> {
    let tenant_of = |slug: String| async move {
        store
            .tenant_by_slug(&slug)
            .await?
            .map(|t| t.id)
            .with_context(|| format!("no tenant `{slug}`"))
    };
    match cmd {
        DeliveriesCommand::List {
            tenant,
            webhook,
            status,
            limit,
        } => {
            let tenant_id = tenant_of(tenant).await?;
            let filter = DeliveryFilter {
                status: status.as_deref().map(parse_status).transpose()?,
                limit: limit.clamp(1, 10_000),
                ..DeliveryFilter::default()
            };
            println!(
                "{:<36} {:<10} {:>8} {:<6} {:<24} EVENT",
                "ID", "STATUS", "ATTEMPTS", "CODE", "CREATED"
            );
            for d in store.list_deliveries(tenant_id, Some(webhook), &filter).await? {
                println!(
                    "{:<36} {:<10} {:>8} {:<6} {:<24} {}",
                    d.id,
                    d.status.as_str(),
                    d.attempts,
                    d.last_status_code.map_or_else(|| "-".into(), |c| c.to_string()),
                    rfc3339_ms(d.created_at),
                    d.event_type
                );
            }
        }
        DeliveriesCommand::Show { tenant, id } => {
            let tenant_id = tenant_of(tenant).await?;
            let d = store
                .get_delivery(tenant_id, id)
                .await?
                .with_context(|| format!("no delivery {id}"))?;
            let s = &d.summary;
            println!(
                "delivery {}  webhook {}  {}  {}",
                s.id,
                s.webhook_id,
                s.event_type,
                s.status.as_str()
            );
            for a in &d.attempts {
                let result = match (a.status_code, &a.error) {
                    (Some(code), _) => format!("HTTP {code}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "-".into(),
                };
                println!(
                    "  #{:<3} {}  {:>6} ms  {:<9} {result}",
                    a.number,
                    rfc3339_ms(a.started_at),
                    a.duration_ms,
                    a.outcome
                );
            }
            if let Some(body) = d.body {
                println!("body: {body}");
            }
        }
        DeliveriesCommand::Redeliver {
            tenant, id: Some(id), ..
        } => {
            let tenant_id = tenant_of(tenant).await?;
            match store.redeliver(tenant_id, id, now_ms()).await? {
                Ok(_) => println!("Queued a new attempt of delivery {id}."),
                Err(RedeliverRefusal::NotFound) => anyhow::bail!("no delivery {id}"),
                Err(RedeliverRefusal::InFlight) => {
                    anyhow::bail!("an attempt of {id} is in flight; try again")
                }
                Err(RedeliverRefusal::BodyPurged) => {
                    anyhow::bail!("the body of {id} was purged by retention")
                }
                Err(RedeliverRefusal::WebhookGone) => anyhow::bail!("the webhook of {id} was deleted"),
            }
        }
        DeliveriesCommand::Redeliver {
            tenant,
            webhook: Some(webhook),
            status,
            since,
            ..
        } => {
            let tenant_id = tenant_of(tenant).await?;
            let status = parse_status(&status)?;
            anyhow::ensure!(
                matches!(status, DeliveryStatus::Failed | DeliveryStatus::Succeeded),
                "only failed or succeeded deliveries can be replayed"
            );
            let since = since
                .map(|s| {
                    parse_rfc3339_ms(&s).with_context(|| format!("--since `{s}` is not an RFC 3339 time"))
                })
                .transpose()?;
            replay(store, tenant_id, webhook, status, since).await?;
        }
        DeliveriesCommand::Redeliver { .. } => anyhow::bail!("give a delivery id or --webhook"),
    }
    Ok(())
}

async fn replay(
    store: &dyn Store,
    tenant_id: i64,
    webhook: Uuid,
    status: DeliveryStatus,
    since: Option<i64>,
) -> anyhow::Result<()> {
    // As the API does: a mistyped id would queue nothing and say so successfully, and the
    // deliveries of a deleted webhook would be queued where no claim takes them.
    anyhow::ensure!(
        store.get_webhook(tenant_id, webhook).await?.is_some(),
        "no webhook {webhook} in this tenant"
    );
    let total = store.count_matching(tenant_id, webhook, status, since).await?;
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("re-queueing");
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut m = RedeliverMatch {
        status,
        since,
        after_seq: 0,
        limit: CHUNK,
    };
    let mut queued = 0u64;
    while let (n, Some(last)) = store.redeliver_matching(tenant_id, webhook, &m, now_ms()).await? {
        queued += n;
        m.after_seq = last;
        bar.inc(n);
    }
    bar.finish_and_clear();
    println!("Queued {queued} deliveries of webhook {webhook} for redelivery.");
    Ok(())
}
