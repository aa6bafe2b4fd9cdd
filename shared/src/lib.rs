//! Switchyard's shared core: the event model ([`events`], [`Envelope`]),
//! the ports every backend implements ([`ports`]: table, queue, stream,
//! blob store, publisher, clock), and the adapters behind them: the
//! embedded ones ([`embedded`]: memory journaled to SQLite, a blob folder)
//! and, with the `aws` feature, the AWS ones (`aws`: DynamoDB, SQS, S3,
//! SNS and EventBridge). The `conformance` feature holds one suite per port
//! that every adapter passes.
//!
//! Ports are deliberately small traits so that the embedded backend, the AWS
//! backend and test doubles can all stand behind them. The shortest use: a
//! typed event in its envelope, and a table that works like DynamoDB's,
//! conditions included:
//!
//! ```
//! use switchyard_shared::embedded::EmbeddedStore;
//! use switchyard_shared::events::{EventType, OrderPaid};
//! use switchyard_shared::ports::{Condition, Item, Key, Table};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let envelope = OrderPaid { order_id: "o-1".into(), payment_id: "p-1".into(), amount_cents: 1200 }
//!     .into_envelope();
//! assert_eq!(envelope.detail_type, "OrderPaid");
//!
//! let table = EmbeddedStore::in_memory()?.table();
//! let mut item = Item::new();
//! item.insert("pk".into(), "ORDER#o-1".into());
//! item.insert("sk".into(), "ORDER".into());
//! table.put(item.clone(), Condition::Absent).await?;
//! // A second put under `Absent` is refused, as DynamoDB refuses it.
//! assert!(table.put(item, Condition::Absent).await.is_err());
//! assert!(table.get(&Key::new("ORDER#o-1", "ORDER")).await?.is_some());
//! # Ok(()) }
//! ```

#[cfg(feature = "aws")]
pub mod aws;
pub mod blob_key;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod embedded;
pub mod envelope;
pub mod events;
pub mod images;
pub mod items;
pub mod logging;
pub mod ports;
pub mod trace;

pub use blob_key::{BlobKey, BlobKeyError};
pub use envelope::{Envelope, EnvelopeError, MAX_EVENT_BYTES};
pub use events::{DomainEvent, EventType};
pub use trace::TraceContext;
