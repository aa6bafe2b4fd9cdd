//! Queues with SQS semantics.
//!
//! A message is visible when `visible_at_ms <= now`. Receiving hides it
//! until `now + visibility` and gives it a fresh receipt (older receipts go
//! stale). In FIFO queues only the head of each message group is ever
//! eligible: later messages of a group wait with `visible_at_ms = BLOCKED`
//! and are promoted when the head leaves (deleted or moved to the DLQ), so
//! a receive never scans messages stuck behind an in-flight head.
//! Visibility and receipts live only in memory: after a restart every
//! message is visible again, with its receive count kept.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::journal::{MessageOp, Op};
pub use super::queue_config::QueueConfig;
use super::state::{Msg, QState, BLOCKED};
use super::store::{ms, wait_until, Changes, EmbeddedStore, QueueMeta, Unwritable};
use crate::events::SnsAttribute;
use crate::ports::{Capabilities, OutgoingMessage, Queue, QueueError, ReceivedMessage};
/// SQS limits.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_ATTRIBUTES: usize = 10;
/// How often (in dedup inserts, a power of two) expired dedup ids are swept.
const DEDUP_SWEEP_EVERY: u64 = 256;

impl From<Unwritable> for QueueError {
    fn from(e: Unwritable) -> Self {
        QueueError::Backend(e.to_string())
    }
}

/// Whether SQS refuses a body for a character that is not XML's: a
/// control character but tab, LF and CR, or U+FFFE / U+FFFF. The control
/// characters are found in one pass the compiler vectorises (no early
/// exit); the two non-characters only start at the rare byte 0xEF.
fn has_forbidden_char(body: &str) -> bool {
    let bytes = body.as_bytes();
    let control = bytes.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
    });
    control
        || memchr::memchr_iter(0xEF, bytes)
            .any(|i| matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])))
}

/// Counts for `switchyard dlq list` and the runtime's quiescence check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub name: String,
    /// Ready to receive (SQS ApproximateNumberOfMessages).
    pub visible: u64,
    /// Received and hidden (ApproximateNumberOfMessagesNotVisible).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (ApproximateNumberOfMessagesDelayed).
    pub delayed: u64,
    /// Some queue names this one as its dead-letter queue.
    pub is_dlq: bool,
}

/// A message seen without receiving it (`switchyard dlq show`).
#[derive(Debug, Clone, PartialEq)]
pub struct PeekedMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: BTreeMap<String, SnsAttribute>,
    pub group_id: Option<String>,
    pub sent_at_ms: i64,
    pub receive_count: u32,
    /// The reason given when it was last released after a failure.
    pub last_failure: Option<String>,
    /// The queue it came from, for messages moved to a DLQ.
    pub source_queue: Option<String>,
    pub in_flight: bool,
}

/// A queue port over an [`EmbeddedStore`]; get one with [`EmbeddedStore::queue`].
#[derive(Clone, Debug)]
pub struct EmbeddedQueue {
    store: Arc<EmbeddedStore>,
    meta: Arc<QueueMeta>,
    name: String,
}

fn decode_attributes(text: Option<&str>) -> Result<BTreeMap<String, SnsAttribute>, QueueError> {
    match text {
        None => Ok(BTreeMap::new()),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| QueueError::Backend(format!("stored attributes: {e}"))),
    }
}

/// A v4-shaped UUID like SQS's message ids, from a fast thread-local RNG
/// (ids need to be unique, not unguessable; the OS RNG cost a syscall each).
fn new_message_id() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn receipt_handle(id: u64, nonce: u64) -> String {
    format!("{id}:{nonce}")
}

/// Splits a receipt handle; anything malformed is simply unknown (stale).
fn parse_receipt(handle: &str) -> Result<(u64, u64), QueueError> {
    let stale = || QueueError::StaleReceipt(handle.to_owned());
    let (id, nonce) = handle.split_once(':').ok_or_else(stale)?;
    Ok((
        id.parse().map_err(|_| stale())?,
        nonce.parse().map_err(|_| stale())?,
    ))
}

