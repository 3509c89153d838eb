//! Herald's integration tests: one binary (design §7.10), real sockets, real TLS.

mod client_tests;
mod support;
