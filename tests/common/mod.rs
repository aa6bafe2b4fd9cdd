//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use router_rules::Topology;
use switchyard::runtime::{run_stream_worker, RecordWaiter, StreamWorkerConfig};
use switchyard::{EmbeddedSystem, RuntimeOptions};
use switchyard_consumers::order_processor::state::{decide, Decision};
use switchyard_consumers::StreamHandler;
use switchyard_shared::embedded::{EmbeddedStore, QueueConfig, StoreOptions};
use switchyard_shared::events::{
    EventType, LineItem, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped,
};
use switchyard_shared::items::TableRecord;
use switchyard_shared::ports::{ChangeStream, Condition, Queue, Table};
use switchyard_shared::DomainEvent;
use switchyard_shared::Envelope;

pub const QUIET: Duration = Duration::from_secs(30);

/// An in-memory store with one shard (every record in one ordered shard)
/// and a stream consumer's on-failure queue, for stream worker tests.
pub fn one_shard_store(on_failure_queue: &str) -> Arc<EmbeddedStore> {
    let store = EmbeddedStore::open_with(
        ":memory:",
        StoreOptions {
            shards: 1,
            ..Default::default()
        },
    )
    .unwrap();
    store
        .create_queue(QueueConfig::new(on_failure_queue))
        .unwrap();
    store
}

/// Writes the order item that placing `order_id` makes (an INSERT record).
pub async fn place_order(table: &dyn Table, order_id: &str) {
    let event = DomainEvent::from_envelope(&placed(order_id, 1)).unwrap();
    let Decision::Write(order) = decide(None, &event, uuid::Uuid::now_v7(), uuid::Uuid::now_v7())
    else {
        panic!("placing must write")
    };
    table.put(order.to_item(), Condition::Absent).await.unwrap();
}

/// Runs a stream worker over the only shard of a [`one_shard_store`] until
/// the consumer's checkpoint is `until` (or 20 s pass: a failure), then stops it.
pub async fn run_stream_worker_until(
    store: &Arc<EmbeddedStore>,
    on_failure_queue: &str,
    reactor: Arc<dyn StreamHandler>,
    config: StreamWorkerConfig,
    until: Option<String>,
) {
    let stream = Arc::new(store.stream());
    let shard = stream.shards().await.unwrap().remove(0);
    let consumer = config.consumer.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let on_failure: Arc<dyn Queue> = Arc::new(store.queue(on_failure_queue).unwrap());
    let worker = tokio::spawn(run_stream_worker(
        stream.clone(),
        Arc::new(NoWait),
        shard.clone(),
        reactor,
        on_failure,
        config,
        stopped,
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stream.checkpoint(&consumer, &shard).await.unwrap() != until {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream worker's checkpoint never reached {until:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    worker.await.unwrap();
}

/// A stream worker's waiter that just lets the idle wait pass.
pub struct NoWait;

#[async_trait]
impl RecordWaiter for NoWait {
    async fn wait_for_records(&self, _: &str, _: Option<&str>, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}

/// A running in-memory system and the folder its blobs live in.
pub struct TestSystem {
    pub system: EmbeddedSystem,
    pub _blobs: tempfile::TempDir,
}

pub fn fast_options() -> RuntimeOptions {
    RuntimeOptions {
        retry_base: Duration::from_millis(2),
        retry_cap: Duration::from_millis(20),
        poll_wait: Duration::from_millis(50),
        ..RuntimeOptions::default()
    }
}

pub async fn start() -> TestSystem {
    start_with(Topology::builtin()).await
}

pub async fn start_with(topology: Topology) -> TestSystem {
    let blobs = tempfile::tempdir().unwrap();
    let mut system = EmbeddedSystem::in_memory(blobs.path(), Arc::new(topology)).unwrap();
    system.start(&fast_options()).await.unwrap();
    TestSystem {
        system,
        _blobs: blobs,
    }
}

pub fn placed(order_id: &str, total: u64) -> Envelope {
    OrderPlaced {
        order_id: order_id.into(),
        customer_id: "c-1".into(),
        items: vec![LineItem {
            sku: "S".into(),
            quantity: 1,
            unit_price_cents: total,
        }],
        total_cents: total,
        currency: "EUR".into(),
    }
    .into_envelope()
}

pub fn paid(order_id: &str, total: u64) -> Envelope {
    OrderPaid {
        order_id: order_id.into(),
        payment_id: format!("p-{order_id}"),
        amount_cents: total,
    }
    .into_envelope()
}

pub fn shipped(order_id: &str) -> Envelope {
    OrderShipped {
        order_id: order_id.into(),
        carrier: "DHL".into(),
        tracking_number: "T1".into(),
    }
    .into_envelope()
}

pub fn cancelled(order_id: &str) -> Envelope {
    OrderCancelled {
        order_id: order_id.into(),
        reason: "changed mind".into(),
    }
    .into_envelope()
}

pub fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let head = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, head.clone());
            out.push(p);
        }
    }
    out
}
