//! The queue port's conformance suite.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{run_id, skip, DEADLINE};
use crate::embedded::{EmbeddedStore, PeekedMessage, QueueConfig};
use crate::events::SnsAttribute;
use crate::ports::{Capabilities, OutgoingMessage, Queue, QueueError, ReceivedMessage};

const SUITE: &str = "queue";
/// Long enough that a message received with it stays hidden for the case.
const LONG: Duration = Duration::from_secs(60);

/// What the queue suite needs beyond the port: creating queues and, where
/// the capabilities say so, the DLQ admin operations.
#[async_trait]
pub trait QueueHarness: Send + Sync {
    /// Creates a queue (its DLQ first, if it names one) and returns it.
    async fn create_queue(&self, cfg: &QueueConfig) -> Result<Arc<dyn Queue>, QueueError>;

    /// Messages of a queue without receiving them; used when `caps.dlq_reasons`.
    async fn peek(&self, _queue: &str, _limit: usize) -> Result<Vec<PeekedMessage>, QueueError> {
        Err(QueueError::Backend(
            "peek is not supported by this adapter".to_owned(),
        ))
    }

    /// Moves DLQ messages back to their source; used when `caps.dlq_redrive`.
    async fn redrive(&self, _dlq: &str, _max: usize) -> Result<usize, QueueError> {
        Err(QueueError::Backend(
            "redrive is not supported by this adapter".to_owned(),
        ))
    }

