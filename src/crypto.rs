//! Secrets at rest and API tokens.
//!
//! Secured header values and signing secrets are sealed with XChaCha20-Poly1305 under the
//! master key before they reach the store, so the database file never holds them in
//! plaintext. API tokens are random, shown once and stored only as a SHA-256 hash; the
//! hash comparison is constant-time.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of sealed values, versioned so the scheme can change without ambiguity.
const SEALED_PREFIX: &str = "v1:";
/// Name of the generated key file inside the data directory.
pub const KEY_FILE: &str = "master.key";

/// The 32-byte key that seals secrets. Never printed (its `Debug` is redacted).
#[derive(Clone)]
pub struct MasterKey(Key);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(********)")
    }
}

/// Why the master key could not be loaded or a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// `HERALD_MASTER_KEY` or the key file is not 32 bytes of base64/hex.
    #[error(
        "master key must be 32 bytes, base64 or hex encoded (generate one with `openssl rand -base64 32`)"
    )]
    BadKey,
    /// The key file could not be read or created.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// Path of the key file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A sealed value is corrupt or was sealed under another key.
    #[error("a stored secret cannot be decrypted: wrong master key or corrupted data")]
    Open,
}

impl MasterKey {
    /// Parses key material given as base64 (standard or URL-safe) or 64 hex digits.
    pub fn parse(material: &str) -> Result<Self, CryptoError> {
        let m = material.trim();
        let bytes = if m.len() == 64 && m.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(m).map_err(|_| CryptoError::BadKey)?
        } else {
            STANDARD
                .decode(m)
                .or_else(|_| URL_SAFE_NO_PAD.decode(m.trim_end_matches('=')))
                .map_err(|_| CryptoError::BadKey)?
        };
        let raw: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self(Key::from(raw)))
    }

    /// Uses `material` when given, else reads `data_dir/master.key`, creating it with mode
    /// 0600 on first start. Returns the key and whether a new file was created.
    pub fn load_or_create(material: Option<&str>, data_dir: &Path) -> Result<(Self, bool), CryptoError> {
        if let Some(m) = material {
            return Ok((Self::parse(m)?, false));
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::parse(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let mut raw = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(io)?;
                writeln!(f, "{}", STANDARD.encode(raw)).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok((Self(Key::from(raw)), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext`; a fresh random nonce makes equal inputs seal differently.
    pub fn seal(&self, plaintext: &str) -> String {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption with a valid key and in-memory buffer cannot fail.
        let ct = cipher
            .encrypt(&XNonce::from(nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    /// Decrypts a value produced by [`MasterKey::seal`].
    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|r| r.len() > 24)
            .ok_or(CryptoError::Open)?;
        let (nonce, ct) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| CryptoError::Open)?;
        let pt = XChaCha20Poly1305::new(&self.0)
            .decrypt(&XNonce::from(nonce), ct)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Open)
    }
}

/// A freshly minted API token: the full value is shown once, only `id` and `hash` are stored.
pub struct NewToken {
    /// Public, non-secret identifier (lookup key, shown in `token list`).
    pub id: String,
    /// The full bearer token `hrld_<id>_<secret>`.
    pub token: String,
    /// SHA-256 of the secret part, hex.
    pub hash: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Mints a token with 256 bits of secret.
pub fn new_token() -> NewToken {
    let mut id = [0u8; 9];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let id = URL_SAFE_NO_PAD.encode(id).replace(['-', '_'], "x");
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewToken {
        hash: hash_secret(&secret),
        token: format!("hrld_{id}_{secret}"),
        id,
    }
}

/// A new Standard Webhooks signing secret, `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("whsec_{}", STANDARD.encode(raw))
}

/// Splits a presented bearer token into `(id, secret)`; `None` if it is not shaped like one.
/// The id must be what [`new_token`] mints (12 ASCII letters and digits): anything else
/// cannot name a token, and is refused here rather than sent to the database (PostgreSQL
/// rejects a NUL in text with an error, which was a 500 for a mistyped sign-in).
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("hrld_")?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (id_ok && !secret.is_empty() && secret.len() <= 128).then_some((id, secret))
}

/// Hex SHA-256 of a token secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time check of a presented secret against a stored hash.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_and_hide_plaintext() {
        let k = MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let s = k.seal("Bearer s3cr3t");
        assert!(!s.contains("s3cr3t"));
        assert_ne!(s, k.seal("Bearer s3cr3t"));
        assert_eq!(k.open(&s).unwrap(), "Bearer s3cr3t");
        let other = MasterKey::parse(&hex::encode([8u8; 32])).unwrap();
        assert!(other.open(&s).is_err());
        assert!(k.open("v1:garbage").is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert!(created);
        let (k2, created) = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k2.open(&k1.seal("x")).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn tokens_verify_only_with_their_secret() {
        let t = new_token();
        let (id, secret) = split_token(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert!(verify_secret(secret, &t.hash));
        assert!(!verify_secret("nope", &t.hash));
        assert!(split_token("Bearer x").is_none());
        for id in [
            "abcdefghijk\0",
            "abcdefghijk-",
            "abcdéfghijk",
            "abcdefghijk",
            "abcdefghijklm",
        ] {
            assert!(split_token(&format!("hrld_{id}_secret")).is_none(), "{id:?}");
        }
        assert!(split_token("hrld_abcdefghijk9_secret").is_some());
    }
}
