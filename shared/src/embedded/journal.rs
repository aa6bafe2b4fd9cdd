//! The journal's records: every change to the store's state is one [`Op`],
//! applied in memory and appended, in the same order, to the journal that
//! the commit thread writes to SQLite. Loading a data dir applies the
//! snapshot's ops, then the journal's, so the state comes back exactly as
//! it was after the last commit.
//!
//! The encoding is a small tagged binary format (little-endian integers,
//! length-prefixed strings); decoding borrows the strings from the blob.

/// One change to the state. Strings borrow from the caller (encoding) or
/// from the stored blob (decoding).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op<'a> {
    CreateQueue {
        name: &'a str,
        fifo: bool,
        max_receive_count: u32,
        dlq: Option<&'a str>,
    },
    /// A sent message (or, in a snapshot, a message as it is).
    Message(MessageOp<'a>),
    /// A FIFO send remembered for deduplication until `expires_ms`.
    Dedup {
        queue: &'a str,
        dedup_id: &'a str,
        message_id: &'a str,
        expires_ms: i64,
    },
    /// A receive: the message's receive count goes up by one.
    Receive {
        queue: &'a str,
        id: u64,
    },
    /// A failure reason kept beside the message (a release with a reason).
    Reason {
        queue: &'a str,
        id: u64,
        reason: &'a str,
    },
    Delete {
        queue: &'a str,
        id: u64,
        at_ms: i64,
    },
    /// Moves a message to the end of another queue as `new_id`: to its DLQ,
    /// or (`redrive`) back to its source with a fresh start.
    Transfer {
        from: &'a str,
        id: u64,
        to: &'a str,
        new_id: u64,
        redrive: bool,
        at_ms: i64,
    },
    Purge {
        queue: &'a str,
    },
    /// A table write (`body: None` deletes) and its stream record `seq`.
    Write {
        pk: &'a str,
        sk: &'a str,
        body: Option<&'a str>,
        seq: u64,
        at_ms: i64,
    },
    Checkpoint {
        consumer: &'a str,
        shard: u32,
        sequence: &'a str,
    },
    /// Drops a shard's records up to and including `upto`.
    Trim {
        shard: u32,
        upto: u64,
    },
    /// Snapshot only: an item, without a stream record.
    Item {
        pk: &'a str,
        sk: &'a str,
        body: &'a str,
    },
    /// Snapshot only: a retained stream record.
    Record {
        shard: u32,
        seq: u64,
        event: u8,
        pk: &'a str,
        sk: &'a str,
        new: Option<&'a str>,
        old: Option<&'a str>,
        at_ms: i64,
    },
    /// Snapshot only: counters that must never go back.
    Counters {
        next_seq: u64,
        next_message: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct MessageOp<'a> {
    pub queue: &'a str,
    pub id: u64,
    pub message_id: &'a str,
    pub body: &'a str,
    pub attributes: Option<&'a str>,
    pub group: Option<&'a str>,
    pub sent_at_ms: i64,
    pub visible_at_ms: i64,
    pub receive_count: u32,
    pub reason: Option<&'a str>,
    pub source: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
#[error("journal record is damaged at byte {at}: {what}")]
pub struct CorruptJournal {
    pub at: usize,
    pub what: &'static str,
}

impl Op<'_> {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Op::CreateQueue {
                name,
                fifo,
                max_receive_count,
                dlq,
            } => {
                w.u8(1);
                w.str(name);
                w.u8(u8::from(*fifo));
                w.u32(*max_receive_count);
                w.opt(*dlq);
            }
            Op::Message(m) => {
                w.u8(2);
                w.str(m.queue);
                w.u64(m.id);
                w.str(m.message_id);
                w.str(m.body);
                w.opt(m.attributes);
                w.opt(m.group);
                w.i64(m.sent_at_ms);
                w.i64(m.visible_at_ms);
                w.u32(m.receive_count);
                w.opt(m.reason);
                w.opt(m.source);
            }
            Op::Dedup {
                queue,
                dedup_id,
                message_id,
                expires_ms,
            } => {
                w.u8(3);
                w.str(queue);
                w.str(dedup_id);
                w.str(message_id);
                w.i64(*expires_ms);
            }
            Op::Receive { queue, id } => {
                w.u8(4);
                w.str(queue);
                w.u64(*id);
            }
            Op::Reason { queue, id, reason } => {
                w.u8(5);
                w.str(queue);
                w.u64(*id);
                w.str(reason);
            }
            Op::Delete { queue, id, at_ms } => {
                w.u8(6);
                w.str(queue);
                w.u64(*id);
                w.i64(*at_ms);
            }
            Op::Transfer {
                from,
                id,
                to,
                new_id,
                redrive,
                at_ms,
            } => {
                w.u8(7);
                w.str(from);
                w.u64(*id);
                w.str(to);
                w.u64(*new_id);
                w.u8(u8::from(*redrive));
                w.i64(*at_ms);
            }
            Op::Purge { queue } => {
                w.u8(8);
                w.str(queue);
            }
            Op::Write {
                pk,
                sk,
                body,
                seq,
                at_ms,
            } => {
                w.u8(9);
                w.str(pk);
                w.str(sk);
                w.opt(*body);
                w.u64(*seq);
                w.i64(*at_ms);
            }
            Op::Checkpoint {
                consumer,
                shard,
                sequence,
            } => {
                w.u8(10);
                w.str(consumer);
                w.u32(*shard);
                w.str(sequence);
            }
            Op::Trim { shard, upto } => {
                w.u8(11);
                w.u32(*shard);
                w.u64(*upto);
            }
            Op::Item { pk, sk, body } => {
                w.u8(12);
                w.str(pk);
                w.str(sk);
                w.str(body);
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
                w.u8(13);
                w.u32(*shard);
                w.u64(*seq);
                w.u8(*event);
                w.str(pk);
                w.str(sk);
                w.opt(*new);
                w.opt(*old);
                w.i64(*at_ms);
            }
            Op::Counters {
                next_seq,
                next_message,
            } => {
                w.u8(14);
                w.u64(*next_seq);
                w.u64(*next_message);
            }
        }
    }
}

