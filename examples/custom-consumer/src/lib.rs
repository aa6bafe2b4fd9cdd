//! The audit log: one table item per order event, under the order. A
//! consumer added to Switchyard from a crate of one's own:
//!
//! - the handler ([`AuditLog`], a [`MessageHandler`]);
//! - its registration ([`register`]) beside the built-in handlers;
//! - its topology entry (`topology.yaml`, which extends the built-in one).
//!
//! `src/main.rs` is the whole `switchyard` command line with the audit log
//! in it; `src/bin/audit-log.rs` is its Lambda function.

use std::sync::Arc;

use router_rules::Topology;
use switchyard_consumers::registry::Registry;
use switchyard_consumers::{Delivery, HandlerError, MessageHandler};
use switchyard_shared::events::DomainEvent;
use switchyard_shared::ports::{Condition, Item, Table};

/// The handler's name, as the topology's `handler:` field gives it.
pub const NAME: &str = "audit-log";

/// The item type of an audit entry.
pub const AUDIT_ITEM: &str = "audit";

/// The topology this crate runs: the built-in one and the audit log.
pub fn topology() -> Topology {
    Topology::from_yaml(include_str!("../topology.yaml")).expect("topology.yaml is valid")
}

/// `registry` with the audit log in it.
pub fn register(registry: Registry) -> Registry {
    // `sqs`: behind the idempotency-marker layer, so a redelivered event is not
    // written twice (its write would be harmless anyway: same key, same item).
    registry.sqs(NAME, |deps| Ok(AuditLog::new(deps.table()?)))
}

/// Switchyard's handlers and the audit log.
pub fn registry() -> Registry {
    register(Registry::builtin())
}

pub struct AuditLog {
    table: Arc<dyn Table>,
}

impl AuditLog {
    pub fn new(table: Arc<dyn Table>) -> Self {
        AuditLog { table }
    }
}

#[async_trait::async_trait]
impl MessageHandler for AuditLog {
    async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let envelope = &delivery.envelope;
        // An event that cannot be read will not read better later: dead-letter it.
        let event = DomainEvent::from_envelope(envelope)
            .map_err(|e| HandlerError::permanent(format!("unreadable event: {e}")))?;
        let mut item = Item::new();
        item.insert("pk".into(), format!("AUDIT#{}", event.order_id()).into());
        item.insert(
            "sk".into(),
            format!("{}#{}", envelope.time.to_rfc3339(), envelope.id).into(),
        );
        item.insert("type".into(), AUDIT_ITEM.into());
        item.insert("order_id".into(), event.order_id().into());
        item.insert("event_id".into(), envelope.id.to_string().into());
        // The console's lineage shows the writes that name the event that made them.
        item.insert("last_event_id".into(), envelope.id.to_string().into());
        item.insert("detail_type".into(), envelope.detail_type.clone().into());
        self.table.put(item, Condition::Always).await?;
        Ok(())
    }
}
