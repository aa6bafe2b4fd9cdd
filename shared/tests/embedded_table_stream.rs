//! Embedded table and stream behaviour beyond the shared suites: the wire
//! shape Lambda handlers get, waiting for records, atomic conditional
//! writes under concurrency, limits, fault injection and store options.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_shared::embedded::{
    EmbeddedStore, EmbeddedStream, FaultPlan, StoreError, StoreOptions,
};
use switchyard_shared::ports::{
    ChangeStream, Condition, Item, Key, StreamRecord, Table, TableError, TxOp,
};

fn item(v: Value) -> Item {
    v.as_object().expect("object").clone()
}

/// A put that must succeed.
async fn put(table: &dyn Table, v: Value, condition: Condition) {
    table.put(item(v), condition).await.unwrap();
}

/// Every record of every shard.
async fn all_records(stream: &EmbeddedStream) -> Vec<StreamRecord> {
    let mut all = Vec::new();
    for s in stream.shards().await.unwrap() {
        all.extend(stream.read(&s, None, 1000).await.unwrap());
    }
    all
}

/// The one shard that has records (tests that write a single key).
async fn shard_with_records(stream: &EmbeddedStream) -> String {
    let shards = stream.shards().await.unwrap();
    shards
        .into_iter()
        .find(|s| stream.latest_sequence(s).unwrap().is_some())
        .expect("a shard with records")
}