    /// The shortest visibility timeout the backend honours (SQS counts whole seconds).
    fn short_visibility(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// The embedded store as a queue harness.
pub struct EmbeddedQueueHarness(pub Arc<EmbeddedStore>);

#[async_trait]
impl QueueHarness for EmbeddedQueueHarness {
    async fn create_queue(&self, cfg: &QueueConfig) -> Result<Arc<dyn Queue>, QueueError> {
        self.0.create_queue(cfg.clone())?;
        Ok(Arc::new(self.0.queue(&cfg.name)?))
    }
    async fn peek(&self, queue: &str, limit: usize) -> Result<Vec<PeekedMessage>, QueueError> {
        self.0.list_messages(queue, limit)
    }
    async fn redrive(&self, dlq: &str, max: usize) -> Result<usize, QueueError> {
        self.0.redrive(dlq, max)
    }
    fn short_visibility(&self) -> Duration {
        Duration::from_millis(50)
    }
}

/// Receives until `n` messages arrived or the deadline passed.
async fn collect(q: &dyn Queue, n: usize, visibility: Duration) -> Vec<ReceivedMessage> {
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while got.len() < n {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = q
            .receive(
                (n - got.len()).min(10),
                visibility,
                left.min(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        got.extend(batch);
    }
    got
}

/// Receives exactly one message (within the deadline).
async fn one(q: &dyn Queue, visibility: Duration, case: &str) -> ReceivedMessage {
    let mut got = collect(q, 1, visibility).await;
    assert_eq!(
        got.len(),
        1,
        "{SUITE}/{case}: expected one message within {DEADLINE:?}"
    );
    got.remove(0)
}

/// Asserts nothing is receivable over a short wait (long enough for a
/// hidden message with the short visibility to come back if it were wrong).
async fn nothing(q: &dyn Queue, wait: Duration, case: &str) {
    let got = q.receive(10, LONG, wait).await.unwrap();
    assert!(
        got.is_empty(),
        "{SUITE}/{case}: expected no message, got {:?}",
        bodies(&got)
    );
}

fn bodies(msgs: &[ReceivedMessage]) -> Vec<&str> {
    msgs.iter().map(|m| m.body.as_str()).collect()
}

fn handles(msgs: &[&ReceivedMessage]) -> Vec<String> {
    msgs.iter().map(|m| m.receipt_handle.clone()).collect()
}

/// SQS semantics: send/receive/delete, visibility, redelivery, receive count,
/// DLQ after `maxReceiveCount` (with the reason), partial deletes, delay,
/// long polling, FIFO groups and deduplication.
pub async fn queue_suite(harness: &dyn QueueHarness, caps: Capabilities) {
    let run = run_id();
    let short = harness.short_visibility();
    basics(harness, &run).await;
    visibility(harness, &run, short).await;
    partial_deletes(harness, &run).await;
    dead_letters(harness, &run, caps).await;
    delay_and_long_poll(harness, &run).await;
    if caps.fifo_queues {
        fifo(harness, &run).await;
    } else {
        skip(SUITE, "fifo", "adapter has no FIFO queues");
    }
}

async fn basics(h: &dyn QueueHarness, run: &str) {
    let q = h
        .create_queue(&QueueConfig::new(format!("conf-{run}-basic")))
        .await
        .expect("create queue");
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "event_type".to_owned(),
        SnsAttribute::String("OrderPlaced".to_owned()),
    );
    attrs.insert(
        "size_bytes".to_owned(),
        SnsAttribute::Number("1234".to_owned()),
    );
    attrs.insert(
        "tags".to_owned(),
        SnsAttribute::StringArray(vec!["a".to_owned(), "b".to_owned()]),
    );
    let sent: Vec<OutgoingMessage> = (0..3)
        .map(|i| OutgoingMessage {
            attributes: attrs.clone(),
            ..OutgoingMessage::new(format!("{{\"n\":{i}}}"))
        })
        .collect();
    let ids = q.send_batch(sent.clone()).await.expect("send");
    assert_eq!(ids.len(), 3, "{SUITE}/basics: one id per message");
    assert!(
        ids.iter().collect::<std::collections::HashSet<_>>().len() == 3,
        "{SUITE}/basics: ids are distinct"
    );

    let got = collect(&*q, 3, LONG).await;
    assert_eq!(
        got.len(),
        3,
        "{SUITE}/basics: all three received: {:?}",
        bodies(&got)
    );
    let by_body: HashMap<&str, &ReceivedMessage> =
        got.iter().map(|m| (m.body.as_str(), m)).collect();
    for (i, id) in ids.iter().enumerate() {
        let m = by_body
            .get(format!("{{\"n\":{i}}}").as_str())
            .expect("each body arrives");
        assert_eq!(&m.message_id, id, "{SUITE}/basics: the id send returned");
        assert_eq!(
            m.attributes, attrs,
            "{SUITE}/basics: attributes arrive as sent"
        );
        assert_eq!(
            m.receive_count, 1,
            "{SUITE}/basics: first delivery counts 1"
        );
        assert!(m.sent_at_ms > 0, "{SUITE}/basics: sent timestamp");
    }
    q.delete_batch(&handles(&got.iter().collect::<Vec<_>>()))
        .await
        .expect("delete");
    nothing(&*q, Duration::from_millis(200), "basics-deleted").await;

    let r = q.send_batch(vec![OutgoingMessage::new("")]).await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "{SUITE}/basics: an empty body is refused, got {r:?}"
    );
    let r = q.receive(0, LONG, Duration::ZERO).await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "{SUITE}/basics: receiving 0 messages is refused, got {r:?}"
    );
}

async fn visibility(h: &dyn QueueHarness, run: &str, short: Duration) {
    let q = h
        .create_queue(&QueueConfig::new(format!("conf-{run}-vis")))
        .await
        .unwrap();
    q.send_batch(vec![OutgoingMessage::new("v")]).await.unwrap();

    // hidden while in flight
    let first = one(&*q, LONG, "visibility").await;
    nothing(&*q, Duration::ZERO, "visibility-hidden").await;

    // a shorter visibility brings it back, counted, with a new receipt
    q.change_visibility(&first.receipt_handle, short)
        .await
        .expect("change visibility");
    let second = one(&*q, LONG, "visibility-expiry").await;
    assert_eq!(
        second.message_id, first.message_id,
        "{SUITE}/visibility: the same message comes back"
    );
    assert_eq!(
        second.receive_count, 2,
        "{SUITE}/visibility: receive count rises"
    );
    assert_ne!(
        second.receipt_handle, first.receipt_handle,
        "{SUITE}/visibility: a new receipt per receive"
    );

    // release with zero visibility: back at once, with the reason kept aside
    q.release(
        &second.receipt_handle,
        Duration::ZERO,
        Some("transient: retry"),
    )
    .await
    .expect("release");
    let third = one(&*q, short, "visibility-release").await;
    assert_eq!(
        third.receive_count, 3,
        "{SUITE}/visibility: released message is redelivered"
    );

    // extending visibility keeps it hidden past the original timeout
    q.change_visibility(&third.receipt_handle, LONG)
        .await
        .expect("extend visibility");
    nothing(&*q, short * 4, "visibility-extended").await;

    // the old receipt is stale (SQS may still accept it; the embedded store must not)
    match q
        .delete_batch(std::slice::from_ref(&first.receipt_handle))
        .await
    {
        Err(QueueError::StaleReceipt(_)) => {}
        Ok(()) => println!(
            "conformance {SUITE}/visibility: note: adapter accepted a stale receipt handle"
        ),
        Err(e) => panic!("{SUITE}/visibility: stale receipt gave {e}"),
    }
    q.delete_batch(std::slice::from_ref(&third.receipt_handle))
        .await
        .expect("delete with the newest receipt");
    nothing(&*q, short * 4, "visibility-deleted").await;
}

async fn partial_deletes(h: &dyn QueueHarness, run: &str) {
    let q = h
        .create_queue(&QueueConfig::new(format!("conf-{run}-partial")))
        .await
        .unwrap();
    let sent: Vec<OutgoingMessage> = (0..4)
        .map(|i| OutgoingMessage::new(format!("p{i}")))
        .collect();
    q.send_batch(sent).await.unwrap();
    let got = collect(&*q, 4, LONG).await;
    assert_eq!(got.len(), 4, "{SUITE}/partial: all four received");
    let (done, failed): (Vec<&ReceivedMessage>, Vec<&ReceivedMessage>) =
        got.iter().partition(|m| m.body == "p0" || m.body == "p2");
    q.delete_batch(&handles(&done))
        .await
        .expect("delete the handled half");
    for m in &failed {
        q.release(&m.receipt_handle, Duration::ZERO, Some("failed"))
            .await
            .unwrap();
    }
    let again = collect(&*q, 2, LONG).await;
    let mut again_bodies = bodies(&again);
    again_bodies.sort();
    assert_eq!(
        again_bodies,
        ["p1", "p3"],
        "{SUITE}/partial: only the failed messages come back"
    );
    assert!(
        again.iter().all(|m| m.receive_count == 2),
        "{SUITE}/partial: counted twice"
    );
    q.delete_batch(&handles(&again.iter().collect::<Vec<_>>()))
        .await
        .unwrap();
    nothing(&*q, Duration::from_millis(200), "partial-done").await;
}

async fn dead_letters(h: &dyn QueueHarness, run: &str, caps: Capabilities) {
    let dlq_name = format!("conf-{run}-dlq");
    let src_name = format!("conf-{run}-src");
    let dlq = h.create_queue(&QueueConfig::new(&dlq_name)).await.unwrap();
    let src = h
        .create_queue(&QueueConfig::new(&src_name).with_dlq(&dlq_name, 2))
        .await
        .unwrap();
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "event_type".to_owned(),
        SnsAttribute::String("OrderPaid".to_owned()),
    );
    let poison = OutgoingMessage {
        attributes: attrs.clone(),
        ..OutgoingMessage::new("poison")
    };
    let ids = src
        .send_batch(vec![poison, OutgoingMessage::new("good")])
        .await
        .unwrap();

