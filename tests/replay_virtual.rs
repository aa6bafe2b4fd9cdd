//! Replay on the virtual clock: reproducible byte for byte under a seed, and
//! faithful to AWS's timing (a failed message returns after its visibility
//! timeout in virtual time, so an event that waits for its turn gets it).

use chrono::{DateTime, TimeDelta, Utc};
use switchyard::replay::{EventLog, FaultSpec, LoggedEvent, Rate, ReplayClock};
use switchyard::scenario::{Scenario, ScenarioRun};
use switchyard_shared::events::{
    EventType, LineItem, OrderPaid, OrderPlaced, OrderShipped, OrderStatus,
};
use switchyard_shared::Envelope;

const FIXTURES: [&str; 3] = [
    "fixtures/orders-1000.jsonl",
    "fixtures/out-of-order.jsonl",
    "fixtures/poison.jsonl",
];

const ALL_FAULTS: &str =
    "duplicate=0.2,reorder=32,crash=0.05,transient=0.02,visibility-expiry=0.05";

/// The fixture, with small thumbnails (a debug build resizing to 512x512
/// would dominate without testing anything about time).
fn scenario(fixture: &str) -> Scenario {
    Scenario::replay(fixture).variants(vec![
        "64=64x64:cover:jpeg:80".parse().unwrap(),
        "16=16x16:cover:jpeg:80".parse().unwrap(),
    ])
}

async fn faulty(fixture: &str, seed: u64) -> ScenarioRun {
    scenario(fixture)
        .faults(ALL_FAULTS.parse().unwrap())
        .seed(seed)
        .run()
        .await
        .unwrap_or_else(|e| panic!("{fixture} seed {seed}: {e:#}"))
}

/// The report as bytes, wall-clock durations left out.
fn bytes(run: &ScenarioRun) -> String {
    let r = run.report.without_wall_times();
    format!("{r}\n{}", serde_json::to_string(&r).unwrap())
}

/// Which fault decisions a run made: the same seed makes the same ones.
fn fault_schedule(run: &ScenarioRun) -> String {
    let r = &run.report;
    format!(
        "{:?} {:?} {} {}",
        r.consumers, r.transient_faults, r.stream_crashes, r.duplicates
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_report_byte_for_byte() {
    for fixture in FIXTURES {
        let clean = scenario(fixture).run().await.unwrap();
        let runs = [
            faulty(fixture, 11).await,
            faulty(fixture, 11).await,
            faulty(fixture, 11).await,
        ];
        let first = bytes(&runs[0]);
        for (i, run) in runs.iter().enumerate() {
            assert_eq!(
                bytes(run),
                first,
                "{fixture}: run {i} differs from run 0 under the same seed"
            );
            run.assert_accounted();
            run.assert_same_outcome(&clean);
        }
        let r = &runs[0].report;
        assert_eq!(r.clock, "virtual");
        assert!(
            r.retries() > 0 && r.transient_faults[0] > 0,
            "{fixture}: the faults did not fire\n{r}"
        );

        // Another seed: other fault decisions, the same final state.
        let other = faulty(fixture, 12).await;
        assert_ne!(
            fault_schedule(&other),
            fault_schedule(&runs[0]),
            "{fixture}: seeds 11 and 12 made the same fault decisions"
        );
        other.assert_accounted();
        other.assert_same_outcome(&clean);
        assert_eq!(other.report.state_digest, clean.report.state_digest);
    }
}

fn start() -> DateTime<Utc> {
    "2025-01-01T09:00:00Z".parse().unwrap()
}

/// `event` as published `secs` after the start, with an id of its own.
fn at(secs: i64, n: u8, event: impl EventType) -> LoggedEvent {
    let time = start() + TimeDelta::seconds(secs);
    let ms = u64::try_from(time.timestamp_millis()).unwrap();
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &[n; 10]).into_uuid();
    let mut e: Envelope = event.into_envelope().with_id(id);
    e.time = time;
    LoggedEvent::routed(&router_rules::Topology::builtin(), e).unwrap()
}

/// An order placed at 0 s and shipped at 1 s, whose payment is published
/// `paid_after` seconds in: the shipment arrives before what it depends on.
fn shipped_before_paid(paid_after: i64) -> EventLog {
    let id = "early-ship";
    EventLog {
        blobs: Vec::new(),
        events: vec![
            at(
                0,
                1,
                OrderPlaced {
                    order_id: id.into(),
                    customer_id: "customer-1".into(),
                    items: vec![LineItem {
                        sku: "SKU-1".into(),
                        quantity: 1,
                        unit_price_cents: 1200,
                    }],
                    total_cents: 1200,
                    currency: "EUR".into(),
                },
            ),
            at(
                1,
                2,
                OrderShipped {
                    order_id: id.into(),
                    carrier: "DHL".into(),
                    tracking_number: "TRK-1".into(),
                },
            ),
            at(
                paid_after,
                3,
                OrderPaid {
                    order_id: id.into(),
                    payment_id: "pay-1".into(),
                    amount_cents: 1200,
                },
            ),
        ],
    }
}

#[tokio::test]
async fn a_shipment_before_its_payment_waits_its_turn_in_virtual_time() {
    let topology = router_rules::Topology::builtin();
    let processor = topology
        .consumers
        .iter()
        .find(|c| c.name == "order-processor")
        .expect("the order processor");
    let visibility = i64::from(processor.queue.visibility_timeout_s);
    let receives = i64::from(processor.queue.max_receive_count);

    // Paid later than one visibility timeout after the shipment: on AWS the
    // shipment fails, returns after the timeout (and again), and is applied
    // once the payment is.
    let late = visibility + 15;
    let run = Scenario::from_log(shipped_before_paid(late))
        .rate(Rate::Log)
        .run()
        .await
        .unwrap();
    run.assert_accounted();
    assert_eq!(
        run.order("early-ship").status,
        Some(OrderStatus::Shipped),
        "{}",
        run.report
    );
    assert!(run.dead_letters.is_empty(), "{:?}", run.dead_letters);
    let counts = &run.report.consumers["order-processor"];
    assert_eq!(
        counts.failures, 2,
        "the shipment fails at 1 s and at 1 s + one timeout, then succeeds\n{}",
        run.report
    );
    // Virtual time passed: the log's span, and the retry after it.
    assert!(
        run.report.clock_secs >= (1 + 2 * visibility) as f64,
        "{}",
        run.report
    );

    // Paid only after the shipment has used up its receives: dead-lettered,
    // as AWS would.
    let too_late = 1 + receives * visibility + 60;
    let run = Scenario::from_log(shipped_before_paid(too_late))
        .rate(Rate::Log)
        .run()
        .await
        .unwrap();
    run.assert_accounted();
    run.assert_dead_lettered("OrderShipped", "early-ship", "");
    assert_eq!(run.order("early-ship").status, Some(OrderStatus::Paid));
}

#[tokio::test]
async fn the_wall_clock_still_replays_in_real_time() {
    let run = scenario("fixtures/out-of-order.jsonl")
        .clock(ReplayClock::Wall)
        .faults(FaultSpec::none().reorder(8))
        .run()
        .await
        .unwrap();
    run.assert_accounted();
    let virtual_run = scenario("fixtures/out-of-order.jsonl")
        .faults(FaultSpec::none().reorder(8))
        .run()
        .await
        .unwrap();
    virtual_run.assert_same_outcome(&run);
    assert_eq!(run.report.clock, "wall");
    assert_eq!(virtual_run.report.clock, "virtual");
}
