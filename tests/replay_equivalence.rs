//! Equivalence: for each fixture, the final table state under every fault
//! kind, alone and combined, equals the fault-free state; the same things
//! are dead-lettered; the same thumbnails are written; and nothing is lost
//! (every event applied, or in a DLQ with a reason, or refused at publish
//! with one).

use std::collections::{BTreeMap, BTreeSet};

use switchyard::replay::{EventLog, FaultSpec};
use switchyard::scenario::{Scenario, ScenarioRun};
use switchyard::state::StateSnapshot;
use switchyard_shared::events::OrderStatus;
use switchyard_shared::items::ImageStatus;
use uuid::Uuid;

/// The allocator the `switchyard` binary runs on (these replays allocate
/// for every message, and the system allocator was a sixth of their CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ORDERS: &str = "fixtures/orders-1000.jsonl";
const OUT_OF_ORDER: &str = "fixtures/out-of-order.jsonl";
const POISON: &str = "fixtures/poison.jsonl";

/// The fixture, with small thumbnails: resizing to 512x512 in a debug build
/// would dominate the run without testing anything replay-specific.
fn scenario(fixture: &str) -> Scenario {
    Scenario::replay(fixture).variants(vec![
        "64=64x64:cover:jpeg:80".parse().unwrap(),
        "16=16x16:cover:jpeg:80".parse().unwrap(),
    ])
}

/// Every fault kind alone, then all of them at once.
fn fault_kinds() -> Vec<(&'static str, FaultSpec)> {
    vec![
        ("duplicate", FaultSpec::none().duplicate(0.3)),
        ("reorder", FaultSpec::none().reorder(64)),
        ("crash", FaultSpec::none().crash(0.15)),
        ("transient", FaultSpec::none().transient(0.05)),
        (
            "visibility-expiry",
            FaultSpec::none().visibility_expiry(0.1),
        ),
        (
            "combined",
            "duplicate=0.2,reorder=32,crash=0.1,transient=0.03,visibility-expiry=0.05"
                .parse()
                .unwrap(),
        ),
    ]
}

/// The status each order's history ends in, read from the log alone
/// (leaving out the events in `poison`).
fn expected_statuses(log: &EventLog, poison: &BTreeSet<Uuid>) -> BTreeMap<String, OrderStatus> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in log.events.iter().filter(|e| !poison.contains(&e.event.id)) {
        if let Some(id) = e.event.detail["order_id"].as_str() {
            if e.event.detail_type.starts_with("Order") {
                seen.entry(id.to_owned())
                    .or_default()
                    .push(e.event.detail_type.clone());
            }
        }
    }
    seen.into_iter()
        .filter(|(_, types)| types.iter().any(|t| t == "OrderPlaced"))
        .map(|(id, types)| {
            let has = |t: &str| types.iter().any(|x| x == t);
            let status = if has("OrderShipped") {
                OrderStatus::Shipped
            } else if has("OrderCancelled") {
                OrderStatus::Cancelled
            } else if has("OrderPaid") {
                OrderStatus::Paid
            } else {
                OrderStatus::Placed
            };
            (id, status)
        })
        .collect()
}

fn statuses(s: &StateSnapshot) -> BTreeMap<String, OrderStatus> {
    s.orders
        .iter()
        .filter_map(|(id, o)| o.status.map(|st| (id.clone(), st)))
        .collect()
}

/// Runs every fault kind against the fault-free run of `fixture`. The runs
/// go side by side: each waits on retries and visibility timeouts, and
/// those waits overlap.
async fn equivalent_under_every_fault(fixture: &str, clean: &ScenarioRun) {
    clean.assert_accounted();
    clean.assert_outbox_complete();
    let kinds = fault_kinds();
    let runs = futures::future::join_all(kinds.iter().enumerate().map(|(seed, (_, faults))| {
        scenario(fixture)
            .faults(*faults)
            .seed(seed as u64 + 1)
            .run()
    }))
    .await;
    for ((name, faults), run) in kinds.into_iter().zip(runs) {
        let run = run.unwrap_or_else(|e| panic!("{fixture} with {name}: {e:#}"));
        eprintln!("{fixture} with {name}:\n{}", run.report);
        run.assert_accounted();
        run.assert_same_outcome(clean);
        run.assert_outbox_complete();
        assert_eq!(
            run.report.state_digest, clean.report.state_digest,
            "{fixture} with {name}: digest"
        );
        // The faults happened: each kind left its mark in the report.
        let r = &run.report;
        let c = |f: fn(&switchyard::replay::faults::ConsumerCounts) -> u64| {
            r.consumers.values().map(f).sum::<u64>()
        };
        if faults.duplicate > 0.0 {
            assert!(r.duplicates > 0, "{name}: no duplicates");
        }
        if faults.crash > 0.0 {
            assert!(c(|x| x.crashes) > 0, "{name}: no crashes");
        }
        if faults.transient > 0.0 {
            assert!(r.transient_faults[0] > 0, "{name}: no transient faults");
        }
        if faults.visibility_expiry > 0.0 {
            assert!(c(|x| x.expired) > 0, "{name}: no expiries");
        }
        // Crashes and transient errors always bring messages back. An expiry
        // does only if another poller receives the message before the handler
        // deletes it (as on SQS), so it is not asked to here.
        if faults.crash > 0.0 || faults.transient > 0.0 {
            assert!(r.retries() > 0, "{name}: nothing was retried");
        }
    }
}