#[tokio::test]
async fn stream_records_have_lambdas_wire_shape() {
    let store = EmbeddedStore::in_memory().unwrap();
    let table = store.table();
    put(
        &table,
        json!({ "pk": "order#1", "sk": "meta", "status": "PLACED", "total": 12.5 }),
        Condition::Absent,
    )
    .await;
    put(
        &table,
        json!({ "pk": "order#1", "sk": "meta", "status": "PAID", "total": 12.5 }),
        Condition::Present,
    )
    .await;
    let stream = store.stream();
    let shard = shard_with_records(&stream).await;
    let mut event = aws_lambda_events::event::dynamodb::Event::default();
    event.records = stream.read(&shard, None, 10).await.unwrap();
    let wire = serde_json::to_value(&event).unwrap();

    let r = &wire["Records"][1];
    assert_eq!(r["eventName"], "MODIFY");
    assert_eq!(r["eventSource"], "aws:dynamodb");
    assert_eq!(r["awsRegion"], "us-east-1");
    assert!(r["eventSourceARN"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:dynamodb:us-east-1:000000000000:table/switchyard/stream/"));
    let d = &r["dynamodb"];
    assert_eq!(d["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert_eq!(
        d["Keys"],
        json!({ "pk": { "S": "order#1" }, "sk": { "S": "meta" } })
    );
    assert_eq!(d["NewImage"]["status"], json!({ "S": "PAID" }));
    assert_eq!(d["OldImage"]["status"], json!({ "S": "PLACED" }));
    assert_eq!(d["NewImage"]["total"], json!({ "N": "12.5" }));
    assert!(d["ApproximateCreationDateTime"].is_number());
    let seqs: Vec<&str> = wire["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap())
        .collect();
    assert!(
        seqs.iter()
            .all(|s| s.len() == 21 && s.bytes().all(|b| b.is_ascii_digit())),
        "{seqs:?}"
    );
    assert!(seqs[0] < seqs[1], "sequence numbers sort as strings");
    assert!(
        wire["Records"][0]["dynamodb"]
            .get("OldImage")
            .is_none_or(|o| o.as_object().is_some_and(|m| m.is_empty())),
        "INSERT has no old image"
    );

    // A handler deserialises exactly what it would get from Lambda.
    let back: aws_lambda_events::event::dynamodb::Event = serde_json::from_value(wire).unwrap();
    assert_eq!(back, event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_reader_wakes_on_a_write_and_sees_how_far_the_shard_is() {
    let store = EmbeddedStore::in_memory().unwrap();
    let table = store.table();
    let stream = store.stream();
    // find the shard of our key by writing it once
    put(
        &table,
        json!({ "pk": "k", "sk": "s", "n": 0 }),
        Condition::Always,
    )
    .await;
    let shard = shard_with_records(&stream).await;
    let caught_up = stream.latest_sequence(&shard).unwrap();
    assert!(
        !stream
            .wait_for_records(&shard, caught_up.as_deref(), Duration::ZERO)
            .await
            .unwrap(),
        "nothing new yet"
    );

    let (woke, put) = tokio::join!(
        stream.wait_for_records(&shard, caught_up.as_deref(), Duration::from_secs(10)),
        table.put(
            item(json!({ "pk": "k", "sk": "s", "n": 1 })),
            Condition::Always
        )
    );
    put.unwrap();
    assert!(woke.unwrap(), "the write woke the reader");
    let latest = stream.latest_sequence(&shard).unwrap();
    assert!(latest > caught_up);
    let fresh = stream.read(&shard, caught_up.as_deref(), 10).await.unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].change.sequence_number, latest);

    assert!(stream.latest_sequence("shardId-99999").is_err());
    assert!(
        stream
            .save_checkpoint("c", &shard, "not-a-number")
            .await
            .is_err(),
        "checkpoints are sequence numbers"
    );
}

#[tokio::test]
async fn sequence_numbers_rise_across_shards_and_survive_trimming() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = EmbeddedStore::open(&path).unwrap();
    let table = store.table();
    let stream = store.stream();
    for n in 0..20 {
        put(
            &table,
            json!({ "pk": format!("p{n}"), "sk": "s" }),
            Condition::Always,
        )
        .await;
    }
    let mut seqs: Vec<String> = all_records(&stream)
        .await
        .into_iter()
        .map(|r| r.change.sequence_number.unwrap())
        .collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 20, "globally unique");
    let max = seqs.last().unwrap().clone();

    assert_eq!(stream.trim(Duration::ZERO).unwrap(), 20);
    // Reopened, with every record trimmed: numbering still goes on.
    drop((table, stream, store));
    let store = EmbeddedStore::open(&path).unwrap();
    let (table, stream) = (store.table(), store.stream());
    put(&table, json!({ "pk": "p0", "sk": "s" }), Condition::Always).await;
    let after = all_records(&stream).await;
    assert_eq!(after.len(), 1);
    assert!(
        after[0].change.sequence_number.as_deref().unwrap() > max.as_str(),
        "never reused"
    );
    assert_eq!(
        after[0].event_name, "MODIFY",
        "trimming the stream does not touch the table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_are_atomic_under_concurrency() {
    let store = EmbeddedStore::in_memory().unwrap();
    let table = store.table();
    // Many writers race to create one item: exactly one wins.
    let mut tasks = Vec::new();
    for n in 0..16 {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let racer = item(json!({ "pk": "race", "sk": "s", "winner": n, "version": 0 }));
            table.put(racer, Condition::Absent).await.is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);

    // Optimistic increments with a version check lose no update.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 50 {
                let cur = table.get(&Key::new("race", "s")).await.unwrap().unwrap();
                let v = cur["version"].as_u64().unwrap();
                let mut next = cur.clone();
                next.insert("version".into(), json!(v + 1));
                match table.put(next, Condition::VersionIs(v)).await {
                    Ok(()) => done += 1,
                    Err(TableError::ConditionFailed { current, .. }) => {
                        assert_ne!(
                            current.unwrap()["version"],
                            json!(v),
                            "it failed because someone else won"
                        )
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        table.get(&Key::new("race", "s")).await.unwrap().unwrap()["version"],
        json!(200)
    );
}

#[tokio::test]
async fn dynamodb_limits_are_enforced() {
    let store = EmbeddedStore::in_memory().unwrap();
    let table = store.table();
    let big = item(json!({ "pk": "p", "sk": "s", "blob": "x".repeat(400 * 1024) }));
    assert!(
        matches!(table.put(big, Condition::Always).await, Err(TableError::InvalidItem(m)) if m.contains("400"))
    );
    assert!(matches!(
        table.transact(vec![]).await,
        Err(TableError::InvalidItem(_))
    ));
    let ops: Vec<TxOp> = (0..101)
        .map(|n| TxOp::Put {
            item: item(json!({ "pk": "p", "sk": n.to_string() })),
            condition: Condition::Always,
        })
        .collect();
    assert!(matches!(
        table.transact(ops).await,
        Err(TableError::InvalidItem(_))
    ));
    assert!(matches!(
        table.get(&Key::new("", "s")).await,
        Err(TableError::InvalidItem(_))
    ));
    assert!(
        table.scan().await.unwrap().is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn fault_plan_fails_table_and_blob_calls_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::in_memory().unwrap();
    let blobs = switchyard_shared::embedded::FolderBlobStore::new(dir.path())
        .unwrap()
        .with_faults(store.faults().clone());
    let table = store.table();
    let key = switchyard_shared::BlobKey::new("a/b.bin").unwrap();
    use switchyard_shared::ports::{BlobError, BlobStore};

    store
        .faults()
        .set(Some(FaultPlan {
            seed: 42,
            table_error_rate: 1.0,
            blob_error_rate: 1.0,
        }))
        .unwrap();
    let r = table
        .put(item(json!({ "pk": "p", "sk": "s" })), Condition::Always)
        .await;
    assert!(matches!(r, Err(TableError::Transient(_))), "{r:?}");
    assert!(matches!(
        table.get(&Key::new("p", "s")).await,
        Err(TableError::Transient(_))
    ));
    assert!(matches!(
        blobs
            .put(&key, bytes::Bytes::from_static(b"x"), "a/b")
            .await,
        Err(BlobError::Transient(_))
    ));
    assert!(
        table.scan().await.unwrap().is_empty(),
        "scan is never failed, and the failed put wrote nothing"
    );
    assert_eq!(store.faults().injected(), (2, 1));

    // At a partial rate some calls fail and the rest work.
    store
        .faults()
        .set(Some(FaultPlan {
            seed: 7,
            table_error_rate: 0.5,
            blob_error_rate: 0.0,
        }))
        .unwrap();
    let mut ok = 0;
    for n in 0..200 {
        ok += usize::from(
            table
                .put(
                    item(json!({ "pk": "p", "sk": n.to_string() })),
                    Condition::Always,
                )
                .await
                .is_ok(),
        );
    }
    assert!((50..150).contains(&ok), "{ok} of 200 succeeded at rate 0.5");
    assert_eq!(
        table.scan().await.unwrap().len(),
        ok,
        "exactly the acknowledged writes landed"
    );
    blobs
        .put(&key, bytes::Bytes::from_static(b"x"), "a/b")
        .await
        .unwrap();

    store.faults().set(None).unwrap();
    assert!(table.get(&Key::new("p", "0")).await.is_ok());
}

#[tokio::test]
async fn store_options_and_schema_versions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let eight = StoreOptions {
        shards: 8,
        ..StoreOptions::default()
    };
    let store = EmbeddedStore::open_with(&path, eight).unwrap();
    assert_eq!(store.stream().shards().await.unwrap().len(), 8);
    drop(store);
    // The shard count is fixed when the database is created.
    let two = StoreOptions {
        shards: 2,
        ..StoreOptions::default()
    };
    assert_eq!(
        EmbeddedStore::open_with(&path, two)
            .unwrap()
            .stream()
            .shards()
            .await
            .unwrap()
            .len(),
        8
    );

    assert!(matches!(
        EmbeddedStore::open_with(
            ":memory:",
            StoreOptions {
                shards: 0,
                ..StoreOptions::default()
            }
        ),
        Err(StoreError::InvalidOption(_))
    ));

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match EmbeddedStore::open(&path) {
        Err(e @ StoreError::SchemaTooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("newer"))
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn writers_sharing_a_commit_each_get_their_own_outcome() {
    let store = EmbeddedStore::in_memory().unwrap();
    let table = store.table();
    put(
        &table,
        json!({ "pk": "taken", "sk": "s", "v": 0 }),
        Condition::Absent,
    )
    .await;
    // Ten writes in flight at once go out in one group commit.
    let writes = (0..10).map(|n| {
        let pk = if n % 2 == 0 {
            format!("new{n}")
        } else {
            "taken".to_owned()
        };
        table.put(
            item(json!({ "pk": pk, "sk": "s", "v": n })),
            Condition::Absent,
        )
    });
    let results = futures::future::join_all(writes).await;
    for (n, r) in results.iter().enumerate() {
        match (n % 2, r) {
            (0, Ok(())) => {}
            (1, Err(TableError::ConditionFailed { current, .. })) => {
                assert_eq!(current.as_ref().unwrap()["v"], json!(0))
            }
            other => panic!("write {n}: {other:?}"),
        }
    }
    let records = all_records(&store.stream()).await.len();
    assert_eq!(records, 6, "the first put and the five that succeeded");
}

#[tokio::test]
async fn a_write_whose_caller_stops_waiting_still_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        let table = store.table();
        let mut abandoned = table.put(item(json!({ "pk": "kept", "sk": "s" })), Condition::Always);
        // The first poll applies the write; the caller then stops waiting for its commit.
        let _ = futures::poll!(&mut abandoned);
        drop(abandoned);
        let seen = table.get(&Key::new("kept", "s")).await.unwrap();
        assert!(seen.is_some(), "applied at once, visible to every reader");
    }
    // Dropping the store waits for the commit thread: nothing applied is lost.
    let store = EmbeddedStore::open(&path).unwrap();
    let pks: Vec<String> = store
        .table()
        .scan()
        .await
        .unwrap()
        .iter()
        .map(|i| i["pk"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pks, ["kept"]);
}

#[tokio::test]
async fn reopened_stores_hand_out_distinct_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    for n in 0..10 {
        // A store per write: each continues after the last one's numbers.
        let store = EmbeddedStore::open(&path).unwrap();
        put(
            &store.table(),
            json!({ "pk": "same", "sk": "s", "n": n }),
            Condition::Always,
        )
        .await;
    }
    // A reopened store continues after the last number.
    let store = EmbeddedStore::open(&path).unwrap();
    put(
        &store.table(),
        json!({ "pk": "same", "sk": "s", "n": 10 }),
        Condition::Always,
    )
    .await;
    let ns: Vec<i64> = all_records(&store.stream())
        .await
        .iter()
        .map(|r| {
            let new: Item = serde_dynamo::from_item(r.change.new_image.clone()).unwrap();
            new["n"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(
        ns,
        (0..=10).collect::<Vec<_>>(),
        "one shard, in write order, none lost to a clash"
    );
}

#[tokio::test]
async fn a_schema_1_database_is_imported_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // The tables the SQLite-per-row store (schema 1) wrote, with one row of each kind.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        r#"
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE items (pk TEXT NOT NULL, sk TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;
        CREATE TABLE stream (shard INTEGER NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
            pk TEXT NOT NULL, sk TEXT NOT NULL, new_image TEXT, old_image TEXT, at_ms INTEGER NOT NULL,
            PRIMARY KEY (shard, seq)) WITHOUT ROWID;
        CREATE TABLE checkpoints (consumer TEXT NOT NULL, shard INTEGER NOT NULL, seq TEXT NOT NULL,
            PRIMARY KEY (consumer, shard)) WITHOUT ROWID;
        CREATE TABLE queues (name TEXT PRIMARY KEY, fifo INTEGER NOT NULL, max_receive_count INTEGER NOT NULL, dlq TEXT) WITHOUT ROWID;
        CREATE TABLE messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, message_id TEXT NOT NULL, body TEXT NOT NULL,
            attributes TEXT, group_id TEXT, sent_at_ms INTEGER NOT NULL, visible_at_ms INTEGER NOT NULL,
            receive_count INTEGER NOT NULL DEFAULT 0, receipt INTEGER, reason TEXT, source_queue TEXT);
        CREATE TABLE dedup (queue TEXT NOT NULL, dedup_id TEXT NOT NULL, message_id TEXT NOT NULL, expires_ms INTEGER NOT NULL,
            PRIMARY KEY (queue, dedup_id)) WITHOUT ROWID;
        INSERT INTO meta VALUES ('shards', '1'), ('stream_label', '2026-01-01T00:00:00.000'), ('stream_high_water', '40');
        INSERT INTO items VALUES ('order#1', 'meta', '{"pk":"order#1","sk":"meta","version":2}');
        INSERT INTO stream VALUES (0, 41, 'MODIFY', 'order#1', 'meta',
            '{"pk":"order#1","sk":"meta","version":2}', '{"pk":"order#1","sk":"meta","version":1}', 1000);
        INSERT INTO checkpoints VALUES ('reactor', 0, '000000000000000000040');
        INSERT INTO queues VALUES ('work-dlq', 0, 0, NULL), ('work', 0, 3, 'work-dlq');
        INSERT INTO messages (queue, message_id, body, sent_at_ms, visible_at_ms, receive_count, receipt, reason)
            VALUES ('work', 'm-1', 'in flight when it stopped', 1, 99999999999999, 2, 7, 'boom');
        PRAGMA user_version = 1;
        "#,
    )
    .unwrap();
    drop(conn);

    let store = EmbeddedStore::open(&path).unwrap();
    let item = store
        .table()
        .get(&Key::new("order#1", "meta"))
        .await
        .unwrap()
        .expect("the item came over");
    assert_eq!(item["version"], json!(2));
    let stream = store.stream();
    let shards = stream.shards().await.unwrap();
    assert_eq!(shards.len(), 1, "the stored shard count is kept");
    assert_eq!(
        stream
            .checkpoint("reactor", &shards[0])
            .await
            .unwrap()
            .as_deref(),
        Some("000000000000000000040")
    );
    let records = all_records(&stream).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_name, "MODIFY");
    // The message that was in flight is receivable at once, its count and reason kept.
    let peeked = store.list_messages("work", 10).unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(peeked[0].receive_count, 2);
    assert_eq!(peeked[0].last_failure.as_deref(), Some("boom"));
    assert!(!peeked[0].in_flight);
    // New writes continue the sequence after the old high-water mark.
    put(
        &store.table(),
        json!({ "pk": "order#1", "sk": "meta", "version": 3 }),
        Condition::Always,
    )
    .await;
    let seqs: Vec<u64> = all_records(&stream)
        .await
        .iter()
        .map(|r| {
            r.change
                .sequence_number
                .as_deref()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [41, 42]);
    drop((stream, store));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let old: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('items', 'messages', 'stream')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the old tables are gone");
}

/// Keeps items of type "keep" from their stored JSON; for type "ask" it
/// needs the built record (and keeps MODIFYs). Counts what it was asked.
#[derive(Debug, Default)]
struct TypeFilter {
    built: std::sync::atomic::AtomicUsize,
}

impl switchyard_shared::ports::RecordFilter for TypeFilter {
    fn decide(&self, parts: &switchyard_shared::ports::RecordParts<'_>) -> Option<bool> {
        let Some(new) = parts.new_image else {
            return Some(false);
        };
        let item: Value = serde_json::from_str(new).unwrap();
        match item["type"].as_str() {
            Some("keep") => Some(true),
            Some("ask") => None,
            _ => Some(false),
        }
    }
    fn matches(&self, record: &StreamRecord) -> bool {
        self.built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        record.event_name == "MODIFY"
    }
}

#[tokio::test]
async fn filtered_reads_skip_what_the_filter_drops_and_say_how_far_they_looked() {
    let store = EmbeddedStore::in_memory().unwrap();
    let table = store.table();
    // One partition key: one shard, in write order.
    let mut expected = Vec::new();
    for i in 0..40 {
        let ty = match i % 10 {
            3 => "keep",
            7 => "ask",
            _ => "skip",
        };
        put(
            &table,
            json!({ "pk": "p", "sk": format!("{i:02}"), "type": ty }),
            Condition::Absent,
        )
        .await;
        if ty == "keep" {
            expected.push(format!("{i:02}"));
        }
        if ty == "ask" {
            // INSERT (dropped by the record check), then MODIFY (kept).
            put(
                &table,
                json!({ "pk": "p", "sk": format!("{i:02}"), "type": ty, "v": 2 }),
                Condition::Present,
            )
            .await;
            expected.push(format!("{i:02}"));
        }
    }
    for i in 40..60 {
        put(
            &table,
            json!({ "pk": "p", "sk": format!("{i:02}"), "type": "skip" }),
            Condition::Absent,
        )
        .await;
    }
    let stream = store.stream();
    let shard = shard_with_records(&stream).await;
    let latest = stream.latest_sequence(&shard).unwrap();
    let filter = TypeFilter::default();

    let mut position: Option<String> = None;
    let mut seen = Vec::new();
    let mut reads = 0;
    loop {
        let read = stream
            .read_filtered(&shard, position.as_deref(), 3, &filter)
            .await
            .unwrap();
        reads += 1;
        assert!(read.records.len() <= 3);
        let Some(scanned) = read.scanned else {
            assert!(read.records.is_empty());
            break;
        };
        // Nothing past what the read says it looked at is handed over.
        for r in &read.records {
            assert!(r.change.sequence_number.as_deref().unwrap() <= scanned.as_str());
        }
        seen.extend(read.records.iter().map(|r| {
            assert_eq!(
                r.change.keys["pk"],
                serde_dynamo::AttributeValue::S("p".into())
            );
            match &r.change.keys["sk"] {
                serde_dynamo::AttributeValue::S(sk) => sk.clone(),
                other => panic!("sk {other:?}"),
            }
        }));
        position = Some(scanned);
    }
    assert_eq!(seen, expected);
    assert_eq!(position, latest, "the reads looked at every record");
    // Built only to ask: the "ask" items' INSERTs and MODIFYs.
    assert_eq!(filter.built.load(std::sync::atomic::Ordering::Relaxed), 8);
    // The 20 dropped records at the end take more than one read at 3 a batch
    // (a read looks 8 batches ahead at most), each moving the position.
    assert!(reads > 4, "{reads} reads");
}
