//! The change stream: the records the table writes append, per shard, read
//! back as DynamoDB Streams records (NEW_AND_OLD_IMAGES) exactly as Lambda
//! hands them over.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::journal::Op;
use super::state::Rec;
use super::store::{wait_until, EmbeddedStore, Unwritable};
use crate::envelope::LOCAL_REGION;
use crate::ports::{
    Capabilities, ChangeRecord, ChangeStream, FilteredRead, RecordFilter, RecordParts,
    StoredChange, StreamError, StreamRecord,
};

/// Sequence numbers are zero-padded to this many digits so they sort as strings.
pub const SEQUENCE_DIGITS: usize = 21;

impl From<Unwritable> for StreamError {
    fn from(e: Unwritable) -> Self {
        StreamError::Backend(e.to_string())
    }
}

/// The change-stream port over an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedStream {
    store: Arc<EmbeddedStore>,
}

impl EmbeddedStore {
    pub fn stream(self: &Arc<Self>) -> EmbeddedStream {
        EmbeddedStream {
            store: Arc::clone(self),
        }
    }
}

/// A sequence number as the stream prints it (`{seq:021}`).
pub fn format_sequence(seq: u64) -> String {
    padded_digits::<SEQUENCE_DIGITS>(seq, 10)
}

/// `n` in `radix` (at most 16), zero-padded to `WIDTH` digits, written by
/// hand: `format!` was most of the cost of building a record's strings.
fn padded_digits<const WIDTH: usize>(mut n: u64, radix: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'0'; WIDTH];
    for slot in buf.iter_mut().rev() {
        if n == 0 {
            break;
        }
        *slot = DIGITS[(n % radix) as usize];
        n /= radix;
    }
    buf.iter().map(|&d| char::from(d)).collect()
}

fn parse_sequence(s: &str) -> Result<u64, StreamError> {
    s.parse::<u64>().map_err(|_| {
        StreamError::Backend(format!("malformed sequence number {s:?} (expected digits)"))
    })
}

impl EmbeddedStream {
    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    fn shard(&self, shard: &str) -> Result<usize, StreamError> {
        self.store
            .shard_index(shard)
            .ok_or_else(|| StreamError::NoSuchShard(shard.to_owned()))
    }

    /// The ARN Lambda would report as `eventSourceARN`.
    pub fn arn(&self) -> &str {
        &self.store.stream_arn
    }

    /// The last sequence number written to a shard (`None` while it is empty),
    /// so a runtime can tell when a consumer has caught up.
    pub fn latest_sequence(&self, shard: &str) -> Result<Option<String>, StreamError> {
        let idx = self.shard(shard)?;
        Ok(self.latest(idx).map(format_sequence))
    }

    fn latest(&self, idx: usize) -> Option<u64> {
        self.store.lock().state.shards[idx].back().map(|r| r.seq)
    }

    /// Waits until the shard has a record after `after`, or `timeout` passes.
    /// Woken by writes, never by polling hot. Returns whether records are there.
    pub async fn wait_for_records(
        &self,
        shard: &str,
        after: Option<&str>,
        timeout: Duration,
    ) -> Result<bool, StreamError> {
        let idx = self.shard(shard)?;
        let after = after.map(parse_sequence).transpose()?.unwrap_or(0);
        let deadline = tokio::time::Instant::now() + timeout;
        wait_until(
            &*self.store.clock,
            self.store.stream_notify(idx),
            deadline,
            self.store.external_poll,
            || {
                std::future::ready(Ok::<_, StreamError>((
                    self.latest(idx).is_some_and(|s| s > after),
                    None,
                )))
            },
            |found| *found,
        )
        .await
    }

    /// Deletes records at least `retention` old (DynamoDB keeps 24 hours).
    /// Returns how many went. Checkpoints are untouched.
    pub fn trim(&self, retention: Duration) -> Result<usize, StreamError> {
        let cutoff = self.store.now_ms() - super::store::ms(retention);
        let (trimmed, _) = self.store.change(|c| {
            let mut trimmed = 0;
            for shard in 0..c.state.shards.len() {
                let old = c.state.shards[shard]
                    .iter()
                    .take_while(|r| r.at_ms <= cutoff)
                    .map(|r| r.seq)
                    .enumerate()
                    .last();
                if let Some((n, upto)) = old {
                    c.apply(Op::Trim {
                        shard: shard as u32,
                        upto,
                    });
                    trimmed += n + 1;
                }
            }
            Ok::<_, StreamError>(trimmed)
        })?;
        Ok(trimmed)
    }

    /// Up to `limit` records after `after`, copied out under the lock
    /// (cheap: the images are shared) to be converted outside it.
    fn copy_out(&self, idx: usize, after: u64, limit: usize) -> Vec<Rec> {
        let g = self.store.lock();
        let records = &g.state.shards[idx];
        let start = records.partition_point(|r| r.seq <= after);
        records.range(start..).take(limit).cloned().collect()
    }

    /// `r` as the stream hands it to consumers in this process.
    fn stored(&self, r: Rec) -> StoredChange {
        StoredChange {
            // Derived from the sequence number: unique, and stable across reads.
            event_id: padded_digits::<32>(r.seq, 16),
            sequence: format_sequence(r.seq),
            event_name: r.change.name(),
            pk: r.key.pk,
            sk: r.key.sk,
            new_image: r.new,
            old_image: r.old,
            created_ms: r.at_ms,
            region: LOCAL_REGION,
            source_arn: self.store.stream_arn.clone(),
        }
    }
}

