//! The HTTP client deliveries go out on, built once per process and shared.
//!
//! What it guarantees, and why:
//! - **Only checked addresses are connected to.** A custom resolver resolves the host, drops
//!   every address the [`Policy`] refuses and hands the connector only the rest, so the
//!   socket connects to exactly the address that was checked — a DNS answer that changes
//!   between "check" and "connect" (rebinding) cannot slip through. The connector skips the
//!   resolver for IP-literal hosts, so [`DeliveryClient::send`] vets those itself (the
//!   address is read once, into the [`Target`]) before sending.
//! - **Redirects are not followed**: a 3xx is returned as the attempt's outcome, since a
//!   redirect could point anywhere, including at an address the policy refuses.
//! - **No proxies**: `HTTPS_PROXY` would move the connect (and the address check) to the
//!   proxy.
//! - **HTTP/1.1 keep-alive pools**, large enough for ~64 concurrent requests per receiver: a
//!   fresh TLS handshake per request costs ~10× the CPU of a reused connection.
//! - **rustls** (ring) with the webpki roots plus an operator's extra CAs (`extra_ca_file`).
//! - **One deadline per attempt**, from connect to the last byte of the response body, and a
//!   shorter one for TCP connect plus TLS handshake.
//! - **No client-level retries**: every attempt is decided and logged by the delivery engine.
//!
//! Built on hyper's pooled client directly rather than reqwest: reqwest's redirect layer
//! turns every request's URI back into a string and parses it as a URL (even with
//! redirects off), and its request, retry and response wrappers add more per-request work.
//! Moving off it cut Herald's CPU per delivery by ~18 % in the fan-out bench (run AB in
//! BENCHMARKS.md). A webhook's URL is parsed once, into a [`Target`].
//!
//! Failures are turned into an [`ErrorKind`] value (the `classify` module), for the
//! attempt log and the retry rules.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::Url;

use super::ssrf::{Policy, Refusal};

mod body;
mod classify;

pub use body::{CappedBody, MAX_DRAINED_BODY, MAX_KEPT_BODY};
pub use classify::{ErrorKind, TlsProblem};

/// `User-Agent` on every delivery (design §3).
pub const USER_AGENT: &str = concat!("Herald/", env!("CARGO_PKG_VERSION"));

/// How the delivery client connects; defaults match the design (5 s connect, 15 s total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Limit for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for the whole attempt, from connect to the last byte of the response body.
    pub timeout: Duration,
    /// Idle keep-alive connections kept per receiver; at least the per-host concurrency.
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept before it is closed.
    pub pool_idle_timeout: Duration,
    /// A PEM file of extra CA certificates to trust (private CAs, tests).
    pub extra_ca_file: Option<PathBuf>,
    /// Which addresses may be connected to.
    pub policy: Policy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            pool_max_idle_per_host: 128,
            pool_idle_timeout: Duration::from_secs(90),
            extra_ca_file: None,
            policy: Policy::default(),
        }
    }
}

/// Why the client could not be built (at startup, so the operator sees it at once).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// `extra_ca_file` could not be read.
    #[error("cannot read extra_ca_file {path}: {source}")]
    ReadCa {
        /// The configured path.
        path: PathBuf,
        /// The I/O failure.
        source: io::Error,
    },
    /// `extra_ca_file` is not PEM, or holds no certificate rustls can use.
    #[error("extra_ca_file {path} holds no valid PEM certificate")]
    BadCa {
        /// The configured path.
        path: PathBuf,
    },
    /// rustls refused the TLS configuration.
    #[error("cannot build the delivery HTTP client: {0}")]
    Build(#[source] rustls::Error),
}

/// A webhook's URL, parsed once for sending: the URI hyper sends to and, when the host is
/// an IP literal, that address for the policy check. Built when a webhook's configuration
/// is prepared, so no attempt parses the URL again.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    ip_literal: Option<IpAddr>,
}

