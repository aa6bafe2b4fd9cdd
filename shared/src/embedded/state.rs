//! The store's state in memory: items, the change stream, checkpoints and
//! queues. Every change goes through [`State::apply`], live and on load, so
//! a loaded store is the store that was journaled.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::journal::{CorruptJournal, MessageOp, Op};
use super::queue_config::QueueConfig;
use crate::ports::Key;

/// `visible_at_ms` of a FIFO message waiting behind its group's head.
pub(super) const BLOCKED: i64 = i64::MAX;

/// What a stream record says happened (DynamoDB's `eventName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Insert = 0,
    Modify = 1,
    Remove = 2,
}

impl Change {
    pub(super) fn name(self) -> &'static str {
        match self {
            Change::Insert => "INSERT",
            Change::Modify => "MODIFY",
            Change::Remove => "REMOVE",
        }
    }
    fn from_u8(v: u8) -> Result<Change, CorruptJournal> {
        Ok(match v {
            0 => Change::Insert,
            1 => Change::Modify,
            2 => Change::Remove,
            _ => {
                return Err(CorruptJournal {
                    at: 0,
                    what: "unknown stream event",
                })
            }
        })
    }
}

/// One change-stream record. Images are the stored JSON bodies, shared with
/// the table (an old image is the previous record's new one).
#[derive(Debug, Clone)]
pub(super) struct Rec {
    pub seq: u64,
    pub change: Change,
    pub key: Key,
    pub new: Option<Arc<str>>,
    pub old: Option<Arc<str>>,
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Msg {
    pub message_id: Arc<str>,
    pub body: Arc<str>,
    /// The attributes as JSON (`None` when there are none).
    pub attributes: Option<Arc<str>>,
    pub group: Option<Arc<str>>,
    pub sent_at_ms: i64,
    pub visible_at_ms: i64,
    pub receive_count: u32,
    /// The current receipt's nonce; 0 when not received (or after a restart).
    pub receipt: u64,
    /// Received since the store opened (cleared when deleted or reclaimed).
    pub in_flight: bool,
    pub reason: Option<Arc<str>>,
    pub source: Option<Arc<str>>,
}

/// One queue: its messages by id (send order), the receivable ones by
/// (visible_at, id), FIFO groups, and FIFO deduplication ids.
#[derive(Debug)]
pub(super) struct QState {
    pub cfg: Arc<QueueConfig>,
    pub msgs: BTreeMap<u64, Msg>,
    /// Every message not `BLOCKED`, ordered by when it becomes visible.
    pub ready: BTreeSet<(i64, u64)>,
    pub groups: HashMap<Arc<str>, BTreeSet<u64>>,
    pub dedup: HashMap<String, (Arc<str>, i64)>,
}

impl QState {
    fn new(cfg: QueueConfig) -> Self {
        QState {
            cfg: Arc::new(cfg),
            msgs: BTreeMap::new(),
            ready: BTreeSet::new(),
            groups: HashMap::new(),
            dedup: HashMap::new(),
        }
    }

    /// Whether a FIFO group has any message here (a new one waits behind it).
    pub(super) fn group_busy(&self, group: &str) -> bool {
        self.groups.get(group).is_some_and(|g| !g.is_empty())
    }

    /// The group's head: the only message of it that may be received first.
    pub(super) fn head(&self, group: &str) -> Option<u64> {
        self.groups.get(group).and_then(|g| g.first().copied())
    }

    pub(super) fn set_visible_at(&mut self, id: u64, at: i64) {
        let Some(m) = self.msgs.get_mut(&id) else {
            return;
        };
        if m.visible_at_ms != BLOCKED {
            self.ready.remove(&(m.visible_at_ms, id));
        }
        m.visible_at_ms = at;
        if at != BLOCKED {
            self.ready.insert((at, id));
        }
    }

    fn insert(&mut self, id: u64, m: Msg) {
        if m.visible_at_ms != BLOCKED {
            self.ready.insert((m.visible_at_ms, id));
        }
        if let Some(g) = &m.group {
            self.groups.entry(Arc::clone(g)).or_default().insert(id);
        }
        self.msgs.insert(id, m);
    }

