//! What the console reads and does on queues: a small port with one adapter
//! per backend. [`embedded`] reads the store (every queue's messages, seen
//! without receiving them, with the failure reason kept beside each);
//! [`aws`] reads SQS (counts from GetQueueAttributes; messages only of
//! dead-letter queues, since SQS can show a message only by receiving it,
//! and a receive counts toward a polled queue's `maxReceiveCount`).

pub mod aws;
pub mod embedded;

use std::time::Duration;

use async_trait::async_trait;

/// A queue's counts, and the age of its oldest message where the backend knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueView {
    pub name: String,
    /// Ready to receive (SQS ApproximateNumberOfMessages).
    pub visible: u64,
    /// Received and hidden (ApproximateNumberOfMessagesNotVisible).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (ApproximateNumberOfMessagesDelayed).
    pub delayed: u64,
    pub oldest: Option<Duration>,
}

impl QueueView {
    /// Every message the queue holds, whatever its state.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// A message as a queue page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownMessage {
    pub message_id: String,
    pub body: String,
    pub sent_at_ms: i64,
    /// Deliveries so far (on SQS, the look that showed it counts as one).
    pub receive_count: u32,
    pub in_flight: bool,
    /// The queue it came from, for a dead letter that can be redriven.
    pub source_queue: Option<String>,
    /// Why it last failed, where the backend keeps that.
    pub last_failure: Option<String>,
}

impl ShownMessage {
    /// What every backend knows of a message; each adds what else it keeps.
    pub fn new(message_id: String, body: String, sent_at_ms: i64, receive_count: u32) -> Self {
        ShownMessage {
            message_id,
            body,
            sent_at_ms,
            receive_count,
            in_flight: false,
            source_queue: None,
            last_failure: None,
        }
    }
}

/// What a backend's queues let the console do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminCapabilities {
    /// Failure reasons are kept beside messages (SQS keeps none: the consumer's log has them).
    pub failure_reasons: bool,
    /// The age of each queue's oldest message is known.
    pub oldest_age: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no queue named {0:?}")]
    NoSuchQueue(String),
    /// The backend cannot show this queue's messages; says why.
    #[error("{0}")]
    NotShown(&'static str),
    #[error(transparent)]
    Queue(#[from] switchyard_shared::ports::QueueError),
}

/// The console's queue port.
#[async_trait]
pub trait QueueAdmin: Send + Sync {
    fn capabilities(&self) -> AdminCapabilities;

    /// Every queue and DLQ of the topology, by name.
    async fn queues(&self) -> Result<Vec<QueueView>, AdminError>;

    /// One queue's counts.
    async fn queue(&self, name: &str) -> Result<QueueView, AdminError>;

    /// Up to `limit` of a queue's messages, oldest first where the backend knows the order.
    async fn messages(&self, queue: &str, limit: usize) -> Result<Vec<ShownMessage>, AdminError>;

    /// Moves one dead letter back to the queue it came from; that queue's
    /// name, or None when the message is gone (or came from no queue).
    async fn redrive_message(
        &self,
        dlq: &str,
        message_id: &str,
    ) -> Result<Option<String>, AdminError>;

    /// Deletes one message; whether it was there.
    async fn delete_message(&self, queue: &str, message_id: &str) -> Result<bool, AdminError>;

    /// Moves every message of a DLQ back to the queue each came from; how many moved.
    async fn redrive_all(&self, dlq: &str) -> Result<usize, AdminError>;
}