    // one batch: the good message succeeds, the poison one fails twice
    let batch = collect(&*src, 2, LONG).await;
    assert_eq!(batch.len(), 2, "{SUITE}/dlq: both received");
    for m in &batch {
        if m.body == "good" {
            src.delete_batch(std::slice::from_ref(&m.receipt_handle))
                .await
                .unwrap();
        } else {
            src.release(&m.receipt_handle, Duration::ZERO, Some("boom 1"))
                .await
                .unwrap();
        }
    }
    let again = one(&*src, LONG, "dlq-second").await;
    assert_eq!(
        (again.body.as_str(), again.receive_count),
        ("poison", 2),
        "{SUITE}/dlq: poison again, counted twice"
    );
    src.release(
        &again.receipt_handle,
        Duration::ZERO,
        Some("boom 2: bad order id"),
    )
    .await
    .unwrap();

    // the next receive moves it to the DLQ instead of returning it
    nothing(&*src, Duration::from_millis(500), "dlq-moved").await;

    if caps.dlq_reasons {
        let peeked = h.peek(&dlq_name, 10).await.expect("peek the DLQ");
        let p = peeked
            .iter()
            .find(|p| p.body == "poison")
            .expect("poison is in the DLQ");
        assert_eq!(
            p.last_failure.as_deref(),
            Some("boom 2: bad order id"),
            "{SUITE}/dlq: the last reason is kept"
        );
        assert_eq!(
            p.source_queue.as_deref(),
            Some(src_name.as_str()),
            "{SUITE}/dlq: the source queue is kept"
        );
        assert_eq!(
            p.receive_count, 2,
            "{SUITE}/dlq: receive count as it left the source"
        );
    } else {
        skip(
            SUITE,
            "dlq-reasons",
            "adapter keeps no failure reason beside DLQ messages",
        );
    }

