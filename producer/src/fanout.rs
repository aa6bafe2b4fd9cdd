//! The local fan-out: what SNS and EventBridge do, in-process. An event goes
//! to the bus or topic its detail-type is routed to; every rule or filter
//! policy there that matches sends it to its consumer's queue, exactly as
//! the SQS target / raw-delivery subscription would deliver it on AWS.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use router_rules::topology::Subscription;
use router_rules::{BusMatcher, PatternError, TopicMatcher, Topology};
use switchyard_shared::events::sns_attributes;
use switchyard_shared::ports::{
    Destination, EventPublisher, OutgoingMessage, PublishError, PublishFailure, PublishReport,
    Queue,
};
use switchyard_shared::{DomainEvent, Envelope};

/// Queue names a destination's matcher routes to.
type Targets = Vec<String>;

pub struct LocalFanout {
    topology: Arc<Topology>,
    buses: BTreeMap<String, BusMatcher<String>>,
    topics: BTreeMap<String, TopicMatcher<String>>,
    queues: BTreeMap<String, Arc<dyn Queue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("consumer {consumer}: {source}")]
    Pattern {
        consumer: String,
        source: PatternError,
    },
    #[error("consumer {0}: its queue was not provided")]
    MissingQueue(String),
}

impl LocalFanout {
    /// Compiles every bus's rules and every topic's filter policies once.
    /// `queues` holds each consumer's queue, by queue name.
    pub fn new(
        topology: Arc<Topology>,
        queues: BTreeMap<String, Arc<dyn Queue>>,
    ) -> Result<Self, FanoutError> {
        let mut buses = BTreeMap::new();
        for bus in &topology.buses {
            let dest = Destination::Bus(bus.name.clone());
            let rules: Vec<(String, &serde_json::Value)> = topology
                .subscriptions_on(&dest)
                .filter_map(|(c, s)| match s {
                    Subscription::Bus(b) => Some((c.queue_name(), &b.pattern)),
                    Subscription::Topic(_) => None,
                })
                .collect();
            let matcher = BusMatcher::compile(rules).map_err(|source| FanoutError::Pattern {
                consumer: format!("on bus {}", bus.name),
                source,
            })?;
            buses.insert(bus.name.clone(), matcher);
        }
        let mut topics = BTreeMap::new();
        for topic in &topology.topics {
            let dest = Destination::Topic(topic.name.clone());
            let policies: Vec<_> = topology
                .subscriptions_on(&dest)
                .filter_map(|(c, s)| match s {
                    Subscription::Topic(t) => {
                        Some((c.queue_name(), &t.filter_policy, t.filter_policy_scope))
                    }
                    Subscription::Bus(_) => None,
                })
                .collect();
            let matcher =
                TopicMatcher::compile(policies).map_err(|source| FanoutError::Pattern {
                    consumer: format!("on topic {}", topic.name),
                    source,
                })?;
            topics.insert(topic.name.clone(), matcher);
        }
        for c in &topology.consumers {
            if !queues.contains_key(&c.queue_name()) {
                return Err(FanoutError::MissingQueue(c.name.clone()));
            }
        }
        Ok(LocalFanout {
            topology,
            buses,
            topics,
            queues,
        })
    }

    /// The queues one event is delivered to, with the message for each.
    fn route(
        &self,
        envelope: &Envelope,
        body: &str,
    ) -> Result<(Targets, OutgoingMessage), PublishError> {
        let destination = self
            .topology
            .destination_of(&envelope.detail_type)
            .ok_or_else(|| PublishError::NoRoute(envelope.detail_type.clone()))?;
        let mut message = OutgoingMessage::new(body);
        let targets = match &destination {
            Destination::Bus(name) => self
                .buses
                .get(name)
                .map(|m| m.matches(body))
                .unwrap_or_default(),
            Destination::Topic(name) => {
                // Raw message delivery: the body is the envelope, the attributes ride along.
                message.attributes = sns_attributes(envelope);
                self.topics
                    .get(name)
                    .map(|m| m.matches(&message.attributes, body))
                    .unwrap_or_default()
            }
        };
        Ok((targets, message))
    }
}

#[async_trait]
impl EventPublisher for LocalFanout {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        // Validate everything first: one bad event publishes nothing.
        let bodies: Vec<String> = events.iter().map(Envelope::to_json).collect();
        for (e, body) in events.iter().zip(&bodies) {
            DomainEvent::validate_serialized(e, body)?;
        }
        let mut per_queue: BTreeMap<&str, Vec<(usize, OutgoingMessage)>> = BTreeMap::new();
        for (index, (e, body)) in events.iter().zip(bodies).enumerate() {
            let (targets, message) = self.route(e, &body)?;
            for queue in targets {
                let Some((name, _)) = self.queues.get_key_value(&queue) else {
                    continue;
                };
                let mut m = message.clone();
                if name.ends_with(".fifo") {
                    m.group_id = Some(
                        e.detail["order_id"]
                            .as_str()
                            .unwrap_or("default")
                            .to_owned(),
                    );
                    m.dedup_id = Some(e.id.to_string());
                }
                per_queue.entry(name.as_str()).or_default().push((index, m));
            }
        }
        let mut failed_index = vec![None::<String>; events.len()];
        for (name, messages) in per_queue {
            let (indexes, messages): (Vec<usize>, Vec<OutgoingMessage>) =
                messages.into_iter().unzip();
            if let Err(e) = self.queues[name].send_batch(messages).await {
                for i in indexes {
                    failed_index[i].get_or_insert_with(|| format!("queue {name}: {e}"));
                }
            }
        }
        let mut report = PublishReport::default();
        for (e, failure) in events.iter().zip(failed_index) {
            match failure {
                None => report.published.push(e.id),
                Some(reason) => report.failed.push(PublishFailure {
                    event_id: e.id,
                    reason,
                }),
            }
        }
        Ok(report)
    }
}
