//! Turning a failed request into what the attempt log and the retry rules need: a small,
//! stable kind plus a human explanation. hyper reports most failures as "client error
//! (Connect)" or "error reading a body"; the useful part (a policy refusal, a certificate
//! problem, `ECONNREFUSED`) sits further down the error's source chain, so we walk it.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use rustls::CertificateError;

use super::HostRefused;
use crate::delivery::ssrf::Refusal;
use crate::domain::retry::NetworkFailure;

/// Why an attempt got no usable response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Name resolution or the TCP connection failed (refused, reset, unreachable).
    Connect {
        /// The underlying error, for the attempt log.
        detail: String,
    },
    /// The connect timeout or the total timeout elapsed.
    Timeout,
    /// The TLS handshake failed, usually over the receiver's certificate.
    Tls(TlsProblem),
    /// The target address is refused by the SSRF policy.
    Refused(Refusal),
    /// A redirect error. Redirects are not followed (a 3xx is the attempt's response), so
    /// the client never reports this; kept because attempt logs and retry rules name it.
    Redirect,
    /// Anything else (a malformed response, a connection closed mid-response…).
    Other {
        /// The underlying error, for the attempt log.
        detail: String,
    },
}

impl ErrorKind {
    /// Stable lowercase name for storage, metrics and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Timeout => "timeout",
            Self::Tls(_) => "tls",
            Self::Refused(_) => "refused",
            Self::Redirect => "redirect",
            Self::Other { .. } => "other",
        }
    }

    /// The class the retry rules act on.
    pub fn failure(&self) -> NetworkFailure {
        match self {
            Self::Connect { .. } => NetworkFailure::Connect,
            Self::Timeout => NetworkFailure::Timeout,
            Self::Tls(_) => NetworkFailure::Tls,
            Self::Refused(_) => NetworkFailure::RefusedByPolicy,
            Self::Redirect => NetworkFailure::Redirect,
            Self::Other { .. } => NetworkFailure::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { detail } => write!(f, "could not connect: {detail}"),
            Self::Timeout => f.write_str("timed out waiting for the receiver"),
            Self::Tls(problem) => write!(f, "TLS failed: {problem}"),
            Self::Refused(refusal) => write!(f, "refused by policy: {refusal}"),
            Self::Redirect => f.write_str("redirect error (redirects are not followed)"),
            Self::Other { detail } => f.write_str(detail),
        }
    }
}

/// What went wrong in the TLS handshake, phrased for the person fixing the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate's validity ended.
    Expired,
    /// The certificate's validity has not started (or a clock is wrong).
    NotYetValid,
    /// The certificate does not cover the URL's host name.
    NameMismatch,
    /// The certificate was revoked.
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Another certificate problem, as rustls describes it.
    InvalidCertificate(String),
    /// A handshake failure not about the certificate (protocol, alert, malformed message).
    Handshake(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownIssuer => f.write_str(
                "the receiver's certificate is not issued by a trusted authority (unknown \
                 issuer); if it uses a private or self-signed CA, add that CA to extra_ca_file",
            ),
            Self::Expired => f.write_str("the receiver's certificate has expired"),
            Self::NotYetValid => {
                f.write_str("the receiver's certificate is not valid yet (check both machines' clocks)")
            }
            Self::NameMismatch => {
                f.write_str("the receiver's certificate is not valid for the URL's host name")
            }
            Self::Revoked => f.write_str("the receiver's certificate has been revoked"),
            Self::BadSignature => f.write_str("the receiver's certificate chain has an invalid signature"),
            Self::InvalidCertificate(detail) => {
                write!(f, "the receiver's certificate is invalid: {detail}")
            }
            Self::Handshake(detail) => write!(f, "handshake failed: {detail}"),
        }
    }
}

impl From<&rustls::Error> for TlsProblem {
    fn from(err: &rustls::Error) -> Self {
        use CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer => Self::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => Self::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => Self::NotYetValid,
                C::NotValidForName | C::NotValidForNameContext { .. } => Self::NameMismatch,
                C::Revoked => Self::Revoked,
                C::BadSignature => Self::BadSignature,
                other => Self::InvalidCertificate(other.to_string()),
            },
            other => Self::Handshake(other.to_string()),
        }
    }
}