    /// Removes a message; a FIFO group's next message becomes its head,
    /// visible at `at_ms`. Returns the message and whether one was promoted.
    pub(super) fn remove(&mut self, id: u64, at_ms: i64) -> Option<(Msg, bool)> {
        let m = self.msgs.remove(&id)?;
        if m.visible_at_ms != BLOCKED {
            self.ready.remove(&(m.visible_at_ms, id));
        }
        let mut promoted = false;
        if let Some(g) = &m.group {
            if let Some(members) = self.groups.get_mut(g) {
                members.remove(&id);
                if members.is_empty() {
                    self.groups.remove(g);
                } else if self.cfg.fifo {
                    let next = *members.first().expect("not empty");
                    if self.msgs.get(&next).map(|n| n.visible_at_ms) == Some(BLOCKED) {
                        self.set_visible_at(next, at_ms);
                        promoted = true;
                    }
                }
            }
        }
        Some((m, promoted))
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub items: super::items::Items,
    pub shards: Vec<VecDeque<Rec>>,
    /// The next stream sequence number (global, never reused).
    pub next_seq: u64,
    pub checkpoints: BTreeMap<(String, u32), String>,
    pub queues: BTreeMap<String, QState>,
    /// The next message id (global, never reused).
    pub next_message: u64,
}

fn shared(s: Option<&str>) -> Option<Arc<str>> {
    s.map(Arc::from)
}

impl State {
    pub(super) fn new(shards: usize) -> Self {
        State {
            shards: (0..shards).map(|_| VecDeque::new()).collect(),
            next_seq: 1,
            next_message: 1,
            ..Default::default()
        }
    }

    /// The shard of a partition key: FNV-1a, stable across restarts and builds.
    pub(super) fn shard_of(&self, pk: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in pk.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % self.shards.len().max(1) as u64) as usize
    }

    fn queue(&mut self, name: &str) -> Result<&mut QState, CorruptJournal> {
        self.queues.get_mut(name).ok_or(CorruptJournal {
            at: 0,
            what: "op names a queue that does not exist",
        })
    }

    /// Applies one change. Live callers decided it is valid; on load, an op
    /// that does not fit the state is a damaged journal.
    pub(super) fn apply(&mut self, op: &Op<'_>) -> Result<(), CorruptJournal> {
        match op {
            Op::CreateQueue {
                name,
                fifo,
                max_receive_count,
                dlq,
            } => {
                let cfg = QueueConfig {
                    name: (*name).to_owned(),
                    fifo: *fifo,
                    max_receive_count: *max_receive_count,
                    dead_letter_queue: dlq.map(str::to_owned),
                };
                match self.queues.get_mut(*name) {
                    Some(q) => q.cfg = Arc::new(cfg),
                    None => {
                        self.queues.insert((*name).to_owned(), QState::new(cfg));
                    }
                }
            }
            Op::Message(m) => self.apply_message(m)?,
            Op::Dedup {
                queue,
                dedup_id,
                message_id,
                expires_ms,
            } => {
                self.queue(queue)?.dedup.insert(
                    (*dedup_id).to_owned(),
                    (Arc::from(*message_id), *expires_ms),
                );
            }
            Op::Receive { queue, id } => {
                if let Some(m) = self.queue(queue)?.msgs.get_mut(id) {
                    m.receive_count += 1;
                    m.in_flight = true;
                }
            }
            Op::Reason { queue, id, reason } => {
                if let Some(m) = self.queue(queue)?.msgs.get_mut(id) {
                    m.reason = Some(Arc::from(*reason));
                }
            }
            Op::Delete { queue, id, at_ms } => {
                self.queue(queue)?.remove(*id, *at_ms);
            }
            Op::Transfer {
                from,
                id,
                to,
                new_id,
                redrive,
                at_ms,
            } => {
                let Some((mut m, _)) = self.queue(from)?.remove(*id, *at_ms) else {
                    return Ok(());
                };
                let target = self.queue(to)?;
                m.visible_at_ms = match &m.group {
                    Some(g) if target.cfg.fifo && target.group_busy(g) => BLOCKED,
                    _ => *at_ms,
                };
                m.receipt = 0;
                m.in_flight = false;
                if *redrive {
                    m.receive_count = 0;
                    m.reason = None;
                    m.source = None;
                } else {
                    m.source = Some(Arc::from(*from));
                }
                target.insert(*new_id, m);
                self.next_message = self.next_message.max(new_id + 1);
            }
            Op::Purge { queue } => {
                let q = self.queue(queue)?;
                q.msgs.clear();
                q.ready.clear();
                q.groups.clear();
            }
            Op::Write {
                pk,
                sk,
                body,
                seq,
                at_ms,
            } => {
                self.write(Key::new(*pk, *sk), body.map(Arc::from), *seq, *at_ms);
            }
            Op::Checkpoint {
                consumer,
                shard,
                sequence,
            } => {
                self.checkpoints
                    .insert(((*consumer).to_owned(), *shard), (*sequence).to_owned());
            }
            Op::Trim { shard, upto } => {
                if let Some(records) = self.shards.get_mut(*shard as usize) {
                    while records.front().is_some_and(|r| r.seq <= *upto) {
                        records.pop_front();
                    }
                }
            }
            Op::Item { pk, sk, body } => {
                self.items.insert(Key::new(*pk, *sk), Arc::from(*body));
            }
            Op::Record {
                shard,
                seq,
                event,
                pk,
                sk,
                new,
                old,
                at_ms,
            } => {
                let rec = Rec {
                    seq: *seq,
                    change: Change::from_u8(*event)?,
                    key: Key::new(*pk, *sk),
                    new: shared(*new),
                    old: shared(*old),
                    at_ms: *at_ms,
                };
                self.shards
                    .get_mut(*shard as usize)
                    .ok_or(CorruptJournal {
                        at: 0,
                        what: "record of a shard that does not exist",
                    })?
                    .push_back(rec);
                self.next_seq = self.next_seq.max(seq + 1);
            }
            Op::Counters {
                next_seq,
                next_message,
            } => {
                self.next_seq = self.next_seq.max(*next_seq);
                self.next_message = self.next_message.max(*next_message);
            }
        }
        Ok(())
    }

