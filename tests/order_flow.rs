//! The order flow through the embedded system: the state machine under
//! every arrival order, duplicates, and poison messages.

mod common;

use common::*;
use switchyard::state::StateSnapshot;
use switchyard_shared::events::OrderStatus;
use switchyard_shared::ports::OutgoingMessage;

type MakeEvent = fn(&str) -> switchyard_shared::Envelope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrival_order_ends_in_the_same_state() {
    let histories: Vec<(Vec<MakeEvent>, OrderStatus, u64)> = vec![
        (
            vec![|o| placed(o, 500), |o| paid(o, 500), shipped],
            OrderStatus::Shipped,
            3,
        ),
        (
            vec![|o| placed(o, 500), |o| paid(o, 500), cancelled],
            OrderStatus::Cancelled,
            3,
        ),
        (
            vec![|o| placed(o, 500), cancelled],
            OrderStatus::Cancelled,
            2,
        ),
    ];
    let t = start().await;
    let mut expected = Vec::new();
    for (h, (history, status, version)) in histories.iter().enumerate() {
        for (p, arrival) in permutations(history).into_iter().enumerate() {
            let order_id = format!("o-{h}-{p}");
            // One publish per event, in this arrival order.
            for make in arrival {
                t.system
                    .publisher
                    .publish(&[make(&order_id)])
                    .await
                    .unwrap()
                    .into_result()
                    .unwrap();
            }
            expected.push((order_id, *status, *version));
        }
    }
    t.system.wait_quiet(QUIET).await.unwrap();
    let snapshot = StateSnapshot::of(&*t.system.table).await.unwrap();
    for (order_id, status, version) in expected {
        let o = &snapshot.orders[&order_id];
        assert_eq!((o.status, o.version), (Some(status), version), "{order_id}");
    }
    let dead: u64 = t
        .system
        .queue_stats()
        .unwrap()
        .iter()
        .filter(|q| q.name.ends_with("-dlq"))
        .map(|q| q.visible)
        .sum();
    assert_eq!(dead, 0, "a valid history dead-lettered something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_every_event_changes_nothing() {
    let once = start().await;
    let twice = start().await;
    let events = vec![
        placed("d-1", 700),
        paid("d-1", 700),
        shipped("d-1"),
        placed("d-2", 300),
        cancelled("d-2"),
    ];
    for e in &events {
        once.system
            .publisher
            .publish(std::slice::from_ref(e))
            .await
            .unwrap();
        twice
            .system
            .publisher
            .publish(&[e.clone(), e.clone()])
            .await
            .unwrap();
    }
    // And once more after everything settled: late duplicates too.
    twice.system.wait_quiet(QUIET).await.unwrap();
    twice.system.publisher.publish(&events).await.unwrap();
    once.system.wait_quiet(QUIET).await.unwrap();
    twice.system.wait_quiet(QUIET).await.unwrap();
    let a = StateSnapshot::of(&*once.system.table).await.unwrap();
    let b = StateSnapshot::of(&*twice.system.table).await.unwrap();
    assert_eq!(a.orders["d-1"].status, Some(OrderStatus::Shipped));
    assert_eq!(a, b, "diff: {:?}", b.diff(&a));
    let dead: u64 = twice
        .system
        .queue_stats()
        .unwrap()
        .iter()
        .filter(|q| q.name.ends_with("-dlq"))
        .map(|q| q.visible)
        .sum();
    assert_eq!(dead, 0, "a duplicate was dead-lettered instead of ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_reaches_the_dlq_with_its_reason_and_the_batch_succeeds() {
    let t = start().await;
    let consumer = t
        .system
        .topology
        .consumer("order-processor")
        .unwrap()
        .clone();
    let queue = t.system.store.queue(&consumer.queue_name()).unwrap();
    use switchyard_shared::ports::Queue;
    // The poison rides in the same batch as good messages.
    let good: Vec<_> = (0..4).map(|i| placed(&format!("g-{i}"), 100)).collect();
    let mut batch: Vec<OutgoingMessage> = good
        .iter()
        .map(|e| OutgoingMessage::new(e.to_json()))
        .collect();
    batch.insert(
        2,
        OutgoingMessage::new("{\"this\": \"is not an envelope\"}"),
    );
    queue.send_batch(batch).await.unwrap();
    t.system.wait_quiet(QUIET).await.unwrap();

    let snapshot = StateSnapshot::of(&*t.system.table).await.unwrap();
    for i in 0..4 {
        assert_eq!(
            snapshot.orders[&format!("g-{i}")].status,
            Some(OrderStatus::Placed)
        );
    }
    let dead = t
        .system
        .store
        .list_messages(&consumer.dlq_name(), 10)
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        dead[0].receive_count, consumer.queue.max_receive_count,
        "dead-lettered before maxReceiveCount"
    );
    let reason = dead[0].last_failure.as_deref().unwrap_or_default();
    assert!(reason.contains("malformed envelope"), "reason: {reason}");
    assert_eq!(
        dead[0].source_queue.as_deref(),
        Some(consumer.queue_name().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_transition_is_dead_lettered_with_the_state_machine_reason() {
    let t = start().await;
    t.system
        .publisher
        .publish(&[placed("x", 100), cancelled("x")])
        .await
        .unwrap();
    t.system.wait_quiet(QUIET).await.unwrap();
    t.system.publisher.publish(&[shipped("x")]).await.unwrap();
    t.system.wait_quiet(QUIET).await.unwrap();
    let dead = t
        .system
        .store
        .list_messages("order-processor-dlq", 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .last_failure
            .as_deref()
            .unwrap()
            .contains("cancelled and cannot ship"),
        "{dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_flow_through_the_stream_to_the_notifier() {
    let t = start().await;
    t.system
        .publisher
        .publish(&[placed("n-1", 100), paid("n-1", 100), shipped("n-1")])
        .await
        .unwrap();
    t.system.wait_quiet(QUIET).await.unwrap();
    let notes = t
        .system
        .table
        .query("ORDER#n-1", Some("NOTE#"))
        .await
        .unwrap();
    let mut summaries: Vec<String> = notes
        .iter()
        .map(|n| n["summary"].as_str().unwrap().to_owned())
        .collect();
    summaries.sort();
    assert_eq!(
        summaries,
        vec![
            "order n-1 is now PAID",
            "order n-1 is now PLACED",
            "order n-1 is now SHIPPED"
        ]
    );
}
