//! The shared conformance suites against the embedded adapters, on an
//! in-memory database and on a file; and a reopened file keeps its state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_shared::conformance::{
    blob_suite, queue_suite, stream_suite, table_suite, EmbeddedQueueHarness,
};
use switchyard_shared::embedded::{
    EmbeddedStore, FolderBlobStore, MemoryBlobStore, QueueConfig, CAPABILITIES,
};
use switchyard_shared::ports::{ChangeStream, Condition, Key, OutgoingMessage, Queue, Table};

async fn all_suites(store: Arc<EmbeddedStore>, blob_root: &std::path::Path) {
    let table = store.table();
    table_suite(&table, table.capabilities()).await;
    // A second run shares the table with the first: nothing assumes it empty.
    table_suite(&table, CAPABILITIES).await;
    let stream = store.stream();
    stream_suite(&table, &stream, stream.capabilities()).await;
    stream_suite(&table, &stream, CAPABILITIES).await;
    queue_suite(&EmbeddedQueueHarness(Arc::clone(&store)), CAPABILITIES).await;
    let blobs = FolderBlobStore::new(blob_root).unwrap();
    blob_suite(&blobs, blobs.capabilities()).await;
    blob_suite(&blobs, CAPABILITIES).await;
    let blobs = MemoryBlobStore::new();
    blob_suite(&blobs, blobs.capabilities()).await;
    blob_suite(&blobs, CAPABILITIES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suites_pass_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    all_suites(
        EmbeddedStore::in_memory().unwrap(),
        &dir.path().join("blobs"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suites_pass_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("data/switchyard.db")).unwrap();
    all_suites(store, &dir.path().join("blobs")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_keeps_items_messages_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.db");
    let visibility = Duration::from_millis(100);
    let (shard, last_seq, in_flight_id) = {
        let store = EmbeddedStore::open(&path).unwrap();
        let table = store.table();
        for n in 0..3 {
            let item = json!({ "pk": format!("order#{n}"), "sk": "meta", "version": 1 });
            table
                .put(item.as_object().unwrap().clone(), Condition::Absent)
                .await
                .unwrap();
        }
        table
            .delete(&Key::new("order#2", "meta"), Condition::Present)
            .await
            .unwrap();

        store.create_queue(QueueConfig::new("work-dlq")).unwrap();
        store
            .create_queue(QueueConfig::new("work").with_dlq("work-dlq", 3))
            .unwrap();
        let q = store.queue("work").unwrap();
        q.send_batch(vec![
            OutgoingMessage::new("first"),
            OutgoingMessage::new("second"),
        ])
        .await
        .unwrap();
        let got = q
            .receive(1, visibility, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);

        let stream = store.stream();
        let shard = store
            .stream()
            .shards()
            .await
            .unwrap()
            .into_iter()
            .find(|s| stream.latest_sequence(s).unwrap().is_some());
        let shard = shard.expect("some shard has records");
        let last = stream.latest_sequence(&shard).unwrap().unwrap();
        stream
            .save_checkpoint("reactor", &shard, &last)
            .await
            .unwrap();
        (shard, last, got[0].message_id.clone())
        // the store is dropped here: connection closed
    };

    let store = EmbeddedStore::open(&path).unwrap();
    let table = store.table();
    let items = table.scan().await.unwrap();
    let pks: Vec<&str> = items.iter().map(|i| i["pk"].as_str().unwrap()).collect();
    assert_eq!(pks, ["order#0", "order#1"], "items survive, the delete too");

    let stream = store.stream();
    assert_eq!(
        stream
            .checkpoint("reactor", &shard)
            .await
            .unwrap()
            .as_deref(),
        Some(last_seq.as_str())
    );
    let mut records = Vec::new();
    for s in stream.shards().await.unwrap() {
        records.extend(stream.read(&s, None, 100).await.unwrap());
    }
    let mut names: Vec<String> = records.iter().map(|r| r.event_name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        ["INSERT", "INSERT", "INSERT", "REMOVE"],
        "stream records survive"
    );

    // The queue is still there, with both messages; the one in flight comes
    // back once its visibility runs out.
    let q = store.queue("work").unwrap();
    assert_eq!(
        q.config().dead_letter_queue.as_deref(),
        Some("work-dlq"),
        "redrive policy survives"
    );
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 2 && tokio::time::Instant::now() < until {
        got.extend(
            q.receive(10, Duration::from_secs(60), Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    let mut bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, ["first", "second"]);
    let redelivered = got.iter().find(|m| m.message_id == in_flight_id).unwrap();
    assert_eq!(
        redelivered.receive_count, 2,
        "the in-flight message was received before the restart"
    );
}