impl Target {
    /// Parses a URL as stored for a webhook.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| e.to_string())?;
        // The URL crate's serialisation normalises the host (`2130706433` → `127.0.0.1`),
        // so the URI hyper connects to names the same address the check saw.
        let uri = url.as_str().parse::<Uri>().map_err(|e| e.to_string())?;
        Ok(Self {
            uri,
            ip_literal: ip_literal(&url),
        })
    }
}

/// What a receiver answered: status, headers and as much of the body as is kept.
#[derive(Debug)]
pub struct Received {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, read up to the caps.
    pub body: CappedBody,
}

/// Refuses a URL whose host is an IP literal the policy refuses. Host names pass here; the
/// client's resolver checks the addresses they resolve to at connect time.
pub fn check_url(url: &Url, policy: &Policy) -> Result<(), Refusal> {
    ip_literal(url).map_or(Ok(()), |ip| policy.check(ip))
}

/// The address a URL's host spells out, if it is an IP literal (brackets stripped).
fn ip_literal(url: &Url) -> Option<IpAddr> {
    let host = url.host_str().unwrap_or_default();
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    literal.parse().ok()
}

type Connector = TimedConnect<HttpsConnector<HttpConnector<PolicyResolver>>>;

/// The delivery client plus its policy and deadline. Cheap to clone (shares one
/// connection pool).
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    http: Client<Connector, Full<Bytes>>,
    policy: Arc<Policy>,
    timeout: Duration,
}

impl DeliveryClient {
    /// Builds the client from `config`: TLS roots, resolver, timeouts and pool.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientBuildError> {
        let policy = Arc::new(config.policy.clone());
        let mut http = HttpConnector::new_with_resolver(PolicyResolver {
            policy: Arc::clone(&policy),
        });
        // The https connector below wraps this one; it refuses plain-http URIs itself.
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(config)?)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let connector = TimedConnect {
            inner: https,
            limit: config.connect_timeout,
        };
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(config.pool_idle_timeout)
            .build(connector);
        Ok(Self {
            http,
            policy,
            timeout: config.timeout,
        })
    }

    /// Sends one request to `target` and reads the response (body capped), all within the
    /// total timeout. A refused IP literal is refused here, before any socket opens; a
    /// refused host name by the resolver. Every failure is an [`ErrorKind`]; a body that
    /// breaks off after the status arrived is recorded in [`CappedBody::error`] instead.
    pub async fn send(
        &self,
        method: Method,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Received, ErrorKind> {
        if let Some(ip) = target.ip_literal {
            self.policy.check(ip).map_err(ErrorKind::Refused)?;
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = headers;
        let deadline = Instant::now() + self.timeout;
        let response = match tokio::time::timeout_at(deadline, self.http.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(classify::classify_error(&e)),
            Err(_elapsed) => return Err(ErrorKind::Timeout),
        };
        let (parts, incoming) = response.into_parts();
        Ok(Received {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body::read_capped(incoming, deadline).await,
        })
    }

    /// The address policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// rustls with the ring provider, the webpki roots and the operator's extra CAs.
fn tls_config(config: &ClientConfig) -> Result<rustls::ClientConfig, ClientBuildError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.extra_ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientBuildError::ReadCa {
            path: path.clone(),
            source,
        })?;
        let bad = || ClientBuildError::BadCa { path: path.clone() };
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad())?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientBuildError::Build)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Bounds TCP connect plus TLS handshake by `limit` (hyper's own connect timeout covers
/// only the TCP part). A timeout is an `io::ErrorKind::TimedOut`, classified as
/// [`ErrorKind::Timeout`].
#[derive(Debug, Clone)]
struct TimedConnect<C> {
    inner: C,
    limit: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

impl<C> tower::Service<Uri> for TimedConnect<C>
where
    C: tower::Service<Uri, Response = Stream, Error = BoxError>,
    C::Future: Send + 'static,
{
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (connect, limit) = (self.inner.call(uri), self.limit);
        Box::pin(async move {
            match tokio::time::timeout(limit, connect).await {
                Ok(done) => done,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect and TLS handshake took longer than {limit:?}"),
                )
                .into()),
            }
        })
    }
}

