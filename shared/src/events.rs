//! The typed events. Each is a serde struct with a JSON Schema; the
//! [`DomainEvent`] enum is what handlers match on.
//!
//! Versioning: an event type's `SCHEMA_VERSION` only goes up. Older versions
//! stay readable through `upcast`, which rewrites an old `detail` into the
//! current shape before it is deserialised.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};

use crate::envelope::{Envelope, EnvelopeError};

pub const ORDERS_SOURCE: &str = "switchyard.orders";
pub const IMAGES_SOURCE: &str = "switchyard.images";
pub const REACTOR_SOURCE: &str = "switchyard.stream-reactor";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "PLACED",
            OrderStatus::Paid => "PAID",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PLACED" => OrderStatus::Placed,
            "PAID" => OrderStatus::Paid,
            "SHIPPED" => OrderStatus::Shipped,
            "CANCELLED" => OrderStatus::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

/// v2: `customer` became `customer_id` and `currency` was added (v1 was EUR only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer_id: String,
    pub items: Vec<LineItem>,
    pub total_cents: u64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPaid {
    pub order_id: String,
    pub payment_id: String,
    pub amount_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    pub order_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderShipped {
    pub order_id: String,
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUploaded {
    pub image_id: String,
    pub order_id: String,
    /// Blob key of the original (validated: relative, no `..`).
    pub key: String,
    /// What the uploader claimed; the processor sniffs the bytes instead.
    pub content_type: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageVariant {
    pub name: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageProcessed {
    pub image_id: String,
    pub order_id: String,
    pub variants: Vec<ImageVariant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRejected {
    pub image_id: String,
    pub order_id: String,
    /// Machine-readable reason: `too_large`, `too_many_pixels`, `corrupt`, `unsupported_type`, ...
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStatusChanged {
    pub order_id: String,
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub version: u64,
}

/// Ties a detail struct to its `detail-type`, `source` and schema version.
pub trait EventType: Serialize + DeserializeOwned + JsonSchema + Sized {
    const DETAIL_TYPE: &'static str;
    const SOURCE: &'static str;
    const SCHEMA_VERSION: u32;

    /// Wraps this detail in a fresh envelope.
    fn into_envelope(self) -> Envelope {
        let detail = serde_json::to_value(&self).expect("event details always serialise");
        Envelope::new(
            Self::SOURCE,
            Self::DETAIL_TYPE,
            Self::SCHEMA_VERSION,
            detail,
        )
    }
}

macro_rules! event_types {
    ($($ty:ident => $source:expr, $version:literal;)*) => {
        $(impl EventType for $ty {
            const DETAIL_TYPE: &'static str = stringify!($ty);
            const SOURCE: &'static str = $source;
            const SCHEMA_VERSION: u32 = $version;
        })*

        /// Every event Switchyard knows, decoded and upcast.
        #[derive(Debug, Clone, PartialEq)]
        pub enum DomainEvent { $($ty($ty),)* }

        /// `(detail-type, source, current schema version)` of every event type.
        pub const EVENT_TYPES: &[(&str, &str, u32)] = &[$((stringify!($ty), $source, $version),)*];

        impl DomainEvent {
            pub fn detail_type(&self) -> &'static str {
                match self { $(DomainEvent::$ty(_) => stringify!($ty),)* }
            }

            fn decode(detail_type: &str, detail: &Value) -> Result<Self, EnvelopeError> {
                match detail_type {
                    // Read straight first; the path of an error is only
                    // tracked (a second, slower read) once there is one.
                    $(stringify!($ty) => $ty::deserialize(detail)
                        .map(DomainEvent::$ty)
                        .or_else(|_| serde_path_to_error::deserialize::<_, $ty>(detail)
                            .map(DomainEvent::$ty)
                            .map_err(|e| EnvelopeError::InvalidDetail {
                                detail_type: detail_type.to_owned(),
                                message: match e.path().to_string().as_str() {
                                    "." => e.into_inner().to_string(),
                                    path => format!("detail.{path}: {}", e.into_inner()),
                                },
                            })),)*
                    other => Err(EnvelopeError::UnknownType(other.to_owned())),
                }
            }

            /// JSON Schemas of every event detail, by detail-type.
            pub fn schemas() -> BTreeMap<&'static str, Value> {
                let mut out = BTreeMap::new();
                $(out.insert(stringify!($ty), serde_json::to_value(schemars::schema_for!($ty)).expect("schema serialises"));)*
                out
            }
        }
    };
}

event_types! {
    OrderPlaced => ORDERS_SOURCE, 2;
    OrderPaid => ORDERS_SOURCE, 1;
    OrderCancelled => ORDERS_SOURCE, 1;
    OrderShipped => ORDERS_SOURCE, 1;
    ImageUploaded => IMAGES_SOURCE, 1;
    ImageProcessed => IMAGES_SOURCE, 1;
    ImageRejected => IMAGES_SOURCE, 1;
    OrderStatusChanged => REACTOR_SOURCE, 1;
}

/// Current schema version of a detail-type, if known.
pub fn schema_version_of(detail_type: &str) -> Option<u32> {
    EVENT_TYPES
        .iter()
        .find(|(t, _, _)| *t == detail_type)
        .map(|(_, _, v)| *v)
}

/// Rewrites an older `detail` into the current shape of its type.
fn upcast<'a>(detail_type: &str, from_version: u32, detail: &'a Value) -> Cow<'a, Value> {
    if detail_type == "OrderPlaced" && from_version < 2 {
        let mut detail = detail.clone();
        if let Some(obj) = detail.as_object_mut() {
            if let Some(customer) = obj.remove("customer") {
                obj.insert("customer_id".into(), customer);
            }
            obj.entry("currency").or_insert_with(|| json!("EUR"));
        }
        return Cow::Owned(detail);
    }
    Cow::Borrowed(detail)
}

impl DomainEvent {
    /// Decodes the envelope's detail into its typed event, upcasting old versions.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, EnvelopeError> {
        let current = schema_version_of(&envelope.detail_type)
            .ok_or_else(|| EnvelopeError::UnknownType(envelope.detail_type.clone()))?;
        if envelope.schema_version > current {
            return Err(EnvelopeError::FutureVersion {
                detail_type: envelope.detail_type.clone(),
                version: envelope.schema_version,
                max: current,
            });
        }
        let detail = upcast(
            &envelope.detail_type,
            envelope.schema_version,
            &envelope.detail,
        );
        Self::decode(&envelope.detail_type, &detail)
    }

    /// Checks that an envelope is publishable: known type, valid detail, within limits.
    pub fn validate(envelope: &Envelope) -> Result<Self, EnvelopeError> {
        envelope.check_size()?;
        Self::from_envelope(envelope)
    }

    /// [`DomainEvent::validate`] for an envelope already serialised as
    /// `json`, so a publisher that sends the text serialises it once.
    pub fn validate_serialized(envelope: &Envelope, json: &str) -> Result<Self, EnvelopeError> {
        Envelope::check_wire_size(json.len())?;
        Self::from_envelope(envelope)
    }

    pub fn order_id(&self) -> &str {
        match self {
            DomainEvent::OrderPlaced(e) => &e.order_id,
            DomainEvent::OrderPaid(e) => &e.order_id,
            DomainEvent::OrderCancelled(e) => &e.order_id,
            DomainEvent::OrderShipped(e) => &e.order_id,
            DomainEvent::ImageUploaded(e) => &e.order_id,
            DomainEvent::ImageProcessed(e) => &e.order_id,
            DomainEvent::ImageRejected(e) => &e.order_id,
            DomainEvent::OrderStatusChanged(e) => &e.order_id,
        }
    }
}

/// One SNS message attribute, as SNS types it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SnsAttribute {
    String(String),
    Number(String),
    StringArray(Vec<String>),
}

