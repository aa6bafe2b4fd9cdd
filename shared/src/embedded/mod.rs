//! Embedded adapters: the table, its change stream and the queues in memory,
//! made durable by a journal file and a snapshot in SQLite; a folder for blobs.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use switchyard_shared::embedded::{EmbeddedStore, FolderBlobStore, QueueConfig};
//! use switchyard_shared::ports::{Condition, OutgoingMessage, Queue, Table};
//! use std::time::Duration;
//!
//! let store = EmbeddedStore::open(".switchyard/switchyard.db")?; // or EmbeddedStore::in_memory()
//! store.create_queue(QueueConfig::new("order-processor-dlq"))?; // DLQs first
//! store.create_queue(QueueConfig::new("order-processor").with_dlq("order-processor-dlq", 5))?;
//! let queue = store.queue("order-processor")?;
//! queue.send_batch(vec![OutgoingMessage::new("{}")]).await?;
//! let batch = queue.receive(10, Duration::from_secs(30), Duration::from_secs(20)).await?;
//!
//! let table = store.table(); // every write also appends a stream record
//! let stream = store.stream(); // shards(), read(), checkpoints, latest_sequence(), wait_for_records()
//! let blobs = FolderBlobStore::new(".switchyard/blobs")?.with_faults(store.faults().clone());
//! # let _ = (batch, table, stream, blobs, Condition::Always); Ok(()) }
//! ```
//!
//! Changes are group-committed: everything that changed while the last
//! commit was being written (handlers of one batch run concurrently, several
//! consumers) goes out as one journal frame from one commit thread. A crash
//! loses at most the changes after the last commit, never one in the middle;
//! [`EmbeddedStore::sync`] waits for the commit, before acknowledging to the
//! outside world. One process
//! owns a data dir at a time; [`EmbeddedStore::open_read_only`] reads one
//! beside it.

pub mod blobs;
pub mod faults;
mod items;
mod journal;
mod journal_file;
mod legacy;
mod memory_blobs;
pub mod queue;
mod queue_config;
mod state;
pub mod store;
pub mod stream;
pub mod table;

pub use blobs::FolderBlobStore;
pub use faults::{FaultPlan, FaultTarget, Faults, InvalidFaultPlan};
pub use memory_blobs::MemoryBlobStore;
pub use queue::{EmbeddedQueue, PeekedMessage, QueueConfig, QueueStats};
pub use store::{EmbeddedStore, StoreError, StoreOptions, Unwritable};
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

/// `options` creating files readable and writable by their owner only
/// (0600): the data dir holds every order and message.
pub(crate) fn private_file(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}
