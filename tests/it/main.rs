//! Herald's integration tests: one binary, the real server on 127.0.0.1:0, real databases.

mod support;

mod cli;
mod store_suite;
mod webhooks_api;