impl SnsAttribute {
    pub fn data_type(&self) -> &'static str {
        match self {
            SnsAttribute::String(_) => "String",
            SnsAttribute::Number(_) => "Number",
            SnsAttribute::StringArray(_) => "String.Array",
        }
    }
    /// The attribute's value as SNS carries it (String.Array is a JSON array text).
    pub fn string_value(&self) -> String {
        match self {
            SnsAttribute::String(s) | SnsAttribute::Number(s) => s.clone(),
            SnsAttribute::StringArray(v) => serde_json::to_string(v).expect("strings serialise"),
        }
    }
    /// The attribute in the JSON shape SNS uses for `MessageAttributes` in
    /// notifications and in `switchyard rules test --attributes`.
    pub fn to_json(&self) -> Value {
        json!({ "Type": self.data_type(), "Value": self.string_value() })
    }
}

/// The SNS message attributes of an event: `event_type`, `source`, and the
/// fields that filter policies use. SNS allows at most 10.
pub fn sns_attributes(envelope: &Envelope) -> BTreeMap<String, SnsAttribute> {
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "event_type".to_owned(),
        SnsAttribute::String(envelope.detail_type.clone()),
    );
    attrs.insert(
        "source".to_owned(),
        SnsAttribute::String(envelope.source.clone()),
    );
    let d = &envelope.detail;
    if let Some(order_id) = d.get("order_id").and_then(Value::as_str) {
        attrs.insert(
            "order_id".to_owned(),
            SnsAttribute::String(order_id.to_owned()),
        );
    }
    if let Some(ct) = d.get("content_type").and_then(Value::as_str) {
        attrs.insert(
            "content_type".to_owned(),
            SnsAttribute::String(ct.to_owned()),
        );
    }
    if let Some(size) = d.get("size_bytes").and_then(Value::as_u64) {
        attrs.insert(
            "size_bytes".to_owned(),
            SnsAttribute::Number(size.to_string()),
        );
    }
    // The trace travels in the attributes too (as AWS SDKs' propagators put
    // it), so a subscriber that never reads the body can still continue it.
    if let Some(trace) = envelope.traceparent {
        attrs.insert(
            "traceparent".to_owned(),
            SnsAttribute::String(trace.traceparent()),
        );
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_schema() {
        let schemas = DomainEvent::schemas();
        assert_eq!(schemas.len(), EVENT_TYPES.len());
        assert!(schemas["OrderPlaced"]["properties"]["customer_id"].is_object());
    }

    #[test]
    fn v1_order_placed_upcasts() {
        let mut env = Envelope::new(
            ORDERS_SOURCE,
            "OrderPlaced",
            1,
            json!({
                "order_id": "o-1", "customer": "c-9", "items": [], "total_cents": 0
            }),
        );
        let DomainEvent::OrderPlaced(e) = DomainEvent::from_envelope(&env).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.customer_id.as_str(), e.currency.as_str()),
            ("c-9", "EUR")
        );
        env.schema_version = 3;
        assert!(matches!(
            DomainEvent::from_envelope(&env),
            Err(EnvelopeError::FutureVersion { .. })
        ));
    }

    #[test]
    fn bad_detail_names_the_field() {
        let env = Envelope::new(
            ORDERS_SOURCE,
            "OrderPaid",
            1,
            json!({"order_id": "o-1", "amount_cents": 5}),
        );
        let err = DomainEvent::from_envelope(&env).unwrap_err().to_string();
        assert!(err.contains("payment_id"), "{err}");
    }

    #[test]
    fn sns_attributes_carry_type_and_filter_fields() {
        let env = ImageUploaded {
            image_id: "i".into(),
            order_id: "o".into(),
            key: "uploads/o/i".into(),
            content_type: "image/jpeg".into(),
            size_bytes: 42,
        }
        .into_envelope();
        let attrs = sns_attributes(&env);
        assert_eq!(
            attrs["event_type"],
            SnsAttribute::String("ImageUploaded".into())
        );
        assert_eq!(
            attrs["size_bytes"].to_json(),
            json!({"Type": "Number", "Value": "42"})
        );
    }
}