    fn apply_message(&mut self, m: &MessageOp<'_>) -> Result<(), CorruptJournal> {
        let msg = Msg {
            message_id: Arc::from(m.message_id),
            body: Arc::from(m.body),
            attributes: shared(m.attributes),
            group: shared(m.group),
            sent_at_ms: m.sent_at_ms,
            visible_at_ms: m.visible_at_ms,
            receive_count: m.receive_count,
            receipt: 0,
            in_flight: false,
            reason: shared(m.reason),
            source: shared(m.source),
        };
        self.queue(m.queue)?.insert(m.id, msg);
        self.next_message = self.next_message.max(m.id + 1);
        Ok(())
    }

    /// A table write and its stream record. Returns the shard it went to,
    /// or `None` when nothing changed (a delete of an absent item).
    pub(super) fn write(
        &mut self,
        key: Key,
        body: Option<Arc<str>>,
        seq: u64,
        at_ms: i64,
    ) -> Option<usize> {
        let old = match &body {
            Some(b) => self.items.insert(key.clone(), Arc::clone(b)),
            None => self.items.remove(&key),
        };
        let change = match (&body, &old) {
            // A put of an identical item is still a MODIFY, as on DynamoDB.
            (Some(_), Some(_)) => Change::Modify,
            (Some(_), None) => Change::Insert,
            (None, Some(_)) => Change::Remove,
            (None, None) => return None,
        };
        let shard = self.shard_of(&key.pk);
        self.shards[shard].push_back(Rec {
            seq,
            change,
            key,
            new: body,
            old,
            at_ms,
        });
        self.next_seq = self.next_seq.max(seq + 1);
        Some(shard)
    }

