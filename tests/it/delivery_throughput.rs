//! Throughput probes (ignored by default; run with
//! `cargo test --release --test it throughput -- --ignored --nocapture`). They print
//! figures rather than assert them: the machine is shared.

use std::time::Instant;

use serde_json::json;

use crate::support::hooks::rig;
use crate::support::{Backend, WAIT};

async fn drain_rate(backend: Backend) {
    const EVENTS: usize = 1000;
    const HOOKS: usize = 5;
    let Some(rig) = rig(backend, &[("HERALD_WORKERS", "false")]).await else {
        return;
    };
    for _ in 0..HOOKS {
        rig.webhook("standard", &["Project:Created"], json!({})).await;
    }
    let t = Instant::now();
    for i in 0..EVENTS {
        rig.project(&format!("T{i}")).await;
    }
    let fan_out = t.elapsed();
    let t = Instant::now();
    let mut claimed = 0;
    loop {
        let n = rig.app.delivery.run_once().await.unwrap();
        if n == 0 {
            break;
        }
        claimed += n;
    }
    let drain = t.elapsed();
    assert_eq!(claimed, EVENTS * HOOKS);
    rig.rx.wait_for(EVENTS * HOOKS, WAIT).await;
    eprintln!(
        "{backend:?}: {EVENTS} changes via the API with {HOOKS} webhooks in {fan_out:?} ({:.0} changes/s); \
         claimed, sent and recorded {claimed} deliveries in {drain:?} ({:.0}/s)",
        EVENTS as f64 / fan_out.as_secs_f64(),
        claimed as f64 / drain.as_secs_f64()
    );
}

async fn end_to_end(backend: Backend) {
    const EVENTS: usize = 1000;
    const HOOKS: usize = 5;
    let Some(rig) = rig(backend, &[]).await else {
        return;
    };
    for _ in 0..HOOKS {
        rig.webhook("standard", &["Project:Created"], json!({})).await;
    }
    let t = Instant::now();
    for i in 0..EVENTS {
        rig.project(&format!("E{i}")).await;
    }
    rig.rx.wait_for(EVENTS * HOOKS, WAIT * 6).await;
    let took = t.elapsed();
    eprintln!(
        "{backend:?}: {EVENTS} changes → {} deliveries received {took:?} after the first change ({:.0}/s, local handoff)",
        EVENTS * HOOKS,
        (EVENTS * HOOKS) as f64 / took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput_sqlite() {
    drain_rate(Backend::Sqlite).await;
    end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput_postgres() {
    drain_rate(Backend::Postgres).await;
    end_to_end(Backend::Postgres).await;
}