fn no_queue(name: &str) -> QueueError {
    QueueError::NoSuchQueue(name.to_owned())
}

/// Moves a message to the end of another queue: to its DLQ (keeping its
/// receive count and last failure, remembering its source) or, with
/// `redrive`, back to its source with a fresh start.
fn transfer(c: &mut Changes<'_>, from: &str, id: u64, to: &str, redrive: bool, at_ms: i64) {
    let new_id = c.state.next_message;
    c.apply(Op::Transfer {
        from,
        id,
        to,
        new_id,
        redrive,
        at_ms,
    });
}

impl EmbeddedStore {
    /// Creates a queue, or updates its redrive policy if it exists. A DLQ
    /// must be created before the queues that name it.
    pub fn create_queue(&self, cfg: QueueConfig) -> Result<(), QueueError> {
        cfg.validate()?;
        let ((), batch) = self.change(|c| {
            if let Some(dlq) = &cfg.dead_letter_queue {
                if !c.state.queues.contains_key(dlq) {
                    return Err(QueueError::Invalid(format!(
                        "dead-letter queue {dlq:?} of {:?} does not exist; create it first",
                        cfg.name
                    )));
                }
            }
            c.apply(Op::CreateQueue {
                name: &cfg.name,
                fifo: cfg.fifo,
                max_receive_count: cfg.max_receive_count,
                dlq: cfg.dead_letter_queue.as_deref(),
            });
            Ok(())
        })?;
        self.queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cfg.name.clone())
            .or_default();
        // Admin calls are synchronous: wait for the commit without a runtime.
        // Not for the flush: every open creates its queues again.
        futures::executor::block_on(self.committed(batch))?;
        Ok(())
    }

    /// A handle on an existing queue.
    pub fn queue(self: &Arc<Self>, name: &str) -> Result<EmbeddedQueue, QueueError> {
        let meta = self.queue_meta(name)?;
        Ok(EmbeddedQueue {
            store: Arc::clone(self),
            meta,
            name: name.to_owned(),
        })
    }

    pub(super) fn queue_meta(&self, name: &str) -> Result<Arc<QueueMeta>, QueueError> {
        if let Some(meta) = self
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Arc::clone(meta));
        }
        if !self.lock().state.queues.contains_key(name) {
            return Err(no_queue(name));
        }
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(queues.entry(name.to_owned()).or_default()))
    }

    fn notify_queue(&self, name: &str) {
        if let Some(meta) = self
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            meta.notify.notify_waiters();
        }
    }

    /// The configs of every queue, sorted by name.
    pub fn queue_configs(&self) -> Result<Vec<QueueConfig>, QueueError> {
        let g = self.lock();
        Ok(g.state
            .queues
            .values()
            .map(|q| QueueConfig::clone(&q.cfg))
            .collect())
    }

    /// Message counts of every queue, sorted by name.
    pub fn queue_stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let now = self.now_ms();
        let g = self.lock();
        let dlqs: HashSet<&str> = g
            .state
            .queues
            .values()
            .filter_map(|q| q.cfg.dead_letter_queue.as_deref())
            .collect();
        Ok(g.state
            .queues
            .iter()
            .map(|(name, q)| {
                let mut stats = QueueStats {
                    name: name.clone(),
                    visible: 0,
                    in_flight: 0,
                    delayed: 0,
                    is_dlq: dlqs.contains(name.as_str()),
                };
                for m in q.msgs.values() {
                    if m.visible_at_ms <= now || m.visible_at_ms == BLOCKED {
                        stats.visible += 1;
                    } else if m.receive_count > 0 {
                        stats.in_flight += 1;
                    } else {
                        stats.delayed += 1;
                    }
                }
                stats
            })
            .collect())
    }

    /// Up to `limit` messages of a queue, oldest first, without receiving them.
    pub fn list_messages(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<PeekedMessage>, QueueError> {
        let now = self.now_ms();
        let g = self.lock();
        let q = g.state.queues.get(queue).ok_or_else(|| no_queue(queue))?;
        q.msgs
            .values()
            .take(limit)
            .map(|m| {
                Ok(PeekedMessage {
                    message_id: m.message_id.to_string(),
                    body: m.body.to_string(),
                    attributes: decode_attributes(m.attributes.as_deref())?,
                    group_id: m.group.as_deref().map(str::to_owned),
                    sent_at_ms: m.sent_at_ms,
                    receive_count: m.receive_count,
                    last_failure: m.reason.as_deref().map(str::to_owned),
                    source_queue: m.source.as_deref().map(str::to_owned),
                    in_flight: m.visible_at_ms > now
                        && m.visible_at_ms < BLOCKED
                        && m.receive_count > 0,
                })
            })
            .collect()
    }

    /// Moves up to `max` messages of a DLQ back to the queues they came from,
    /// with a fresh receive count. Returns how many moved. Messages sent to
    /// the DLQ directly (no source queue) stay.
    pub fn redrive(&self, dlq: &str, max: usize) -> Result<usize, QueueError> {
        self.redrive_where(dlq, max, |_| true)
    }

    /// Moves one message of a DLQ (by its message id) back to the queue it
    /// came from, with a fresh receive count. Returns whether it moved.
    pub fn redrive_message(&self, dlq: &str, message_id: &str) -> Result<bool, QueueError> {
        Ok(self.redrive_where(dlq, 1, |m| &*m.message_id == message_id)? == 1)
    }

    /// Deletes one message of a queue by its message id (a dead letter given
    /// up on). Returns whether it was there.
    pub fn delete_message(&self, queue: &str, message_id: &str) -> Result<bool, QueueError> {
        let now = self.now_ms();
        let (found, batch) = self.change(|c| {
            let q = c.state.queues.get(queue).ok_or_else(|| no_queue(queue))?;
            let id = q
                .msgs
                .iter()
                .find(|(_, m)| &*m.message_id == message_id)
                .map(|(id, _)| *id);
            if let Some(id) = id {
                c.apply(Op::Delete {
                    queue,
                    id,
                    at_ms: now,
                });
            }
            Ok::<_, QueueError>(id.is_some())
        })?;
        futures::executor::block_on(self.flushed(batch))?;
        Ok(found)
    }

    fn redrive_where(
        &self,
        dlq: &str,
        max: usize,
        pick: impl Fn(&super::state::Msg) -> bool,
    ) -> Result<usize, QueueError> {
        let now = self.now_ms();
        let (targets, batch) = self.change(|c| {
            let queues = &c.state.queues;
            let q = queues.get(dlq).ok_or_else(|| no_queue(dlq))?;
            if !queues
                .values()
                .any(|o| o.cfg.dead_letter_queue.as_deref() == Some(dlq))
            {
                return Err(QueueError::Invalid(format!(
                    "queue {dlq:?} is not the dead-letter queue of any queue"
                )));
            }
            let moves: Vec<(u64, Arc<str>)> = q
                .msgs
                .iter()
                .filter(|(_, m)| pick(m))
                .filter_map(|(id, m)| m.source.as_ref().map(|s| (*id, Arc::clone(s))))
                .take(max)
                .collect();
            if let Some((_, missing)) = moves.iter().find(|(_, s)| !queues.contains_key(&**s)) {
                return Err(no_queue(missing));
            }
            let mut targets = Vec::new();
            for (id, source) in moves {
                transfer(c, dlq, id, &source, true, now);
                targets.push(source);
            }
            Ok(targets)
        })?;
        let moved = targets.len();
        let unique: HashSet<Arc<str>> = targets.into_iter().collect();
        for t in &unique {
            self.notify_queue(t);
        }
        futures::executor::block_on(self.flushed(batch))?;
        Ok(moved)
    }

    /// Deletes every message of a queue; returns how many.
    pub fn purge(&self, queue: &str) -> Result<usize, QueueError> {
        let (n, batch) = self.change(|c| {
            let n = c
                .state
                .queues
                .get(queue)
                .ok_or_else(|| no_queue(queue))?
                .msgs
                .len();
            c.apply(Op::Purge { queue });
            Ok::<_, QueueError>(n)
        })?;
        futures::executor::block_on(self.flushed(batch))?;
        Ok(n)
    }

    /// Makes every in-flight message of every queue visible again, keeping its
    /// receive count. Opening a store already does this for the messages of
    /// the process before; this is for a runtime that takes over in-process.
    pub fn reclaim_in_flight(&self) -> Result<usize, QueueError> {
        let (n, names): (usize, Vec<String>) = {
            let mut g = self.lock();
            let n = g.state.reclaim_in_flight(self.now_ms());
            (n, g.state.queues.keys().cloned().collect())
        };
        // Woken outside the lock: a woken receiver takes it at once.
        for name in &names {
            self.notify_queue(name);
        }
        Ok(n)
    }
}

