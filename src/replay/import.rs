//! Making event logs from what is already there: a dead-letter queue of an
//! embedded data dir, or a JSON export of EventBridge events, SNS
//! notifications or SQS messages; and recording what an API publishes.
//!
//! Exports may be a JSON array, one JSON value per line, or a single value.
//! - EventBridge: events as targets receive them (`detail-type`, `detail`,
//!   ...). Switchyard's own envelope fields ride in `detail.switchyard`
//!   on AWS; they are put back. Events published by others get the current
//!   schema version of their type and start their own correlation.
//! - SNS: notifications (`"Type": "Notification"`, `Message`, `TopicArn`,
//!   `MessageAttributes`).
//! - SQS: `aws sqs receive-message` output (`{"Messages": [...]}`), whose
//!   bodies are envelopes (raw SNS delivery), EventBridge events or SNS
//!   notifications.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use router_rules::Topology;
use serde_json::{json, Map, Value};
use switchyard_shared::events::{schema_version_of, SnsAttribute};
use switchyard_shared::ports::{
    BlobStore, Destination, EventPublisher, PublishError, PublishReport,
};
use switchyard_shared::{BlobKey, Envelope};

use super::log::{attribute_from, Entry, EventLog, LogWriter, LoggedBlob, LoggedEvent};
use crate::embedded::EmbeddedSystem;

/// The key under `detail` that carries the envelope fields on EventBridge.
const RESERVED_DETAIL_KEY: &str = "switchyard";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Decide from the first item.
    Auto,
    EventBridge,
    Sns,
    Sqs,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ExportFormat::Auto),
            "eventbridge" => Ok(ExportFormat::EventBridge),
            "sns" => Ok(ExportFormat::Sns),
            "sqs" => Ok(ExportFormat::Sqs),
            other => Err(format!(
                "export format {other:?} (expected auto, eventbridge, sns or sqs)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the export is not JSON (nor one JSON value per line): {0}")]
    NotJson(String),
    #[error("the export holds no items")]
    Empty,
    #[error(
        "cannot tell the export's format from its first item; pass --format eventbridge|sns|sqs"
    )]
    Unknown,
    #[error("item {index}: {message}")]
    Item { index: usize, message: String },
}

/// The items of an export: an array, JSON lines, or one value.
fn items(text: &str) -> Result<Vec<Value>, ImportError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(one) => Ok(vec![one]),
        Err(whole) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| ImportError::NotJson(format!("{whole}; line {}: {e}", i + 1)))
            })
            .collect(),
    }
}

fn detect(first: &Value) -> Option<ExportFormat> {
    if first.get("Messages").is_some() || first.get("Body").is_some() {
        Some(ExportFormat::Sqs)
    } else if first.get("Type").and_then(Value::as_str) == Some("Notification") {
        Some(ExportFormat::Sns)
    } else if first.get("detail-type").is_some() {
        Some(ExportFormat::EventBridge)
    } else {
        None
    }
}

/// An envelope from an EventBridge event, with Switchyard's fields put back.
fn envelope_from_eventbridge(mut event: Map<String, Value>) -> Result<Envelope, String> {
    if let Some(Value::Object(reserved)) = event
        .get_mut("detail")
        .and_then(Value::as_object_mut)
        .and_then(|d| d.remove(RESERVED_DETAIL_KEY))
    {
        event.extend(reserved);
    }
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or("no `detail-type`")?
        .to_owned();
    if !event.contains_key("schema-version") {
        let version = schema_version_of(&detail_type)
            .ok_or_else(|| format!("detail-type {detail_type:?} is not a Switchyard event"))?;
        event.insert("schema-version".into(), json!(version));
    }
    if !event.contains_key("correlation-id") {
        let id = event.get("id").cloned().ok_or("no `id`")?;
        event.insert("correlation-id".into(), id);
    }
    serde_json::from_value(Value::Object(event)).map_err(|e| format!("not an event: {e}"))
}

/// An envelope from a message body: an envelope, an EventBridge event, or an SNS notification.
fn envelope_from_body(body: &str) -> Result<(Envelope, Option<(String, Value)>), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("body is not a JSON object".into());
    };
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        let (e, _, topic, attrs) = from_sns(&Value::Object(obj))?;
        return Ok((e, Some((topic, attrs))));
    }
    if obj.contains_key("schema-version") {
        return Envelope::from_json(body)
            .map(|e| (e, None))
            .map_err(|e| e.to_string());
    }
    envelope_from_eventbridge(obj).map(|e| (e, None))
}

