//! The audit log in the whole system: a replayed log with every fault at
//! once, and an assertion on what the audit log wrote.

use std::collections::BTreeSet;

use switchyard::replay::{generate, EventLog};
use switchyard::scenario::{Scenario, ScenarioRun};
use switchyard_custom_consumer::{registry, topology, AUDIT_ITEM, NAME};

const ORDER_EVENTS: &[&str] = &["OrderPlaced", "OrderPaid", "OrderCancelled", "OrderShipped"];

fn scenario(log: EventLog) -> Scenario {
    Scenario::from_log(log)
        .topology(topology())
        .registry(registry())
}

/// `(order id, event id, detail-type)` of every audit entry.
fn audited(run: &ScenarioRun) -> BTreeSet<(String, String, String)> {
    let field = |item: &switchyard_shared::ports::Item, name: &str| {
        item[name].as_str().unwrap_or_default().to_owned()
    };
    let items = run.items_of_type(AUDIT_ITEM);
    let entries: BTreeSet<_> = items
        .iter()
        .map(|i| {
            (
                field(i, "order_id"),
                field(i, "event_id"),
                field(i, "detail_type"),
            )
        })
        .collect();
    assert_eq!(
        entries.len(),
        items.len(),
        "an event audited under two keys"
    );
    entries
}

#[tokio::test]
async fn every_order_event_is_audited_once_with_every_fault_at_once() -> anyhow::Result<()> {
    // Payments logged before their placements: the order processor retries
    // them; the audit log records every event as it comes.
    let log = generate::out_of_order(11, 30);
    let expected: BTreeSet<(String, String, String)> = log
        .events
        .iter()
        .map(|l| &l.event)
        .filter(|e| ORDER_EVENTS.contains(&e.detail_type.as_str()))
        .map(|e| {
            let order_id = e.detail["order_id"].as_str().unwrap().to_owned();
            (order_id, e.id.to_string(), e.detail_type.clone())
        })
        .collect();
    assert!(expected.len() >= 60, "{} order events", expected.len());

    let clean = scenario(log.clone()).run().await?;
    clean.assert_accounted();
    assert_eq!(audited(&clean), expected);

    let faulty = scenario(log)
        .faults("duplicate=0.3,reorder=8,crash=0.2,transient=0.05,visibility-expiry=0.1".parse()?)
        .seed(5)
        .run()
        .await?;
    // Every event applied by every consumer it reaches, the audit log included
    // (its idempotency markers say so), or dead-lettered with a reason.
    faulty.assert_accounted();
    faulty.assert_same_outcome(&clean);
    assert_eq!(audited(&faulty), expected);
    let counts = &faulty.report.consumers[NAME];
    assert!(counts.crashes > 0 && counts.redeliveries > 0, "{counts:?}");
    assert!(faulty.report.duplicates > 0);
    assert!(faulty
        .dead_letters
        .iter()
        .all(|d| !d.queue.starts_with(NAME)));
    Ok(())
}
