//! The event log: JSON Lines, one entry per line.
//!
//! ```text
//! {"bus":"orders","event":{...envelope...}}
//! {"topic":"images","attributes":{"event_type":{"Type":"String","Value":"ImageUploaded"},...},"event":{...}}
//! {"blob":{"key":"uploads/o-1/i-1","content_type":"image/jpeg","base64":"/9j/4AAQ..."}}
//! ```
//!
//! An event line says where the event was published (a bus, or a topic with
//! the SNS message attributes it carried). A blob line carries an object the
//! events refer to (the original of an `ImageUploaded`), so that a log
//! replays on a fresh data dir; blobs are written before any event is
//! published.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchyard_shared::events::{sns_attributes, SnsAttribute};
use switchyard_shared::ports::Destination;
use switchyard_shared::Envelope;

/// One published event and where it went.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub destination: Destination,
    /// The SNS message attributes (empty for a bus).
    pub attributes: BTreeMap<String, SnsAttribute>,
    pub event: Envelope,
}

impl LoggedEvent {
    /// An event as the topology routes it, with the attributes SNS would carry.
    pub fn routed(topology: &router_rules::Topology, event: Envelope) -> Result<Self, LogError> {
        let destination = topology
            .destination_of(&event.detail_type)
            .ok_or_else(|| LogError::NoRoute(event.detail_type.clone()))?;
        let attributes = match destination {
            Destination::Topic(_) => sns_attributes(&event),
            Destination::Bus(_) => BTreeMap::new(),
        };
        Ok(LoggedEvent {
            destination,
            attributes,
            event,
        })
    }
}

/// An object the events refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedBlob {
    pub key: String,
    pub content_type: String,
    pub bytes: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Event(Box<LoggedEvent>),
    Blob(LoggedBlob),
}

/// A whole log in memory: its blobs and its events, in log order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    pub blobs: Vec<LoggedBlob>,
    pub events: Vec<LoggedEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("no route for detail-type {0:?} in the topology")]
    NoRoute(String),
}

/// An SNS message attribute as SNS prints it in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnsAttributeJson {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Value")]
    pub value: String,
}

impl SnsAttributeJson {
    pub(crate) fn from_attribute(a: &SnsAttribute) -> Self {
        SnsAttributeJson {
            kind: a.data_type().to_owned(),
            value: a.string_value(),
        }
    }
}

/// An attribute from its SNS data type and string value.
pub(crate) fn attribute_from(kind: &str, value: &str) -> Result<SnsAttribute, String> {
    match kind {
        "String" => Ok(SnsAttribute::String(value.to_owned())),
        "Number" => {
            value
                .parse::<f64>()
                .map_err(|_| format!("Number attribute value {value:?} is not a number"))?;
            Ok(SnsAttribute::Number(value.to_owned()))
        }
        "String.Array" => serde_json::from_str::<Vec<serde_json::Value>>(value)
            .map(|items| {
                SnsAttribute::StringArray(
                    items
                        .into_iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect(),
                )
            })
            .map_err(|e| format!("String.Array attribute value is not a JSON array: {e}")),
        other => Err(format!(
            "attribute type {other:?} (expected String, Number or String.Array)"
        )),
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlobJson {
    key: String,
    content_type: String,
    base64: String,
}

/// The line as written: exactly one of `event` (with `bus` or `topic`) or `blob`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, SnsAttributeJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<BlobJson>,
}

impl Entry {
    /// One log line (without the newline).
    pub fn to_line(&self) -> String {
        let line = match self {
            Entry::Event(e) => {
                let (bus, topic) = match &e.destination {
                    Destination::Bus(b) => (Some(b.clone()), None),
                    Destination::Topic(t) => (None, Some(t.clone())),
                };
                Line {
                    bus,
                    topic,
                    attributes: e
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), SnsAttributeJson::from_attribute(v)))
                        .collect(),
                    event: Some(e.event.clone()),
                    blob: None,
                }
            }
            Entry::Blob(b) => Line {
                bus: None,
                topic: None,
                attributes: BTreeMap::new(),
                event: None,
                blob: Some(BlobJson {
                    key: b.key.clone(),
                    content_type: b.content_type.clone(),
                    base64: base64::engine::general_purpose::STANDARD.encode(&b.bytes),
                }),
            },
        };
        serde_json::to_string(&line).expect("log lines serialise")
    }

    /// Parses one line; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Entry, String> {
        // serde would also take a JSON array for the struct; a line is an object.
        if !text.trim_start().starts_with('{') {
            return Err("a log line is a JSON object".into());
        }
        let line: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match (line.event, line.blob) {
            (Some(event), None) => {
                let destination = match (line.bus, line.topic) {
                    (Some(b), None) => Destination::Bus(b),
                    (None, Some(t)) => Destination::Topic(t),
                    _ => return Err("an event line names exactly one of `bus` or `topic`".into()),
                };
                if matches!(destination, Destination::Bus(_)) && !line.attributes.is_empty() {
                    return Err("`attributes` are SNS message attributes: only with `topic`".into());
                }
                let attributes = line
                    .attributes
                    .iter()
                    .map(|(k, a)| {
                        attribute_from(&a.kind, &a.value)
                            .map(|v| (k.clone(), v))
                            .map_err(|e| format!("attributes.{k}: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Entry::Event(Box::new(LoggedEvent {
                    destination,
                    attributes,
                    event,
                })))
            }
            (None, Some(blob)) => {
                if line.bus.is_some() || line.topic.is_some() || !line.attributes.is_empty() {
                    return Err("a blob line has only `blob`".into());
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(blob.base64.as_bytes())
                    .map_err(|e| format!("blob.base64: {e}"))?;
                Ok(Entry::Blob(LoggedBlob {
                    key: blob.key,
                    content_type: blob.content_type,
                    bytes: Bytes::from(bytes),
                }))
            }
            (Some(_), Some(_)) => Err("a line holds an `event` or a `blob`, not both".into()),
            (None, None) => {
                Err("a line needs an `event` (with `bus` or `topic`) or a `blob`".into())
            }
        }
    }
}

