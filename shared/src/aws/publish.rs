//! Publishing to EventBridge (`PutEvents`) and SNS (`Publish`/`PublishBatch`).
//!
//! Every event is validated before anything is sent. Requests are chunked by
//! the services' limits (10 entries and 256 KB per request), entries that
//! fail retryably are retried with jittered backoff, and the returned
//! [`PublishReport`] names every event that did not go out, with its reason.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::retry::{deliver, Entry, Outcome, RetryPolicy};
use super::{describe, is_transient, transport, AwsClients};
use crate::envelope::{Envelope, MAX_EVENT_BYTES};
use crate::events::{sns_attributes, DomainEvent};
use crate::ports::{Destination, EventPublisher, PublishError, PublishReport};

/// Entries per `PutEvents` / `PublishBatch` request.
const MAX_BATCH_ENTRIES: usize = 10;
/// Bytes per `PutEvents` / `PublishBatch` request (all entries together).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// EventBridge error codes that another try cannot fix.
const PERMANENT_EVENTBRIDGE_CODES: &[&str] = &[
    "MalformedDetail",
    "InvalidArgument",
    "AccessDeniedException",
    "NotAuthorizedForSourceException",
    "NotAuthorizedForDetailTypeException",
    "ValidationException",
];

/// An SNS topic as a publisher addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTarget {
    pub arn: String,
    /// FIFO topics need a message group id and a deduplication id.
    pub fifo: bool,
}

/// Where each detail-type goes, and what each bus and topic name means on AWS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishTargets {
    /// detail-type -> destination (from the topology's `routes`).
    pub routes: BTreeMap<String, Destination>,
    /// bus name -> the `EventBusName` to send to (a name or an ARN).
    pub buses: BTreeMap<String, String>,
    /// topic name -> its ARN.
    pub topics: BTreeMap<String, TopicTarget>,
}

impl PublishTargets {
    /// Reads bus and topic addresses from the environment, as the Lambda
    /// binaries get them: `SWITCHYARD_BUS_<NAME>` and `SWITCHYARD_TOPIC_<NAME>`
    /// (NAME upper-cased, `-` and `.` as `_`). A function that never
    /// publishes needs none; publishing to a destination whose variable is
    /// unset fails with an error naming the variable.
    pub fn from_env(routes: BTreeMap<String, Destination>) -> Self {
        let mut targets = PublishTargets {
            routes,
            ..Default::default()
        };
        for destination in targets.routes.values() {
            match destination {
                Destination::Bus(name) => {
                    if let Ok(value) = std::env::var(env_name("SWITCHYARD_BUS_", name)) {
                        targets.buses.insert(name.clone(), value);
                    }
                }
                Destination::Topic(name) => {
                    if let Ok(arn) = std::env::var(env_name("SWITCHYARD_TOPIC_", name)) {
                        let fifo = arn.ends_with(".fifo");
                        targets
                            .topics
                            .insert(name.clone(), TopicTarget { arn, fifo });
                    }
                }
            }
        }
        targets
    }
}

/// `SWITCHYARD_BUS_` + `orders` -> `SWITCHYARD_BUS_ORDERS`.
pub fn env_name(prefix: &str, name: &str) -> String {
    let suffix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{suffix}")
}

/// The [`EventPublisher`] on EventBridge and SNS.
#[derive(Debug, Clone)]
pub struct AwsPublisher {
    eventbridge: aws_sdk_eventbridge::Client,
    sns: aws_sdk_sns::Client,
    targets: PublishTargets,
    policy: RetryPolicy,
}

impl AwsPublisher {
    pub fn new(clients: &AwsClients, targets: PublishTargets) -> Self {
        AwsPublisher::from_clients(clients.eventbridge.clone(), clients.sns.clone(), targets)
    }

    /// A publisher over these two clients (a Lambda function builds only the
    /// clients it calls).
    pub fn from_clients(
        eventbridge: aws_sdk_eventbridge::Client,
        sns: aws_sdk_sns::Client,
        targets: PublishTargets,
    ) -> Self {
        AwsPublisher {
            eventbridge,
            sns,
            targets,
            policy: RetryPolicy::default(),
        }
    }

    pub fn targets(&self) -> &PublishTargets {
        &self.targets
    }

