//! The console's queue port on the embedded store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchyard_shared::embedded::{EmbeddedStore, QueueStats};

use super::{AdminCapabilities, AdminError, QueueAdmin, QueueView, ShownMessage};

pub struct EmbeddedQueues {
    store: Arc<EmbeddedStore>,
}

impl EmbeddedQueues {
    pub fn new(store: Arc<EmbeddedStore>) -> Self {
        EmbeddedQueues { store }
    }

    /// A queue's counts, and the age of its oldest message.
    fn view(&self, s: QueueStats) -> Result<QueueView, AdminError> {
        let now = crate::console::recorder::now_ms();
        let oldest = self
            .store
            .list_messages(&s.name, 1)?
            .first()
            .map(|m| Duration::from_millis(u64::try_from(now - m.sent_at_ms).unwrap_or(0)));
        Ok(QueueView {
            name: s.name,
            visible: s.visible,
            in_flight: s.in_flight,
            delayed: s.delayed,
            oldest,
        })
    }

    fn known(&self, queue: &str) -> Result<(), AdminError> {
        if self.store.queue_stats()?.iter().any(|q| q.name == queue) {
            Ok(())
        } else {
            Err(AdminError::NoSuchQueue(queue.to_owned()))
        }
    }
}

#[async_trait]
impl QueueAdmin for EmbeddedQueues {
    fn capabilities(&self) -> AdminCapabilities {
        AdminCapabilities {
            failure_reasons: true,
            oldest_age: true,
        }
    }

    async fn queues(&self) -> Result<Vec<QueueView>, AdminError> {
        self.store
            .queue_stats()?
            .into_iter()
            .map(|s| self.view(s))
            .collect()
    }

    async fn queue(&self, name: &str) -> Result<QueueView, AdminError> {
        let stats = self
            .store
            .queue_stats()?
            .into_iter()
            .find(|s| s.name == name);
        self.view(stats.ok_or_else(|| AdminError::NoSuchQueue(name.to_owned()))?)
    }

    async fn messages(&self, queue: &str, limit: usize) -> Result<Vec<ShownMessage>, AdminError> {
        self.known(queue)?;
        Ok(self
            .store
            .list_messages(queue, limit)?
            .into_iter()
            .map(|m| ShownMessage {
                in_flight: m.in_flight,
                source_queue: m.source_queue,
                last_failure: m.last_failure,
                ..ShownMessage::new(m.message_id, m.body, m.sent_at_ms, m.receive_count)
            })
            .collect())
    }

    async fn redrive_message(
        &self,
        dlq: &str,
        message_id: &str,
    ) -> Result<Option<String>, AdminError> {
        self.known(dlq)?;
        let source = self
            .store
            .list_messages(dlq, usize::MAX)?
            .into_iter()
            .find(|m| m.message_id == message_id)
            .and_then(|m| m.source_queue);
        let moved = self.store.redrive_message(dlq, message_id)?;
        Ok(source.filter(|_| moved))
    }

    async fn delete_message(&self, queue: &str, message_id: &str) -> Result<bool, AdminError> {
        self.known(queue)?;
        Ok(self.store.delete_message(queue, message_id)?)
    }

    async fn redrive_all(&self, dlq: &str) -> Result<usize, AdminError> {
        self.known(dlq)?;
        Ok(self.store.redrive(dlq, usize::MAX)?)
    }
}
