//! `herald-bench`: Herald's load harness. See BENCHMARKS.md at the workspace root.
//!
//! - `herald-bench --suite` (or `--scenario fanout,steady…`) runs scenarios against a real
//!   `herald serve` and writes a report under `target/bench-results/`.
//! - `herald-bench sink …` is the receiver process the scenarios start (one per sink).
#![forbid(unsafe_code)]

mod baseline;
mod driver;
mod herald;
mod metrics;
mod plot;
mod procstat;
mod record;
mod report;
mod run;
mod scenarios;
mod sink;
mod sinkctl;
mod tls;

use clap::{Parser, Subcommand};

/// Load harness for Herald: sinks, a bare-client baseline, scenarios and a budget report.
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a webhook sink (used by the scenarios; handy on its own too).
    Sink(sink::SinkArgs),
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM; never, if those cannot be listened for.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald-bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Sink(args)) => sink::run(args).await.map(|()| true),
            // Interrupted, the run is dropped rather than killed with the process, so
            // every scenario's Herald is stopped and its PostgreSQL schema dropped.
            None => tokio::select! {
                r = run::run(cli.run) => r,
                () = interrupted() => Err(anyhow::anyhow!("interrupted; the scenario in progress was abandoned")),
            },
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
