//! Embedded queue behaviour beyond the shared suite: strict receipts, the
//! dedup window, FIFO corner cases, admin operations, validation, concurrency
//! and a second process on the same file.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use switchyard_shared::conformance::eventually;
use switchyard_shared::embedded::{
    EmbeddedQueue, EmbeddedStore, QueueConfig, StoreError, StoreOptions,
};
use switchyard_shared::events::SnsAttribute;
use switchyard_shared::ports::{
    ChangeStream, Condition, OutgoingMessage, Queue, QueueError, ReceivedMessage, Table,
};

const LONG: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

fn fifo_msg(body: &str, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        group_id: Some(group.to_owned()),
        ..OutgoingMessage::new(body)
    }
}

fn bodies(m: &[ReceivedMessage]) -> Vec<&str> {
    m.iter().map(|m| m.body.as_str()).collect()
}

fn queue(store: &Arc<EmbeddedStore>, cfg: QueueConfig) -> EmbeddedQueue {
    let name = cfg.name.clone();
    store.create_queue(cfg).unwrap();
    store.queue(&name).unwrap()
}

/// Receives until `n` messages came or the deadline passed.
async fn receive_n(q: &EmbeddedQueue, n: usize, visibility: Duration) -> Vec<ReceivedMessage> {
    let until = tokio::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n && tokio::time::Instant::now() < until {
        got.extend(
            q.receive(n - got.len(), visibility, Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    got
}

#[tokio::test]
async fn stale_receipts_are_refused_but_valid_ones_in_the_batch_are_deleted() {
    let store = EmbeddedStore::in_memory().unwrap();
    let q = queue(&store, QueueConfig::new("q"));
    q.send_batch(vec![OutgoingMessage::new("a"), OutgoingMessage::new("b")])
        .await
        .unwrap();
    let first = receive_n(&q, 2, LONG).await;
    let a = first.iter().find(|m| m.body == "a").unwrap();
    let b = first.iter().find(|m| m.body == "b").unwrap();
    // a is received again: its first receipt goes stale
    q.release(&a.receipt_handle, Duration::ZERO, None)
        .await
        .unwrap();
    let a2 = receive_n(&q, 1, LONG).await.remove(0);

    let r = q
        .delete_batch(&[
            a.receipt_handle.clone(),
            b.receipt_handle.clone(),
            "garbage".to_owned(),
        ])
        .await;
    match r {
        Err(QueueError::StaleReceipt(h)) => {
            assert!(
                h.contains(&a.receipt_handle)
                    && h.contains("garbage")
                    && !h.contains(&b.receipt_handle),
                "{h}"
            )
        }
        other => panic!("expected StaleReceipt, got {other:?}"),
    }
    assert!(matches!(
        q.release(&a.receipt_handle, Duration::ZERO, None).await,
        Err(QueueError::StaleReceipt(_))
    ));
    let peek = store.list_messages("q", 10).unwrap();
    assert_eq!(
        peek.iter().map(|p| p.body.as_str()).collect::<Vec<_>>(),
        ["a"],
        "b was deleted despite the stale one"
    );
    // a receipt of another queue is unknown here
    let other = queue(&store, QueueConfig::new("other"));
    assert!(matches!(
        other
            .delete_batch(std::slice::from_ref(&a2.receipt_handle))
            .await,
        Err(QueueError::StaleReceipt(_))
    ));
    q.delete_batch(&[a2.receipt_handle]).await.unwrap();
    assert!(store.list_messages("q", 10).unwrap().is_empty());
}

#[tokio::test]
async fn dedup_ids_expire_after_the_window() {
    let opts = StoreOptions {
        dedup_window: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let store = EmbeddedStore::open_with(":memory:", opts).unwrap();
    let q = queue(&store, QueueConfig::new("d.fifo"));
    let m = || OutgoingMessage {
        dedup_id: Some("same".to_owned()),
        ..fifo_msg("x", "g")
    };
    let first = q.send_batch(vec![m(), m()]).await.unwrap();
    assert_eq!(
        first[0], first[1],
        "a duplicate in the same batch is dropped too"
    );
    // Within the window a resend returns the first id; after it, a new message.
    eventually(
        "the dedup window ends",
        WAIT,
        Duration::from_millis(20),
        || async {
            let id = q.send_batch(vec![m()]).await.unwrap().remove(0);
            (id != first[0]).then_some(())
        },
    )
    .await;
    assert_eq!(
        store.list_messages("d.fifo", 10).unwrap().len(),
        2,
        "exactly one message per window"
    );
}

#[tokio::test]
async fn fifo_release_puts_the_rest_of_the_group_back_in_order() {
    let store = EmbeddedStore::in_memory().unwrap();
    let q = queue(&store, QueueConfig::new("f.fifo"));
    q.send_batch(vec![
        fifo_msg("a1", "A"),
        fifo_msg("a2", "A"),
        fifo_msg("a3", "A"),
    ])
    .await
    .unwrap();
    let batch = q.receive(10, LONG, WAIT).await.unwrap();
    assert_eq!(
        bodies(&batch),
        ["a1", "a2", "a3"],
        "one batch may carry a group in order"
    );
    // a1 failed: a2 and a3 must not be handled before it, so they come back too
    q.release(&batch[0].receipt_handle, Duration::ZERO, Some("boom"))
        .await
        .unwrap();
    let again = q.receive(10, LONG, WAIT).await.unwrap();
    assert_eq!(bodies(&again), ["a1", "a2", "a3"]);
    assert!(again.iter().all(|m| m.receive_count == 2));
    // deleting the head alone does not release the in-flight rest
    q.delete_batch(std::slice::from_ref(&again[0].receipt_handle))
        .await
        .unwrap();
    assert!(q
        .receive(10, LONG, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_fifo_head_moved_to_the_dlq_lets_its_group_continue() {
    let store = EmbeddedStore::in_memory().unwrap();
    let dlq = queue(&store, QueueConfig::new("f-dlq.fifo"));
    let q = queue(&store, QueueConfig::new("f.fifo").with_dlq("f-dlq.fifo", 1));
    q.send_batch(vec![fifo_msg("bad", "A"), fifo_msg("next", "A")])
        .await
        .unwrap();
    let first = q.receive(1, LONG, WAIT).await.unwrap();
    assert_eq!(bodies(&first), ["bad"]);
    q.release(&first[0].receipt_handle, Duration::ZERO, Some("poison"))
        .await
        .unwrap();
    let second = q.receive(10, LONG, WAIT).await.unwrap();
    assert_eq!(
        bodies(&second),
        ["next"],
        "bad went to the DLQ; the group goes on"
    );
    let dead = dlq.receive(10, LONG, WAIT).await.unwrap();
    assert_eq!(bodies(&dead), ["bad"]);
    assert_eq!(dead[0].group_id.as_deref(), Some("A"), "keeps its group");
}

#[tokio::test]
async fn admin_stats_list_redrive_and_purge() {
    let store = EmbeddedStore::in_memory().unwrap();
    let dlq = queue(&store, QueueConfig::new("orders-dlq"));
    let q = queue(&store, QueueConfig::new("orders").with_dlq("orders-dlq", 1));
    let mut attrs = std::collections::BTreeMap::new();
    attrs.insert(
        "event_type".to_owned(),
        SnsAttribute::String("OrderPlaced".to_owned()),
    );
    q.send_batch(vec![
        OutgoingMessage {
            attributes: attrs.clone(),
            ..OutgoingMessage::new("poison")
        },
        OutgoingMessage::new("fine"),
        OutgoingMessage {
            delay: Duration::from_secs(600),
            ..OutgoingMessage::new("later")
        },
    ])
    .await
    .unwrap();
    let stats = store.queue_stats().unwrap();
    let s = stats.iter().find(|s| s.name == "orders").unwrap();
    assert_eq!(
        (s.visible, s.in_flight, s.delayed, s.is_dlq),
        (2, 0, 1, false)
    );
    assert!(
        stats
            .iter()
            .find(|s| s.name == "orders-dlq")
            .unwrap()
            .is_dlq
    );

    let got = receive_n(&q, 2, LONG).await;
    let poison = got.iter().find(|m| m.body == "poison").unwrap();
    q.release(
        &poison.receipt_handle,
        Duration::ZERO,
        Some("order id is not a UUID"),
    )
    .await
    .unwrap();
    let s = store
        .queue_stats()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "orders")
        .unwrap();
    assert_eq!(
        (s.visible, s.in_flight, s.delayed),
        (1, 1, 1),
        "fine is in flight, poison visible again"
    );
    // the next receive moves poison to the DLQ
    assert!(q
        .receive(10, LONG, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    let listed = store.list_messages("orders-dlq", 10).unwrap();
    assert_eq!(listed.len(), 1);
    let p = &listed[0];
    assert_eq!(
        (
            p.body.as_str(),
            p.receive_count,
            p.last_failure.as_deref(),
            p.source_queue.as_deref(),
            p.in_flight
        ),
        (
            "poison",
            1,
            Some("order id is not a UUID"),
            Some("orders"),
            false
        )
    );
    assert_eq!(p.attributes, attrs);

    assert!(
        matches!(store.redrive("orders", 10), Err(QueueError::Invalid(_))),
        "orders is not a DLQ"
    );
    assert!(matches!(
        store.redrive("nope", 10),
        Err(QueueError::NoSuchQueue(_))
    ));
    // a message sent straight to the DLQ has no source and stays
    dlq.send_batch(vec![OutgoingMessage::new("direct")])
        .await
        .unwrap();
    assert_eq!(store.redrive("orders-dlq", 100).unwrap(), 1);
    assert_eq!(
        store
            .list_messages("orders-dlq", 10)
            .unwrap()
            .iter()
            .map(|p| p.body.as_str())
            .collect::<Vec<_>>(),
        ["direct"]
    );
    let back = store.list_messages("orders", 10).unwrap();
    let p = back.iter().find(|p| p.body == "poison").unwrap();
    assert_eq!(
        (
            p.receive_count,
            p.last_failure.as_deref(),
            p.source_queue.as_deref()
        ),
        (0, None, None),
        "a fresh start"
    );

    assert_eq!(store.purge("orders").unwrap(), 3);
    let s = store
        .queue_stats()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "orders")
        .unwrap();
    assert_eq!((s.visible, s.in_flight, s.delayed), (0, 0, 0));
    assert!(matches!(
        store.purge("nope"),
        Err(QueueError::NoSuchQueue(_))
    ));
    assert!(matches!(
        store.list_messages("nope", 1),
        Err(QueueError::NoSuchQueue(_))
    ));
}

#[tokio::test]
async fn configs_and_messages_are_validated() {
    let store = EmbeddedStore::in_memory().unwrap();
    let bad_configs = [
        QueueConfig::new(""),
        QueueConfig::new("has space"),
        QueueConfig::new("x".repeat(81)),
        QueueConfig::new(".fifo"),
        QueueConfig {
            fifo: true,
            ..QueueConfig::new("plain")
        },
        QueueConfig {
            fifo: false,
            ..QueueConfig::new("q.fifo")
        },
        QueueConfig::new("q").with_dlq("missing-dlq", 3),
        QueueConfig::new("q").with_dlq("q", 3),
        QueueConfig::new("q").with_dlq("d.fifo", 3),
    ];
    store.create_queue(QueueConfig::new("d.fifo")).unwrap();
    store.create_queue(QueueConfig::new("dlq")).unwrap();
    for cfg in bad_configs
        .into_iter()
        .chain([QueueConfig::new("q").with_dlq("dlq", 0)])
    {
        match store.create_queue(cfg.clone()) {
            Err(QueueError::Invalid(msg)) => assert!(!msg.is_empty()),
            other => panic!("{cfg:?} accepted: {other:?}"),
        }
    }
    assert!(matches!(store.queue("q"), Err(QueueError::NoSuchQueue(_))));
    // idempotent create; a second create updates the redrive policy
    store.create_queue(QueueConfig::new("q")).unwrap();
    store
        .create_queue(QueueConfig::new("q").with_dlq("dlq", 4))
        .unwrap();
    let q = store.queue("q").unwrap();
    assert_eq!(q.config().max_receive_count, 4);
    let f = queue(&store, QueueConfig::new("f.fifo"));

    let too_many: std::collections::BTreeMap<_, _> = (0..11)
        .map(|i| (format!("a{i}"), SnsAttribute::String("v".to_owned())))
        .collect();
    let cases: Vec<(&EmbeddedQueue, OutgoingMessage, &str)> = vec![
        (
            &q,
            OutgoingMessage::new("x".repeat(256 * 1024 + 1)),
            "byte limit",
        ),
        (&q, OutgoingMessage::new("bell \u{7}"), "character"),
        (
            &q,
            OutgoingMessage {
                attributes: too_many,
                ..OutgoingMessage::new("x")
            },
            "attributes",
        ),
        (
            &q,
            OutgoingMessage {
                delay: Duration::from_secs(901),
                ..OutgoingMessage::new("x")
            },
            "15-minute",
        ),
        (
            &q,
            OutgoingMessage {
                dedup_id: Some("d".to_owned()),
                ..OutgoingMessage::new("x")
            },
            "only valid on FIFO",
        ),
        (&f, OutgoingMessage::new("x"), "group_id"),
        (
            &f,
            OutgoingMessage {
                delay: Duration::from_secs(1),
                ..fifo_msg("x", "g")
            },
            "delay",
        ),
    ];
    for (queue, msg, needle) in cases {
        // a bad message anywhere in the batch sends nothing
        match queue.send_batch(vec![fifo_msg("ok", "g"), msg]).await {
            Err(QueueError::Invalid(m)) => {
                assert!(m.contains(needle), "{m:?} should mention {needle:?}")
            }
            other => panic!("expected Invalid mentioning {needle:?}, got {other:?}"),
        }
    }
    assert_eq!(
        store
            .queue_stats()
            .unwrap()
            .iter()
            .map(|s| s.visible)
            .sum::<u64>(),
        0,
        "nothing was sent"
    );
    assert!(matches!(
        q.receive(1, Duration::from_secs(43_201), Duration::ZERO)
            .await,
        Err(QueueError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_receivers_never_share_a_message() {
    let store = EmbeddedStore::in_memory().unwrap();
    let q = queue(&store, QueueConfig::new("busy"));
    let sent: Vec<OutgoingMessage> = (0..600)
        .map(|i| OutgoingMessage::new(i.to_string()))
        .collect();
    q.send_batch(sent).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = q
                    .receive(7, LONG, Duration::from_millis(200))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.body));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (600, 600),
        "each message exactly once"
    );
}

#[tokio::test]
async fn a_long_poll_wakes_when_a_hidden_message_becomes_visible() {
    let store = EmbeddedStore::in_memory().unwrap();
    let q = queue(&store, QueueConfig::new("q"));
    q.send_batch(vec![OutgoingMessage::new("m")]).await.unwrap();
    let first = q.receive(1, Duration::from_millis(50), WAIT).await.unwrap();
    assert_eq!(first.len(), 1);
    // nothing sends or releases: only the visibility expiry can end this wait early
    let again = q.receive(1, LONG, WAIT).await.unwrap();
    assert_eq!(bodies(&again), ["m"]);
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_per_file_and_read_only_opens_see_what_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    // The owner stands in for `switchyard up`, the others for CLI commands beside it.
    let owner = EmbeddedStore::open(&path).unwrap();
    owner.create_queue(QueueConfig::new("q")).unwrap();
    owner
        .queue("q")
        .unwrap()
        .send_batch(vec![OutgoingMessage::new("sent")])
        .await
        .unwrap();
    match EmbeddedStore::open(&path) {
        Err(StoreError::InUse { path: p }) => assert!(p.ends_with("s.db")),
        other => panic!("a second owner must be refused, got {other:?}"),
    }
    let reader = EmbeddedStore::open_read_only(&path).unwrap();
    assert!(reader.is_read_only());
    let peeked = reader.list_messages("q", 10).unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(peeked[0].body, "sent", "an acknowledged send is committed");
    let refused = reader
        .queue("q")
        .unwrap()
        .send_batch(vec![OutgoingMessage::new("no")])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("read-only"), "{refused}");
    // Once the owner is gone, the file can be owned again.
    drop(owner);
    let again = EmbeddedStore::open(&path).unwrap();
    assert_eq!(again.list_messages("q", 10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_zero_visibility_receive_hands_each_message_out_once_per_batch() {
    let store = EmbeddedStore::in_memory().unwrap();
    let q = queue(&store, QueueConfig::new("q"));
    q.send_batch(["a", "b", "c"].map(OutgoingMessage::new).to_vec())
        .await
        .unwrap();
    let got = q.receive(10, Duration::ZERO, WAIT).await.unwrap();
    let mut seen = bodies(&got);
    seen.sort_unstable();
    assert_eq!(
        seen,
        ["a", "b", "c"],
        "visible again at once, but not twice in one batch"
    );
    // Still visible: the next receive gets them again, as SQS does.
    assert_eq!(q.receive(10, Duration::ZERO, WAIT).await.unwrap().len(), 3);
}

/// The bodies waiting in queue `q` of the store at `path`, opened afresh.
async fn bodies_after_reopening(path: &std::path::Path) -> Vec<String> {
    let store = EmbeddedStore::open(path).unwrap();
    let mut seen: Vec<String> = store
        .list_messages("q", 100)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    seen.sort();
    seen
}

async fn send_and_close(path: &std::path::Path, body: &str) {
    let store = EmbeddedStore::open(path).unwrap();
    if store.queue("q").is_err() {
        store.create_queue(QueueConfig::new("q")).unwrap();
    }
    let q = store.queue("q").unwrap();
    q.send_batch(vec![OutgoingMessage::new(body)])
        .await
        .unwrap();
    // A table write too: replayed twice, it would append its stream record twice.
    let item = serde_json::json!({ "pk": body, "sk": "s" });
    store
        .table()
        .put(item.as_object().unwrap().clone(), Condition::Always)
        .await
        .unwrap();
    store.sync().await.unwrap();
}

/// How many stream records the store at `path` holds.
async fn stream_records(path: &std::path::Path) -> usize {
    let store = EmbeddedStore::open(path).unwrap();
    let stream = store.stream();
    let mut n = 0;
    for shard in stream.shards().await.unwrap() {
        n += stream.read(&shard, None, 1000).await.unwrap().len();
    }
    n
}

fn journal_of(path: &std::path::Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".journal");
    p.into()
}

#[tokio::test]
async fn a_journal_the_snapshot_already_covers_is_not_replayed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    send_and_close(&path, "one").await;
    // The journal as a crash would leave it between writing the next
    // snapshot and starting the next journal.
    let before_fold = std::fs::read(journal_of(&path)).unwrap();
    assert_eq!(bodies_after_reopening(&path).await, ["one"]); // folds
    std::fs::write(journal_of(&path), before_fold).unwrap();
    assert_eq!(
        (
            bodies_after_reopening(&path).await,
            stream_records(&path).await
        ),
        (vec!["one".to_owned()], 1),
        "the old journal is ignored, not applied on top of its own snapshot"
    );
    send_and_close(&path, "two").await;
    assert_eq!(bodies_after_reopening(&path).await, ["one", "two"]);
}

#[tokio::test]
async fn a_commit_torn_by_a_crash_is_dropped_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        let q = queue(&store, QueueConfig::new("q"));
        q.send_batch(vec![OutgoingMessage::new("whole")])
            .await
            .unwrap();
        store.sync().await.unwrap();
        q.send_batch(vec![OutgoingMessage::new("torn")])
            .await
            .unwrap();
        store.sync().await.unwrap();
    }
    // Cut the last commit short, as a crash in the middle of its write would.
    let journal = std::fs::OpenOptions::new()
        .write(true)
        .open(journal_of(&path))
        .unwrap();
    journal
        .set_len(journal.metadata().unwrap().len() - 5)
        .unwrap();
    drop(journal);
    assert_eq!(bodies_after_reopening(&path).await, ["whole"]);
    send_and_close(&path, "after").await;
    assert_eq!(bodies_after_reopening(&path).await, ["after", "whole"]);
}

#[tokio::test]
async fn a_damaged_journal_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    send_and_close(&path, "one").await;
    std::fs::write(journal_of(&path), b"not a journal at all").unwrap();
    let err = EmbeddedStore::open(&path).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("s.db.journal") && shown.contains("journal header"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_running_store_folds_its_journal_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let opts = StoreOptions {
        fold_journal_bytes: 4096,
        ..StoreOptions::default()
    };
    let store = EmbeddedStore::open_with(&path, opts).unwrap();
    let q = queue(&store, QueueConfig::new("q"));
    let body = "x".repeat(500);
    let mut biggest_journal = 0;
    for i in 0..100 {
        q.send_batch(vec![OutgoingMessage::new(format!("{i}:{body}"))])
            .await
            .unwrap();
        store.sync().await.unwrap();
        biggest_journal = biggest_journal.max(std::fs::metadata(journal_of(&path)).unwrap().len());
        if i == 50 {
            // A reader beside the owner, between folds: everything committed so far.
            let reader = EmbeddedStore::open_read_only(&path).unwrap();
            assert_eq!(reader.list_messages("q", 1000).unwrap().len(), 51);
        }
    }
    // 100 messages of 500 bytes are 50 KB of journal: it was folded again and again.
    assert!(
        biggest_journal < 8192,
        "journal reached {biggest_journal} bytes"
    );
    drop((q, store));
    assert_eq!(bodies_after_reopening(&path).await.len(), 100);
}
