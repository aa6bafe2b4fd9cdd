//! Switchyard's root library: what the `switchyard` binary and the
//! cross-crate tests share.

pub mod provision;
