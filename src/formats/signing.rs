//! Standard Webhooks v1 signatures: the `webhook-signature` header that lets a receiver prove a
//! request came from Herald and was not altered or replayed with another id or timestamp.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`, the MAC is HMAC-SHA256
//! keyed with the secret's decoded bytes, and the header value is `v1,<base64 MAC>`. During a
//! secret rotation both the new and the old signature are sent, space-separated, so receivers
//! can switch keys at their own pace (the spec's verifiers accept any listed signature).
//!
//! Pure and allocation-light: signing runs once per attempt on the delivery hot path, so the
//! HMAC key is prepared once per secret. The MAC is ring's (already linked for TLS): on CPUs
//! without SHA extensions its assembly SHA-256 is ~1.8 × as fast as the `sha2` crate's
//! portable code, and signing hashes every body Herald sends.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use ring::hmac;

/// The prefix every Standard Webhooks secret carries, so it is recognisable in config and logs.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret: 256 bits, SHA-256's own strength; more adds nothing.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// Smallest decoded secret accepted (the spec's minimum, 192 bits).
pub const MIN_SECRET_BYTES: usize = 24;

/// Largest decoded secret accepted (the spec's maximum).
pub const MAX_SECRET_BYTES: usize = 64;

/// Why a stored or user-supplied secret was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The value does not start with `whsec_`.
    #[error("signing secret must start with \"whsec_\"")]
    MissingPrefix,
    /// The part after the prefix is not standard base64.
    #[error("signing secret is not valid base64 after \"whsec_\"")]
    InvalidBase64,
    /// The decoded key is too short or too long.
    #[error("signing secret must decode to {MIN_SECRET_BYTES}..={MAX_SECRET_BYTES} bytes, got {0}")]
    BadLength(usize),
}

/// A webhook signing secret, `whsec_<base64 key>`.
///
/// Built only by [`SigningSecret::generate`] or [`SigningSecret::parse`], so every value holds
/// a valid key. `Debug` never prints the key: secrets must not reach logs.
#[derive(Clone)]
pub struct SigningSecret {
    /// The full `whsec_…` text, kept for storage and one-time display.
    text: String,
    /// HMAC-SHA256 key prepared from the decoded bytes, reused for each signature.
    key: hmac::Key,
}

impl SigningSecret {
    /// A fresh random secret from the OS-seeded CSPRNG, for new webhooks and rotations.
    pub fn generate() -> Self {
        let mut key = [0u8; GENERATED_SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
        Self::from_parts(text, &key)
    }

    /// Parses a stored or operator-supplied secret; the prefix is required so a bare base64
    /// string pasted from somewhere else is not silently accepted as a Herald secret.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::InvalidBase64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self::from_parts(s.to_owned(), &key))
    }