impl EmbeddedQueue {
    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    pub fn config(&self) -> Arc<QueueConfig> {
        let g = self.store.lock();
        Arc::clone(&g.state.queues[&self.name].cfg)
    }

    fn validate(&self, m: &OutgoingMessage, fifo: bool) -> Result<(), QueueError> {
        let invalid = |what: String| {
            Err(QueueError::Invalid(format!(
                "queue {:?}: {what}",
                self.name
            )))
        };
        if m.body.is_empty() {
            return invalid("message body is empty".to_owned());
        }
        if has_forbidden_char(&m.body) {
            return invalid(
                "message body has a character SQS does not allow (a control character)".to_owned(),
            );
        }
        if m.attributes.len() > MAX_ATTRIBUTES {
            return invalid(format!(
                "{} message attributes, over the limit of {MAX_ATTRIBUTES}",
                m.attributes.len()
            ));
        }
        let mut size = m.body.len();
        for (name, value) in &m.attributes {
            if name.is_empty()
                || name.len() > 256
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return invalid(format!(
                    "attribute name {name:?}: use 1-256 of A-Z a-z 0-9 _ - ."
                ));
            }
            size += name.len() + value.data_type().len() + value.string_value().len();
        }
        if size > MAX_MESSAGE_BYTES {
            return invalid(format!(
                "message is {size} bytes with attributes, over the {MAX_MESSAGE_BYTES}-byte limit"
            ));
        }
        if m.delay > MAX_DELAY {
            return invalid(format!("delay {:?} is over the 15-minute maximum", m.delay));
        }
        if fifo {
            match &m.group_id {
                None => {
                    return invalid("a FIFO queue needs a group_id on every message".to_owned())
                }
                Some(g) if g.is_empty() || g.len() > 128 => {
                    return invalid(format!("group_id {g:?} must be 1-128 characters"))
                }
                _ => {}
            }
            if !m.delay.is_zero() {
                return invalid("FIFO queues do not take a per-message delay (as SQS)".to_owned());
            }
            if let Some(d) = &m.dedup_id {
                if d.is_empty() || d.len() > 128 {
                    return invalid(format!("dedup_id {d:?} must be 1-128 characters"));
                }
            }
        } else if m.dedup_id.is_some() {
            return invalid("dedup_id is only valid on FIFO queues".to_owned());
        }
        Ok(())
    }

    /// One receive attempt: the messages, and (when none) the earliest time a
    /// hidden message becomes visible, for the long poll to wake at.
    fn receive_once(
        &self,
        max: usize,
        visibility_ms: i64,
    ) -> Result<(Vec<ReceivedMessage>, Option<i64>), QueueError> {
        let now = self.store.now_ms();
        let hidden_until = now.saturating_add(visibility_ms);
        let (out, _) = self
            .store
            .change(|c| receive_in(c, &self.store, &self.name, max, now, hidden_until))?;
        if let Some(dlq) = &out.moved_to {
            self.store.notify_queue(dlq);
        }
        if out.promoted {
            self.meta.notify.notify_waiters();
        }
        Ok((out.messages, out.next_visible_at))
    }

    /// Changes a received message's visibility; `cascade` (FIFO release) also
    /// releases the later in-flight messages of its group, which must not be
    /// handled before it. Visibility is not journaled (it does not outlive
    /// the process); a reason is.
    fn set_visibility(
        &self,
        handle: &str,
        visibility: Duration,
        reason: Option<&str>,
        cascade: bool,
    ) -> Result<(), QueueError> {
        check_visibility(visibility)?;
        let (id, nonce) = parse_receipt(handle)?;
        let now = self.store.now_ms();
        let visible_at = now.saturating_add(ms(visibility));
        self.store.change(|c| {
            let q = c
                .state
                .queues
                .get_mut(&self.name)
                .ok_or_else(|| no_queue(&self.name))?;
            let group = match q.msgs.get(&id) {
                Some(m) if m.receipt == nonce => m.group.clone(),
                _ => return Err(QueueError::StaleReceipt(handle.to_owned())),
            };
            q.set_visible_at(id, visible_at);
            if let (true, true, Some(g)) = (cascade, q.cfg.fifo, group) {
                let later: Vec<u64> = q.groups[&g]
                    .range(id + 1..)
                    .copied()
                    .filter(|later| {
                        let m = &q.msgs[later];
                        m.receive_count > 0 && m.visible_at_ms > now && m.visible_at_ms < BLOCKED
                    })
                    .collect();
                for later in later {
                    q.set_visible_at(later, visible_at);
                }
            }
            if let Some(reason) = reason {
                c.apply(Op::Reason {
                    queue: &self.name,
                    id,
                    reason,
                });
            }
            Ok(())
        })?;
        self.meta.notify.notify_waiters();
        Ok(())
    }
}

