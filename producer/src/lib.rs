//! Producing events: the typed [`Producer`], the local fan-out that plays
//! SNS and EventBridge in-process, parsing of user-supplied event JSON, and
//! the orders/images HTTP API.

pub mod api;
pub mod fanout;
pub mod idempotency;
pub mod input;
pub mod serve;

use std::sync::Arc;

use switchyard_shared::events::EventType;
use switchyard_shared::ports::{EventPublisher, PublishError};
use uuid::Uuid;

pub use fanout::LocalFanout;

/// The publisher library apps use: typed events in, event ids out.
#[derive(Clone)]
pub struct Producer {
    publisher: Arc<dyn EventPublisher>,
}

impl Producer {
    pub fn new(publisher: Arc<dyn EventPublisher>) -> Self {
        Producer { publisher }
    }

    /// Publishes one typed event; its id on success.
    pub async fn publish<E: EventType>(&self, event: E) -> Result<Uuid, PublishError> {
        let envelope = event.into_envelope();
        let id = envelope.id;
        self.publisher.publish(&[envelope]).await?.into_result()?;
        Ok(id)
    }
}
