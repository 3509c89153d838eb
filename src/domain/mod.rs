//! The pure core: types that parse input once and the rules that act on them. No I/O here.

pub mod attrs;
pub mod diff;
pub mod event;
pub mod event_type;
pub mod field;
pub mod formula;
pub mod retry;
pub mod scope;
pub mod tenant;
pub mod webhook;