/// The fault-free run of a fixture, and the fixture.
async fn clean_run(fixture: &str) -> (ScenarioRun, EventLog) {
    let run = scenario(fixture).run().await.unwrap();
    let log = EventLog::read(&std::path::Path::new("tests").join(fixture)).unwrap();
    (run, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_orders_with_images_end_the_same_under_every_fault() {
    let (clean, log) = clean_run(ORDERS).await;
    assert_eq!(
        statuses(&clean.snapshot),
        expected_statuses(&log, &BTreeSet::new())
    );
    assert_eq!(clean.snapshot.orders.len(), 1000);
    assert!(clean.dead_letters.is_empty(), "{:?}", clean.dead_letters);
    // Good photos are READY with two thumbnails; bad files are REJECTED with a code.
    let images: Vec<_> = clean
        .snapshot
        .orders
        .values()
        .flat_map(|o| o.images.values())
        .collect();
    assert_eq!(images.len(), log.blobs.len());
    let rejected = images
        .iter()
        .filter(|i| i.status == ImageStatus::Rejected)
        .count();
    assert!(rejected > 0 && rejected < images.len() / 4, "{rejected}");
    for i in images.iter().filter(|i| i.status == ImageStatus::Ready) {
        assert_eq!(i.variants.len(), 2, "{i:?}");
    }
    let thumbnails = clean
        .blobs
        .keys()
        .filter(|k| k.starts_with("thumbnails/"))
        .count();
    assert_eq!(thumbnails, 2 * (images.len() - rejected));
    equivalent_under_every_fault(ORDERS, &clean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_before_placements_converge_under_every_fault() {
    let (clean, log) = clean_run(OUT_OF_ORDER).await;
    assert_eq!(
        statuses(&clean.snapshot),
        expected_statuses(&log, &BTreeSet::new())
    );
    assert!(clean.dead_letters.is_empty(), "{:?}", clean.dead_letters);
    // The early events had to wait for their turn.
    assert!(clean.report.consumers["order-processor"].failures > 0);
    equivalent_under_every_fault(OUT_OF_ORDER, &clean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_reasons_under_every_fault() {
    let (clean, log) = clean_run(POISON).await;
    // Two of each poison kind; the refused ones never reach a queue.
    let refused: Vec<&str> = clean
        .report
        .refused
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert_eq!(
        refused
            .iter()
            .filter(|r| r.contains("newer than this build"))
            .count(),
        2,
        "{refused:?}"
    );
    assert_eq!(
        refused.iter().filter(|r| r.contains("carrier")).count(),
        2,
        "{refused:?}"
    );
    let dlq = clean.dead_letter_keys();
    let count = |queue: &str, detail_type: &str| {
        dlq.iter()
            .filter(|(q, t, _)| q == queue && t == detail_type)
            .count()
    };
    assert_eq!(count("order-processor-dlq", "OrderPaid"), 6, "{dlq:?}");
    assert_eq!(count("order-processor-dlq", "OrderShipped"), 2, "{dlq:?}");
    assert_eq!(count("image-processor-dlq", "ImageUploaded"), 2, "{dlq:?}");
    assert_eq!(dlq.len(), 10, "{dlq:?}");
    clean.assert_dead_lettered("OrderPaid", "ghost-0-2", "not placed yet");
    for d in &clean.dead_letters {
        let reason = d.reason.as_deref().unwrap_or_default();
        let expected = match (d.detail_type.as_deref(), d.order_id.as_deref()) {
            (Some("OrderPaid"), Some(o)) if o.starts_with("ghost-") => "not placed yet",
            (Some("OrderPaid"), _) => "payment of|already paid",
            (Some("OrderShipped"), _) => "not paid yet",
            _ => "not in the blob store",
        };
        assert!(
            expected.split('|').any(|e| reason.contains(e)),
            "{d:?}: expected a reason with {expected:?}"
        );
    }
    // Every order ends where its history without the poison says.
    let poison: BTreeSet<Uuid> = clean
        .report
        .refused
        .iter()
        .map(|r| r.event_id)
        .chain(clean.dead_letters.iter().filter_map(|d| d.event_id))
        .collect();
    assert_eq!(poison.len(), 14);
    assert_eq!(statuses(&clean.snapshot), expected_statuses(&log, &poison));
    equivalent_under_every_fault(POISON, &clean).await;
}