    /// The whole state as ops, for a snapshot.
    pub(super) fn snapshot(&self, mut out: impl FnMut(Op<'_>)) {
        out(Op::Counters {
            next_seq: self.next_seq,
            next_message: self.next_message,
        });
        for (name, q) in &self.queues {
            out(Op::CreateQueue {
                name,
                fifo: q.cfg.fifo,
                max_receive_count: q.cfg.max_receive_count,
                dlq: q.cfg.dead_letter_queue.as_deref(),
            });
        }
        for (name, q) in &self.queues {
            for (id, m) in &q.msgs {
                out(Op::Message(MessageOp {
                    queue: name,
                    id: *id,
                    message_id: &m.message_id,
                    body: &m.body,
                    attributes: m.attributes.as_deref(),
                    group: m.group.as_deref(),
                    sent_at_ms: m.sent_at_ms,
                    // A snapshot is only read after this process is gone,
                    // and its receipts with it: what is in flight now is
                    // visible then (as `reclaim_in_flight` does on a load).
                    visible_at_ms: if m.in_flight || m.receipt != 0 {
                        m.sent_at_ms.min(m.visible_at_ms)
                    } else {
                        m.visible_at_ms
                    },
                    receive_count: m.receive_count,
                    reason: m.reason.as_deref(),
                    source: m.source.as_deref(),
                }));
            }
            for (dedup_id, (message_id, expires_ms)) in &q.dedup {
                out(Op::Dedup {
                    queue: name,
                    dedup_id,
                    message_id,
                    expires_ms: *expires_ms,
                });
            }
        }
        for (pk, sk, body) in self.items.iter() {
            out(Op::Item { pk, sk, body });
        }
        for (shard, records) in self.shards.iter().enumerate() {
            for r in records {
                out(Op::Record {
                    shard: shard as u32,
                    seq: r.seq,
                    event: r.change as u8,
                    pk: &r.key.pk,
                    sk: &r.key.sk,
                    new: r.new.as_deref(),
                    old: r.old.as_deref(),
                    at_ms: r.at_ms,
                });
            }
        }
        for ((consumer, shard), sequence) in &self.checkpoints {
            out(Op::Checkpoint {
                consumer,
                shard: *shard,
                sequence,
            });
        }
    }

    /// After a load: the receipts of the process that journaled were lost
    /// with it, so every message it had in flight is visible again now
    /// (keeping its receive count).
    pub(super) fn reclaim_in_flight(&mut self, now_ms: i64) -> usize {
        let mut reclaimed = 0;
        for q in self.queues.values_mut() {
            let ids: Vec<u64> = q
                .msgs
                .iter()
                .filter(|(_, m)| m.in_flight || m.receipt != 0)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let m = q.msgs.get_mut(&id).expect("listed");
                m.in_flight = false;
                m.receipt = 0;
                if m.visible_at_ms != BLOCKED && m.visible_at_ms > now_ms {
                    q.set_visible_at(id, now_ms);
                    reclaimed += 1;
                }
            }
        }
        reclaimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(queue: &'a str, id: u64, visible_at_ms: i64) -> Op<'a> {
        Op::Message(MessageOp {
            queue,
            id,
            message_id: "m",
            body: "b",
            attributes: None,
            group: None,
            sent_at_ms: 10,
            visible_at_ms,
            receive_count: 0,
            reason: None,
            source: None,
        })
    }

    #[test]
    fn a_snapshot_taken_with_messages_in_flight_loads_them_visible() {
        let mut live = State::new(1);
        let create = Op::CreateQueue {
            name: "q",
            fifo: false,
            max_receive_count: 0,
            dlq: None,
        };
        live.apply(&create).unwrap();
        live.apply(&message("q", 1, 10)).unwrap();
        live.apply(&message("q", 2, 5_000)).unwrap(); // delayed, not received
        live.apply(&Op::Receive { queue: "q", id: 1 }).unwrap();
        // Received and hidden until far in the future, as a live receive does.
        let q = live.queues.get_mut("q").unwrap();
        q.set_visible_at(1, 1_000_000);
        q.msgs.get_mut(&1).unwrap().receipt = 42;

        let mut ops = Vec::new();
        live.snapshot(|op| op.encode(&mut ops));
        let mut loaded = State::new(1);
        super::super::journal::decode_all(&ops, |op| loaded.apply(&op)).unwrap();
        let q = &loaded.queues["q"];
        assert_eq!(q.msgs[&1].receive_count, 1, "the receive count is kept");
        assert!(
            q.msgs[&1].visible_at_ms <= 10,
            "in flight at the snapshot: visible after it"
        );
        assert_eq!(q.msgs[&2].visible_at_ms, 5_000, "a delay is kept");
        assert_eq!(q.ready.len(), 2);
    }
}
