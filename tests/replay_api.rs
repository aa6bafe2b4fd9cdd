//! The scenario API: time windows, pattern filters, seeds, and what a run
//! hands back (state, dead letters, emitted events, blobs).

use chrono::Duration as TimeDelta;
use serde_json::json;
use switchyard::replay::{generate, EventLog, FaultSpec};
use switchyard::scenario::Scenario;
use switchyard_shared::events::OrderStatus;
use switchyard_shared::items::ImageStatus;

fn small_log() -> EventLog {
    generate::orders_with_images(11, 40)
}

fn small(log: EventLog) -> Scenario {
    Scenario::from_log(log).variants(vec![
        "64=64x64:cover:jpeg:80".parse().unwrap(),
        "16=16x16:cover:jpeg:80".parse().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_and_a_filter_pick_the_events_replayed() {
    let log = small_log();
    let placed = log
        .events
        .iter()
        .filter(|e| e.event.detail_type == "OrderPlaced")
        .count();
    let only_placed = small(log.clone())
        .filter(json!({"detail-type": ["OrderPlaced"]}))
        .run()
        .await
        .unwrap();
    let r = &only_placed.report;
    assert_eq!(
        (r.selected, r.filtered_out),
        (placed, log.events.len() - placed)
    );
    assert_eq!(only_placed.snapshot.orders.len(), placed);
    assert!(only_placed
        .snapshot
        .orders
        .values()
        .all(|o| o.status == Some(OrderStatus::Placed) && o.images.is_empty()));
    only_placed.assert_accounted();

    // The first ten seconds of the log: the events before, and only those.
    let start = log.events.iter().map(|e| e.event.time).min().unwrap();
    let to = start + TimeDelta::seconds(10);
    let early = log.events.iter().filter(|e| e.event.time < to).count();
    let windowed = small(log.clone())
        .window(None, Some(to))
        .run()
        .await
        .unwrap();
    assert_eq!(windowed.report.selected, early);
    assert_eq!(windowed.report.outside_window, log.events.len() - early);
    windowed.assert_accounted();

    let err = small(log)
        .filter(json!({"detail-type": "OrderPlaced"}))
        .run()
        .await
        .err()
        .expect("a pattern value must be an array");
    assert!(format!("{err:#}").contains("--filter"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_hands_back_emitted_events_blobs_and_a_reproducible_plan() {
    let faults = FaultSpec::none().duplicate(0.3).reorder(8);
    let a = small(small_log())
        .faults(faults)
        .seed(5)
        .run()
        .await
        .unwrap();
    let b = small(small_log())
        .faults(faults)
        .seed(5)
        .run()
        .await
        .unwrap();
    assert_eq!(
        a.report.duplicates, b.report.duplicates,
        "same seed, same plan"
    );
    assert_eq!(a.report.published, b.report.published);
    assert!(a.report.duplicates > 0);
    a.assert_same_outcome(&b);
    a.assert_accounted();
    a.assert_outbox_complete();

    // Every ready image was announced once; every rejected one too, with its code.
    let images: Vec<_> = a
        .snapshot
        .orders
        .values()
        .flat_map(|o| o.images.values())
        .collect();
    let ready = images
        .iter()
        .filter(|i| i.status == ImageStatus::Ready)
        .count();
    assert!(ready > 0);
    assert_eq!(a.emitted_of("ImageProcessed").len(), ready);
    assert_eq!(
        a.emitted_of("ImageRejected").len(),
        images.len() - ready,
        "{images:?}"
    );
    // Thumbnails are blobs beside the originals.
    let thumbnails: Vec<u64> = a
        .blobs
        .iter()
        .filter(|(k, _)| k.starts_with("thumbnails/"))
        .map(|(_, size)| *size)
        .collect();
    assert_eq!(thumbnails.len(), 2 * ready);
    assert!(thumbnails.iter().all(|size| *size > 0), "{thumbnails:?}");
    let first = a.snapshot.orders.keys().next().unwrap().clone();
    assert!(a.order(&first).version >= 1);
}
