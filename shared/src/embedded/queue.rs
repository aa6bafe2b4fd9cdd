//! Queues with SQS semantics on SQLite.
//!
//! A message row is visible when `visible_at_ms <= now`. Receiving hides it
//! until `now + visibility` and gives it a fresh receipt (older receipts go
//! stale). In FIFO queues only the head of each message group is ever
//! eligible: later messages of a group wait with `visible_at_ms = BLOCKED`
//! and are promoted when the head leaves (deleted or moved to the DLQ), so
//! the receive query never scans messages stuck behind an in-flight head.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::Notify;

use super::store::{ms, now_ms, wait_until, EmbeddedStore};
use super::writer::Batch;
use crate::events::SnsAttribute;
use crate::ports::{Capabilities, OutgoingMessage, Queue, QueueError, ReceivedMessage};

/// `visible_at_ms` of a FIFO message waiting behind its group's head.
const BLOCKED: i64 = i64::MAX;
/// SQS limits.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
const MAX_ATTRIBUTES: usize = 10;
const MAX_NAME_CHARS: usize = 80;
/// How often (in dedup inserts, a power of two) expired dedup ids are swept.
const DEDUP_SWEEP_EVERY: u64 = 256;

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Backend(e.to_string())
    }
}

impl super::writer::OpError for QueueError {
    fn is_refusal(&self) -> bool {
        !matches!(self, QueueError::Backend(_))
    }
}

/// A queue and its redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// SQS rules: 1-80 of `[A-Za-z0-9_-]`; FIFO names end in `.fifo`.
    pub name: String,
    pub fifo: bool,
    /// Receives before a message moves to the DLQ (ignored without a DLQ).
    pub max_receive_count: u32,
    pub dead_letter_queue: Option<String>,
}

impl QueueConfig {
    /// A queue without a DLQ; FIFO if the name ends in `.fifo`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        QueueConfig {
            fifo: name.ends_with(".fifo"),
            name,
            max_receive_count: 0,
            dead_letter_queue: None,
        }
    }

    /// Sends messages received more than `max_receive_count` times to `dlq`.
    pub fn with_dlq(mut self, dlq: impl Into<String>, max_receive_count: u32) -> Self {
        self.dead_letter_queue = Some(dlq.into());
        self.max_receive_count = max_receive_count;
        self
    }

    /// Checks the config against SQS's rules (the DLQ's existence is checked on create).
    pub fn validate(&self) -> Result<(), QueueError> {
        validate_name(&self.name, self.fifo)?;
        if let Some(dlq) = &self.dead_letter_queue {
            if dlq == &self.name {
                return Err(QueueError::Invalid(format!(
                    "queue {:?} cannot be its own dead-letter queue",
                    self.name
                )));
            }
            if dlq.ends_with(".fifo") != self.fifo {
                return Err(QueueError::Invalid(format!(
                    "queue {:?} and its dead-letter queue {dlq:?} must both be FIFO or both standard",
                    self.name
                )));
            }
            if !(1..=1000).contains(&self.max_receive_count) {
                return Err(QueueError::Invalid(format!(
                    "queue {:?}: max_receive_count must be 1..=1000 with a dead-letter queue, got {}",
                    self.name, self.max_receive_count
                )));
            }
        }
        Ok(())
    }
}

fn validate_name(name: &str, fifo: bool) -> Result<(), QueueError> {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(QueueError::Invalid(format!(
            "queue name {name:?}: use 1-{MAX_NAME_CHARS} characters of A-Z a-z 0-9 - _ (plus `.fifo` for FIFO queues)"
        )));
    }
    if fifo != name.ends_with(".fifo") {
        return Err(QueueError::Invalid(format!(
            "queue name {name:?}: FIFO queue names end in `.fifo`, and only theirs do (fifo = {fifo})"
        )));
    }
    Ok(())
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

