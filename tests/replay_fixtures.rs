//! The fixtures in tests/fixtures are made by seeded generators; this keeps
//! them honest. Regenerate them with
//! `cargo test --test replay_fixtures -- --ignored regenerate_fixtures`
//! (or `switchyard replay generate KIND --orders N --seed 7 --out FILE`).

use std::path::PathBuf;

use switchyard::replay::{generate, EventLog, LoggedEvent};

const SEED: u64 = 7;

fn fixtures() -> Vec<(&'static str, EventLog)> {
    vec![
        (
            "orders-1000.jsonl",
            generate::orders_with_images(SEED, 1000),
        ),
        ("out-of-order.jsonl", generate::out_of_order(SEED, 100)),
        ("poison.jsonl", generate::poison(SEED, 60)),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
#[ignore = "writes tests/fixtures; run by hand after changing a generator"]
fn regenerate_fixtures() {
    for (name, log) in fixtures() {
        log.write(&dir().join(name)).unwrap();
    }
}

/// The events without `size_bytes`: the images come from the demo's
/// generators and encoders, whose bytes may change; the committed blobs stay
/// consistent with their committed events.
fn without_sizes(log: &EventLog) -> Vec<LoggedEvent> {
    let mut events = log.events.clone();
    for e in &mut events {
        if let Some(d) = e.event.detail.as_object_mut() {
            d.remove("size_bytes");
        }
        e.attributes.remove("size_bytes");
    }
    events
}

#[test]
fn committed_fixtures_are_what_the_generators_make() {
    for (name, generated) in fixtures() {
        let committed = EventLog::read(&dir().join(name)).unwrap();
        assert_eq!(
            without_sizes(&committed),
            without_sizes(&generated),
            "{name} differs from its generator; regenerate it"
        );
        let keys = |l: &EventLog| l.blobs.iter().map(|b| b.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&committed), keys(&generated), "{name}: blob keys");
    }
}

#[test]
fn fixtures_have_what_the_issue_asks_for() {
    let orders = EventLog::read(&dir().join("orders-1000.jsonl")).unwrap();
    let placed = orders
        .events
        .iter()
        .filter(|e| e.event.detail_type == "OrderPlaced")
        .count();
    assert_eq!(placed, 1000);
    assert!(orders.blobs.len() >= 100, "{} images", orders.blobs.len());
    // Realistic interleaving: consecutive events mostly belong to different orders.
    let switches = orders
        .events
        .windows(2)
        .filter(|w| w[0].event.detail["order_id"] != w[1].event.detail["order_id"])
        .count();
    assert!(switches > orders.events.len() * 9 / 10, "{switches}");

    let late = EventLog::read(&dir().join("out-of-order.jsonl")).unwrap();
    let mut paid_first = 0;
    for (i, e) in late.events.iter().enumerate() {
        if e.event.detail_type == "OrderPaid" {
            let placed_later = late.events[i..].iter().any(|p| {
                p.event.detail_type == "OrderPlaced"
                    && p.event.detail["order_id"] == e.event.detail["order_id"]
            });
            paid_first += usize::from(placed_later);
        }
    }
    assert!(
        paid_first >= 50,
        "{paid_first} payments before their placement"
    );
}
