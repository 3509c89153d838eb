//! A benchmark run: resolve the scenarios and knobs, find (or build) the Herald binary, run
//! each scenario, draw its plots, and write the report. A scenario that fails is reported
//! and the run goes on; the exit status says whether every scenario finished (budget misses
//! are reported, not fatal: the numbers are the product).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use crate::herald::HeraldSpec;
use crate::report::{self, Failure, RunReport};
use crate::scenarios::{self, Ctx, Knobs, Outcome, Scenario};

/// Options of a run.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "what", required = true, multiple = true, args = ["suite", "scenario"])]
pub struct RunArgs {
    /// Run every scenario (fanout, slow-endpoint, steady, retry-storm, backlog, fanout-pg, fanout-wide, formats).
    #[arg(long)]
    suite: bool,
    /// Run these scenarios (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Small scale for development: 2,000 changes, no minimum drive time, 5 s steady,
    /// 20,000 deliveries of backlog, 30 s drain cap (explicit knobs still win).
    #[arg(long)]
    quick: bool,
    /// Least changes in fanout / slow-endpoint / retry-storm [default: 20000].
    #[arg(long)]
    changes: Option<u64>,
    /// Least seconds those scenarios keep changing (throughput window), and the baseline
    /// keeps posting [default: 25].
    #[arg(long)]
    min_drive: Option<u64>,
    /// Seconds of `steady` [default: 30].
    #[arg(long)]
    duration: Option<u64>,
    /// Largest backlog in deliveries; also ÷10 and ÷100 (three times) are measured [default: 1000000].
    #[arg(long)]
    backlog: Option<u64>,
    /// Webhooks each change fans out to in `backlog`.
    #[arg(long, default_value_t = 100)]
    backlog_hooks: u32,
    /// Longest wait, in seconds, for one backlog level to drain [default: 90].
    #[arg(long)]
    drain_cap: Option<u64>,
    /// Concurrent API clients in max-rate drives. 32: with 16, the clients moved in step
    /// with SQLite's group commits (a batch answered ~all of them, and the writer then
    /// waited ~13 % of the time for their next requests), so `fanout` measured the
    /// driver's round trip rather than Herald's capacity.
    #[arg(long, default_value_t = 32)]
    api_concurrency: usize,
    /// Run Herald on this PostgreSQL database (fresh schema per scenario) instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// PostgreSQL for `fanout-pg`.
    #[arg(
        long,
        env = "HERALD_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
    /// Connect `fanout-pg` over TCP as `--pg-url` says, even where the server's Unix
    /// socket is on this machine (by default a loopback URL goes through the socket, as a
    /// node beside its database should connect; BENCHMARKS.md, "PostgreSQL: what it
    /// writes per delivery, and over which transport").
    #[arg(long)]
    pg_tcp: bool,
    /// The `herald` binary [default: build it with cargo, same profile as herald-bench].
    #[arg(long)]
    herald_bin: Option<PathBuf>,
    /// Results directory [default: <workspace>/target/bench-results].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The workspace root: two levels above this crate, where it was built.
fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Removes the variables `cargo run` / `cargo test` set for the program they start
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`…) before running cargo again from inside it: some
/// build scripts (ring's, through `cc`) track them, so inheriting them would make the inner
/// cargo rebuild half the tree, and the next ordinary build rebuild it back.
pub fn clean_cargo_env(cmd: &mut tokio::process::Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let set_by_cargo = k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                k.as_ref(),
                "CARGO_MANIFEST_DIR" | "CARGO_MANIFEST_PATH" | "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo {
            cmd.env_remove(&key);
        }
    }
}

/// Builds `herald` with the profile herald-bench was built with and returns its path (the
/// sibling of this executable in the same target directory).
async fn build_herald() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = tokio::process::Command::new(cargo);
    clean_cargo_env(&mut cmd);
    cmd.current_dir(workspace())
        .args(["build", "-p", "herald", "--bin", "herald"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!(
        "==> building herald ({})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let status = cmd.status().await.context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build -p herald failed");
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("herald");
    if !bin.exists() {
        bail!(
            "built herald is not at {} (was herald-bench built with another CARGO_TARGET_DIR?); pass --herald-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn knobs(a: &RunArgs) -> Knobs {
    let q = a.quick;
    Knobs {
        changes: a.changes.unwrap_or(if q { 2_000 } else { 20_000 }),
        min_drive: Duration::from_secs(a.min_drive.unwrap_or(if q { 0 } else { 25 })),
        duration: Duration::from_secs(a.duration.unwrap_or(if q { 5 } else { 30 })),
        backlog: a.backlog.unwrap_or(if q { 20_000 } else { 1_000_000 }),
        backlog_hooks: a.backlog_hooks.max(1),
        drain_cap: Duration::from_secs(a.drain_cap.unwrap_or(if q { 30 } else { 90 })),
        api_concurrency: a.api_concurrency.max(1),
    }
}

async fn one(ctx: &Ctx, s: Scenario) -> anyhow::Result<Outcome> {
    match s {
        Scenario::Baseline => scenarios::fanout::baseline_only(ctx).await,
        Scenario::Fanout => scenarios::fanout::run(ctx, false).await,
        Scenario::FanoutPg => scenarios::fanout::run(ctx, true).await,
        Scenario::FanoutWide => scenarios::fanout::wide(ctx).await,
        Scenario::Steady => scenarios::steady::run(ctx).await,
        Scenario::Backlog => scenarios::backlog::run(ctx).await,
        Scenario::SlowEndpoint => scenarios::slow::run(ctx).await,
        Scenario::RetryStorm => scenarios::retry::run(ctx).await,
        Scenario::Formats => scenarios::formats::run(ctx).await,
    }
}

/// Runs the selected scenarios; `Ok(false)` when any of them failed.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let mut list: Vec<Scenario> = if args.suite {
        Scenario::SUITE.to_vec()
    } else {
        Vec::new()
    };
    for s in &args.scenario {
        if !list.contains(s) {
            list.push(*s);
        }
    }
    let needs_herald = list
        .iter()
        .any(|s| !matches!(s, Scenario::Baseline | Scenario::Formats));
    let bin = match (&args.herald_bin, needs_herald) {
        (Some(b), _) => b.clone(),
        (None, true) => build_herald().await?,
        (None, false) => PathBuf::from("herald"),
    };
    let now = time::OffsetDateTime::now_utc();
    let run_id = now
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .context("run id")?;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| workspace().join("target/bench-results"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let knobs = knobs(&args);
    let load_start = loadavg();
    let ctx = Ctx {
        herald: HeraldSpec {
            bin: bin.clone(),
            database_url: args.database_url.clone(),
            log_file: out_dir.join(format!("{run_id}-herald.log")),
        },
        pg_url: Some(args.pg_url.clone()),
        pg_tcp: args.pg_tcp,
        knobs: knobs.clone(),
        workspace: workspace(),
    };
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for s in list {
        eprintln!("==> {}", s.name());
        let started = std::time::Instant::now();
        match one(&ctx, s).await {
            Ok(o) => {
                for p in &o.plots {
                    let path = out_dir.join(format!("{run_id}-{}.png", p.stem));
                    if let Err(e) = crate::plot::draw(p, &path) {
                        eprintln!("    plot {} not drawn: {e:#}", p.stem);
                    }
                }
                outcomes.push(o);
            }
            Err(e) => {
                eprintln!("    failed: {e:#}");
                failures.push(Failure {
                    scenario: s.name().into(),
                    error: format!("{e:#}"),
                });
            }
        }
        eprintln!("    {} took {:.0} s", s.name(), started.elapsed().as_secs_f64());
    }
    let report = RunReport {
        run_id,
        date: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        load: [load_start, loadavg()],
        herald_bin: bin.display().to_string(),
        database: if args.database_url.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
        .into(),
        knobs: json!({
            "changes": knobs.changes,
            "min_drive_secs": knobs.min_drive.as_secs(),
            "duration_secs": knobs.duration.as_secs(),
            "backlog": knobs.backlog,
            "backlog_hooks": knobs.backlog_hooks,
            "drain_cap_secs": knobs.drain_cap.as_secs(),
            "api_concurrency": knobs.api_concurrency,
        }),
        outcomes,
        failures,
    };
    let (json_path, md_path) = report::write(&report, &out_dir)?;
    println!("{}", report::markdown(&report));
    eprintln!("==> wrote {} and {}", json_path.display(), md_path.display());
    Ok(report.failures.is_empty())
}