/// What one receive did.
struct Received {
    messages: Vec<ReceivedMessage>,
    /// The DLQ some message went to.
    moved_to: Option<String>,
    /// A FIFO group got a new head.
    promoted: bool,
    /// When nothing was received: when the next hidden message shows again.
    next_visible_at: Option<i64>,
}

/// The receive itself: picks up to `max` visible messages (FIFO: only group
/// heads and what follows them), hides them until `hidden_until` and moves
/// those past `maxReceiveCount` to the DLQ.
fn receive_in(
    c: &mut Changes<'_>,
    store: &EmbeddedStore,
    queue: &str,
    max: usize,
    now: i64,
    hidden_until: i64,
) -> Result<Received, QueueError> {
    let q = c.state.queues.get(queue).ok_or_else(|| no_queue(queue))?;
    let cfg = Arc::clone(&q.cfg);
    let dlq = cfg.dead_letter_queue.as_deref();
    let over_limit = |m: &Msg| dlq.is_some() && m.receive_count >= cfg.max_receive_count;
    let mut out = Received {
        messages: Vec::new(),
        moved_to: None,
        promoted: false,
        next_visible_at: None,
    };
    let mut picked: HashSet<u64> = HashSet::new();
    // Candidates in the order they became visible; decided first, applied after.
    let mut cursor = (i64::MIN, 0u64);
    while out.messages.len() < max {
        let q = &c.state.queues[queue];
        let Some(&(at, id)) = q
            .ready
            .range((
                std::ops::Bound::Excluded(cursor),
                std::ops::Bound::Unbounded,
            ))
            .next()
        else {
            break;
        };
        if at > now {
            break;
        }
        cursor = (at, id);
        let m = &q.msgs[&id];
        let group = if cfg.fifo { m.group.clone() } else { None };
        // A message just delivered with a zero visibility comes round again.
        if picked.contains(&id) || group.as_deref().is_some_and(|g| q.head(g) != Some(id)) {
            continue;
        }
        if over_limit(m) {
            let dlq = dlq.expect("over_limit implies a DLQ");
            transfer(c, queue, id, dlq, false, now);
            out.moved_to = Some(dlq.to_owned());
            if let Some(g) = &group {
                out.promoted |= promoted_head(&c.state.queues[queue], g, now);
            }
            continue;
        }
        picked.insert(id);
        deliver(c, store, queue, id, hidden_until, &mut out.messages)?;
        // FIFO: the rest of the group may come in the same batch, in order.
        if let Some(g) = &group {
            let q = &c.state.queues[queue];
            let next: Vec<u64> = q.groups[g]
                .range(id + 1..)
                .copied()
                .take(max - out.messages.len())
                .take_while(|n| {
                    let m = &q.msgs[n];
                    (m.visible_at_ms == BLOCKED || m.visible_at_ms <= now) && !over_limit(m)
                })
                .collect();
            for n in next {
                picked.insert(n);
                deliver(c, store, queue, n, hidden_until, &mut out.messages)?;
            }
        }
    }
    if out.messages.is_empty() {
        let q = &c.state.queues[queue];
        out.next_visible_at = q.ready.range((now + 1, 0)..).next().map(|(at, _)| *at);
    }
    Ok(out)
}

