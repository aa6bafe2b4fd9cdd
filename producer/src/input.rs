//! Turning user-supplied JSON into a publishable envelope, with errors that
//! name what is wrong.

use serde_json::{Map, Value};
use switchyard_shared::events::EVENT_TYPES;
use switchyard_shared::{DomainEvent, Envelope, EnvelopeError};
use uuid::Uuid;

/// Fields an input may carry; everything else is a typo worth reporting.
const KNOWN_FIELDS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "schema-version",
    "correlation-id",
    "causation-id",
];

/// Parses an event given as a full envelope or as `{"detail-type", "detail"}`
/// with the rest defaulted (new UUID v7 id, now, the type's source and
/// current schema version). The result is validated: known type, a detail
/// that matches its schema, within the size limit.
pub fn envelope_from_json(text: &str) -> Result<Envelope, EnvelopeError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EnvelopeError::Malformed(format!("not JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(EnvelopeError::Malformed("an event is a JSON object".into()));
    };
    if let Some(unknown) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(EnvelopeError::Malformed(format!(
            "unknown field {unknown:?} (expected one of {KNOWN_FIELDS:?})"
        )));
    }
    let detail_type = match obj.get("detail-type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(EnvelopeError::Malformed(
                "`detail-type` must be a string".into(),
            ))
        }
        None => return Err(EnvelopeError::Malformed("missing `detail-type`".into())),
    };
    let (_, source, version) = EVENT_TYPES
        .iter()
        .find(|(t, _, _)| *t == detail_type)
        .ok_or_else(|| EnvelopeError::UnknownType(detail_type.clone()))?;
    if !obj.contains_key("detail") {
        return Err(EnvelopeError::Malformed("missing `detail`".into()));
    }
    let id = Uuid::now_v7();
    default(&mut obj, "id", Value::String(id.to_string()));
    default(&mut obj, "source", Value::String((*source).to_owned()));
    default(&mut obj, "schema-version", Value::from(*version));
    default(
        &mut obj,
        "time",
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    let id = obj["id"].clone();
    default(&mut obj, "correlation-id", id);
    let envelope: Envelope = serde_json::from_value(Value::Object(obj))
        .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    DomainEvent::validate(&envelope)?;
    Ok(envelope)
}

fn default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    obj.entry(key.to_owned()).or_insert(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_a_minimal_event() {
        let e = envelope_from_json(r#"{"detail-type":"OrderPaid","detail":{"order_id":"o","payment_id":"p","amount_cents":5}}"#)
            .unwrap();
        assert_eq!(
            (e.source.as_str(), e.schema_version, e.correlation_id),
            ("switchyard.orders", 1, e.id)
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("[1]", "JSON object"),
            (r#"{"detail":{}}"#, "detail-type"),
            (r#"{"detail-type":"Nope","detail":{}}"#, "Nope"),
            (
                r#"{"detail-type":"OrderPaid","detail":{"order_id":"o","amount_cents":5}}"#,
                "payment_id",
            ),
            (r#"{"detail-type":"OrderPaid","detial":{}}"#, "detial"),
            (
                r#"{"detail-type":"OrderPaid","detail":{"order_id":"o","payment_id":"p","amount_cents":"5"}}"#,
                "amount_cents",
            ),
        ];
        for (input, expected) in cases {
            let err = envelope_from_json(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
