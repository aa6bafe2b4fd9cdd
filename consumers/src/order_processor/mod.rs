//! The order processor: applies order events to the order item.
//!
//! Each write is one transaction: the applied-event marker (keyed on the
//! event id, so a duplicate delivery changes nothing) and the order, guarded
//! by its version (so concurrent deliveries cannot both win).

pub mod state;

use std::sync::Arc;

use async_trait::async_trait;
use switchyard_shared::items::{applied_event_key, order_key, Order, TableRecord};
use switchyard_shared::ports::{Condition, Table, TableError, TxOp};
use switchyard_shared::DomainEvent;

use crate::layers::{applied_event_marker, Delivery, HandlerError, MessageHandler};
use state::Decision;

pub const NAME: &str = "order-processor";

/// How often a lost version race is re-decided before the message is retried later.
const MAX_CONFLICTS: usize = 5;

pub struct OrderProcessor {
    table: Arc<dyn Table>,
}

impl OrderProcessor {
    pub fn new(table: Arc<dyn Table>) -> Self {
        OrderProcessor { table }
    }
}

#[async_trait]
impl MessageHandler for OrderProcessor {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let event = DomainEvent::from_envelope(&d.envelope)
            .map_err(|e| HandlerError::permanent(e.to_string()))?;
        let marker_key = applied_event_key(d.envelope.id, NAME);
        if self.table.get_text(&marker_key).await?.is_some() {
            tracing::debug!("event already applied");
            return Ok(());
        }
        let key = order_key(event.order_id());
        let mut current = self
            .table
            .get_text(&key)
            .await?
            .map(|text| Order::from_text(&text))
            .transpose()?;
        for _ in 0..MAX_CONFLICTS {
            let order = match state::decide(
                current.as_ref(),
                &event,
                d.envelope.id,
                d.envelope.correlation_id,
            ) {
                Decision::Write(mut order) => {
                    order.traceparent = Some(d.trace);
                    order
                }
                Decision::NotYet(reason) => return Err(HandlerError::retry(reason)),
                Decision::Reject(reason) => return Err(HandlerError::permanent(reason)),
            };
            let guard = match &current {
                None => Condition::Absent,
                Some(o) => Condition::VersionIs(o.version),
            };
            let ops = vec![
                TxOp::Put {
                    item: applied_event_marker(&marker_key),
                    condition: Condition::Absent,
                },
                TxOp::Put {
                    item: order.to_item(),
                    condition: guard,
                },
            ];
            match self.table.transact(ops).await {
                Ok(()) => return Ok(()),
                Err(TableError::TransactionCancelled { failures }) => {
                    if failures.first().is_some_and(Option::is_some) {
                        return Ok(()); // a concurrent delivery of this very event won
                    }
                    // Lost the version race: decide again on the order as it is now.
                    current = match failures.get(1).cloned().flatten() {
                        Some(Some(item)) => Some(Order::from_item(&item)?),
                        Some(None) | None => self
                            .table
                            .get_text(&key)
                            .await?
                            .map(|text| Order::from_text(&text))
                            .transpose()?,
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(HandlerError::retry(format!(
            "order {} kept changing under us",
            event.order_id()
        )))
    }
}