/// Whether a FIFO group's head was just promoted (made visible at `now`).
fn promoted_head(q: &QState, group: &str, now: i64) -> bool {
    q.cfg.fifo
        && q.head(group)
            .is_some_and(|h| q.msgs[&h].visible_at_ms == now)
}

/// Hands one message out: a receive count more, hidden, a fresh receipt.
fn deliver(
    c: &mut Changes<'_>,
    store: &EmbeddedStore,
    queue: &str,
    id: u64,
    hidden_until: i64,
    out: &mut Vec<ReceivedMessage>,
) -> Result<(), QueueError> {
    c.apply(Op::Receive { queue, id });
    let nonce = store.next_receipt();
    let q: &mut QState = c.state.queues.get_mut(queue).expect("checked");
    q.set_visible_at(id, hidden_until);
    let m = q.msgs.get_mut(&id).expect("listed");
    m.receipt = nonce;
    out.push(ReceivedMessage {
        message_id: m.message_id.to_string(),
        receipt_handle: receipt_handle(id, nonce),
        attributes: decode_attributes(m.attributes.as_deref())?,
        body: m.body.to_string(),
        receive_count: m.receive_count,
        group_id: m.group.as_deref().map(str::to_owned),
        sent_at_ms: m.sent_at_ms,
    });
    Ok(())
}