    async fn put_events(
        &self,
        bus: &str,
        events: Vec<&Envelope>,
    ) -> Result<PublishReport, PublishError> {
        let mut entries = Vec::with_capacity(events.len());
        for e in events {
            let detail = transport::eventbridge_detail(e)?;
            // EventBridge counts Time as 14 bytes, plus Source, DetailType, Detail and Resources.
            let size = 14
                + e.source.len()
                + e.detail_type.len()
                + detail.len()
                + e.resources.iter().map(String::len).sum::<usize>();
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(&e.source)
                .detail_type(&e.detail_type)
                .detail(detail)
                .time(aws_smithy_types_time(e))
                .set_resources(Some(e.resources.clone()))
                .build();
            entries.push(Entry {
                event_id: e.id,
                size,
                payload: entry,
            });
        }
        let client = &self.eventbridge;
        Ok(deliver(
            entries,
            MAX_BATCH_ENTRIES,
            MAX_BATCH_BYTES,
            self.policy,
            |batch| async move {
                let n = batch.len();
                let out = client
                    .put_events()
                    .set_entries(Some(batch))
                    .send()
                    .await
                    .map_err(|e| (describe(&e), is_transient(&e)))?;
                if out.failed_entry_count() == 0 {
                    return Ok(vec![Outcome::Sent; n]);
                }
                // Result entries are positional: the i-th answers the i-th request entry.
                Ok(out
                    .entries()
                    .iter()
                    .map(|r| match r.error_code() {
                        None => Outcome::Sent,
                        Some(code) => {
                            let reason =
                                format!("{code}: {}", r.error_message().unwrap_or_default());
                            if PERMANENT_EVENTBRIDGE_CODES.contains(&code) {
                                Outcome::Fatal(reason)
                            } else {
                                Outcome::Retry(reason)
                            }
                        }
                    })
                    .collect())
            },
        )
        .await)
    }

    async fn publish_sns(
        &self,
        topic: &TopicTarget,
        events: Vec<&Envelope>,
    ) -> Result<PublishReport, PublishError> {
        let mut entries = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let body = e.to_json();
            let attrs = sns_attributes(e);
            let size = body.len()
                + attrs
                    .iter()
                    .map(|(k, v)| k.len() + v.data_type().len() + v.string_value().len())
                    .sum::<usize>();
            let attributes: HashMap<String, MessageAttributeValue> = attrs
                .iter()
                .map(|(name, a)| {
                    let value = MessageAttributeValue::builder()
                        .data_type(a.data_type())
                        .string_value(a.string_value())
                        .build()
                        .map_err(|err| PublishError::Backend(format!("attribute {name}: {err}")))?;
                    Ok((name.clone(), value))
                })
                .collect::<Result<_, PublishError>>()?;
            let (group, dedup) = fifo_ids(topic, e);
            let entry = PublishBatchRequestEntry::builder()
                // Batch ids only need to be unique within one request.
                .id(format!("e{i}"))
                .message(body)
                .set_message_attributes(Some(attributes))
                .set_message_group_id(group)
                .set_message_deduplication_id(dedup)
                .build()
                .map_err(|err| PublishError::Backend(err.to_string()))?;
            entries.push(Entry {
                event_id: e.id,
                size,
                payload: entry,
            });
        }
        let client = &self.sns;
        let arn = topic.arn.as_str();
        if let [one] = entries.as_slice() {
            // One event: a plain Publish is one call with less to go wrong.
            let e = one.payload.clone();
            let policy = self.policy;
            return Ok(deliver(entries, 1, MAX_EVENT_BYTES, policy, |_| {
                let e = e.clone();
                async move {
                    client
                        .publish()
                        .topic_arn(arn)
                        .message(e.message())
                        .set_message_attributes(e.message_attributes().cloned())
                        .set_message_group_id(e.message_group_id().map(str::to_owned))
                        .set_message_deduplication_id(
                            e.message_deduplication_id().map(str::to_owned),
                        )
                        .send()
                        .await
                        .map(|_| vec![Outcome::Sent])
                        .map_err(|err| (describe(&err), is_transient(&err)))
                }
            })
            .await);
        }
        Ok(deliver(
            entries,
            MAX_BATCH_ENTRIES,
            MAX_BATCH_BYTES,
            self.policy,
            |batch| async move {
                let ids: Vec<String> = batch.iter().map(|b| b.id().to_owned()).collect();
                let out = client
                    .publish_batch()
                    .topic_arn(arn)
                    .set_publish_batch_request_entries(Some(batch))
                    .send()
                    .await
                    .map_err(|e| (describe(&e), is_transient(&e)))?;
                let failed: HashMap<&str, _> = out.failed().iter().map(|f| (f.id(), f)).collect();
                Ok(ids
                    .iter()
                    .map(|id| match failed.get(id.as_str()) {
                        None => Outcome::Sent,
                        Some(f) => {
                            let reason =
                                format!("{}: {}", f.code(), f.message().unwrap_or_default());
                            // SNS marks the caller's own mistakes as sender faults: no retry fixes them.
                            if f.sender_fault() {
                                Outcome::Fatal(reason)
                            } else {
                                Outcome::Retry(reason)
                            }
                        }
                    })
                    .collect())
            },
        )
        .await)
    }
}