/// An SNS notification: the envelope, its message id, the topic name and the raw attributes.
fn from_sns(n: &Value) -> Result<(Envelope, String, String, Value), String> {
    let message = n["Message"].as_str().ok_or("no `Message` text")?;
    let envelope = Envelope::from_json(message).map_err(|e| format!("Message: {e}"))?;
    let topic = n["TopicArn"]
        .as_str()
        .and_then(|arn| arn.rsplit(':').next())
        .ok_or("no `TopicArn`")?
        .to_owned();
    let id = n["MessageId"].as_str().unwrap_or_default().to_owned();
    Ok((envelope, id, topic, n["MessageAttributes"].clone()))
}

/// SNS `{"k": {"Type", "Value"}}` or SQS `{"k": {"DataType", "StringValue"}}` attributes.
fn attributes(raw: &Value) -> Result<BTreeMap<String, SnsAttribute>, String> {
    let Some(map) = raw.as_object() else {
        return Ok(BTreeMap::new());
    };
    map.iter()
        .map(|(k, v)| {
            let kind = v["Type"].as_str().or(v["DataType"].as_str());
            let value = v["Value"].as_str().or(v["StringValue"].as_str());
            match (kind, value) {
                (Some(kind), Some(value)) => attribute_from(kind, value)
                    .map(|a| (k.clone(), a))
                    .map_err(|e| format!("attribute {k}: {e}")),
                _ => Err(format!(
                    "attribute {k}: expected Type/Value (SNS) or DataType/StringValue (SQS)"
                )),
            }
        })
        .collect()
}

/// A logged event: on `topic` with these attributes when known, else where the topology routes it.
fn logged(
    topology: &Topology,
    envelope: Envelope,
    topic: Option<(String, BTreeMap<String, SnsAttribute>)>,
) -> Result<LoggedEvent, String> {
    match topic {
        Some((name, attributes)) => Ok(LoggedEvent {
            destination: Destination::Topic(name),
            attributes,
            event: envelope,
        }),
        None => LoggedEvent::routed(topology, envelope).map_err(|e| e.to_string()),
    }
}

/// Makes a log from an EventBridge, SNS or SQS JSON export.
pub fn from_export(
    text: &str,
    format: ExportFormat,
    topology: &Topology,
) -> Result<EventLog, ImportError> {
    let items = items(text)?;
    let first = items.first().ok_or(ImportError::Empty)?;
    let format = match format {
        ExportFormat::Auto => detect(first).ok_or(ImportError::Unknown)?,
        f => f,
    };
    // SQS receive-message output nests its messages.
    let items: Vec<Value> = if format == ExportFormat::Sqs {
        items
            .into_iter()
            .flat_map(|i| match i.get("Messages") {
                Some(Value::Array(m)) => m.clone(),
                _ => vec![i],
            })
            .collect()
    } else {
        items
    };
    let mut log = EventLog::default();
    for (index, item) in items.iter().enumerate() {
        let event = (|| -> Result<LoggedEvent, String> {
            match format {
                ExportFormat::EventBridge => {
                    let Value::Object(obj) = item else {
                        return Err("not a JSON object".into());
                    };
                    logged(topology, envelope_from_eventbridge(obj.clone())?, None)
                }
                ExportFormat::Sns => {
                    let (e, _, topic, attrs) = from_sns(item)?;
                    logged(topology, e, Some((topic, attributes(&attrs)?)))
                }
                _ => {
                    let body = item["Body"].as_str().ok_or("no `Body` text")?;
                    let (e, via_sns) = envelope_from_body(body)?;
                    let topic = match via_sns {
                        Some((topic, attrs)) => Some((topic, attributes(&attrs)?)),
                        // Raw SNS delivery: the attributes came along as message attributes.
                        None => match topology.destination_of(&e.detail_type) {
                            Some(Destination::Topic(t)) => {
                                let attrs = attributes(&item["MessageAttributes"])?;
                                Some((t, attrs)).filter(|(_, a)| !a.is_empty())
                            }
                            _ => None,
                        },
                    };
                    logged(topology, e, topic)
                }
            }
        })()
        .map_err(|message| ImportError::Item { index, message })?;
        log.events.push(event);
    }
    Ok(log)
}