    let dead = one(&*dlq, LONG, "dlq-receive").await;
    assert_eq!(
        dead.body, "poison",
        "{SUITE}/dlq: the poison message is in the DLQ"
    );
    assert_eq!(
        dead.message_id, ids[0],
        "{SUITE}/dlq: it keeps its message id"
    );
    assert_eq!(
        dead.attributes, attrs,
        "{SUITE}/dlq: it keeps its attributes"
    );

    if caps.dlq_redrive {
        dlq.change_visibility(&dead.receipt_handle, Duration::ZERO)
            .await
            .unwrap();
        let moved = h.redrive(&dlq_name, 10).await.expect("redrive");
        assert_eq!(moved, 1, "{SUITE}/redrive: one message moved back");
        let back = one(&*src, LONG, "redrive-receive").await;
        assert_eq!(
            (back.body.as_str(), back.receive_count),
            ("poison", 1),
            "{SUITE}/redrive: back with a fresh count"
        );
        src.delete_batch(std::slice::from_ref(&back.receipt_handle))
            .await
            .unwrap();
        nothing(&*dlq, Duration::from_millis(200), "redrive-dlq-empty").await;
    } else {
        skip(
            SUITE,
            "dlq-redrive",
            "adapter cannot move DLQ messages back",
        );
    }
}

async fn delay_and_long_poll(h: &dyn QueueHarness, run: &str) {
    let q = h
        .create_queue(&QueueConfig::new(format!("conf-{run}-delay")))
        .await
        .unwrap();
    let delayed = OutgoingMessage {
        delay: Duration::from_secs(2),
        ..OutgoingMessage::new("later")
    };
    q.send_batch(vec![delayed]).await.unwrap();
    nothing(&*q, Duration::ZERO, "delay-hidden").await;
    let m = one(&*q, LONG, "delay-visible").await;
    assert_eq!(
        m.body, "later",
        "{SUITE}/delay: delivered once the delay passed"
    );
    q.delete_batch(&[m.receipt_handle]).await.unwrap();

    // A long poll that is already waiting gets a message sent meanwhile.
    let (got, sent) = tokio::join!(
        q.receive(1, LONG, DEADLINE),
        q.send_batch(vec![OutgoingMessage::new("wake")])
    );
    sent.unwrap();
    let got = got.unwrap();
    assert_eq!(
        bodies(&got),
        ["wake"],
        "{SUITE}/long-poll: the waiting receive gets the new message"
    );
    q.delete_batch(&[got[0].receipt_handle.clone()])
        .await
        .unwrap();
}