/// Adds messages (dropping FIFO duplicates within the dedup window);
/// returns their ids (a duplicate gets its original's).
fn send_in(
    c: &mut Changes<'_>,
    meta: &QueueMeta,
    queue: &str,
    messages: &[(OutgoingMessage, Option<String>)],
    dedup_window: i64,
) -> Result<Vec<String>, QueueError> {
    let now = c.now_ms;
    let mut ids = Vec::with_capacity(messages.len());
    for (m, attributes) in messages {
        let q = c.state.queues.get(queue).ok_or_else(|| no_queue(queue))?;
        if let Some(dedup) = &m.dedup_id {
            if let Some((id, expires)) = q.dedup.get(dedup).filter(|(_, e)| *e > now) {
                tracing::debug!(queue, dedup_id = %dedup, message_id = %id, expires, "duplicate dropped");
                ids.push(id.to_string());
                continue;
            }
        }
        let visible_at = match &m.group_id {
            Some(g) if q.cfg.fifo && q.group_busy(g) => BLOCKED,
            _ => now.saturating_add(ms(m.delay)),
        };
        let message_id = new_message_id();
        let id = c.state.next_message;
        c.apply(Op::Message(MessageOp {
            queue,
            id,
            message_id: &message_id,
            body: &m.body,
            attributes: attributes.as_deref(),
            group: m.group_id.as_deref(),
            sent_at_ms: now,
            visible_at_ms: visible_at,
            receive_count: 0,
            reason: None,
            source: None,
        }));
        if let Some(dedup) = &m.dedup_id {
            c.apply(Op::Dedup {
                queue,
                dedup_id: dedup,
                message_id: &message_id,
                expires_ms: now.saturating_add(dedup_window),
            });
            if meta.dedup_inserts.fetch_add(1, Ordering::Relaxed) & (DEDUP_SWEEP_EVERY - 1) == 0 {
                // Expired ids only matter in memory; a load skips them too.
                if let Some(q) = c.state.queues.get_mut(queue) {
                    q.dedup.retain(|_, (_, expires)| *expires > now);
                }
            }
        }
        ids.push(message_id);
    }
    Ok(ids)
}

