//! The pure core: types that parse input once and the rules that act on them. No I/O here.

pub mod diff;
pub mod event;
pub mod event_type;
pub mod field;
pub mod formula;