/// Per-queue state shared by every handle of the queue.
#[derive(Debug)]
pub(crate) struct QueueMeta {
    config: RwLock<Arc<QueueConfig>>,
    /// Fired on commits that may make a message receivable.
    notify: Notify,
    dedup_inserts: AtomicU64,
}

impl QueueMeta {
    pub(super) fn new(cfg: QueueConfig) -> Self {
        QueueMeta {
            config: RwLock::new(Arc::new(cfg)),
            notify: Notify::new(),
            dedup_inserts: AtomicU64::new(0),
        }
    }
    /// Wakes the receivers long-polling this queue.
    pub(super) fn wake_receivers(&self) {
        self.notify.notify_waiters();
    }

    fn config(&self) -> Arc<QueueConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }
}

pub(super) fn load_queue_configs(conn: &Connection) -> rusqlite::Result<Vec<QueueConfig>> {
    let mut st = conn.prepare("SELECT name, fifo, max_receive_count, dlq FROM queues")?;
    let rows = st.query_map([], |r| {
        Ok(QueueConfig {
            name: r.get(0)?,
            fifo: r.get(1)?,
            max_receive_count: r.get(2)?,
            dead_letter_queue: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// A queue port over an [`EmbeddedStore`]; get one with [`EmbeddedStore::queue`].
#[derive(Clone, Debug)]
pub struct EmbeddedQueue {
    store: Arc<EmbeddedStore>,
    meta: Arc<QueueMeta>,
    name: String,
}

/// One message row as the receive path reads it.
struct Row {
    id: i64,
    message_id: String,
    body: String,
    attributes: Option<String>,
    group_id: Option<String>,
    sent_at_ms: i64,
    visible_at_ms: i64,
    receive_count: u32,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        message_id: r.get(1)?,
        body: r.get(2)?,
        attributes: r.get(3)?,
        group_id: r.get(4)?,
        sent_at_ms: r.get(5)?,
        visible_at_ms: r.get(6)?,
        receive_count: r.get(7)?,
    })
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

fn receipt_handle(id: i64, nonce: u64) -> String {
    format!("{id}:{nonce}")
}

/// Splits a receipt handle; anything malformed is simply unknown (stale).
fn parse_receipt(handle: &str) -> Result<(i64, i64), QueueError> {
    let stale = || QueueError::StaleReceipt(handle.to_owned());
    let (id, nonce) = handle.split_once(':').ok_or_else(stale)?;
    let nonce: u64 = nonce.parse().map_err(|_| stale())?;
    Ok((id.parse().map_err(|_| stale())?, nonce as i64))
}

/// Whether a FIFO group has any message in the queue (then a new one waits behind it).
fn group_busy(tx: &Connection, queue: &str, group: &str) -> rusqlite::Result<bool> {
    let mut st =
        tx.prepare_cached("SELECT 1 FROM messages WHERE queue = ?1 AND group_id = ?2 LIMIT 1")?;
    st.exists((queue, group))
}

/// After a FIFO group's head left, makes the next message the head.
fn promote(tx: &Connection, queue: &str, group: &str, now: i64) -> rusqlite::Result<bool> {
    let mut st = tx.prepare_cached(
        "UPDATE messages SET visible_at_ms = ?3
         WHERE id = (SELECT MIN(id) FROM messages WHERE queue = ?1 AND group_id = ?2) AND visible_at_ms = ?4",
    )?;
    Ok(st.execute((queue, group, now, BLOCKED))? > 0)
}

/// Where a moved message goes, and what it keeps.
enum Move<'a> {
    /// To a DLQ: keeps its receive count and last failure, remembers its source.
    ToDlq { source: &'a str },
    /// Back to its source queue: a fresh start.
    Redrive,
}

/// Moves a message to the end of another queue (a new row, so that row order
/// stays arrival order in every queue).
fn transfer(
    tx: &Connection,
    id: i64,
    group: Option<&str>,
    to: &str,
    mode: Move<'_>,
    now: i64,
) -> rusqlite::Result<()> {
    let to_fifo = to.ends_with(".fifo");
    let visible_at = match group {
        Some(g) if to_fifo && group_busy(tx, to, g)? => BLOCKED,
        _ => now,
    };
    let (reset, source) = match mode {
        Move::ToDlq { source } => (false, Some(source)),
        Move::Redrive => (true, None),
    };
    let mut st = tx.prepare_cached(
        "INSERT INTO messages (queue, message_id, body, attributes, group_id, sent_at_ms, visible_at_ms,
                               receive_count, receipt, reason, source_queue)
         SELECT ?1, message_id, body, attributes, group_id, sent_at_ms, ?2,
                CASE WHEN ?3 THEN 0 ELSE receive_count END, NULL,
                CASE WHEN ?3 THEN NULL ELSE reason END, ?4
         FROM messages WHERE id = ?5",
    )?;
    st.execute((to, visible_at, reset, source, id))?;
    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

impl EmbeddedStore {
    /// Creates a queue, or updates its redrive policy if it exists. A DLQ
    /// must be created before the queues that name it.
    pub fn create_queue(&self, cfg: QueueConfig) -> Result<(), QueueError> {
        cfg.validate()?;
        if let Some(dlq) = &cfg.dead_letter_queue {
            self.queue_meta(dlq).map_err(|_| {
                QueueError::Invalid(format!(
                    "dead-letter queue {dlq:?} of {:?} does not exist; create it first",
                    cfg.name
                ))
            })?;
        }
        self.write(|tx| {
            tx.execute(
                "INSERT INTO queues (name, fifo, max_receive_count, dlq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET max_receive_count = excluded.max_receive_count, dlq = excluded.dlq",
                (&cfg.name, cfg.fifo, cfg.max_receive_count, &cfg.dead_letter_queue),
            )
        })?;
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        match queues.get(&cfg.name) {
            Some(meta) => *meta.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg),
            None => {
                queues.insert(cfg.name.clone(), Arc::new(QueueMeta::new(cfg)));
            }
        }
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

    /// The queue's shared state; loads queues another process created.
    pub(super) fn queue_meta(&self, name: &str) -> Result<Arc<QueueMeta>, QueueError> {
        if let Some(meta) = self
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Arc::clone(meta));
        }
        let cfg = self
            .read(load_queue_configs)?
            .into_iter()
            .find(|c| c.name == name);
        let cfg = cfg.ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))?;
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(
            queues
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(QueueMeta::new(cfg))),
        ))
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
        let mut all = self.read(load_queue_configs)?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// Message counts of every queue, sorted by name.
    pub fn queue_stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let configs = self.queue_configs()?;
        let dlqs: HashSet<&str> = configs
            .iter()
            .filter_map(|c| c.dead_letter_queue.as_deref())
            .collect();
        let now = now_ms();
        let counts = self.read(|conn| {
            let mut st = conn.prepare_cached(
                "SELECT queue,
                    SUM(CASE WHEN visible_at_ms <= ?1 OR visible_at_ms = ?2 THEN 1 ELSE 0 END),
                    SUM(CASE WHEN visible_at_ms > ?1 AND visible_at_ms < ?2 AND receive_count > 0 THEN 1 ELSE 0 END),
                    SUM(CASE WHEN visible_at_ms > ?1 AND visible_at_ms < ?2 AND receive_count = 0 THEN 1 ELSE 0 END)
                 FROM messages GROUP BY queue",
            )?;
            let mut counts = std::collections::HashMap::new();
            for row in st.query_map((now, BLOCKED), |r| {
                Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })? {
                let (name, c): (String, (u64, u64, u64)) = row?;
                counts.insert(name, c);
            }
            Ok::<_, QueueError>(counts)
        })?;
        Ok(configs
            .iter()
            .map(|c| {
                let (visible, in_flight, delayed) =
                    counts.get(&c.name).copied().unwrap_or_default();
                QueueStats {
                    name: c.name.clone(),
                    visible,
                    in_flight,
                    delayed,
                    is_dlq: dlqs.contains(c.name.as_str()),
                }
            })
            .collect())
    }

    /// Up to `limit` messages of a queue, oldest first, without receiving them.
    pub fn list_messages(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<PeekedMessage>, QueueError> {
        self.queue_meta(queue)?;
        let now = now_ms();
        self.read(|conn| {
            let mut st = conn.prepare_cached(
                "SELECT message_id, body, attributes, group_id, sent_at_ms, receive_count, reason, source_queue, visible_at_ms
                 FROM messages WHERE queue = ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = st.query_map((queue, i64::try_from(limit).unwrap_or(i64::MAX)), |r| {
                let visible_at: i64 = r.get(8)?;
                let receive_count: u32 = r.get(5)?;
                Ok((
                    PeekedMessage {
                        message_id: r.get(0)?,
                        body: r.get(1)?,
                        attributes: BTreeMap::new(),
                        group_id: r.get(3)?,
                        sent_at_ms: r.get(4)?,
                        receive_count,
                        last_failure: r.get(6)?,
                        source_queue: r.get(7)?,
                        in_flight: visible_at > now && visible_at < BLOCKED && receive_count > 0,
                    },
                    r.get::<_, Option<String>>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut msg, attrs) = row?;
                msg.attributes = decode_attributes(attrs.as_deref())?;
                out.push(msg);
            }
            Ok(out)
        })
    }

    /// Moves up to `max` messages of a DLQ back to the queues they came from,
    /// with a fresh receive count. Returns how many moved. Messages sent to
    /// the DLQ directly (no source queue) stay.
    pub fn redrive(&self, dlq: &str, max: usize) -> Result<usize, QueueError> {
        self.queue_meta(dlq)?;
        let configs = self.queue_configs()?;
        if !configs
            .iter()
            .any(|c| c.dead_letter_queue.as_deref() == Some(dlq))
        {
            return Err(QueueError::Invalid(format!(
                "queue {dlq:?} is not the dead-letter queue of any queue"
            )));
        }
        let now = now_ms();
        let (moved, targets) = self.write(|tx| {
            let rows: Vec<(i64, Option<String>, String)> = tx
                .prepare_cached(
                    "SELECT id, group_id, source_queue FROM messages
                     WHERE queue = ?1 AND source_queue IS NOT NULL ORDER BY id LIMIT ?2",
                )?
                .query_map((dlq, i64::try_from(max).unwrap_or(i64::MAX)), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut targets = HashSet::new();
            for (id, group, source) in &rows {
                if !configs.iter().any(|c| &c.name == source) {
                    return Err(QueueError::NoSuchQueue(source.clone()));
                }
                transfer(tx, *id, group.as_deref(), source, Move::Redrive, now)?;
                if let (Some(g), true) = (group, dlq.ends_with(".fifo")) {
                    promote(tx, dlq, g, now)?;
                }
                targets.insert(source.clone());
            }
            Ok::<_, QueueError>((rows.len(), targets))
        })?;
        for t in &targets {
            self.notify_queue(t);
        }
        Ok(moved)
    }

    /// Deletes every message of a queue; returns how many.
    pub fn purge(&self, queue: &str) -> Result<usize, QueueError> {
        self.queue_meta(queue)?;
        self.write(|tx| Ok(tx.execute("DELETE FROM messages WHERE queue = ?1", [queue])?))
    }

    /// Makes every in-flight message of every queue visible again, keeping its
    /// receive count. Only for a runtime that owns the store exclusively and
    /// starts after a crash: the receipts it finds belonged to a dead process,
    /// and waiting out their visibility timeouts would only delay recovery.
    pub fn reclaim_in_flight(&self) -> Result<usize, QueueError> {
        let now = now_ms();
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE messages SET visible_at_ms = ?1, receipt = NULL WHERE receipt IS NOT NULL AND visible_at_ms > ?1",
                [now],
            )?)
        })
    }
}