/// How many batches' worth of records one filtered read looks at, at most.
const SCAN_BATCHES: usize = 8;

/// Records kept per shard even once every consumer has read them, for a
/// consumer that starts late and for tests that read the stream afterwards.
const KEEP_READ_RECORDS: usize = 4096;

/// What can go from a shard once a consumer checkpointed at `seq`: the
/// records every consumer with a checkpoint there has passed, beyond the
/// last [`KEEP_READ_RECORDS`]. Without this the stream would hold every
/// version of every item in memory (DynamoDB keeps records 24 hours).
fn consumed(state: &super::state::State, shard: u32, seq: u64) -> Option<u64> {
    let records = &state.shards[shard as usize];
    let excess = records.len().checked_sub(KEEP_READ_RECORDS)?;
    let read_by_all = state
        .checkpoints
        .iter()
        .filter(|((_, s), _)| *s == shard)
        .map(|(_, c)| c.parse::<u64>().unwrap_or(0))
        .min()
        .unwrap_or(seq);
    let oldest_kept = records.get(excess)?.seq;
    let upto = read_by_all.min(oldest_kept.saturating_sub(1));
    (records.front()?.seq <= upto).then_some(upto)
}

#[async_trait]
impl ChangeStream for EmbeddedStream {
    async fn shards(&self) -> Result<Vec<String>, StreamError> {
        Ok(self.store.shard_ids.clone())
    }

    async fn read(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        let idx = self.shard(shard)?;
        let after = after.map(parse_sequence).transpose()?.unwrap_or(0);
        self.copy_out(idx, after, limit)
            .into_iter()
            .map(|r| self.stored(r).to_record())
            .collect()
    }

    async fn read_filtered(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
        filter: &dyn RecordFilter,
    ) -> Result<FilteredRead, StreamError> {
        let read = self.read_changes(shard, after, limit, Some(filter)).await?;
        Ok(FilteredRead {
            records: read
                .records
                .into_iter()
                .map(ChangeRecord::into_record)
                .collect::<Result<_, _>>()?,
            scanned: read.scanned,
        })
    }

    /// Hands over the stored form, so the images are never built into
    /// attribute maps, and decides a filter on it too: records the filter
    /// drops (most of them, for the stream reactor) are never built at all.
    /// With a filter it looks further than `limit` records to fill a batch,
    /// but no further than `SCAN_BATCHES` batches, so the checkpoint keeps
    /// moving over a long run of dropped records.
    async fn read_changes(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
        filter: Option<&dyn RecordFilter>,
    ) -> Result<FilteredRead<ChangeRecord>, StreamError> {
        let idx = self.shard(shard)?;
        let mut position = after.map(parse_sequence).transpose()?.unwrap_or(0);
        let limit = limit.max(1);
        let mut passed = Vec::new();
        let mut scanned = None;
        for _ in 0..SCAN_BATCHES {
            let chunk = self.copy_out(idx, position, limit);
            let full = chunk.len() == limit;
            for r in chunk {
                scanned = Some(r.seq);
                let parts = RecordParts {
                    event_name: r.change.name(),
                    pk: &r.key.pk,
                    sk: &r.key.sk,
                    new_image: r.new.as_deref(),
                    old_image: r.old.as_deref(),
                };
                let keep = match filter.map(|f| (f, f.decide(&parts))) {
                    None | Some((_, Some(true))) => Some(ChangeRecord::Stored(self.stored(r))),
                    Some((_, Some(false))) => None,
                    // The filter needs the record as Lambda's JSON: build it to ask.
                    Some((f, None)) => {
                        let record = self.stored(r).to_record()?;
                        f.matches(&record)
                            .then(|| ChangeRecord::Built(Box::new(record)))
                    }
                };
                passed.extend(keep);
                if passed.len() == limit {
                    break;
                }
            }
            if passed.len() == limit || !full || filter.is_none() {
                break;
            }
            position = scanned.unwrap_or(position);
        }
        Ok(FilteredRead {
            records: passed,
            scanned: scanned.map(format_sequence),
        })
    }

    async fn checkpoint(&self, consumer: &str, shard: &str) -> Result<Option<String>, StreamError> {
        let idx = self.shard(shard)? as u32;
        let g = self.store.lock();
        Ok(g.state
            .checkpoints
            .get(&(consumer.to_owned(), idx))
            .cloned())
    }

    /// Durable with the next commit: after a crash the consumer at worst
    /// reads again from an earlier checkpoint (at least once).
    async fn save_checkpoint(
        &self,
        consumer: &str,
        shard: &str,
        sequence: &str,
    ) -> Result<(), StreamError> {
        let idx = self.shard(shard)? as u32;
        let seq = parse_sequence(sequence)?;
        self.store.change(|c| {
            c.apply(Op::Checkpoint {
                consumer,
                shard: idx,
                sequence,
            });
            if let Some(upto) = consumed(c.state, idx, seq) {
                c.apply(Op::Trim { shard: idx, upto });
            }
            Ok::<_, StreamError>(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_formats_own() {
        let mut rng = fastrand::Rng::with_seed(7);
        let values = [0, 1, 9, 10, 15, 16, 255, u64::MAX, u64::MAX - 1];
        for n in values
            .into_iter()
            .chain((0..1000).map(|_| rng.u64(..) >> rng.u32(0..64)))
        {
            assert_eq!(format_sequence(n), format!("{n:021}"));
            assert_eq!(padded_digits::<32>(n, 16), format!("{n:032x}"));
        }
    }
}
