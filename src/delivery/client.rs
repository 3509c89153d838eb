//! The HTTP client deliveries go out on, built once per process and shared.
//!
//! What it guarantees, and why:
//! - **Only checked addresses are connected to.** A custom resolver ([`reqwest::dns::Resolve`])
//!   resolves the host, drops every address the [`Policy`] refuses and hands reqwest only the
//!   rest, so the socket connects to exactly the address that was checked — a DNS answer that
//!   changes between "check" and "connect" (rebinding) cannot slip through. reqwest skips the
//!   resolver for IP-literal hosts, so [`check_url`] (or [`DeliveryClient::request`], which
//!   calls it) must vet those before sending.
//! - **Redirects are not followed**: a 3xx is returned as the attempt's outcome, since a
//!   redirect could point anywhere, including at an address the policy refuses.
//! - **No proxies from the environment**: `HTTPS_PROXY` would move the connect (and the
//!   address check) to the proxy.
//! - **HTTP/1.1 keep-alive pools**, large enough for ~64 concurrent requests per receiver: a
//!   fresh TLS handshake per request costs ~10× the CPU of a reused connection.
//! - **rustls** with the webpki roots plus an operator's extra CAs (`extra_ca_file`).
//! - **No client-level retries**: every attempt is decided and logged by the delivery engine.
//!
//! Failures are turned into an [`ErrorKind`] value by [`classify_error`], for the attempt log
//! and the retry rules.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ssrf::{Policy, Refusal};

mod body;
mod classify;

pub use body::{read_body_capped, CappedBody, MAX_DRAINED_BODY, MAX_KEPT_BODY};
pub use classify::{classify_error, ErrorKind, TlsProblem};

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
    /// `extra_ca_file` is not PEM, or holds no certificate.
    #[error("extra_ca_file {path} holds no valid PEM certificate")]
    BadCa {
        /// The configured path.
        path: PathBuf,
    },
    /// reqwest rejected the configuration (e.g. a CA certificate rustls cannot use).
    #[error("cannot build the delivery HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Builds the shared delivery client. Prefer [`DeliveryClient`], which also vets IP-literal
/// URLs; use this directly only together with [`check_url`].
pub fn build_client(config: &ClientConfig) -> Result<reqwest::Client, ClientBuildError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .referer(false)
        .user_agent(USER_AGENT)
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_idle_timeout(config.pool_idle_timeout)
        .tcp_nodelay(true)
        .dns_resolver(Arc::new(PolicyResolver {
            policy: Arc::new(config.policy.clone()),
        }));
    if let Some(path) = &config.extra_ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientBuildError::ReadCa {
            path: path.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| ClientBuildError::BadCa { path: path.clone() })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(ClientBuildError::Build)
}

/// Refuses a URL whose host is an IP literal the policy refuses. Host names pass here; the
/// client's resolver checks the addresses they resolve to at connect time.
pub fn check_url(url: &reqwest::Url, policy: &Policy) -> Result<(), Refusal> {
    let host = url.host_str().unwrap_or_default();
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(ip) => policy.check(ip),
        Err(_) => Ok(()),
    }
}

/// The delivery client plus its policy: the safe front door, which checks IP-literal URLs
/// before handing out a request builder. Cheap to clone (shares one connection pool).
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    policy: Arc<Policy>,
}

impl DeliveryClient {
    /// Builds the client from `config` (see [`build_client`]).
    pub fn new(config: &ClientConfig) -> Result<Self, ClientBuildError> {
        Ok(Self {
            http: build_client(config)?,
            policy: Arc::new(config.policy.clone()),
        })
    }

    /// A request to `url`, or the refusal if its host is a refused IP literal.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, Refusal> {
        check_url(&url, &self.policy)?;
        Ok(self.http.request(method, url))
    }

    /// The address policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// Every address of a host was refused. Returned by the resolver so reqwest fails the
/// attempt before connecting; [`classify_error`] finds it and reports [`ErrorKind::Refused`].
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
struct PolicyResolver {
    policy: Arc<Policy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
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
                let addrs: Addrs = Box::new(allowed.into_iter());
                return Ok(addrs);
            }
            if refusals.is_empty() {
                let msg = format!("{host} resolved to no addresses");
                return Err(io::Error::new(io::ErrorKind::NotFound, msg).into());
            }
            // Boxed directly (not `Box::new(..).into()`, which would box the box) so
            // `classify_error` can downcast to it.
            Err(HostRefused { host, refusals }.into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        s.parse().unwrap()
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
            build_client(&missing),
            Err(ClientBuildError::ReadCa { .. })
        ));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate").unwrap();
        let empty = ClientConfig {
            extra_ca_file: Some(file.path().into()),
            ..ClientConfig::default()
        };
        let err = build_client(&empty).unwrap_err();
        assert!(err.to_string().contains("no valid PEM certificate"), "{err}");
    }
}