impl EmbeddedQueue {
    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    pub fn config(&self) -> Arc<QueueConfig> {
        self.meta.config()
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
        // SQS accepts only XML characters: no control characters but tab, LF, CR.
        if m.body
            .bytes()
            .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || m.body.contains(['\u{FFFE}', '\u{FFFF}'])
        {
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
    async fn receive_once(
        &self,
        max: usize,
        visibility_ms: i64,
    ) -> Result<(Vec<ReceivedMessage>, Option<i64>), QueueError> {
        let cfg = self.meta.config();
        let dlq_meta = match &cfg.dead_letter_queue {
            Some(dlq) => Some(self.store.queue_meta(dlq)?),
            None => None,
        };
        let meta = Arc::clone(&self.meta);
        let queue = self.name.clone();
        self.store
            .submit(move |b| {
                let now = now_ms();
                let hidden_until = now.saturating_add(visibility_ms);
                let out = receive_in(b, &cfg, &queue, max, now, hidden_until)?;
                if out.moved {
                    if let Some(dlq) = &dlq_meta {
                        b.wake_queue(dlq);
                    }
                }
                if out.promoted {
                    b.wake_queue(&meta);
                }
                if !out.messages.is_empty() {
                    return Ok((out.messages, None));
                }
                let next: Option<i64> = b
                    .tx
                    .prepare_cached(
                        "SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1 AND visible_at_ms > ?2 AND visible_at_ms < ?3",
                    )?
                    .query_row((&queue, now, BLOCKED), |r| r.get(0))?;
                Ok((out.messages, next))
            })
            .await
    }

    /// Changes a received message's visibility; `cascade` (FIFO release) also
    /// releases the later in-flight messages of its group, which must not be
    /// handled before it.
    async fn set_visibility(
        &self,
        handle: &str,
        visibility: Duration,
        reason: Option<&str>,
        cascade: bool,
    ) -> Result<(), QueueError> {
        check_visibility(visibility)?;
        let (id, nonce) = parse_receipt(handle)?;
        let queue = self.name.clone();
        let fifo = self.meta.config().fifo;
        let meta = Arc::clone(&self.meta);
        let handle = handle.to_owned();
        let reason = reason.map(str::to_owned);
        self.store
            .submit(move |b| {
                let now = now_ms();
                let visible_at = now.saturating_add(ms(visibility));
                let tx = b.tx;
                let group: Option<Option<String>> = tx
                    .prepare_cached(
                        "UPDATE messages SET visible_at_ms = ?4, reason = COALESCE(?5, reason)
                         WHERE id = ?1 AND queue = ?2 AND receipt = ?3 RETURNING group_id",
                    )?
                    .query_row((id, &queue, nonce, visible_at, &reason), |r| r.get(0))
                    .optional()?;
                let group = group.ok_or(QueueError::StaleReceipt(handle))?;
                if let (true, true, Some(g)) = (cascade, fifo, group) {
                    tx.prepare_cached(
                        "UPDATE messages SET visible_at_ms = ?4
                         WHERE queue = ?1 AND group_id = ?2 AND id > ?3 AND receive_count > 0
                           AND visible_at_ms > ?5 AND visible_at_ms < ?6",
                    )?
                    .execute((&queue, &g, id, visible_at, now, BLOCKED))?;
                }
                b.wake_queue(&meta);
                Ok(())
            })
            .await
    }
}

/// What one receive did inside the writer's batch.
struct Received {
    messages: Vec<ReceivedMessage>,
    /// Some message went to the DLQ.
    moved: bool,
    /// A FIFO group got a new head.
    promoted: bool,
}

/// The receive itself: picks up to `max` visible messages (FIFO: only group
/// heads and what follows them), hides them until `hidden_until` and moves
/// those past `maxReceiveCount` to the DLQ.
fn receive_in(
    b: &Batch<'_>,
    cfg: &QueueConfig,
    queue: &str,
    max: usize,
    now: i64,
    hidden_until: i64,
) -> Result<Received, QueueError> {
    let tx = b.tx;
    let dlq = cfg.dead_letter_queue.as_deref();
    let over_limit = |row: &Row| dlq.is_some() && row.receive_count >= cfg.max_receive_count;
    let mut moved = false;
    let mut promoted = false;
    let mut out: Vec<ReceivedMessage> = Vec::new();
    let mut picked: HashSet<i64> = HashSet::new();
    let deliver = |row: Row, out: &mut Vec<ReceivedMessage>| -> Result<(), QueueError> {
        let nonce = b.next_receipt();
        tx.prepare_cached(
            "UPDATE messages SET receive_count = receive_count + 1, visible_at_ms = ?2, receipt = ?3 WHERE id = ?1",
        )?
        .execute((row.id, hidden_until, nonce as i64))?;
        out.push(ReceivedMessage {
            message_id: row.message_id,
            receipt_handle: receipt_handle(row.id, nonce),
            attributes: decode_attributes(row.attributes.as_deref())?,
            body: row.body,
            receive_count: row.receive_count + 1,
            group_id: row.group_id,
            sent_at_ms: row.sent_at_ms,
        });
        Ok(())
    };
    // Keyset pagination over visible messages, in the order they became visible.
    let mut cursor = (i64::MIN, i64::MIN);
    'scan: while out.len() < max {
        let want = (max - out.len()).max(if cfg.fifo { 32 } else { 1 });
        let rows: Vec<Row> = tx
            .prepare_cached(
                "SELECT id, message_id, body, attributes, group_id, sent_at_ms, visible_at_ms, receive_count
                 FROM messages
                 WHERE queue = ?1 AND visible_at_ms <= ?2 AND (visible_at_ms, id) > (?3, ?4)
                 ORDER BY visible_at_ms, id LIMIT ?5",
            )?
            .query_map((queue, now, cursor.0, cursor.1, want as i64), read_row)?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if out.len() >= max {
                break 'scan;
            }
            cursor = (row.visible_at_ms, row.id);
            let group = if cfg.fifo { row.group_id.clone() } else { None };
            if let Some(g) = &group {
                let head: Option<i64> = tx
                    .prepare_cached(
                        "SELECT MIN(id) FROM messages WHERE queue = ?1 AND group_id = ?2",
                    )?
                    .query_row((queue, g), |r| r.get(0))?;
                if picked.contains(&row.id) || head != Some(row.id) {
                    continue;
                }
            }
            if over_limit(&row) {
                let dlq = dlq.expect("over_limit implies a DLQ");
                transfer(
                    tx,
                    row.id,
                    row.group_id.as_deref(),
                    dlq,
                    Move::ToDlq { source: queue },
                    now,
                )?;
                moved = true;
                if let Some(g) = &group {
                    promoted |= promote(tx, queue, g, now)?;
                }
                continue;
            }
            let after = row.id;
            picked.insert(row.id);
            deliver(row, &mut out)?;
            // FIFO: the rest of the group may come in the same batch, in order.
            if let Some(g) = &group {
                let next: Vec<Row> = tx
                    .prepare_cached(
                        "SELECT id, message_id, body, attributes, group_id, sent_at_ms, visible_at_ms, receive_count
                         FROM messages WHERE queue = ?1 AND group_id = ?2 AND id > ?3
                         ORDER BY id LIMIT ?4",
                    )?
                    .query_map((queue, g, after, (max - out.len()) as i64), read_row)?
                    .collect::<Result<_, _>>()?;
                for row in next {
                    let waiting = row.visible_at_ms == BLOCKED || row.visible_at_ms <= now;
                    if !waiting || over_limit(&row) {
                        break;
                    }
                    picked.insert(row.id);
                    deliver(row, &mut out)?;
                }
            }
        }
    }
    Ok(Received {
        messages: out,
        moved,
        promoted,
    })
}

