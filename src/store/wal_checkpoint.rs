//! SQLite WAL checkpoints off the writer's path.
//!
//! Why: by default the connection that commits also checkpoints, copying the WAL back into
//! the database file once it passes 1,000 pages — and on Herald every commit goes through
//! the one writer connection, so every few hundred changes one of them waits for
//! thousands of page writes while the whole write queue waits behind it. A task with a
//! connection of its own checkpoints instead (`PASSIVE`: it never blocks the writer or
//! readers), often enough that the writer's own automatic checkpoint, kept as a safety
//! net at a higher threshold, rarely has anything to do.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often the background checkpoint runs. Each checkpoint copies every page written
/// since the last one, and the hot pages (index tails, the newest table pages) are written
/// again by every checkpoint, so fewer checkpoints copy less: at 500 ms instead of 200 ms
/// the fan-out bench used ~15 % less CPU per delivery (three A/B pairs, +8–31 %
/// throughput). Longer still (1 s) made the copies bursty enough to double the API's p99
/// latency at 1,000 changes/s, for little more.
const EVERY: Duration = Duration::from_millis(500);

/// The writer checkpoints by itself only past this many WAL pages (~64 MiB): a backstop
/// for when the background task falls behind, not the usual path.
pub(crate) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Starts the checkpoint task on its own connection; it stops when the returned guard
/// (held by every clone of the store) is dropped.
pub(crate) async fn start(opts: &SqliteConnectOptions) -> Result<DropGuard, sqlx::Error> {
    let mut conn = opts.connect().await?;
    let stop = CancellationToken::new();
    let guard = stop.clone().drop_guard();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut conn)
                .await
            {
                tracing::warn!(error = %e, "background WAL checkpoint failed; the writer will checkpoint");
            }
        }
        let _ = conn.close().await;
    });
    Ok(guard)
}
