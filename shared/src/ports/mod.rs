//! The ports: small traits that every backend implements.
//!
//! Each adapter also declares the [`Capabilities`] it has, so the shared
//! conformance suites can skip what a backend cannot do (and say so).

pub mod blobs;
pub mod clock;
pub mod publish;
pub mod queue;
pub mod stream;
pub mod table;

pub use blobs::{Blob, BlobError, BlobStore};
pub use clock::{wall_clock, Clock, VirtualClock, WallClock};
pub use publish::{Destination, EventPublisher, PublishError, PublishFailure, PublishReport};
pub use queue::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
pub use stream::{
    ChangeRecord, ChangeStream, ChangeView, FilteredRead, RecordFilter, RecordParts, StoredChange,
    StreamError, StreamRecord,
};
pub use table::{Condition, Item, Key, Table, TableError, TxOp};

/// What an adapter can do; conformance suites skip the cases it lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub fifo_queues: bool,
    /// Moves DLQ messages back to their source queue (SQS StartMessageMoveTask).
    pub dlq_redrive: bool,
    /// Keeps the reason a message failed beside it in the DLQ.
    pub dlq_reasons: bool,
    pub transactions: bool,
    /// A failed conditional write returns the item as it was.
    pub old_item_on_condition_failure: bool,
}
