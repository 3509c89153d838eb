//! The delivery client against a real HTTPS receiver: trust, the SSRF guard, redirects,
//! timeouts and connect failures, each classified the way the attempt log will show it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::delivery::client::{
    check_url, ClientConfig, DeliveryClient, ErrorKind, Received, Target, TlsProblem, MAX_KEPT_BODY,
    USER_AGENT,
};
use herald::delivery::ssrf::{Category, Policy};
use herald::formats::signing::{signature_header, SigningSecret};
use http::{HeaderMap, HeaderValue, Method};

use crate::support::{Reply, TestReceiver, WAIT};

fn allow_loopback() -> Policy {
    Policy::new(vec!["127.0.0.0/8".parse().unwrap()])
}

/// A client that trusts `receiver`'s CA, with the rest of `config`.
fn client_for(receiver: &TestReceiver, config: ClientConfig) -> DeliveryClient {
    let ca = receiver.ca_file();
    DeliveryClient::new(&ClientConfig {
        extra_ca_file: Some(ca.path().into()),
        ..config
    })
    .unwrap()
}

/// A trusting client whose whole attempt may take `limit`.
fn with_attempt_limit(receiver: &TestReceiver, limit: Duration) -> DeliveryClient {
    client_for(
        receiver,
        ClientConfig {
            timeout: limit,
            policy: allow_loopback(),
            ..ClientConfig::default()
        },
    )
}

fn trusting(receiver: &TestReceiver) -> DeliveryClient {
    client_for(
        receiver,
        ClientConfig {
            policy: allow_loopback(),
            ..ClientConfig::default()
        },
    )
}

fn target(url: &str) -> Target {
    Target::parse(url).unwrap()
}

async fn post(client: &DeliveryClient, url: &str) -> Result<Received, ErrorKind> {
    client
        .send(
            Method::POST,
            &target(url),
            HeaderMap::new(),
            Bytes::from_static(b"{}"),
        )
        .await
}

#[tokio::test]
async fn posts_a_signed_body_over_https_when_the_ca_is_trusted() {
    let receiver = TestReceiver::start().await;
    receiver.reply_with(Reply::status(202).body("thanks"));
    let client = trusting(&receiver);
    let secret = SigningSecret::generate();
    let body = br#"{"event":"Project:Updated"}"#;
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();

    let mut headers = HeaderMap::new();
    let value = |s: String| HeaderValue::from_str(&s).unwrap();
    headers.insert("content-type", value("application/json".into()));
    headers.insert("user-agent", value(USER_AGENT.into()));
    headers.insert("webhook-id", value("msg_1".into()));
    headers.insert("webhook-timestamp", value(ts.to_string()));
    headers.insert(
        "webhook-signature",
        value(signature_header(&secret, None, "msg_1", ts, body)),
    );
    let response = client
        .send(
            Method::POST,
            &target(&receiver.url()),
            headers,
            Bytes::from_static(body),
        )
        .await
        .unwrap();

    assert_eq!(response.status, 202);
    let reply = response.body;
    assert_eq!((reply.bytes.as_slice(), reply.truncated), (&b"thanks"[..], false));
    assert_eq!(reply.error, None);

    let requests = receiver.wait_for(1, WAIT).await;
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("Herald/"));
    assert_eq!(r.header("content-length"), Some(&*body.len().to_string()));
    assert_eq!(r.json()["event"], "Project:Updated");
    standardwebhooks::Webhook::new(secret.expose())
        .unwrap()
        .verify(&r.body, &r.headers)
        .unwrap();
}

#[tokio::test]
async fn sequential_requests_reuse_one_keep_alive_connection() {
    let receiver = TestReceiver::start().await;
    let client = trusting(&receiver);
    for _ in 0..5 {
        post(&client, &receiver.url()).await.unwrap();
    }
    assert_eq!(receiver.requests().len(), 5);
    assert_eq!(receiver.connections(), 1);
}

