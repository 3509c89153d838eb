//! Herald's integration tests: one binary, the real server on 127.0.0.1:0, real databases,
//! real sockets and real TLS.

mod support;

mod cli;
mod client_tests;
mod delivery;
mod delivery_cli;
mod delivery_crash;
mod delivery_failures;
mod delivery_queue;
mod delivery_throughput;
mod formats_api;
mod store_suite;
mod tls_listener;
mod tracker_api;
mod ui_browser;
mod ui_html;
mod webhooks_api;