/// Decodes every op of a blob, in order.
pub(super) fn decode_all(
    blob: &[u8],
    mut each: impl FnMut(Op<'_>) -> Result<(), CorruptJournal>,
) -> Result<(), CorruptJournal> {
    let mut r = Reader { buf: blob, at: 0 };
    while r.at < blob.len() {
        each(r.op()?)?;
    }
    Ok(())
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        // Every string the store keeps is far below 4 GiB (SQS and DynamoDB limits).
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bad(&self, what: &'static str) -> CorruptJournal {
        CorruptJournal { at: self.at, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptJournal> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.bad("truncated"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CorruptJournal> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, CorruptJournal> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad("flag is neither 0 nor 1")),
        }
    }
    fn u32(&mut self) -> Result<u32, CorruptJournal> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, CorruptJournal> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn i64(&mut self) -> Result<i64, CorruptJournal> {
        let b = self.take(8)?;
        Ok(i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Result<&'a str, CorruptJournal> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| self.bad("string is not UTF-8"))
    }
    fn opt(&mut self) -> Result<Option<&'a str>, CorruptJournal> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    fn op(&mut self) -> Result<Op<'a>, CorruptJournal> {
        Ok(match self.u8()? {
            1 => Op::CreateQueue {
                name: self.str()?,
                fifo: self.bool()?,
                max_receive_count: self.u32()?,
                dlq: self.opt()?,
            },
            2 => Op::Message(MessageOp {
                queue: self.str()?,
                id: self.u64()?,
                message_id: self.str()?,
                body: self.str()?,
                attributes: self.opt()?,
                group: self.opt()?,
                sent_at_ms: self.i64()?,
                visible_at_ms: self.i64()?,
                receive_count: self.u32()?,
                reason: self.opt()?,
                source: self.opt()?,
            }),
            3 => Op::Dedup {
                queue: self.str()?,
                dedup_id: self.str()?,
                message_id: self.str()?,
                expires_ms: self.i64()?,
            },
            4 => Op::Receive {
                queue: self.str()?,
                id: self.u64()?,
            },
            5 => Op::Reason {
                queue: self.str()?,
                id: self.u64()?,
                reason: self.str()?,
            },
            6 => Op::Delete {
                queue: self.str()?,
                id: self.u64()?,
                at_ms: self.i64()?,
            },
            7 => Op::Transfer {
                from: self.str()?,
                id: self.u64()?,
                to: self.str()?,
                new_id: self.u64()?,
                redrive: self.bool()?,
                at_ms: self.i64()?,
            },
            8 => Op::Purge { queue: self.str()? },
            9 => Op::Write {
                pk: self.str()?,
                sk: self.str()?,
                body: self.opt()?,
                seq: self.u64()?,
                at_ms: self.i64()?,
            },
            10 => Op::Checkpoint {
                consumer: self.str()?,
                shard: self.u32()?,
                sequence: self.str()?,
            },
            11 => Op::Trim {
                shard: self.u32()?,
                upto: self.u64()?,
            },
            12 => Op::Item {
                pk: self.str()?,
                sk: self.str()?,
                body: self.str()?,
            },
            13 => Op::Record {
                shard: self.u32()?,
                seq: self.u64()?,
                event: self.u8()?,
                pk: self.str()?,
                sk: self.str()?,
                new: self.opt()?,
                old: self.opt()?,
                at_ms: self.i64()?,
            },
            14 => Op::Counters {
                next_seq: self.u64()?,
                next_message: self.u64()?,
            },
            _ => return Err(self.bad("unknown op tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_and_damage_is_reported() {
        let ops = vec![
            Op::CreateQueue {
                name: "q.fifo",
                fifo: true,
                max_receive_count: 5,
                dlq: Some("d.fifo"),
            },
            Op::Message(MessageOp {
                queue: "q",
                id: 7,
                message_id: "m",
                body: "{\"a\":\"é\"}",
                attributes: None,
                group: Some("g"),
                sent_at_ms: -1,
                visible_at_ms: i64::MAX,
                receive_count: 3,
                reason: Some("boom"),
                source: None,
            }),
            Op::Dedup {
                queue: "q",
                dedup_id: "d",
                message_id: "m",
                expires_ms: 9,
            },
            Op::Receive { queue: "q", id: 7 },
            Op::Reason {
                queue: "q",
                id: 7,
                reason: "r",
            },
            Op::Delete {
                queue: "q",
                id: 7,
                at_ms: 3,
            },
            Op::Transfer {
                from: "q",
                id: 1,
                to: "d",
                new_id: 2,
                redrive: false,
                at_ms: 4,
            },
            Op::Purge { queue: "q" },
            Op::Write {
                pk: "p",
                sk: "s",
                body: None,
                seq: 11,
                at_ms: 5,
            },
            Op::Checkpoint {
                consumer: "c",
                shard: 3,
                sequence: "0001",
            },
            Op::Trim { shard: 1, upto: 10 },
            Op::Item {
                pk: "p",
                sk: "s",
                body: "{}",
            },
            Op::Record {
                shard: 0,
                seq: 1,
                event: 2,
                pk: "p",
                sk: "s",
                new: Some("{}"),
                old: None,
                at_ms: 6,
            },
            Op::Counters {
                next_seq: 12,
                next_message: 8,
            },
        ];
        let mut blob = Vec::new();
        for op in &ops {
            op.encode(&mut blob);
        }
        let mut back = Vec::new();
        decode_all(&blob, |op| {
            back.push(format!("{op:?}"));
            Ok(())
        })
        .unwrap();
        let want: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
        assert_eq!(back, want);

        let err = decode_all(&blob[..blob.len() - 3], |_| Ok(())).unwrap_err();
        assert_eq!(err.what, "truncated");
        let err = decode_all(&[99], |_| Ok(())).unwrap_err();
        assert_eq!(err.what, "unknown op tag");
    }
}