#[tokio::test]
async fn host_names_resolve_to_allowed_addresses_only() {
    // `localhost` may resolve to ::1 and 127.0.0.1; only 127.0.0.0/8 is allowed, so the
    // resolver hands the connector 127.0.0.1 alone and the request succeeds.
    let receiver = TestReceiver::start().await;
    let client = trusting(&receiver);
    let response = post(&client, &receiver.localhost_url()).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let receiver = TestReceiver::start().await;
    let client = DeliveryClient::new(&ClientConfig {
        policy: allow_loopback(),
        ..ClientConfig::default()
    })
    .unwrap();
    let kind = post(&client, &receiver.url()).await.unwrap_err();
    assert_eq!(kind, ErrorKind::Tls(TlsProblem::UnknownIssuer));
    assert!(kind.to_string().contains("extra_ca_file"), "{kind}");
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_before_connecting() {
    let receiver = TestReceiver::start().await;
    let client = client_for(&receiver, ClientConfig::default());

    // IP literal: refused up front by `send`.
    let Err(ErrorKind::Refused(refusal)) = post(&client, &receiver.url()).await else {
        panic!("an IP-literal loopback URL was not refused");
    };
    assert_eq!(refusal.category(), Category::Loopback);
    assert_eq!(
        refusal.to_string(),
        "address 127.0.0.1 is loopback (127.0.0.0/8); add it to allowed_target_networks to allow it"
    );

    // Host name: refused by the resolver, so no socket is ever opened.
    match post(&client, &receiver.localhost_url()).await.unwrap_err() {
        ErrorKind::Refused(refusal) => {
            assert_eq!(refusal.category(), Category::Loopback);
            assert!(refusal.to_string().contains("allowed_target_networks"));
        }
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert_eq!(receiver.connections(), 0);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn a_redirect_is_returned_not_followed() {
    let receiver = TestReceiver::start().await;
    let elsewhere = format!("https://127.0.0.1:{}/elsewhere", receiver.addr().port());
    receiver.enqueue(Reply::status(302).header("location", &elsewhere));
    let client = trusting(&receiver);

    let response = post(&client, &receiver.url()).await.unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.headers["location"].to_str().unwrap(), elsewhere.as_str());
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"]);
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let receiver = TestReceiver::start().await;
    receiver.reply_with(Reply::never());
    let client = with_attempt_limit(&receiver, Duration::from_millis(300));
    let started = Instant::now();
    let kind = post(&client, &receiver.url()).await.unwrap_err();
    assert_eq!(kind, ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    receiver.wait_for(1, WAIT).await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_hits_the_connect_timeout() {
    // Accepts TCP connections and never answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let client = DeliveryClient::new(&ClientConfig {
        connect_timeout: Duration::from_millis(300),
        timeout: Duration::from_secs(60),
        policy: allow_loopback(),
        ..ClientConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let kind = post(&client, &format!("https://127.0.0.1:{port}/hook"))
        .await
        .unwrap_err();
    assert_eq!(kind, ErrorKind::Timeout);
    // The connect limit, not the 60 s attempt limit, ended it.
    assert!(started.elapsed() < Duration::from_secs(30));
    held.abort();
}

#[tokio::test]
async fn a_body_that_stalls_keeps_its_status_and_records_the_timeout() {
    let receiver = TestReceiver::start().await;
    receiver.reply_with(Reply::status(503).body("partial").stall_body());
    let client = with_attempt_limit(&receiver, Duration::from_millis(300));
    let response = post(&client, &receiver.url()).await.unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.body.bytes, b"partial");
    assert_eq!(response.body.error, Some(ErrorKind::Timeout));
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = DeliveryClient::new(&ClientConfig {
        policy: allow_loopback(),
        ..ClientConfig::default()
    })
    .unwrap();
    match post(&client, &format!("https://127.0.0.1:{port}/hook")).await {
        // hyper's "client error (Connect)" wrapper is left out of the detail.
        Err(ErrorKind::Connect { detail }) => assert!(
            detail.starts_with("tcp connect error: ") && detail.contains("refused"),
            "{detail}"
        ),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn response_bodies_are_capped() {
    let receiver = TestReceiver::start().await;
    let client = trusting(&receiver);
    for (size, kept, truncated) in [
        (10, 10, false),
        (MAX_KEPT_BODY, MAX_KEPT_BODY, false),
        (MAX_KEPT_BODY + 1, MAX_KEPT_BODY, true),
        (200 * 1024, MAX_KEPT_BODY, true),
        (3 * 1024 * 1024, MAX_KEPT_BODY, true),
    ] {
        receiver.enqueue(Reply::status(500).body(vec![b'x'; size]));
        let response = post(&client, &receiver.url()).await.unwrap();
        assert_eq!(response.status, 500);
        let body = response.body;
        assert_eq!((body.bytes.len(), body.truncated), (kept, truncated), "{size}");
        assert_eq!(body.error, None);
    }
}

#[test]
fn ssrf_policy_table() {
    #[rustfmt::skip]
    let refused = [
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
        "172.31.255.254", "192.168.1.1", "169.254.169.254", "169.254.10.10", "100.64.0.1",
        "100.127.255.254", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "::ffff:127.0.0.1",
        "::ffff:10.0.0.1", "::127.0.0.1", "0.0.0.0", "::", "64:ff9b::a00:1", "64:ff9b:1::1",
        "2002:a00:1::", "2001::1", "fec0::1", "fd00:ec2::254", "224.0.0.1", "ff02::1",
        "255.255.255.255", "240.0.0.1", "192.0.0.8", "192.0.2.1", "198.51.100.7",
        "203.0.113.9", "198.18.0.1", "2001:db8::1",
    ];
    #[rustfmt::skip]
    let public = [
        "93.184.216.34", "8.8.8.8", "1.1.1.1", "11.0.0.1", "172.32.0.1", "100.128.0.1",
        "2606:4700::1111", "2001:4860:4860::8888",
    ];
    let default = Policy::default();
    let literal_url = |ip: IpAddr| -> url::Url {
        match ip {
            IpAddr::V4(v4) => format!("https://{v4}/hook"),
            IpAddr::V6(v6) => format!("https://[{v6}]/hook"),
        }
        .parse()
        .unwrap()
    };
    for addr in refused {
        let ip: IpAddr = addr.parse().unwrap();
        let refusal = default.check(ip).expect_err(addr);
        assert!(
            refusal.to_string().contains("allowed_target_networks"),
            "{refusal}"
        );
        assert!(check_url(&literal_url(ip), &default).is_err(), "{addr}");
    }
    for addr in public {
        let ip: IpAddr = addr.parse().unwrap();
        assert_eq!(default.check(ip), Ok(()), "{addr}");
        assert_eq!(check_url(&literal_url(ip), &default), Ok(()), "{addr}");
    }

    let opened = Policy::new(vec![
        "10.1.0.0/16".parse().unwrap(),
        "fd00:1::/32".parse().unwrap(),
    ]);
    for (addr, allowed) in [
        ("10.1.0.0", true),
        ("10.1.255.255", true),
        ("::ffff:10.1.2.3", true),
        ("10.0.255.255", false),
        ("10.2.0.0", false),
        ("192.168.0.1", false),
        ("127.0.0.1", false),
        ("fd00:1::5", true),
        ("fd00:2::1", false),
        ("8.8.8.8", true),
    ] {
        let ip: IpAddr = addr.parse().unwrap();
        assert_eq!(opened.check(ip).is_ok(), allowed, "{addr}");
    }
}
