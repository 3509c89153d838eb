//! A throwaway PKI for the sink: a fresh CA and a server certificate for `localhost` and
//! `127.0.0.1` signed by it, so Herald trusts the sink only through `HERALD_EXTRA_CA_FILE`,
//! exactly as an operator's private CA (the same recipe as tests/it's `TestReceiver`).

use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// The CA (PEM, to hand to clients) and a ready server configuration.
pub struct Pki {
    /// PEM of the issuing CA.
    pub ca_pem: String,
    /// rustls server configuration with the leaf certificate (HTTP/1.1 only).
    pub server: ServerConfig,
}

/// Generates a new CA and leaf.
pub fn throwaway() -> anyhow::Result<Pki> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "herald-bench sink CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .context("sink certificate")?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pki { ca_pem, server })
}
