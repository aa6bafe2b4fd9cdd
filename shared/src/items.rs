//! The single table's item shapes: orders, their images, applied-event
//! markers and notifications. Every item has `pk`, `sk` and `type`.
//!
//! ```text
//! pk              sk                 type
//! ORDER#<id>      ORDER              order          status, version, ...
//! ORDER#<id>      IMAGE#<image id>   image          status READY|REJECTED, variants
//! ORDER#<id>      NOTE#<event id>    notification   what the notifier saw
//! EVENT#<id>      <consumer>         applied-event  idempotency marker
//! ```

use serde::de::{value::MapDeserializer, DeserializeOwned};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::events::{ImageVariant, LineItem, OrderStatus};
use crate::ports::{Item, Key, TableError};
use crate::trace::TraceContext;

pub fn order_key(order_id: &str) -> Key {
    Key::new(format!("ORDER#{order_id}"), "ORDER")
}

pub fn image_key(order_id: &str, image_id: &str) -> Key {
    Key::new(format!("ORDER#{order_id}"), format!("IMAGE#{image_id}"))
}

pub fn notification_key(order_id: &str, event_id: Uuid) -> Key {
    Key::new(format!("ORDER#{order_id}"), format!("NOTE#{event_id}"))
}

pub fn applied_event_key(event_id: Uuid, consumer: &str) -> Key {
    Key::new(format!("EVENT#{event_id}"), consumer)
}

/// The table's TTL attribute (epoch seconds): DynamoDB deletes an item some
/// time after it passes. Only applied-event markers carry it, never orders,
/// images or notifications. infra/ and `switchyard provision` enable TTL on
/// this name; the embedded table ignores it and keeps markers for good.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// How long an applied-event marker is kept: longer than any copy of an event
/// can still be delivered. A copy lives at most 14 days in a source queue
/// (SQS's longest retention; each receive cycle, visibility timeout x
/// `maxReceiveCount`, is minutes and inside it), then 14 days in the DLQ;
/// the extra week leaves an operator time to redrive it. Replays of events
/// older than this are no longer deduplicated by their marker.
pub const APPLIED_EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(35 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub status: OrderStatus,
    /// 1 when placed, +1 per applied event: the guard for conditional writes.
    pub version: u64,
    pub customer_id: String,
    pub items: Vec<LineItem>,
    pub total_cents: u64,
    pub currency: String,
    #[serde(default)]
    pub paid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Correlation of the event that last changed the order (the stream reactor carries it on).
    pub correlation_id: Uuid,
    pub last_event_id: Uuid,
    /// The span that last changed the order: the stream reactor's span for
    /// the change continues this trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceContext>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatus {
    Ready,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub image_id: String,
    pub order_id: String,
    pub status: ImageStatus,
    pub source_key: String,
    #[serde(default)]
    pub variants: Vec<ImageVariant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
    pub correlation_id: Uuid,
    pub last_event_id: Uuid,
    /// The span that wrote the record (see [`Order::traceparent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceContext>,
}

/// A typed record stored as a table item of a given `type`.
pub trait TableRecord: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    fn key(&self) -> Key;

    fn to_item(&self) -> Item {
        let Value::Object(mut item) = serde_json::to_value(self).expect("records serialise") else {
            unreachable!("records are structs")
        };
        let key = self.key();
        item.insert("pk".into(), Value::String(key.pk));
        item.insert("sk".into(), Value::String(key.sk));
        item.insert("type".into(), Value::String(Self::TYPE.into()));
        item
    }

    fn from_item(item: &Item) -> Result<Self, TableError> {
        // Read in place: no copy of the item to hand serde a `Value`.
        let fields = item.iter().map(|(k, v)| (k.as_str(), v));
        Self::deserialize(MapDeserializer::<_, serde_json::Error>::new(fields))
            .map_err(|e| TableError::InvalidItem(format!("{} item: {e}", Self::TYPE)))
    }

    /// [`from_item`](Self::from_item) on the item's JSON text
    /// ([`Table::get_text`](crate::ports::Table::get_text)), read straight
    /// into the record. Only a failed read builds the item, so the verdict
    /// and its message are `from_item`'s.
    fn from_text(text: &str) -> Result<Self, TableError> {
        serde_json::from_str(text).or_else(|_| {
            let item: Item = serde_json::from_str(text)
                .map_err(|e| TableError::InvalidItem(format!("{} item: {e}", Self::TYPE)))?;
            Self::from_item(&item)
        })
    }
}

impl TableRecord for Order {
    const TYPE: &'static str = "order";
    fn key(&self) -> Key {
        order_key(&self.order_id)
    }
}

impl TableRecord for ImageRecord {
    const TYPE: &'static str = "image";
    fn key(&self) -> Key {
        image_key(&self.order_id, &self.image_id)
    }
}

/// The `type` attribute of an item, if any.
pub fn item_type(item: &Item) -> Option<&str> {
    item.get("type").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrderStatus;
    use uuid::Uuid;

    #[test]
    fn from_text_reads_what_from_item_reads_and_fails_as_it_does() {
        let order = Order {
            order_id: "o\"1\\é".into(),
            status: OrderStatus::Paid,
            version: 3,
            customer_id: "c".into(),
            items: vec![],
            total_cents: 10,
            currency: "EUR".into(),
            paid: true,
            payment_id: Some("p".into()),
            carrier: None,
            tracking_number: None,
            cancel_reason: None,
            correlation_id: Uuid::from_u128(1),
            last_event_id: Uuid::from_u128(2),
            traceparent: Some(TraceContext::root(Uuid::from_u128(3))),
        };
        let item = order.to_item();
        let text = Value::Object(item.clone()).to_string();
        assert_eq!(Order::from_text(&text).unwrap(), order);
        assert_eq!(Order::from_item(&item).unwrap(), order);

        for (field, value) in [
            ("status", json_value("\"LOST\"")),
            ("version", json_value("\"3\"")),
            ("items", json_value("{}")),
        ] {
            let mut broken = item.clone();
            broken.insert(field.into(), value);
            let text = Value::Object(broken.clone()).to_string();
            let (a, b) = (Order::from_text(&text), Order::from_item(&broken));
            assert_eq!(
                a.unwrap_err().to_string(),
                b.unwrap_err().to_string(),
                "{field}"
            );
        }
        let mut missing = item.clone();
        missing.remove("customer_id");
        let text = Value::Object(missing.clone()).to_string();
        assert_eq!(
            Order::from_text(&text).unwrap_err().to_string(),
            Order::from_item(&missing).unwrap_err().to_string()
        );
        assert!(Order::from_text("not json").is_err());
    }

    fn json_value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }
}
