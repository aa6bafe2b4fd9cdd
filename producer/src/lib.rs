//! Producing events: the typed [`Producer`], the local fan-out that plays
//! SNS and EventBridge in-process ([`LocalFanout`]), parsing of
//! user-supplied event JSON ([`input`]), and the orders/images HTTP API
//! ([`api`], served by [`serve`]).
//!
//! An app publishes typed events through a [`Producer`] over any
//! [`EventPublisher`]: the AWS one (SNS and EventBridge), or the local
//! fan-out, which matches the topology's rules and filter policies and sends
//! each event to the queues of the consumers it is for:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use router_rules::Topology;
//! use switchyard_producer::{LocalFanout, Producer};
//! use switchyard_shared::embedded::{EmbeddedStore, QueueConfig};
//! use switchyard_shared::events::OrderPaid;
//! use switchyard_shared::ports::Queue;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let topology = Arc::new(Topology::builtin());
//! let store = EmbeddedStore::in_memory()?;
//! let mut queues: BTreeMap<String, Arc<dyn Queue>> = BTreeMap::new();
//! for consumer in &topology.consumers {
//!     let name = consumer.queue_name();
//!     store.create_queue(QueueConfig::new(&name))?;
//!     queues.insert(name.clone(), Arc::new(store.queue(&name)?));
//! }
//! let producer = Producer::new(Arc::new(LocalFanout::new(topology, queues)?));
//!
//! let paid = OrderPaid { order_id: "o-1".into(), payment_id: "p-1".into(), amount_cents: 1200 };
//! let id = producer.publish(paid).await?;
//!
//! // The built-in rules send order events to the order processor's queue.
//! let received = store.queue("order-processor")?
//!     .receive(10, Duration::from_secs(30), Duration::ZERO)
//!     .await?;
//! assert_eq!(received.len(), 1);
//! assert!(received[0].body.contains(&id.to_string()));
//! # Ok(()) }
//! ```

pub mod api;
pub mod fanout;
mod http;
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
