//! Switchyard's shared core: the event model, the ports every backend
//! implements, and the embedded adapters (memory journaled to SQLite, a blob folder).
//!
//! Ports are deliberately small traits so that the embedded backend, the AWS
//! backend and test doubles can all stand behind them.

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
