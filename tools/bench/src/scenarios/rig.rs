//! A scenario's rig: a fresh database, a running Herald that trusts the sinks' CAs, an API
//! client with an admin token, the seq field, projects and one webhook per sink URL.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use tokio::task::JoinSet;

use crate::herald::api::{Api, SEQ_FIELD};
use crate::herald::{create_token, Database, Herald, HeraldSpec, ServeOptions};
use crate::procstat;
use crate::sinkctl::Sink;

use super::{round, Outcome};

/// The tenant every scenario works in.
pub const TENANT: &str = "bench";

/// What to set up.
pub struct RigSpec<'a> {
    /// Sinks whose CAs Herald must trust.
    pub sinks: Vec<&'a Sink>,
    /// Webhook URLs, in `/hook/<n>` order.
    pub hooks: Vec<String>,
    /// Projects to create (at least the driver's concurrency).
    pub projects: usize,
    /// Webhook format.
    pub format: &'static str,
    /// How to start Herald.
    pub serve: ServeOptions,
}

/// See the module docs.
pub struct Rig {
    /// The running Herald (first: on an early way out it is killed before the database goes).
    pub herald: Herald,
    /// The scenario's database.
    pub db: Database,
    /// API client.
    pub api: Api,
    /// Project ids.
    pub projects: Vec<Value>,
    token: String,
}

/// A reading of Herald's cost counters.
#[derive(Debug, Clone)]
pub struct Mark {
    at: std::time::Instant,
    cpu_secs: f64,
    /// Thread id → (group, CPU seconds); empty when `/proc` could not be listed.
    threads: HashMap<u32, (String, f64)>,
    db_bytes: Option<u64>,
    /// The local PostgreSQL server's CPU seconds (`procstat::server_cpu_secs`); `None` on
    /// SQLite or a server elsewhere.
    server_cpu_secs: Option<f64>,
}

/// Builds the rig.
pub async fn rig(spec: &HeraldSpec, mut rs: RigSpec<'_>) -> anyhow::Result<Rig> {
    let db = Database::fresh(spec)?;
    let ca_path = db.dir().join("sink-ca.pem");
    let pems: Vec<&str> = rs.sinks.iter().filter_map(|s| s.ca_pem.as_deref()).collect();
    std::fs::write(&ca_path, pems.concat())?;
    rs.serve.ca_file = Some(ca_path);
    let token = create_token(spec, &db, TENANT).await?;
    let herald = Herald::start(spec, &db, &rs.serve).await?;
    let api = Api::new(&herald.base_url, TENANT, &token)?;
    api.create_field(SEQ_FIELD).await?;
    let mut tasks = JoinSet::new();
    for i in 0..rs.projects {
        let api = api.clone();
        tasks.spawn(async move {
            let id = api
                .create_project(&format!("B{i}"), &format!("Bench project {i}"))
                .await;
            (i, id)
        });
    }
    let mut projects = vec![Value::Null; rs.projects];
    while let Some(done) = tasks.join_next().await {
        let (i, id) = done?;
        projects[i] = id?;
    }
    for url in &rs.hooks {
        api.create_webhook(url, rs.format).await?;
    }
    Ok(Rig {
        db,
        herald,
        api,
        projects,
        token,
    })
}

impl Rig {
    /// Stops Herald and starts it again on the same database with `opts` (CA kept).
    pub async fn restart(self, spec: &HeraldSpec, mut opts: ServeOptions) -> anyhow::Result<Self> {
        let Rig {
            db,
            herald,
            projects,
            token,
            ..
        } = self;
        herald.stop().await?;
        opts.ca_file = Some(db.dir().join("sink-ca.pem"));
        let herald = Herald::start(spec, &db, &opts).await?;
        let api = Api::new(&herald.base_url, TENANT, &token)?;
        Ok(Rig {
            db,
            herald,
            api,
            projects,
            token,
        })
    }

    /// Herald's CPU time and the database size now.
    pub async fn mark(&self) -> anyhow::Result<Mark> {
        let postmaster = self.db.postmaster_pid().await;
        Ok(Mark {
            at: std::time::Instant::now(),
            cpu_secs: procstat::sample(self.herald.pid)?.cpu_secs,
            server_cpu_secs: postmaster.and_then(procstat::server_cpu_secs),
            // Only `thread_cpu_cores` reads it: a failed listing must not fail the scenario.
            threads: procstat::thread_cpu(self.herald.pid).unwrap_or_default(),
            db_bytes: self.db.size_bytes().await,
        })
    }

