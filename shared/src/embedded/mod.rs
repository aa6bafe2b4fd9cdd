//! Embedded adapters: one SQLite database for the table, its change stream
//! and the queues; a folder for blobs.

pub mod blobs;
pub mod faults;
pub mod queue;
pub mod store;
pub mod stream;
pub mod table;

pub use blobs::FolderBlobStore;
pub use faults::{FaultPlan, FaultTarget, Faults};
pub use queue::{EmbeddedQueue, PeekedMessage, QueueConfig, QueueStats};
pub use store::{EmbeddedStore, StoreError, StoreOptions};
pub use stream::{format_sequence, EmbeddedStream};
pub use table::EmbeddedTable;

use crate::ports::Capabilities;

/// The embedded backend has every capability the conformance suites test.
pub const CAPABILITIES: Capabilities = Capabilities {
    fifo_queues: true,
    dlq_redrive: true,
    dlq_reasons: true,
    transactions: true,
    old_item_on_condition_failure: true,
};