    fn from_parts(text: String, key: &[u8]) -> Self {
        Self {
            text,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The `whsec_…` text, for encrypting into storage or showing once on creation.
    /// Deliberately named so every call site reads as a conscious disclosure.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_…redacted)")
    }
}

impl PartialEq for SigningSecret {
    /// Constant-time on the text, so comparing secrets does not leak them through timing.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}

impl Eq for SigningSecret {}

/// Signs one message: `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp_secs}.{body}">`.
///
/// `msg_id` is the delivery id (stable across retries), `timestamp_secs` the Unix time of this
/// attempt (fresh per attempt, so receivers can reject replays), `body` the exact bytes sent.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let mut mac = hmac::Context::with_key(&secret.key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.sign();
    let mut out = String::with_capacity(3 + 44);
    out.push_str("v1,");
    STANDARD.encode_string(digest, &mut out);
    out
}

/// The `webhook-signature` header value: the current secret's signature, followed by the
/// previous secret's while a rotation is in progress (receivers accept any listed one).
pub fn signature_header(
    current: &SigningSecret,
    previous: Option<&SigningSecret>,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> String {
    let mut header = sign(current, msg_id, timestamp_secs, body);
    if let Some(previous) = previous {
        header.push(' ');
        header.push_str(&sign(previous, msg_id, timestamp_secs, body));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TS: i64 = 1_649_367_553;
    const SPEC_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn headers(id: &str, ts: i64, sig: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn matches_the_spec_test_vector() {
        let secret = SigningSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            sign(&secret, SPEC_ID, SPEC_TS, SPEC_BODY),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn agrees_with_the_standardwebhooks_crate_signer() {
        // Exact equality matters: that crate's `verify` compares only up to the shorter of the
        // two strings, so a verify-only test would accept a truncated signature.
        for _ in 0..20 {
            let secret = SigningSecret::generate();
            let theirs = standardwebhooks::Webhook::new(secret.expose()).unwrap();
            let body = uuid::Uuid::new_v4().to_string();
            let ts = now();
            assert_eq!(
                sign(&secret, "msg_1", ts, body.as_bytes()),
                theirs.sign("msg_1", ts, body.as_bytes()).unwrap()
            );
        }
    }

    #[test]
    fn the_standardwebhooks_verifier_accepts_our_header() {
        let secret = SigningSecret::generate();
        let body = br#"{"hello":"world"}"#;
        let ts = now();
        let value = signature_header(&secret, None, "msg_2", ts, body);
        let verifier = standardwebhooks::Webhook::new(secret.expose()).unwrap();
        verifier.verify(body, &headers("msg_2", ts, &value)).unwrap();
        // Any change to id, body or timestamp must fail.
        assert!(verifier.verify(b"{}", &headers("msg_2", ts, &value)).is_err());
        assert!(verifier.verify(body, &headers("msg_3", ts, &value)).is_err());
        assert!(verifier.verify(body, &headers("msg_2", ts - 1, &value)).is_err());
    }

    #[test]
    fn rotation_header_carries_both_signatures_and_each_verifies() {
        let current = SigningSecret::generate();
        let previous = SigningSecret::generate();
        let body = b"[1,2,3]";
        let ts = now();
        let value = signature_header(&current, Some(&previous), "msg_r", ts, body);
        let parts: Vec<&str> = value.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&current, "msg_r", ts, body));
        assert_eq!(parts[1], sign(&previous, "msg_r", ts, body));
        for secret in [&current, &previous] {
            standardwebhooks::Webhook::new(secret.expose())
                .unwrap()
                .verify(body, &headers("msg_r", ts, &value))
                .unwrap();
        }
        let stranger = SigningSecret::generate();
        assert!(standardwebhooks::Webhook::new(stranger.expose())
            .unwrap()
            .verify(body, &headers("msg_r", ts, &value))
            .is_err());
    }

    #[test]
    fn generated_secrets_round_trip_and_differ() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(SigningSecret::parse(a.expose()).unwrap(), a);
        let key = STANDARD.decode(&a.expose()[SECRET_PREFIX.len()..]).unwrap();
        assert_eq!(key.len(), GENERATED_SECRET_BYTES);
    }

    #[test]
    fn parse_rejects_malformed_secrets() {
        let b64 = |n: usize| STANDARD.encode(vec![7u8; n]);
        let cases = [
            (b64(32), SecretError::MissingPrefix),
            (format!("whsec_{}", "not base64!"), SecretError::InvalidBase64),
            (format!("whsec_{}", b64(23)), SecretError::BadLength(23)),
            (format!("whsec_{}", b64(65)), SecretError::BadLength(65)),
            ("whsec_".to_owned(), SecretError::BadLength(0)),
        ];
        for (input, expected) in cases {
            assert_eq!(SigningSecret::parse(&input).unwrap_err(), expected, "{input}");
        }
        for n in [24, 32, 64] {
            assert!(SigningSecret::parse(&format!("whsec_{}", b64(n))).is_ok());
        }
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let secret = SigningSecret::parse(SPEC_SECRET).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("C2FV"), "{shown}");
    }
}
