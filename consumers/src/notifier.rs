//! The notifier: an example downstream consumer of what the system emits
//! (`OrderStatusChanged`, `ImageProcessed`, `ImageRejected`). It records each
//! notification it would send under its order, once per event id.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use switchyard_shared::items::notification_key;
use switchyard_shared::ports::{Condition, Table, TableError};
use switchyard_shared::DomainEvent;

use crate::layers::{Delivery, HandlerError, MessageHandler};

pub const NAME: &str = "notifier";

pub struct Notifier {
    table: Arc<dyn Table>,
}

impl Notifier {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Notifier { table }
    }
}

#[async_trait]
impl MessageHandler for Notifier {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let event = DomainEvent::from_envelope(&d.envelope)
            .map_err(|e| HandlerError::permanent(e.to_string()))?;
        let summary = match &event {
            DomainEvent::OrderStatusChanged(e) => {
                format!("order {} is now {}", e.order_id, e.to.as_str())
            }
            DomainEvent::ImageProcessed(e) => {
                format!("image {} has {} thumbnails", e.image_id, e.variants.len())
            }
            DomainEvent::ImageRejected(e) => {
                format!("image {} was rejected: {}", e.image_id, e.reason)
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "the notifier does not handle {}",
                    other.detail_type()
                )))
            }
        };
        let key = notification_key(event.order_id(), d.envelope.id);
        let Value::Object(item) = json!({
            "pk": key.pk, "sk": key.sk, "type": "notification",
            "detail_type": d.envelope.detail_type, "summary": summary,
        }) else {
            unreachable!()
        };
        // Keyed on the event id: a duplicate delivery finds the item and changes nothing.
        match self.table.put(item, Condition::Absent).await {
            Ok(()) | Err(TableError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