/// Classifies a failed request or body read. Checks run from most to least specific: a
/// policy refusal or a certificate problem explains a failure better than the generic
/// "connect" flag hyper also sets for them.
pub(super) fn classify_error(err: &(dyn StdError + 'static)) -> ErrorKind {
    let chain = causes(err);
    if let Some(refused) = chain.iter().find_map(|e| e.downcast_ref::<HostRefused>()) {
        if let Some(first) = refused.refusals.first() {
            return ErrorKind::Refused(first.clone());
        }
    }
    if let Some(refusal) = chain.iter().find_map(|e| e.downcast_ref::<Refusal>()) {
        return ErrorKind::Refused(refusal.clone());
    }
    if let Some(tls) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return ErrorKind::Tls(tls.into());
    }
    let io_kind = |kind: io::ErrorKind| {
        chain
            .iter()
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .any(|e| e.kind() == kind)
    };
    if io_kind(io::ErrorKind::TimedOut) {
        return ErrorKind::Timeout;
    }
    let detail = describe(&chain);
    let connect = chain.iter().any(|e| {
        e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|e| e.is_connect())
    });
    if connect {
        ErrorKind::Connect { detail }
    } else {
        ErrorKind::Other { detail }
    }
}

/// The error and its causes. `io::Error::source` skips the error it wraps (it returns the
/// wrapped error's *source*), and tokio-rustls puts `rustls::Error` exactly there, inside
/// another `io::Error` — so the walk steps into wrapped errors explicitly.
fn causes<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        chain.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(wrapped) => Some(wrapped as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    chain
}

/// The chain's messages, joined, minus hyper's generic wrappers ("client error (Connect)")
/// and repeats: e.g. "tcp connect error: Connection refused (os error 111)".
fn describe(chain: &[&(dyn StdError + 'static)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain {
        let msg = e.to_string();
        if msg.starts_with("client error (") || parts.iter().any(|p| p.contains(&msg)) {
            continue;
        }
        parts.push(msg);
    }
    if parts.is_empty() {
        chain.first().map(|e| e.to_string()).unwrap_or_default()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_problems_a_person_can_act_on() {
        use rustls::{AlertDescription, CertificateError as C, Error as E};
        #[rustfmt::skip]
        let cases = [
            (E::InvalidCertificate(C::UnknownIssuer),   TlsProblem::UnknownIssuer),
            (E::InvalidCertificate(C::Expired),         TlsProblem::Expired),
            (E::InvalidCertificate(C::NotValidYet),     TlsProblem::NotYetValid),
            (E::InvalidCertificate(C::NotValidForName), TlsProblem::NameMismatch),
            (E::InvalidCertificate(C::Revoked),         TlsProblem::Revoked),
            (E::InvalidCertificate(C::BadSignature),    TlsProblem::BadSignature),
        ];
        for (err, expected) in cases {
            assert_eq!(TlsProblem::from(&err), expected, "{err}");
        }
        assert!(matches!(
            TlsProblem::from(&E::InvalidCertificate(C::BadEncoding)),
            TlsProblem::InvalidCertificate(_)
        ));
        let alert = TlsProblem::from(&E::AlertReceived(AlertDescription::HandshakeFailure));
        assert!(alert.to_string().starts_with("handshake failed: "), "{alert}");
    }

    #[test]
    fn kinds_have_stable_names_and_retry_classes() {
        let refusal = crate::delivery::ssrf::classify("10.0.0.1".parse().unwrap()).unwrap();
        #[rustfmt::skip]
        let cases = [
            (ErrorKind::Connect { detail: "x".into() }, "connect", NetworkFailure::Connect),
            (ErrorKind::Timeout,                        "timeout", NetworkFailure::Timeout),
            (ErrorKind::Tls(TlsProblem::Expired),       "tls",     NetworkFailure::Tls),
            (ErrorKind::Refused(refusal),               "refused", NetworkFailure::RefusedByPolicy),
            (ErrorKind::Redirect,                       "redirect", NetworkFailure::Redirect),
            (ErrorKind::Other { detail: "y".into() },   "other",   NetworkFailure::Other),
        ];
        for (kind, name, failure) in cases {
            assert_eq!((kind.as_str(), kind.failure()), (name, failure));
        }
    }
}