impl EventLog {
    /// Reads a whole log; an error names the file and line.
    pub fn read(path: &Path) -> Result<EventLog, LogError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| LogError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::from_reader(std::io::BufReader::new(file), &shown)
    }

    /// Reads a log from any reader; `name` is what errors call it.
    pub fn from_reader(reader: impl BufRead, name: &str) -> Result<EventLog, LogError> {
        let mut log = EventLog::default();
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|source| LogError::Io {
                path: name.to_owned(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            match Entry::parse(&line).map_err(|message| LogError::Line {
                path: name.to_owned(),
                line: i + 1,
                message,
            })? {
                Entry::Event(e) => log.events.push(*e),
                Entry::Blob(b) => log.blobs.push(b),
            }
        }
        Ok(log)
    }

    /// Writes the log: blobs first, then events in order.
    pub fn write(&self, path: &Path) -> Result<(), LogError> {
        let shown = path.display().to_string();
        let io = |source| LogError::Io {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
        for entry in self.entries() {
            writeln!(out, "{}", entry.to_line()).map_err(io)?;
        }
        out.flush().map_err(io)
    }

    /// Blobs first, then events.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.blobs.iter().cloned().map(Entry::Blob).chain(
            self.events
                .iter()
                .cloned()
                .map(|e| Entry::Event(Box::new(e))),
        )
    }
}

/// Appends entries to a log file as they happen (`switchyard up --record`).
/// Each call flushes, so what was acknowledged is on disk even if the
/// process is killed.
pub struct LogWriter {
    path: String,
    out: std::sync::Mutex<BufWriter<std::fs::File>>,
}

impl LogWriter {
    /// Creates (or appends to) the log at `path`.
    pub fn append(path: &Path) -> Result<Self, LogError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
                path: shown.clone(),
                source,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogError::Io {
                path: shown.clone(),
                source,
            })?;
        Ok(LogWriter {
            path: shown,
            out: std::sync::Mutex::new(BufWriter::new(file)),
        })
    }

    pub fn write(&self, entries: &[Entry]) -> Result<(), LogError> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let io = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        for e in entries {
            writeln!(out, "{}", e.to_line()).map_err(io)?;
        }
        out.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::events::{EventType, ImageUploaded, OrderPaid};

    fn topology() -> router_rules::Topology {
        router_rules::Topology::builtin()
    }

    #[test]
    fn lines_round_trip() {
        let paid = OrderPaid {
            order_id: "o-1".into(),
            payment_id: "p".into(),
            amount_cents: 5,
        }
        .into_envelope();
        let upload = ImageUploaded {
            image_id: "i".into(),
            order_id: "o-1".into(),
            key: "uploads/o-1/i".into(),
            content_type: "image/png".into(),
            size_bytes: 3,
        }
        .into_envelope();
        let entries = vec![
            Entry::Blob(LoggedBlob {
                key: "uploads/o-1/i".into(),
                content_type: "image/png".into(),
                bytes: Bytes::from_static(b"\x89PN"),
            }),
            Entry::Event(Box::new(LoggedEvent::routed(&topology(), paid).unwrap())),
            Entry::Event(Box::new(LoggedEvent::routed(&topology(), upload).unwrap())),
        ];
        for e in &entries {
            let line = e.to_line();
            assert_eq!(&Entry::parse(&line).unwrap(), e, "{line}");
        }
        let topic_line = entries[2].to_line();
        assert!(topic_line.starts_with(r#"{"topic":"images","attributes":{"#));
        assert!(topic_line.contains(r#""size_bytes":{"Type":"Number","Value":"3"}"#));
        assert!(entries[1]
            .to_line()
            .starts_with(r#"{"bus":"orders","event":"#));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let event = OrderPaid {
            order_id: "o".into(),
            payment_id: "p".into(),
            amount_cents: 5,
        }
        .into_envelope()
        .to_json();
        let cases = [
            ("[]".to_owned(), "a log line is a JSON object"),
            (
                format!(r#"{{"event":{event}}}"#),
                "exactly one of `bus` or `topic`",
            ),
            (
                format!(
                    r#"{{"bus":"orders","attributes":{{"a":{{"Type":"String","Value":"x"}}}},"event":{event}}}"#
                ),
                "only with `topic`",
            ),
            (
                format!(
                    r#"{{"topic":"images","attributes":{{"n":{{"Type":"Number","Value":"x"}}}},"event":{event}}}"#
                ),
                "attributes.n",
            ),
            (r#"{"bus":"orders"}"#.to_owned(), "needs an `event`"),
            (
                r#"{"blob":{"key":"k","content_type":"t","base64":"@@"}}"#.to_owned(),
                "blob.base64",
            ),
            (
                format!(r#"{{"bus":"orders","evnt":{event}}}"#),
                "unknown field `evnt`",
            ),
        ];
        for (line, expected) in cases {
            let err = Entry::parse(&line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let text = format!("{{\"bus\":\"orders\",\"event\":{event}}}\n\n{{not json\n");
        let err = EventLog::from_reader(text.as_bytes(), "x.jsonl").unwrap_err();
        assert!(err.to_string().starts_with("x.jsonl:3: "), "{err}");
    }
}