/// Every address of a host was refused. Returned by the resolver so the connector fails the
/// attempt before connecting; error classification finds it and reports
/// [`ErrorKind::Refused`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRefused {
    /// The host name that was resolved.
    pub host: String,
    /// One refusal per resolved address.
    pub refusals: Vec<Refusal>,
}

impl std::fmt::Display for HostRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "every address of {} is refused", self.host)?;
        if let Some(first) = self.refusals.first() {
            write!(f, ": {first}")?;
        }
        match self.refusals.len() {
            0 | 1 => Ok(()),
            n => write!(f, " (and {} more)", n - 1),
        }
    }
}

impl std::error::Error for HostRefused {}

/// Resolves with the system resolver, keeping only addresses the policy allows.
#[derive(Debug, Clone)]
struct PolicyResolver {
    policy: Arc<Policy>,
}

impl tower::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let (mut allowed, mut refusals) = (Vec::new(), Vec::new());
            for addr in resolved {
                match policy.check(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(refusal) => refusals.push(refusal),
                }
            }
            if !allowed.is_empty() {
                return Ok(allowed.into_iter());
            }
            if refusals.is_empty() {
                let msg = format!("{host} resolved to no addresses");
                return Err(io::Error::new(io::ErrorKind::NotFound, msg).into());
            }
            // Boxed directly so `classify_error` can downcast to it.
            Err(Box::new(HostRefused { host, refusals }) as BoxError)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    #[test]
    fn targets_address_what_the_url_says_and_read_ip_literals_once() {
        for (raw, uri, ip) in [
            (
                "https://example.com/hook?a=1&b=%20",
                "https://example.com/hook?a=1&b=%20",
                None,
            ),
            (
                "https://[2001:db8::1]:8443/x",
                "https://[2001:db8::1]:8443/x",
                Some("2001:db8::1"),
            ),
            ("https://2130706433/", "https://127.0.0.1/", Some("127.0.0.1")),
        ] {
            let t = Target::parse(raw).unwrap();
            assert_eq!(t.uri.to_string(), uri, "{raw}");
            assert_eq!(t.ip_literal, ip.map(|ip| ip.parse().unwrap()), "{raw}");
        }
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn check_url_vets_ip_literals_in_every_spelling() {
        let policy = Policy::default();
        for refused in [
            "https://127.0.0.1/",
            "https://[::1]:8443/x",
            "https://[::ffff:127.0.0.1]/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://10.1.2.3:443/hook",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            assert!(check_url(&url(refused), &policy).is_err(), "{refused}");
        }
        for passes in [
            "https://93.184.216.34/",
            "https://example.com/",
            "https://localhost/",
        ] {
            assert!(check_url(&url(passes), &policy).is_ok(), "{passes}");
        }
    }

    #[test]
    fn host_refused_message_names_the_reason() {
        let refusal = |s: &str| crate::delivery::ssrf::classify(s.parse().unwrap()).unwrap();
        let err = HostRefused {
            host: "localhost".into(),
            refusals: vec![refusal("127.0.0.1"), refusal("::1")],
        };
        assert_eq!(
            err.to_string(),
            "every address of localhost is refused: address 127.0.0.1 is loopback (127.0.0.0/8); \
             add it to allowed_target_networks to allow it (and 1 more)"
        );
    }

    #[test]
    fn unreadable_or_empty_ca_files_are_reported() {
        let missing = ClientConfig {
            extra_ca_file: Some("/nonexistent/ca.pem".into()),
            ..ClientConfig::default()
        };
        assert!(matches!(
            DeliveryClient::new(&missing),
            Err(ClientBuildError::ReadCa { .. })
        ));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate").unwrap();
        let empty = ClientConfig {
            extra_ca_file: Some(file.path().into()),
            ..ClientConfig::default()
        };
        let err = DeliveryClient::new(&empty).unwrap_err();
        assert!(err.to_string().contains("no valid PEM certificate"), "{err}");
    }
}