    /// Adds CPU per 1,000 deliveries, the cores each group of Herald's threads used, peak
    /// RSS and database growth between `before` and now.
    pub async fn usage(&self, out: &mut Outcome, before: &Mark, deliveries: u64) -> anyhow::Result<()> {
        let after = self.mark().await?;
        out.metric("thread_cpu_cores", thread_cores(before, &after));
        let s = procstat::sample(self.herald.pid)?;
        let cpu = after.cpu_secs - before.cpu_secs;
        out.metric("herald_cpu_secs", round(cpu));
        if deliveries > 0 {
            out.metric(
                "cpu_secs_per_1000_deliveries",
                round(cpu * 1000.0 / deliveries as f64),
            );
            // The same in milliseconds: two decimals of seconds cannot tell engines apart.
            out.metric(
                "herald_cpu_ms_per_1000_deliveries",
                round(cpu * 1e6 / deliveries as f64),
            );
        }
        if let (Some(a), Some(b), true) = (before.server_cpu_secs, after.server_cpu_secs, deliveries > 0) {
            out.metric(
                "postgres_cpu_ms_per_1000_deliveries",
                round((b - a) * 1e6 / deliveries as f64),
            );
        }
        out.metric("herald_peak_rss_mib", round(s.hwm_kib as f64 / 1024.0));
        if let (Some(a), Some(b)) = (before.db_bytes, after.db_bytes) {
            out.metric("db_growth_mib", round((b as f64 - a as f64) / 1048576.0));
            out.metric("db_size_mib", round(b as f64 / 1048576.0));
        }
        if let Some(wal) = self.db.wal_bytes() {
            out.metric("db_wal_mib", round(wal as f64 / 1048576.0));
        }
        Ok(())
    }

    /// Stops Herald; the database (and its PostgreSQL schema) goes with `self`.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.herald.stop().await
    }
}

/// Cores each group of Herald's threads used between two marks (CPU seconds over wall
/// seconds), busiest first, e.g. `herald-writer 0.93, tokio-rt-worker ×2 1.10`: a group
/// near 1.0 per thread was busy the whole window. Differences are taken per thread, so
/// a thread that ended between the marks takes nothing away from its group (its own
/// last seconds are missing), and one that started counts from zero; `×n` counts the
/// group's threads alive at the end.
fn thread_cores(before: &Mark, after: &Mark) -> String {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    if wall <= 0.0 {
        return String::new();
    }
    let mut by_group: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for (tid, (group, secs)) in &after.threads {
        let was = match before.threads.get(tid) {
            Some((g, s)) if g == group => *s,
            _ => 0.0,
        };
        let e = by_group.entry(group.as_str()).or_default();
        e.0 += 1;
        e.1 += (secs - was).max(0.0);
    }
    let mut groups: Vec<(&str, usize, f64)> = by_group
        .into_iter()
        .map(|(name, (n, secs))| (name, n, secs / wall))
        .collect();
    groups.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
    groups
        .iter()
        .map(|&(name, n, cores)| match n {
            1 => format!("{name} {cores:.2}"),
            n => format!("{name} ×{n} {cores:.2}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(secs_from_start: u64, threads: &[(u32, &str, f64)]) -> Mark {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(std::time::Instant::now);
        Mark {
            at: start + std::time::Duration::from_secs(secs_from_start),
            cpu_secs: 0.0,
            threads: threads
                .iter()
                .map(|&(tid, group, secs)| (tid, (group.to_owned(), secs)))
                .collect(),
            db_bytes: None,
            server_cpu_secs: None,
        }
    }

    #[test]
    fn thread_groups_are_shown_as_cores_busiest_first() {
        let before = mark(
            0,
            &[
                (1, "herald-writer", 1.0),
                (2, "tokio-rt-worker", 1.0),
                (3, "tokio-rt-worker", 2.0),
                (9, "tokio-rt-worker", 30.0),
            ],
        );
        // Thread 9 (a blocking-pool thread, say) ended; thread 20 started.
        let after = mark(
            10,
            &[
                (1, "herald-writer", 10.5),
                (2, "tokio-rt-worker", 6.0),
                (3, "tokio-rt-worker", 8.0),
                (20, "herald-db", 0.5),
            ],
        );
        assert_eq!(
            thread_cores(&before, &after),
            "tokio-rt-worker ×2 1.10, herald-writer 0.95, herald-db 0.05"
        );
    }
}
