//! The one envelope every event travels in.
//!
//! It is shaped like an EventBridge event (`version`, `id`, `detail-type`,
//! `source`, `account`, `time`, `region`, `resources`, `detail`) so that an
//! event pattern written against it works unchanged on AWS. Switchyard adds
//! `schema-version`, `correlation-id`, `causation-id` and `traceparent`
//! (the W3C trace context of the hop that published it: [`crate::trace`]).

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::trace::TraceContext;

/// EventBridge's limit for one event (and SNS's for one message).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The account and region the embedded backend reports, as moto does.
pub const LOCAL_ACCOUNT: &str = "000000000000";
pub const LOCAL_REGION: &str = "us-east-1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// EventBridge's envelope version; always "0".
    #[serde(default = "default_version")]
    pub version: String,
    /// UUID v7: time-ordered, unique per event.
    pub id: Uuid,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default = "default_account")]
    pub account: String,
    #[serde(with = "rfc3339")]
    #[schemars(with = "String")]
    pub time: DateTime<Utc>,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
    #[serde(rename = "schema-version")]
    pub schema_version: u32,
    #[serde(rename = "correlation-id")]
    pub correlation_id: Uuid,
    #[serde(
        rename = "causation-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub causation_id: Option<Uuid>,
    /// The span of the hop that published this event; whoever handles it
    /// continues the trace as its child. Absent on events from before
    /// tracing (or from other tools): their handler starts a trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub traceparent: Option<TraceContext>,
}

fn default_version() -> String {
    "0".to_owned()
}
fn default_account() -> String {
    LOCAL_ACCOUNT.to_owned()
}
fn default_region() -> String {
    LOCAL_REGION.to_owned()
}

/// EventBridge prints times as `2024-01-01T00:00:00Z`; keep the same on the
/// way out, and accept any RFC 3339 time on the way in.
mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

fn fnv1a(data: &[u8], basis: u64) -> u64 {
    data.iter().fold(basis, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("unknown detail-type {0:?}")]
    UnknownType(String),
    #[error(
        "{detail_type} schema-version {version} is newer than this build understands (max {max})"
    )]
    FutureVersion {
        detail_type: String,
        version: u32,
        max: u32,
    },
    #[error("invalid {detail_type} detail: {message}")]
    InvalidDetail {
        detail_type: String,
        message: String,
    },
}

impl Envelope {
    /// A new event with a fresh UUID v7 id that starts its own correlation
    /// and its own trace (rooted at its id).
    pub fn new(
        source: &str,
        detail_type: &str,
        schema_version: u32,
        detail: serde_json::Value,
    ) -> Self {
        let id = Uuid::now_v7();
        Envelope {
            version: default_version(),
            id,
            detail_type: detail_type.to_owned(),
            source: source.to_owned(),
            account: default_account(),
            time: Utc::now(),
            region: default_region(),
            resources: Vec::new(),
            detail,
            schema_version,
            correlation_id: id,
            causation_id: None,
            traceparent: Some(TraceContext::root(id)),
        }
    }

    /// Marks this event as caused by `cause`: same correlation, cause's id as causation.
    pub fn caused_by(mut self, cause_correlation: Uuid, cause_id: Uuid) -> Self {
        self.correlation_id = cause_correlation;
        self.causation_id = Some(cause_id);
        self
    }