/// Makes a log from a dead-letter queue of an embedded system: its messages
/// as events, with the originals of image uploads when the blob store has
/// them. Messages that are not events (stream on-failure records) are
/// skipped and listed with the reason.
pub async fn from_dlq(
    system: &EmbeddedSystem,
    queue: &str,
) -> anyhow::Result<(EventLog, Vec<String>)> {
    let mut log = EventLog::default();
    let mut skipped = Vec::new();
    for m in system.store.list_messages(queue, usize::MAX)? {
        let envelope = match Envelope::from_json(&m.body) {
            Ok(e) => e,
            Err(e) => {
                skipped.push(format!("message {}: not an event ({e})", m.message_id));
                continue;
            }
        };
        let event = LoggedEvent::routed(&system.topology, envelope)?;
        if let Some(blob) = original_of(&*system.blobs, &event.event).await? {
            if !log.blobs.iter().any(|b| b.key == blob.key) {
                log.blobs.push(blob);
            }
        }
        log.events.push(event);
    }
    Ok((log, skipped))
}

/// The original an `ImageUploaded` refers to, if the blob store has it.
async fn original_of(blobs: &dyn BlobStore, e: &Envelope) -> anyhow::Result<Option<LoggedBlob>> {
    if e.detail_type != "ImageUploaded" {
        return Ok(None);
    }
    let Some(key) = e.detail["key"].as_str().and_then(|k| BlobKey::new(k).ok()) else {
        return Ok(None);
    };
    match blobs.get(&key).await {
        Ok(b) => Ok(Some(LoggedBlob {
            key: key.to_string(),
            content_type: b.content_type,
            bytes: b.bytes,
        })),
        Err(switchyard_shared::ports::BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A publisher that writes every event it publishes to a log (after it was
/// published), preceded by the original of each image upload, so the log
/// replays on a fresh data dir. `switchyard up --record` puts it in front
/// of the API.
pub struct Recorder {
    inner: Arc<dyn EventPublisher>,
    blobs: Arc<dyn BlobStore>,
    topology: Arc<Topology>,
    log: LogWriter,
}

impl Recorder {
    pub fn new(
        inner: Arc<dyn EventPublisher>,
        blobs: Arc<dyn BlobStore>,
        topology: Arc<Topology>,
        log: LogWriter,
    ) -> Self {
        Recorder {
            inner,
            blobs,
            topology,
            log,
        }
    }
}

#[async_trait]
impl EventPublisher for Recorder {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        let report = self.inner.publish(events).await?;
        let mut entries = Vec::new();
        for e in events.iter().filter(|e| report.published.contains(&e.id)) {
            match original_of(&*self.blobs, e).await {
                Ok(Some(blob)) => entries.push(Entry::Blob(blob)),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(event_id = %e.id, error = %err, "recording: original not readable")
                }
            }
            match LoggedEvent::routed(&self.topology, e.clone()) {
                Ok(l) => entries.push(Entry::Event(Box::new(l))),
                Err(err) => tracing::warn!(event_id = %e.id, error = %err, "recording: not logged"),
            }
        }
        if let Err(err) = self.log.write(&entries) {
            // The events are published; losing the record must not fail the caller.
            tracing::error!(error = %err, "recording to the event log failed");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::events::{EventType, ImageUploaded, OrderPaid};

    fn paid() -> Envelope {
        OrderPaid {
            order_id: "o-1".into(),
            payment_id: "p".into(),
            amount_cents: 5,
        }
        .into_envelope()
    }

    fn upload() -> Envelope {
        ImageUploaded {
            image_id: "i".into(),
            order_id: "o-1".into(),
            key: "uploads/o-1/i".into(),
            content_type: "image/png".into(),
            size_bytes: 3,
        }
        .into_envelope()
    }

    /// The EventBridge form of an envelope: Switchyard's fields under `detail.switchyard`.
    fn on_eventbridge(e: &Envelope) -> Value {
        let mut v = serde_json::to_value(e).unwrap();
        let obj = v.as_object_mut().unwrap();
        let mut reserved = Map::new();
        for k in ["schema-version", "correlation-id", "causation-id"] {
            if let Some(x) = obj.remove(k) {
                reserved.insert(k.into(), x);
            }
        }
        reserved.insert("time".into(), obj["time"].clone());
        obj["time"] = json!("2025-01-01T09:00:00Z");
        obj["detail"]
            .as_object_mut()
            .unwrap()
            .insert(RESERVED_DETAIL_KEY.into(), Value::Object(reserved));
        v
    }

    fn notification(e: &Envelope) -> Value {
        json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:images",
            "Message": e.to_json(),
            "MessageAttributes": {
                "event_type": {"Type": "String", "Value": e.detail_type},
                "size_bytes": {"Type": "Number", "Value": "3"}
            }
        })
    }

    #[test]
    fn eventbridge_exports_get_their_envelope_back() {
        let t = Topology::builtin();
        let e = paid();
        let export = json!([on_eventbridge(&e)]).to_string();
        let log = from_export(&export, ExportFormat::Auto, &t).unwrap();
        assert_eq!(log.events.len(), 1);
        assert_eq!(
            log.events[0].event, e,
            "fields restored from detail.switchyard"
        );
        assert_eq!(log.events[0].destination, Destination::Bus("orders".into()));

        // An event someone else put on the bus: current version, own correlation.
        let foreign = json!({"version":"0","id":"0190a0a0-0000-7000-8000-000000000000","detail-type":"OrderPaid",
            "source":"switchyard.orders","account":"1","time":"2025-01-01T09:00:00Z","region":"us-east-1",
            "resources":[],"detail":{"order_id":"o","payment_id":"p","amount_cents":1}});
        let log = from_export(&format!("{foreign}\n"), ExportFormat::EventBridge, &t).unwrap();
        let got = &log.events[0].event;
        assert_eq!((got.schema_version, got.correlation_id), (1, got.id));
    }

    #[test]
    fn sns_and_sqs_exports_keep_topic_and_attributes() {
        let t = Topology::builtin();
        let e = upload();
        let sns = from_export(&notification(&e).to_string(), ExportFormat::Auto, &t).unwrap();
        let logged = &sns.events[0];
        assert_eq!(logged.destination, Destination::Topic("images".into()));
        assert_eq!(
            logged.attributes["size_bytes"],
            SnsAttribute::Number("3".into())
        );
        assert_eq!(logged.event, e);

        // receive-message output: a raw SNS delivery, an EventBridge event, and a wrapped notification.
        let sqs = json!({"Messages": [
            {"MessageId": "1", "Body": e.to_json(), "MessageAttributes": {
                "event_type": {"DataType": "String", "StringValue": "ImageUploaded"}}},
            {"MessageId": "2", "Body": on_eventbridge(&paid()).to_string()},
            {"MessageId": "3", "Body": notification(&e).to_string()},
        ]});
        let log = from_export(&sqs.to_string(), ExportFormat::Auto, &t).unwrap();
        assert_eq!(log.events.len(), 3);
        assert_eq!(
            log.events[0].attributes["event_type"],
            SnsAttribute::String("ImageUploaded".into())
        );
        assert_eq!(log.events[1].event.detail_type, "OrderPaid");
        assert_eq!(
            log.events[2].destination,
            Destination::Topic("images".into())
        );
    }

    #[test]
    fn bad_exports_name_the_item() {
        let t = Topology::builtin();
        let cases = [
            ("{not json", "not JSON"),
            ("[]", "no items"),
            (r#"[{"hello": 1}]"#, "--format"),
            (
                r#"[{"detail-type":"Nope","id":"0190a0a0-0000-7000-8000-000000000000","detail":{}}]"#,
                "item 0: detail-type \"Nope\" is not a Switchyard event",
            ),
            (
                r#"{"Messages":[{"Body":"{}"}]}"#,
                "item 0: no `detail-type`",
            ),
            (
                r#"[{"Type":"Notification","Message":"{}"}]"#,
                "item 0: Message: malformed envelope",
            ),
        ];
        for (input, expected) in cases {
            let err = from_export(input, ExportFormat::Auto, &t)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
