//! Queues with SQS semantics: visibility timeout, receive count, redrive to a
//! DLQ after `maxReceiveCount`, FIFO message groups with deduplication.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::events::SnsAttribute;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: BTreeMap<String, SnsAttribute>,
    /// FIFO only: messages of one group are delivered in order, one batch at a time.
    pub group_id: Option<String>,
    /// FIFO only: a second send with the same id within 5 minutes is dropped.
    pub dedup_id: Option<String>,
    pub delay: Duration,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage {
            body: body.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, SnsAttribute>,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub group_id: Option<String>,
    pub sent_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no queue named {0:?}")]
    NoSuchQueue(String),
    #[error("receipt handle is stale or unknown: {0}")]
    StaleReceipt(String),
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("queue backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Queue: Send + Sync {
    fn name(&self) -> &str;

    /// Sends messages; returns the message ids (a FIFO duplicate returns the first id).
    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError>;

    /// Receives up to `max` messages, hiding them for `visibility`. Waits up
    /// to `wait` for the first one (long polling). Messages past the queue's
    /// `maxReceiveCount` are moved to its DLQ instead of being returned.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes handled messages.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<(), QueueError>;

    /// Makes a received message visible again after `visibility` (0 = now),
    /// keeping `reason` as the last failure (shown beside it if it reaches the DLQ).
    async fn release(
        &self,
        receipt_handle: &str,
        visibility: Duration,
        reason: Option<&str>,
    ) -> Result<(), QueueError>;

    /// Extends (or shortens) a received message's visibility.
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;
}