/// Inserts messages (dropping FIFO duplicates within the dedup window);
/// returns their ids (a duplicate gets its original's).
fn send_in(
    b: &Batch<'_>,
    cfg: &QueueConfig,
    meta: &QueueMeta,
    queue: &str,
    messages: &[(OutgoingMessage, Option<String>)],
    dedup_window: i64,
) -> Result<Vec<String>, QueueError> {
    let tx = b.tx;
    let now = now_ms();
    let mut sweep = false;
    let mut ids = Vec::with_capacity(messages.len());
    for (m, attributes) in messages {
        if let Some(dedup) = &m.dedup_id {
            let earlier: Option<(String, i64)> = tx
                .prepare_cached(
                    "SELECT message_id, expires_ms FROM dedup WHERE queue = ?1 AND dedup_id = ?2",
                )?
                .query_row((queue, dedup), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((id, expires)) = earlier.filter(|(_, expires)| *expires > now) {
                tracing::debug!(queue, dedup_id = %dedup, message_id = %id, expires, "duplicate dropped");
                ids.push(id);
                continue;
            }
        }
        let message_id = new_message_id();
        let visible_at = match &m.group_id {
            Some(g) if cfg.fifo && group_busy(tx, queue, g)? => BLOCKED,
            _ => now.saturating_add(ms(m.delay)),
        };
        tx.prepare_cached(
            "INSERT INTO messages (queue, message_id, body, attributes, group_id, sent_at_ms, visible_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute((queue, &message_id, &m.body, attributes, &m.group_id, now, visible_at))?;
        if let Some(dedup) = &m.dedup_id {
            tx.prepare_cached("INSERT OR REPLACE INTO dedup (queue, dedup_id, message_id, expires_ms) VALUES (?1, ?2, ?3, ?4)")?
                .execute((queue, dedup, &message_id, now.saturating_add(dedup_window)))?;
            sweep |=
                meta.dedup_inserts.fetch_add(1, Ordering::Relaxed) & (DEDUP_SWEEP_EVERY - 1) == 0;
        }
        ids.push(message_id);
    }
    if sweep {
        tx.prepare_cached("DELETE FROM dedup WHERE expires_ms <= ?1")?
            .execute([now])?;
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
        let cfg = self.meta.config();
        for m in &messages {
            self.validate(m, cfg.fifo)?;
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // Encoded before the writer runs: a refusal must come before any write.
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
        let queue = self.name.clone();
        let dedup_window = self.store.dedup_window_ms;
        let meta = Arc::clone(&self.meta);
        self.store
            .submit(move |b| {
                let ids = send_in(b, &cfg, &meta, &queue, &messages, dedup_window)?;
                b.wake_queue(&meta);
                Ok(ids)
            })
            .await
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
            &self.meta.notify,
            deadline,
            self.store.external_poll,
            || self.receive_once(max, visibility_ms),
            |msgs| !msgs.is_empty(),
        )
        .await
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        let queue = self.name.clone();
        let fifo = self.meta.config().fifo;
        let meta = Arc::clone(&self.meta);
        let handles = receipt_handles.to_vec();
        let stale = self
            .store
            .submit(move |b| {
                let now = now_ms();
                let tx = b.tx;
                let mut stale = Vec::new();
                let mut promoted = false;
                for handle in handles {
                    let Ok((id, nonce)) = parse_receipt(&handle) else {
                        stale.push(handle);
                        continue;
                    };
                    let group: Option<Option<String>> = tx
                        .prepare_cached("DELETE FROM messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3 RETURNING group_id")?
                        .query_row((id, &queue, nonce), |r| r.get(0))
                        .optional()?;
                    match group {
                        None => stale.push(handle),
                        Some(Some(g)) if fifo => promoted |= promote(tx, &queue, &g, now)?,
                        Some(_) => {}
                    }
                }
                if promoted {
                    b.wake_queue(&meta);
                }
                Ok::<_, QueueError>(stale)
            })
            .await?;
        // The valid handles are deleted either way; report the rest.
        if !stale.is_empty() {
            return Err(QueueError::StaleReceipt(stale.join(", ")));
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
            .await
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.set_visibility(receipt_handle, visibility, None, false)
            .await
    }
}