fn check_visibility(visibility: Duration) -> Result<(), QueueError> {
    if visibility > MAX_VISIBILITY {
        return Err(QueueError::Invalid(format!(
            "visibility {visibility:?} is over the 12-hour maximum"
        )));
    }
    Ok(())
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        let fifo = self.config().fifo;
        for m in &messages {
            self.validate(m, fifo)?;
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // Encoded before the change: a refusal must come before any write.
        let messages = messages
            .into_iter()
            .map(|m| {
                let attributes = if m.attributes.is_empty() {
                    None
                } else {
                    Some(
                        serde_json::to_string(&m.attributes)
                            .map_err(|e| QueueError::Invalid(e.to_string()))?,
                    )
                };
                Ok((m, attributes))
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        let dedup_window = self.store.dedup_window_ms;
        let (ids, batch) = self
            .store
            .change(|c| send_in(c, &self.meta, &self.name, &messages, dedup_window))?;
        self.meta.notify.notify_waiters();
        self.store.committed(batch).await?;
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if max == 0 {
            return Err(QueueError::Invalid(format!(
                "queue {:?}: receive at least one message",
                self.name
            )));
        }
        check_visibility(visibility)?;
        let visibility_ms = ms(visibility);
        let deadline = tokio::time::Instant::now() + wait;
        wait_until(
            &*self.store.clock,
            &self.meta.notify,
            deadline,
            self.store.external_poll,
            || std::future::ready(self.receive_once(max, visibility_ms)),
            |msgs| !msgs.is_empty(),
        )
        .await
    }

    /// Durable with the next commit: after a crash the message is at worst
    /// delivered again (at least once).
    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        let now = self.store.now_ms();
        let (stale, _) = self.store.change(|c| {
            let mut stale = Vec::new();
            let mut promoted = false;
            for handle in receipt_handles {
                let q = c
                    .state
                    .queues
                    .get(&self.name)
                    .ok_or_else(|| no_queue(&self.name))?;
                let id = match parse_receipt(handle) {
                    Ok((id, nonce)) if q.msgs.get(&id).is_some_and(|m| m.receipt == nonce) => id,
                    _ => {
                        stale.push(handle.as_str());
                        continue;
                    }
                };
                let group = q.msgs[&id].group.clone();
                c.apply(Op::Delete {
                    queue: &self.name,
                    id,
                    at_ms: now,
                });
                if let Some(g) = group {
                    promoted |= promoted_head(&c.state.queues[&self.name], &g, now);
                }
            }
            Ok::<_, QueueError>((stale.join(", "), promoted))
        })?;
        let (stale, promoted) = stale;
        if promoted {
            self.meta.notify.notify_waiters();
        }
        // The valid handles are deleted either way; report the rest.
        if !stale.is_empty() {
            return Err(QueueError::StaleReceipt(stale));
        }
        Ok(())
    }

    async fn release(
        &self,
        receipt_handle: &str,
        visibility: Duration,
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        self.set_visibility(receipt_handle, visibility, reason, true)
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.set_visibility(receipt_handle, visibility, None, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The character-by-character check it replaces.
    fn forbidden_by_chars(body: &str) -> bool {
        body.chars().any(|c| {
            (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
        })
    }

    #[test]
    fn forbidden_characters_are_found_as_char_by_char() {
        let alphabet = [
            "a",
            "{\"k\":1}",
            "\t",
            "\n",
            "\r",
            "\u{1}",
            "\u{1f}",
            " ",
            "é",
            "\u{FFFD}",
            "\u{FFFE}",
            "\u{FFFF}",
            "\u{FEFF}",
            "\u{EFFF}",
            "\u{10FFFF}",
            "😀",
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..20_000 {
            let body: String = (0..rng.usize(0..40))
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            assert_eq!(
                has_forbidden_char(&body),
                forbidden_by_chars(&body),
                "{body:?}"
            );
        }
    }
}
