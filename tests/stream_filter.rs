//! A stream consumer's `filter_criteria` on the embedded stream worker:
//! records the filter drops never reach the handler, and the checkpoint moves
//! past them, also when every record of a read is dropped.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use router_rules::Topology;
use serde_json::json;
use switchyard::runtime::StreamWorkerConfig;
use switchyard_consumers::stream_reactor::StreamReactor;
use switchyard_shared::ports::{
    ChangeStream, Condition, EventPublisher, PublishError, PublishReport, Table,
};
use switchyard_shared::Envelope;

/// Keeps the `order_id` of every event published.
#[derive(Default)]
struct Published(Mutex<Vec<String>>);

#[async_trait]
impl EventPublisher for Published {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        let mut seen = self.0.lock().unwrap();
        seen.extend(
            events
                .iter()
                .map(|e| e.detail["order_id"].as_str().unwrap_or_default().to_owned()),
        );
        Ok(PublishReport {
            published: events.iter().map(|e| e.id).collect(),
            failed: Vec::new(),
        })
    }
}

/// An idempotency marker, as the consumers write them: never an event.
async fn marker(table: &dyn Table, n: usize) {
    let item =
        json!({ "pk": format!("EVENT#{n}"), "sk": "order-processor", "type": "applied-event" });
    table
        .put(item.as_object().unwrap().clone(), Condition::Absent)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_records_never_reach_the_reactor_and_the_checkpoint_passes_them() {
    let store = common::one_shard_store("reactor-failures");
    let table = store.table();
    // Orders the reactor would turn into events, half of them filtered out,
    // between markers; the tail is markers only, so the last reads pass nothing.
    for i in 0..4 {
        common::place_order(&table, &format!("keep-{i}")).await;
        marker(&table, 2 * i).await;
        common::place_order(&table, &format!("drop-{i}")).await;
        marker(&table, 2 * i + 1).await;
    }
    for n in 100..120 {
        marker(&table, n).await;
    }
    let stream = Arc::new(store.stream());
    let shard = stream.shards().await.unwrap().remove(0);
    let latest = stream.latest_sequence(&shard).unwrap();

    let mut spec = Topology::builtin().stream_consumers[0].clone();
    spec.batch_size = 2;
    spec.filter_criteria = vec![json!({
        "eventName": ["INSERT"],
        "dynamodb": { "Keys": { "pk": { "S": [{ "prefix": "ORDER#keep-" }] } } }
    })];
    let config =
        StreamWorkerConfig::for_consumer(&spec, Duration::from_millis(1), Duration::from_millis(5))
            .unwrap();
    let published = Arc::new(Published::default());
    let reactor = Arc::new(StreamReactor::new(published.clone()));
    common::run_stream_worker_until(&store, "reactor-failures", reactor, config, latest).await;

    let mut seen = published.0.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["keep-0", "keep-1", "keep-2", "keep-3"]);
}

#[test]
fn the_builtin_reactor_filter_is_decided_without_building_records() {
    let spec = &Topology::builtin().stream_consumers[0];
    let filter = spec.filter().unwrap().expect("the reactor has a filter");
    assert_eq!(filter.plain_patterns(), spec.filter_criteria.len());
}