    /// This event under the id `id`, starting its own correlation and trace
    /// there (a generator's seeded id, a command's idempotency id).
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self.correlation_id = id;
        self.causation_id = None;
        self.traceparent = Some(TraceContext::root(id));
        self
    }

    /// Marks this event as published by the hop whose span is `span`.
    pub fn traced(mut self, span: TraceContext) -> Self {
        self.traceparent = Some(span);
        self
    }

    /// An id that is the same every time the same `seed` is derived at the
    /// same time: events emitted on behalf of another (the stream reactor's,
    /// a rejection) keep their id across retries, so consumers dedup them.
    /// It is still a well-formed UUID v7 (time-ordered by `at`).
    pub fn derived_id(at: DateTime<Utc>, seed: &str) -> Uuid {
        let mut bytes = [0u8; 10];
        let (a, b) = (
            fnv1a(seed.as_bytes(), 0xcbf2_9ce4_8422_2325),
            fnv1a(seed.as_bytes(), 0x8422_2325_cbf2_9ce4),
        );
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes()[..2]);
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }

    /// The id of the envelope `text` holds, without parsing it all when it
    /// is as [`Envelope::to_json`] writes it (the id right after
    /// `"version"`); any other text is parsed in full. `None` if it holds no
    /// envelope id.
    pub fn id_in_json(text: &str) -> Option<Uuid> {
        const HEAD: &str = r#"{"version":"0","id":""#;
        let quick = text
            .strip_prefix(HEAD)
            .and_then(|rest| rest.get(..37))
            .and_then(|id| id.strip_suffix('"'))
            .and_then(|id| Uuid::try_parse(id).ok());
        #[derive(Deserialize)]
        struct IdOnly {
            id: Uuid,
        }
        quick.or_else(|| serde_json::from_str::<IdOnly>(text).ok().map(|e| e.id))
    }

    /// Parses an envelope from its JSON text, enforcing the size limit first.
    pub fn from_json(text: &str) -> Result<Self, EnvelopeError> {
        if text.len() > MAX_EVENT_BYTES {
            return Err(EnvelopeError::TooLarge { size: text.len() });
        }
        serde_json::from_str(text).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// Checks the publish-time limits (size) on the serialised form.
    pub fn check_size(&self) -> Result<usize, EnvelopeError> {
        Self::check_wire_size(self.to_json().len())
    }

    /// [`Envelope::check_size`] for an envelope whose JSON is `size` bytes.
    pub fn check_wire_size(size: usize) -> Result<usize, EnvelopeError> {
        if size > MAX_EVENT_BYTES {
            Err(EnvelopeError::TooLarge { size })
        } else {
            Ok(size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_eventbridge_field_names() {
        let e = Envelope::new(
            "switchyard.orders",
            "OrderPaid",
            1,
            serde_json::json!({"order_id": "o-1"}),
        );
        let text = e.to_json();
        for field in [
            "\"detail-type\"",
            "\"schema-version\"",
            "\"correlation-id\"",
            "\"version\":\"0\"",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
        assert_eq!(Envelope::from_json(&text).unwrap(), e);
        assert_eq!(e.id.get_version_num(), 7);
    }

    #[test]
    fn derived_ids_are_stable_v7() {
        let at = Utc::now();
        let a = Envelope::derived_id(at, "ORDER#1/3");
        assert_eq!(a, Envelope::derived_id(at, "ORDER#1/3"));
        assert_ne!(a, Envelope::derived_id(at, "ORDER#1/4"));
        assert_eq!(a.get_version_num(), 7);
    }

    #[test]
    fn rejects_oversized_events() {
        let big = "x".repeat(MAX_EVENT_BYTES);
        let e = Envelope::new("s", "OrderPaid", 1, serde_json::json!({ "pad": big }));
        assert!(matches!(
            e.check_size(),
            Err(EnvelopeError::TooLarge { .. })
        ));
    }

    #[test]
    fn id_in_json_reads_an_envelope_quickly_or_in_full() {
        let envelope = Envelope::new(
            "switchyard.test",
            "OrderPlaced",
            1,
            serde_json::json!({"id": "not-this-one"}),
        );
        // Where the serializer puts it.
        assert_eq!(Envelope::id_in_json(&envelope.to_json()), Some(envelope.id));
        // The same envelope with its keys in another order: parsed in full.
        let mut value: serde_json::Value = serde_json::from_str(&envelope.to_json()).unwrap();
        let reordered =
            serde_json::json!({"detail": value["detail"].take(), "id": value["id"].take()});
        assert_eq!(
            Envelope::id_in_json(&reordered.to_string()),
            Some(envelope.id)
        );
        // Not an envelope, or a broken id right where the quick path looks.
        assert_eq!(Envelope::id_in_json("not json"), None);
        assert_eq!(Envelope::id_in_json(r#"{"version":"0","id":"x"}"#), None);
    }
}
