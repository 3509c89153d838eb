//! The pure core: types that parse input once and the rules that act on them. No I/O here.

pub mod event;
pub mod event_type;
pub mod retry;
