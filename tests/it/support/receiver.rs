//! `TestReceiver`: a real HTTPS webhook receiver for integration tests.
//!
//! It listens on `127.0.0.1:0` with a certificate for `localhost` and `127.0.0.1` issued by a
//! throwaway CA (so Herald trusts it only through `extra_ca_file`, exactly as an operator's
//! private CA), records every request, and answers from a script that tests can change while it
//! runs: queued one-shot replies first, then a default. Tests wait on conditions with
//! [`TestReceiver::wait_for`] (woken by `Notify`), never with sleeps. Dropping it stops the
//! server and every open connection, including requests deliberately left unanswered.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query, e.g. `/hook?x=1`.
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
    /// When the request head arrived.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// A header as text (`None` if missing or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON; panics with the body text if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Option<Duration>,
    never: bool,
    stall_body: bool,
}

impl Reply {
    /// An empty reply with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("valid status code"),
            headers: Vec::new(),
            body: Bytes::new(),
            delay: None,
            never: false,
            stall_body: false,
        }
    }

    /// `200 OK`, empty.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// Reads the request, then never answers (until the receiver is dropped).
    pub fn never() -> Self {
        Self {
            never: true,
            ..Self::ok()
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the response body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the status, headers and the body set so far, then never finishes the body
    /// (until the receiver is dropped).
    pub fn stall_body(mut self) -> Self {
        self.stall_body = true;
        self
    }

    /// Waits this long before answering: simulates a slow receiver (not synchronisation).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
}

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    /// `webhook-id`s of requests being answered right now, to spot overlapping attempts.
    in_flight: Mutex<Vec<String>>,
    overlaps: AtomicUsize,
    script: Mutex<Script>,
    connections: AtomicUsize,
    /// Connections that ended before the receiver stopped (the client closed them).
    closed: AtomicUsize,
    arrived: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the receiver's data from the failure report.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running HTTPS receiver; see the module docs.
pub struct TestReceiver {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl TestReceiver {
    /// Starts a receiver answering `200 OK` until told otherwise.
    pub async fn start() -> Self {
        let (ca_pem, tls) = throwaway_pki();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            in_flight: Mutex::new(Vec::new()),
            overlaps: AtomicUsize::new(0),
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::ok(),
            }),
            connections: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            arrived: tokio::sync::Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            Arc::clone(&shared),
            stop.clone(),
        ));
        Self {
            addr,
            ca_pem,
            shared,
            stop,
        }
    }

    /// `https://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.addr.port())
    }

    /// `https://localhost:<port>/hook`, for tests that go through name resolution.
    pub fn localhost_url(&self) -> String {
        format!("https://localhost:{}/hook", self.addr.port())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that issued the receiver's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`Self::ca_pem`] to a temporary file, for `extra_ca_file`. Keep the handle alive
    /// until the file has been read.
    pub fn ca_file(&self) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &self.ca_pem).expect("write CA file");
        file
    }

    /// Answers every request without a queued reply with `reply` from now on.
    pub fn reply_with(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Answers the next unanswered request with `reply` (one-shot, in order).
    pub fn enqueue(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Requests that arrived while another request with the same `webhook-id` was still
    /// being answered: a delivery attempted twice at once.
    pub fn overlaps(&self) -> usize {
        self.shared.overlaps.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (shows keep-alive reuse, or that nothing connected).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections the client closed so far (a keep-alive pool dropping idle ones).
    pub fn closed_connections(&self) -> usize {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have arrived and returns them all; panics after
    /// `timeout` saying how many did arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before checking, so a request recorded in between still wakes us.
            let arrived = self.shared.arrived.notified();
            let seen = self.requests();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {n} request(s) within {timeout:?}, got {}: {:?}",
                    seen.len(),
                    seen.iter().map(|r| &r.path).collect::<Vec<_>>()
                );
            }
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let (acceptor, shared, stop) = (acceptor.clone(), Arc::clone(&shared), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = serve_connection(tcp, acceptor, Arc::clone(&shared)) => {
                    shared.closed.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

async fn serve_connection(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    // Handshake failures (e.g. a client that does not trust our CA) just end the connection.
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Either<Full<Bytes>, Stalled>>, Infallible> {
    let received_at = Instant::now();
    let (parts, body) = req.into_parts();
    let id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _guard = InFlight::enter(&shared, id);
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.to_string()),
        headers: parts.headers,
        body,
        received_at,
    });
    shared.arrived.notify_waiters();

    let reply = {
        let mut script = lock(&shared.script);
        script.queue.pop_front().unwrap_or_else(|| script.default.clone())
    };
    if reply.never {
        // The connection task is dropped when the receiver stops.
        std::future::pending::<()>().await;
    }
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let body = if reply.stall_body {
        Either::Right(Stalled(Some(reply.body)))
    } else {
        Either::Left(Full::new(reply.body))
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = reply.status;
    for (name, value) in &reply.headers {
        response.headers_mut().append(
            http::HeaderName::try_from(name.as_str()).expect("valid header name"),
            http::HeaderValue::try_from(value.as_str()).expect("valid header value"),
        );
    }
    Ok(response)
}

/// A body that yields its first bytes and then never ends (chunked, so the client keeps
/// waiting for more).
struct Stalled(Option<Bytes>);

impl hyper::body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(first)))),
            // Never woken: the connection task is dropped when the receiver stops.
            None => std::task::Poll::Pending,
        }
    }
}

/// Marks a `webhook-id` as being answered until dropped (also when the connection is
/// dropped mid-request).
struct InFlight {
    shared: Arc<Shared>,
    id: String,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>, id: String) -> Self {
        let mut ids = lock(&shared.in_flight);
        if !id.is_empty() && ids.contains(&id) {
            shared.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        ids.push(id.clone());
        Self {
            shared: Arc::clone(shared),
            id,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut ids = lock(&self.shared.in_flight);
        if let Some(i) = ids.iter().position(|x| *x == self.id) {
            ids.remove(i);
        }
    }
}

/// A fresh CA and a server certificate for `localhost` / `127.0.0.1` signed by it.
fn throwaway_pki() -> (String, ServerConfig) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Herald TestReceiver CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("leaf params");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_pem, config)
}
