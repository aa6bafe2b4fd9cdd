//! The console's queue port on SQS: the queues `switchyard provision`
//! created for the topology.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use router_rules::Topology;
use switchyard_shared::aws::SqsQueue;

use super::{AdminCapabilities, AdminError, QueueAdmin, QueueView, ShownMessage};
use crate::aws::provision::AwsResources;

const NOT_SHOWN: &str = "SQS shows a message only by receiving it, and a receive counts \
     toward this queue's maxReceiveCount while its consumer polls it: the console lists the \
     messages of dead-letter queues only (the counts above are SQS's)";

pub struct SqsQueues {
    /// Every queue of the topology, by queue name.
    queues: BTreeMap<String, Arc<SqsQueue>>,
    /// Dead-letter queue name -> the queue whose dead letters it holds
    /// (None: a stream consumer's on-failure queue, which holds failure
    /// records rather than redrivable messages).
    dead_letters: BTreeMap<String, Option<String>>,
}

impl SqsQueues {
    pub fn new(topology: &Topology, resources: &AwsResources) -> Self {
        let mut queues = BTreeMap::new();
        let mut dead_letters = BTreeMap::new();
        for c in &topology.consumers {
            queues.insert(c.queue_name(), resources.queues[&c.name].clone());
            queues.insert(c.dlq_name(), resources.dlqs[&c.name].clone());
            dead_letters.insert(c.dlq_name(), Some(c.queue_name()));
        }
        for s in &topology.stream_consumers {
            queues.insert(
                s.on_failure_queue(),
                resources.stream_failures[&s.name].clone(),
            );
            dead_letters.insert(s.on_failure_queue(), None);
        }
        SqsQueues {
            queues,
            dead_letters,
        }
    }

    fn queue_of(&self, name: &str) -> Result<&SqsQueue, AdminError> {
        self.queues
            .get(name)
            .map(|q| &**q)
            .ok_or_else(|| AdminError::NoSuchQueue(name.to_owned()))
    }

    /// The DLQ and the queue its messages go back to.
    fn redrive_pair(&self, dlq: &str) -> Result<Option<(&SqsQueue, &str)>, AdminError> {
        let from = self.queue_of(dlq)?;
        Ok(match self.dead_letters.get(dlq) {
            Some(Some(source)) => Some((from, source.as_str())),
            _ => None,
        })
    }
}

#[async_trait]
impl QueueAdmin for SqsQueues {
    fn capabilities(&self) -> AdminCapabilities {
        AdminCapabilities {
            failure_reasons: switchyard_shared::aws::CAPABILITIES.dlq_reasons,
            oldest_age: false,
        }
    }

    async fn queues(&self) -> Result<Vec<QueueView>, AdminError> {
        let mut out = Vec::with_capacity(self.queues.len());
        for name in self.queues.keys() {
            out.push(self.queue(name).await?);
        }
        Ok(out)
    }

    async fn queue(&self, name: &str) -> Result<QueueView, AdminError> {
        let c = self.queue_of(name)?.counts().await?;
        Ok(QueueView {
            name: name.to_owned(),
            visible: c.visible,
            in_flight: c.in_flight,
            delayed: c.delayed,
            oldest: None,
        })
    }

    async fn messages(&self, queue: &str, limit: usize) -> Result<Vec<ShownMessage>, AdminError> {
        let q = self.queue_of(queue)?;
        let Some(source) = self.dead_letters.get(queue) else {
            return Err(AdminError::NotShown(NOT_SHOWN));
        };
        let mut shown: Vec<ShownMessage> = q
            .look(limit)
            .await?
            .into_iter()
            .map(|m| ShownMessage {
                source_queue: source.clone(),
                ..ShownMessage::new(m.message_id, m.body, m.sent_at_ms, m.receive_count)
            })
            .collect();
        shown.sort_by_key(|m| m.sent_at_ms);
        Ok(shown)
    }

    async fn redrive_message(
        &self,
        dlq: &str,
        message_id: &str,
    ) -> Result<Option<String>, AdminError> {
        let Some((from, source)) = self.redrive_pair(dlq)? else {
            return Ok(None);
        };
        let moved = from
            .move_to(self.queue_of(source)?, 1, |id| id == message_id)
            .await?;
        Ok((moved == 1).then(|| source.to_owned()))
    }

    async fn delete_message(&self, queue: &str, message_id: &str) -> Result<bool, AdminError> {
        if !self.dead_letters.contains_key(queue) {
            self.queue_of(queue)?;
            return Err(AdminError::NotShown(NOT_SHOWN));
        }
        Ok(self.queue_of(queue)?.delete_by_id(message_id).await?)
    }

    async fn redrive_all(&self, dlq: &str) -> Result<usize, AdminError> {
        let Some((from, source)) = self.redrive_pair(dlq)? else {
            return Ok(0);
        };
        Ok(from
            .move_to(self.queue_of(source)?, usize::MAX, |_| true)
            .await?)
    }
}
