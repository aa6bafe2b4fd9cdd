//! Carrying Switchyard's envelope fields through EventBridge (see the module
//! docs of [`crate::aws`] for why) and turning the message attributes of SQS
//! back into [`SnsAttribute`]s.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::envelope::{Envelope, EnvelopeError};
use crate::events::SnsAttribute;

/// The key under `detail` that holds the envelope fields EventBridge cannot carry.
pub const RESERVED_DETAIL_KEY: &str = "switchyard";

/// The `Detail` text for `PutEvents`: the event's detail plus the reserved key.
pub fn eventbridge_detail(envelope: &Envelope) -> Result<String, EnvelopeError> {
    let Value::Object(detail) = &envelope.detail else {
        return Err(EnvelopeError::Malformed(format!(
            "{} detail must be a JSON object to travel on EventBridge",
            envelope.detail_type
        )));
    };
    if detail.contains_key(RESERVED_DETAIL_KEY) {
        return Err(EnvelopeError::Malformed(format!(
            "detail key {RESERVED_DETAIL_KEY:?} is reserved for the envelope on EventBridge"
        )));
    }
    let mut detail = detail.clone();
    let mut reserved = Map::new();
    reserved.insert("id".into(), json!(envelope.id));
    reserved.insert("time".into(), json!(envelope.time));
    reserved.insert("schema-version".into(), json!(envelope.schema_version));
    reserved.insert("correlation-id".into(), json!(envelope.correlation_id));
    if let Some(cause) = envelope.causation_id {
        reserved.insert("causation-id".into(), json!(cause));
    }
    if let Some(trace) = envelope.traceparent {
        reserved.insert("traceparent".into(), json!(trace));
    }
    detail.insert(RESERVED_DETAIL_KEY.into(), Value::Object(reserved));
    Ok(Value::Object(detail).to_string())
}

