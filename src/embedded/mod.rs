//! The embedded backend, the default: the whole system in one process on
//! the embedded store (`switchyard_shared::embedded`: the table, its stream
//! and the queues in memory, journaled to SQLite; a blob folder), its
//! consumers run by the pollers of [`crate::runtime`].

pub mod system;

pub use system::EmbeddedSystem;
