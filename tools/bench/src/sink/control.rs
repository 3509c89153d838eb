//! The sink's control port (plain HTTP on loopback), used by the harness:
//!
//! | request | effect |
//! |---|---|
//! | `GET /stats` | [`super::book::Stats`] as JSON |
//! | `GET /records` | every [`crate::record::Record`], one line each |
//! | `GET /sample` | the first body that carried a seq marker (404 before one arrived) |
//! | `POST /reset` | forget every record and id |
//! | `POST /mode?fail_pct=N&never=0\|1` | change how requests are answered |
//! | `POST /down`, `POST /up` | close / reopen the receiving port |

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::Shared;

/// Serves the control API forever.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn handle(
    req: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/stats") => match serde_json::to_vec(&shared.book().stats()) {
            Ok(json) => reply(StatusCode::OK, json),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        (&Method::GET, "/records") => {
            let text = shared.book().records_text();
            reply(StatusCode::OK, text)
        }
        (&Method::GET, "/sample") => match shared.book().sample() {
            Some(body) => reply(StatusCode::OK, body),
            None => reply(StatusCode::NOT_FOUND, "no body with a seq marker yet"),
        },
        (&Method::POST, "/reset") => {
            shared.book().reset();
            reply(StatusCode::NO_CONTENT, "")
        }
        (&Method::POST, "/mode") => {
            if let Some(pct) = query_param(&query, "fail_pct").and_then(|v| v.parse().ok()) {
                shared.fail_pct.store(pct, Ordering::Relaxed);
            }
            if let Some(never) = query_param(&query, "never") {
                shared.never.store(never == "1", Ordering::Relaxed);
            }
            reply(StatusCode::NO_CONTENT, "")
        }
        (&Method::POST, "/down") => {
            shared.down().await;
            reply(StatusCode::NO_CONTENT, "")
        }
        (&Method::POST, "/up") => match shared.up().await {
            Ok(()) => reply(StatusCode::NO_CONTENT, ""),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        },
        _ => reply(StatusCode::NOT_FOUND, "unknown control request"),
    };
    Ok(response)
}