/// Rebuilds the Switchyard envelope from an EventBridge event as an SQS
/// target receives it. Returns `None` when the body is not such an event
/// (an SNS raw delivery is already an envelope; anything else is left for
/// the handler to reject with its own error).
///
/// An event put on the bus by something other than Switchyard (the aws
/// CLI, boto3) has no reserved key: it is taken as the current schema
/// version of its detail-type, and starts its own correlation.
pub fn restore_body(body: &str) -> Option<String> {
    // Cheap test first: only EventBridge-shaped bodies need a second look.
    if !body.contains("\"detail-type\"") {
        return None;
    }
    let mut event: Map<String, Value> = serde_json::from_str(body).ok()?;
    if event.contains_key("schema-version") || !event.contains_key("detail-type") {
        return None;
    }
    let reserved = match event
        .get_mut("detail")?
        .as_object_mut()?
        .remove(RESERVED_DETAIL_KEY)
    {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (field, value) in reserved {
        event.insert(field, value);
    }
    if !event.contains_key("schema-version") {
        let version = event
            .get("detail-type")
            .and_then(Value::as_str)
            .and_then(crate::events::schema_version_of)?;
        event.insert("schema-version".into(), json!(version));
    }
    if !event.contains_key("correlation-id") {
        let id = event.get("id")?.clone();
        event.insert("correlation-id".into(), id);
    }
    Some(Value::Object(event).to_string())
}

/// The envelope an SQS body carries, whichever way it came.
pub fn envelope_from_body(body: &str) -> Result<Envelope, EnvelopeError> {
    match restore_body(body) {
        Some(restored) => Envelope::from_json(&restored),
        None => Envelope::from_json(body),
    }
}

/// An SQS message attribute as a typed [`SnsAttribute`] (binary ones are skipped).
pub fn attribute_from_sqs(data_type: &str, value: Option<&str>) -> Option<SnsAttribute> {
    let value = value?.to_owned();
    // Custom types ("Number.int", "String.x") keep their base type.
    match data_type.split('.').next()? {
        "String" if data_type == "String.Array" => serde_json::from_str(&value)
            .ok()
            .map(SnsAttribute::StringArray),
        "String" => Some(SnsAttribute::String(value)),
        "Number" => Some(SnsAttribute::Number(value)),
        _ => None,
    }
}

/// Converts typed attributes to SQS's message attribute values.
pub fn attributes_to_sqs(
    attributes: &BTreeMap<String, SnsAttribute>,
) -> Result<std::collections::HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>, String> {
    attributes
        .iter()
        .map(|(name, attr)| {
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type(attr.data_type())
                .string_value(attr.string_value())
                .build()
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("attribute {name}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventType, OrderPlaced};

    fn order() -> Envelope {
        OrderPlaced {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            items: vec![],
            total_cents: 10,
            currency: "EUR".into(),
        }
        .into_envelope()
        .caused_by(uuid::Uuid::now_v7(), uuid::Uuid::now_v7())
    }

    #[test]
    fn envelope_survives_an_eventbridge_trip() {
        let sent = order();
        let detail: Value = serde_json::from_str(&eventbridge_detail(&sent).unwrap()).unwrap();
        // What EventBridge delivers to an SQS target: its own id, second-precision time.
        let delivered = json!({
            "version": "0", "id": "5b3c-eventbridge-own-id", "detail-type": sent.detail_type,
            "source": sent.source, "account": "123456789012", "time": "2030-01-01T00:00:00Z",
            "region": "eu-west-1", "resources": [], "detail": detail,
        });
        let back = envelope_from_body(&delivered.to_string()).unwrap();
        assert_eq!(back.id, sent.id);
        assert_eq!(back.time, sent.time);
        assert_eq!(back.correlation_id, sent.correlation_id);
        assert_eq!(back.causation_id, sent.causation_id);
        assert_eq!(back.traceparent, sent.traceparent);
        assert!(back.traceparent.is_some());
        assert_eq!(
            back.detail, sent.detail,
            "the reserved key is lifted out of detail"
        );
        assert_eq!(back.account, "123456789012");
    }

    #[test]
    fn events_put_by_other_tools_become_envelopes() {
        // As `aws events put-events` would put it: no reserved key in detail.
        let delivered = json!({
            "version": "0", "id": "0b8a7c4e-3b5f-4d2a-9c1e-2f1d3c4b5a69", "detail-type": "OrderPaid",
            "source": "switchyard.orders", "account": "123456789012", "time": "2030-01-01T00:00:00Z",
            "region": "eu-west-1", "resources": [],
            "detail": {"order_id": "o-1", "payment_id": "p-1", "amount_cents": 5},
        });
        let e = envelope_from_body(&delivered.to_string()).unwrap();
        assert_eq!(e.schema_version, 1);
        assert_eq!(e.correlation_id, e.id);
        assert_eq!(e.id.to_string(), "0b8a7c4e-3b5f-4d2a-9c1e-2f1d3c4b5a69");
        // An unknown detail-type is left alone for the handler to reject by name.
        let unknown = delivered.to_string().replace("OrderPaid", "Nope");
        assert_eq!(restore_body(&unknown), None);
    }

    #[test]
    fn plain_envelopes_pass_through() {
        let sent = order();
        assert_eq!(restore_body(&sent.to_json()), None);
        assert_eq!(envelope_from_body(&sent.to_json()).unwrap(), sent);
    }

    #[test]
    fn reserved_key_in_detail_is_refused() {
        let mut e = order();
        e.detail[RESERVED_DETAIL_KEY] = json!(1);
        assert!(eventbridge_detail(&e)
            .unwrap_err()
            .to_string()
            .contains("reserved"));
        e.detail = json!([1]);
        assert!(eventbridge_detail(&e).is_err());
    }

    #[test]
    fn sqs_attribute_types_map_back() {
        assert_eq!(
            attribute_from_sqs("Number", Some("4")),
            Some(SnsAttribute::Number("4".into()))
        );
        assert_eq!(
            attribute_from_sqs("String.Array", Some(r#"["a","b"]"#)),
            Some(SnsAttribute::StringArray(vec!["a".into(), "b".into()]))
        );
        assert_eq!(attribute_from_sqs("Binary", Some("x")), None);
    }
}