async fn fifo(h: &dyn QueueHarness, run: &str) {
    let dlq_name = format!("conf-{run}-fdlq.fifo");
    h.create_queue(&QueueConfig::new(&dlq_name)).await.unwrap();
    let q = h
        .create_queue(&QueueConfig::new(format!("conf-{run}-f.fifo")).with_dlq(&dlq_name, 5))
        .await
        .unwrap();
    let msg = |body: &str, group: &str, dedup: &str| OutgoingMessage {
        group_id: Some(group.to_owned()),
        dedup_id: Some(dedup.to_owned()),
        ..OutgoingMessage::new(body)
    };

    let r = q
        .send_batch(vec![OutgoingMessage {
            dedup_id: Some("x".to_owned()),
            ..OutgoingMessage::new("x")
        }])
        .await;
    assert!(
        matches!(r, Err(QueueError::Invalid(_))),
        "{SUITE}/fifo: a message without group_id is refused, got {r:?}"
    );

    let ids = q
        .send_batch(vec![
            msg("a1", "A", "a1"),
            msg("b1", "B", "b1"),
            msg("a2", "A", "a2"),
            msg("b2", "B", "b2"),
            msg("a3", "A", "a3"),
        ])
        .await
        .unwrap();
    // deduplication: the same id within the window returns the first message id and adds nothing
    let dup = q
        .send_batch(vec![msg("a2-again", "A", "a2")])
        .await
        .unwrap();
    assert_eq!(
        dup,
        [ids[2].clone()],
        "{SUITE}/fifo-dedup: a duplicate returns the original id"
    );
    let fresh = q.send_batch(vec![msg("c1", "C", "c1")]).await.unwrap();
    assert_ne!(
        fresh[0], ids[2],
        "{SUITE}/fifo-dedup: a new dedup id is a new message"
    );

    // While a group has a message in flight, nothing else of it is delivered.
    let first = one(&*q, LONG, "fifo-first").await;
    assert!(
        ["a1", "b1", "c1"].contains(&first.body.as_str()),
        "{SUITE}/fifo: the first message is a group head, got {}",
        first.body
    );
    let group = first
        .group_id
        .clone()
        .expect("FIFO messages carry their group");
    let others = q
        .receive(10, LONG, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(
        others
            .iter()
            .all(|m| m.group_id.as_deref() != Some(group.as_str())),
        "{SUITE}/fifo-in-flight: group {group} is locked while {} is in flight, got {:?}",
        first.body,
        bodies(&others)
    );
    // Put everything back; a released head comes back before the rest of its group.
    q.release(&first.receipt_handle, Duration::ZERO, Some("retry"))
        .await
        .unwrap();
    for m in &others {
        q.release(&m.receipt_handle, Duration::ZERO, None)
            .await
            .unwrap();
    }

    // Drain: each group arrives in order; deleting a message lets the next one through.
    let want: HashMap<&str, Vec<&str>> = HashMap::from([
        ("A", vec!["a1", "a2", "a3"]),
        ("B", vec!["b1", "b2"]),
        ("C", vec!["c1"]),
    ]);
    let mut next: HashMap<String, usize> = HashMap::new();
    let until = tokio::time::Instant::now() + DEADLINE;
    let done = |next: &HashMap<String, usize>| {
        want.iter()
            .all(|(g, w)| next.get(*g).copied().unwrap_or(0) == w.len())
    };
    while !done(&next) {
        assert!(
            tokio::time::Instant::now() < until,
            "{SUITE}/fifo-order: drained only {next:?} within {DEADLINE:?}"
        );
        let batch = q.receive(10, LONG, Duration::from_secs(1)).await.unwrap();
        for m in &batch {
            let g = m.group_id.clone().expect("group id");
            let i = next.entry(g.clone()).or_default();
            let expected = want[g.as_str()].get(*i).copied();
            assert_eq!(
                Some(m.body.as_str()),
                expected,
                "{SUITE}/fifo-order: group {g} out of order"
            );
            *i += 1;
        }
        q.delete_batch(&handles(&batch.iter().collect::<Vec<_>>()))
            .await
            .unwrap();
    }
    nothing(&*q, Duration::from_millis(200), "fifo-drained").await;
}
