//! Herald's integration tests: one binary, the real server on 127.0.0.1:0, real databases,
//! real sockets and real TLS.

mod support;

mod cli;
mod client_tests;
mod formats_api;
mod store_suite;
mod tls_listener;
mod tracker_api;
mod ui_browser;
mod ui_html;
mod webhooks_api;
