//! Herald's own listener over HTTPS (`tls_cert_file` / `tls_key_file`).

use crate::support::app::test_settings;
use crate::support::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_api_over_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let settings = test_settings(
        Backend::Sqlite,
        dir.path(),
        &[
            ("HERALD_TLS_CERT_FILE", cert.to_str().unwrap()),
            ("HERALD_TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    )
    .unwrap();
    let app = herald::startup::Application::build(settings).await.unwrap();
    let base = app.base_url();
    assert!(base.starts_with("https://"));
    let port = app.port();
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(app.run_until_stopped(stop.clone()));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the TLS port gets no API answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    stop.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), handle)
        .await
        .expect("server stops on cancel")
        .unwrap()
        .unwrap();
}

#[test]
fn mismatched_tls_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("HERALD_TLS_CERT_FILE".to_owned(), "/x.pem".to_owned())];
    let err = herald::config::Settings::load_from(&herald::config::Overrides::default(), &env).unwrap_err();
    assert!(err.to_string().contains("both or neither"), "{err}");
    drop(dir);
}
