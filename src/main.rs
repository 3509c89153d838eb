//! The `herald` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc instead of glibc's malloc: the delivery path allocates and frees many
/// short-lived buffers (bodies, headers, TLS records) across threads, and glibc spent a
/// quarter of the runtime threads' CPU on it in the fan-out benchmark (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match herald::cli::Cli::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