/// FIFO topics: the order id orders events of one order; the event id dedups.
fn fifo_ids(topic: &TopicTarget, e: &Envelope) -> (Option<String>, Option<String>) {
    if !topic.fifo {
        return (None, None);
    }
    let group = e
        .detail
        .get("order_id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| e.detail_type.clone());
    (Some(group), Some(e.id.to_string()))
}

fn aws_smithy_types_time(e: &Envelope) -> aws_sdk_eventbridge::primitives::DateTime {
    aws_sdk_eventbridge::primitives::DateTime::from_millis(e.time.timestamp_millis())
}

#[async_trait]
impl EventPublisher for AwsPublisher {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        // Validate all, route all, then send: a bad event stops the call before anything leaves.
        let mut by_destination: BTreeMap<&Destination, Vec<&Envelope>> = BTreeMap::new();
        for e in events {
            DomainEvent::validate(e)?;
            let destination = self
                .targets
                .routes
                .get(&e.detail_type)
                .ok_or_else(|| PublishError::NoRoute(e.detail_type.clone()))?;
            match destination {
                Destination::Bus(name) if !self.targets.buses.contains_key(name) => {
                    let var = env_name("SWITCHYARD_BUS_", name);
                    return Err(PublishError::Backend(format!(
                        "bus {name:?} has no address configured (set {var})"
                    )));
                }
                Destination::Topic(name) if !self.targets.topics.contains_key(name) => {
                    let var = env_name("SWITCHYARD_TOPIC_", name);
                    return Err(PublishError::Backend(format!(
                        "topic {name:?} has no ARN configured (set {var})"
                    )));
                }
                Destination::Bus(_) => transport::eventbridge_detail(e).map(drop)?,
                Destination::Topic(_) => {}
            }
            by_destination.entry(destination).or_default().push(e);
        }
        let mut report = PublishReport::default();
        for (destination, batch) in by_destination {
            let part = match destination {
                Destination::Bus(name) => self.put_events(&self.targets.buses[name], batch).await?,
                Destination::Topic(name) => {
                    self.publish_sns(&self.targets.topics[name], batch).await?
                }
            };
            report.published.extend(part.published);
            report.failed.extend(part.failed);
        }
        for f in &report.failed {
            tracing::error!(event_id = %f.event_id, reason = %f.reason, "event not published");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_upper_snake() {
        assert_eq!(
            env_name("SWITCHYARD_TOPIC_", "images.fifo"),
            "SWITCHYARD_TOPIC_IMAGES_FIFO"
        );
        assert_eq!(
            env_name("SWITCHYARD_BUS_", "orders-v2"),
            "SWITCHYARD_BUS_ORDERS_V2"
        );
    }

    #[test]
    fn fifo_ids_use_order_and_event_id() {
        let e = Envelope::new("s", "OrderPaid", 1, serde_json::json!({"order_id": "o-7"}));
        let fifo = TopicTarget {
            arn: "arn:aws:sns:us-east-1:1:t.fifo".into(),
            fifo: true,
        };
        assert_eq!(
            fifo_ids(&fifo, &e),
            (Some("o-7".into()), Some(e.id.to_string()))
        );
        assert_eq!(
            fifo_ids(
                &TopicTarget {
                    fifo: false,
                    ..fifo
                },
                &e
            ),
            (None, None)
        );
    }
}
