//! Delivery semantics of the pollers: FIFO order per message group under
//! failures, and a stream batch that retries from its failed record.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use switchyard::runtime::{run_queue_worker, QueueWorkerConfig, StreamWorkerConfig};
use switchyard_consumers::layers::message_service;
use switchyard_consumers::stream_reactor::StreamReactor;
use switchyard_consumers::{Delivery, HandlerError, MessageHandler, SqsBatchHandler};
use switchyard_shared::embedded::{EmbeddedStore, QueueConfig};
use switchyard_shared::ports::{
    ChangeStream, EventPublisher, OutgoingMessage, PublishError, PublishFailure, PublishReport,
    Queue,
};
use switchyard_shared::Envelope;
use tokio::sync::watch;

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Records what it sees; fails the first delivery of one chosen event.
struct Recorder {
    seen: Mutex<Vec<String>>,
    fail_once: Mutex<Option<String>>,
}

#[async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let label = d.envelope.detail["order_id"].as_str().unwrap().to_owned();
        let mut fail = self.fail_once.lock().unwrap();
        if fail.as_deref() == Some(label.as_str()) {
            *fail = None;
            return Err(HandlerError::retry("injected failure"));
        }
        self.seen.lock().unwrap().push(label);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_group_keeps_its_order_through_a_failure() {
    let store = EmbeddedStore::in_memory().unwrap();
    store
        .create_queue(QueueConfig::new("orders-dlq.fifo"))
        .unwrap();
    store
        .create_queue(QueueConfig::new("orders.fifo").with_dlq("orders-dlq.fifo", 5))
        .unwrap();
    let queue = Arc::new(store.queue("orders.fifo").unwrap());
    let mut messages = Vec::new();
    for i in 0..20 {
        for group in ["a", "b"] {
            let e = common::placed(&format!("{group}{i:02}"), 1);
            let mut m = OutgoingMessage::new(e.to_json());
            m.group_id = Some(group.into());
            m.dedup_id = Some(e.id.to_string());
            messages.push(m);
        }
    }
    queue.send_batch(messages).await.unwrap();
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        fail_once: Mutex::new(Some("a05".into())),
    });
    let handler = SqsBatchHandler::new(message_service("recorder", recorder.clone(), None));
    let config = QueueWorkerConfig {
        consumer: "recorder".into(),
        batch_size: 3,
        visibility_timeout: Duration::from_secs(30),
        wait: Duration::from_millis(20),
        retry_base: Duration::from_millis(1),
        retry_cap: Duration::from_millis(5),
    };
    let (stop, stopped) = watch::channel(false);
    // Two workers compete for the queue, as two Lambda instances would.
    let w1 = tokio::spawn(run_queue_worker(
        queue.clone(),
        handler.clone(),
        config.clone(),
        stopped.clone(),
    ));
    let w2 = tokio::spawn(run_queue_worker(queue.clone(), handler, config, stopped));
    eventually("all 40 messages", || {
        recorder.seen.lock().unwrap().len() >= 40
    })
    .await;
    stop.send(true).unwrap();
    let (_, _) = (w1.await, w2.await);
    let seen = recorder.seen.lock().unwrap().clone();
    for group in ["a", "b"] {
        let order: Vec<&String> = seen.iter().filter(|s| s.starts_with(group)).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("{group}{i:02}")).collect();
        assert_eq!(
            order,
            expected.iter().collect::<Vec<_>>(),
            "group {group} out of order"
        );
    }
}

/// Fails the publish of one event id the first time it is seen; records every call.
struct FlakyPublisher {
    calls: Mutex<Vec<Vec<Envelope>>>,
    fail_once: Mutex<Option<uuid::Uuid>>,
}

#[async_trait]
impl EventPublisher for FlakyPublisher {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        self.calls.lock().unwrap().push(events.to_vec());
        let mut report = PublishReport::default();
        let mut fail = self.fail_once.lock().unwrap();
        for e in events {
            if Some(e.id) == *fail {
                *fail = None;
                report.failed.push(PublishFailure {
                    event_id: e.id,
                    reason: "injected".into(),
                });
            } else {
                report.published.push(e.id);
            }
        }
        Ok(report)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_retries_from_its_failed_record() {
    let store = common::one_shard_store("reactor-failures");
    let table = store.table();
    // Five orders placed: five INSERT records, each a status change.
    for i in 0..5 {
        common::place_order(&table, &format!("s{i}")).await;
    }
    let stream = Arc::new(store.stream());
    let shard = stream.shards().await.unwrap().remove(0);
    let records = stream.read(&shard, None, 10).await.unwrap();
    assert_eq!(records.len(), 5);
    // The third record's event fails once.
    let third = switchyard_consumers::stream_reactor::derive_event(&records[2])
        .unwrap()
        .unwrap();
    let publisher = Arc::new(FlakyPublisher {
        calls: Mutex::new(Vec::new()),
        fail_once: Mutex::new(Some(third.id)),
    });
    let reactor = Arc::new(StreamReactor::new(publisher.clone()));
    let config = StreamWorkerConfig {
        consumer: "reactor".into(),
        batch_size: 10,
        retry_attempts: 3,
        retry_delay: Duration::from_millis(1),
        idle_wait: Duration::from_millis(5),
        filter: None,
    };
    let last = records[4].change.sequence_number.clone();
    common::run_stream_worker_until(&store, "reactor-failures", reactor, config, last).await;
    let calls = publisher.calls.lock().unwrap().clone();
    let ids = |call: &Vec<Envelope>| {
        call.iter()
            .map(|e| e.detail["order_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&calls[0]),
        vec!["s0", "s1", "s2", "s3", "s4"],
        "first batch holds every record"
    );
    assert_eq!(
        ids(&calls[1]),
        vec!["s2", "s3", "s4"],
        "the retry starts at the failed record"
    );
    assert_eq!(calls.len(), 2, "nothing retried after success");
    assert_eq!(calls[1][0].id, third.id, "the retried event keeps its id");
    let stats = store.queue_stats().unwrap();
    assert_eq!(
        stats
            .iter()
            .find(|q| q.name == "reactor-failures")
            .unwrap()
            .visible,
        0
    );
}
