//! `herald-bench sink`: a webhook receiver process for load tests.
//!
//! It listens on loopback (HTTPS with a throwaway CA, or plain HTTP), books every request
//! (see [`book`]), and answers `200`, `500` for a chosen share of requests, or never. A
//! second, plain-HTTP control port (see [`control`]) lets the harness read the ledger, change
//! the behaviour, and take the receiving port down and up again. On start it prints one JSON
//! line — `{"port", "control_port", "ca_pem"}` — and it exits when its standard input closes,
//! so a crashed harness leaves no sink behind.

pub mod book;
mod control;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::record::{now_ns, seq_in};
use book::{Arrival, Book};

/// Options of the `sink` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Port to receive on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve HTTPS with a fresh CA (printed in the announcement) instead of plain HTTP.
    #[arg(long)]
    pub tls: bool,
    /// Answer `500` to this share of requests (0-100), spread evenly.
    #[arg(long, default_value_t = 0)]
    pub fail_pct: u32,
    /// Read requests but never answer them.
    #[arg(long)]
    pub never: bool,
    /// Start with the receiving port closed (reserve it, then `POST /up` opens it).
    #[arg(long)]
    pub down: bool,
}

/// The announcement printed on start.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Announcement {
    /// The receiving port.
    pub port: u16,
    /// The control port.
    pub control_port: u16,
    /// CA certificate (PEM) when serving HTTPS.
    pub ca_pem: Option<String>,
}

/// The open receiving port: what stops it, and its accept loop and connections.
struct Running {
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// State shared by the receiving and control servers.
pub struct Shared {
    book: Mutex<Book>,
    fail_pct: AtomicU32,
    never: AtomicBool,
    counter: AtomicU64,
    port: u16,
    tls: Option<TlsAcceptor>,
    running: Mutex<Option<Running>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not make the ledger unreadable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
    }

    /// Opens the receiving port (no-op when already open).
    async fn up(self: &Arc<Self>) -> anyhow::Result<()> {
        if lock(&self.running).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .with_context(|| format!("cannot bind 127.0.0.1:{}", self.port))?;
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        tasks.spawn(accept_loop(
            listener,
            Arc::clone(self),
            stop.clone(),
            tasks.clone(),
        ));
        *lock(&self.running) = Some(Running { stop, tasks });
        Ok(())
    }

    /// Closes the receiving port and every open connection, and returns only once they
    /// are closed: a client told "down" must find the port refusing connections, not a
    /// listener that is still going away.
    async fn down(&self) {
        let running = lock(&self.running).take();
        if let Some(r) = running {
            r.stop.cancel();
            r.tasks.close();
            r.tasks.wait().await;
        }
    }

    /// The status for the next request under the current behaviour (0 = never answer).
    fn next_status(&self) -> u16 {
        if self.never.load(Ordering::Relaxed) {
            return 0;
        }
        let pct = u64::from(self.fail_pct.load(Ordering::Relaxed).min(100));
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        fail_status(n, pct)
    }
}

/// The status of request number `n` when `pct` % of requests fail: `500` for a
/// pseudo-random `pct` % of request numbers, independently of one another.
///
/// Why not a regular pattern (every request whose `n·pct mod 100 < pct`, exactly `pct`
/// of every 100): at the end of a run, the few deliveries still retrying arrive in step —
/// the ten webhooks of one change retry on the same schedule — so one of them drew every
/// tenth request number, the same residue each time, and was refused on all 13 attempts
/// (`retry-storm` reported it lost; BENCHMARKS.md, run AL).
fn fail_status(n: u64, pct: u64) -> u16 {
    if splitmix64(n) % 100 < pct {
        500
    } else {
        200
    }
}

/// SplitMix64's output function: consecutive inputs give unrelated, evenly spread outputs.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs the sink until standard input closes.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let (ca_pem, tls) = if args.tls {
        let pki = crate::tls::throwaway()?;
        (Some(pki.ca_pem), Some(TlsAcceptor::from(Arc::new(pki.server))))
    } else {
        (None, None)
    };
    // Reserve the port now, even when starting down, so its URL is known up front.
    let probe = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    let port = probe.local_addr()?.port();
    drop(probe);
    let shared = Arc::new(Shared {
        book: Mutex::new(Book::default()),
        fail_pct: AtomicU32::new(args.fail_pct),
        never: AtomicBool::new(args.never),
        counter: AtomicU64::new(0),
        port,
        tls,
        running: Mutex::new(None),
    });
    if !args.down {
        shared.up().await?;
    }
    let control = TcpListener::bind("127.0.0.1:0").await?;
    let control_port = control.local_addr()?.port();
    tokio::spawn(control::serve(control, Arc::clone(&shared)));
    let line = serde_json::to_string(&Announcement {
        port,
        control_port,
        ca_pem,
    })?;
    println!("{line}");
    // Block until the harness closes our stdin (or dies).
    let mut sink = [0u8; 64];
    let mut stdin = tokio::io::stdin();
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    shared.down().await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let (shared, stop) = (Arc::clone(&shared), stop.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = serve_connection(tcp, shared) => {}
            }
        });
    }
}

async fn serve_connection(tcp: TcpStream, shared: Arc<Shared>) {
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |req| handle(req, Arc::clone(&shared)))
    };
    match &shared.tls {
        Some(acceptor) => {
            // A failed handshake just ends the connection, as a real receiver would.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
        None => {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        }
    }
}

async fn handle(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let recv_ns = now_ns();
    let (parts, body) = req.into_parts();
    let hook = parts
        .uri
        .path()
        .strip_prefix("/hook/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let status = shared.next_status();
    shared.book().arrive(Arrival {
        id: parts.headers.get("webhook-id").and_then(|v| v.to_str().ok()),
        seq: seq_in(&body),
        hook,
        recv_ns,
        status,
        body: &body,
    });
    if status == 0 {
        // Held until the client gives up or the port goes down.
        std::future::pending::<()>().await;
    }
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(n: u64) -> bool {
        fail_status(n, 30) == 500
    }

    #[test]
    fn about_the_asked_share_of_requests_fail() {
        let failed = (0..100_000).filter(|&n| fails(n)).count();
        assert!((29_000..31_000).contains(&failed), "{failed}");
        assert_eq!((0..1000).filter(|&n| fail_status(n, 0) == 500).count(), 0);
        assert_eq!((0..1000).filter(|&n| fail_status(n, 100) == 500).count(), 1000);
    }

    #[test]
    fn a_delivery_retrying_in_step_with_others_is_not_refused_every_time() {
        // A delivery that draws every k-th request number (k deliveries retrying in
        // step) meets the same odds on each attempt: no stride and start keeps it from
        // ever being answered in 13 attempts (0.3¹³ per delivery).
        for stride in 1..=100u64 {
            for start in 0..stride {
                let refused = (0..13).all(|i| fails(start + i * stride));
                assert!(
                    !refused,
                    "every 13th attempt refused at stride {stride}, start {start}"
                );
            }
        }
    }
}
