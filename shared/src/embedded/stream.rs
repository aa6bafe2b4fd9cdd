//! The change stream: the `stream` table the table writes fill, read back as
//! DynamoDB Streams records (NEW_AND_OLD_IMAGES) exactly as Lambda hands them over.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{StreamRecord as Change, StreamViewType};
use rusqlite::{Connection, OptionalExtension};

use super::store::{now_ms, wait_until, EmbeddedStore};
use crate::envelope::LOCAL_REGION;
use crate::ports::{Capabilities, ChangeStream, StreamError, StreamRecord};

/// Sequence numbers are zero-padded to this many digits so they sort as strings.
pub const SEQUENCE_DIGITS: usize = 21;

impl From<rusqlite::Error> for StreamError {
    fn from(e: rusqlite::Error) -> Self {
        StreamError::Backend(e.to_string())
    }
}

impl super::writer::OpError for StreamError {
    fn is_refusal(&self) -> bool {
        matches!(self, StreamError::NoSuchShard(_))
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

/// A sequence number as the stream prints it.
pub fn format_sequence(seq: i64) -> String {
    format!("{seq:0width$}", width = SEQUENCE_DIGITS)
}

fn parse_sequence(s: &str) -> Result<i64, StreamError> {
    s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        StreamError::Backend(format!("malformed sequence number {s:?} (expected digits)"))
    })
}

/// The writer's next global sequence number, cached between transactions.
#[derive(Debug, Default)]
pub(crate) struct StreamSeq {
    /// `PRAGMA data_version` when `next` was last known right.
    seen_version: Option<i64>,
    next: i64,
}

impl StreamSeq {
    /// Makes `next` right for this write transaction. The cache holds while
    /// no other connection has committed (data_version unchanged); otherwise
    /// it is reloaded from each shard's last record and the trim high-water mark.
    pub(super) fn refresh(&mut self, tx: &Connection, shards: usize) -> rusqlite::Result<()> {
        let version: i64 = tx
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.seen_version == Some(version) {
            return Ok(());
        }
        let mut max = high_water(tx)?;
        let mut st = tx.prepare_cached("SELECT MAX(seq) FROM stream WHERE shard = ?1")?;
        for shard in 0..shards as i64 {
            max = max.max(
                st.query_row([shard], |r| r.get::<_, Option<i64>>(0))?
                    .unwrap_or(0),
            );
        }
        self.next = max + 1;
        self.seen_version = Some(version);
        Ok(())
    }

    /// The next sequence number (call `refresh` first in the transaction).
    pub(super) fn take(&mut self) -> i64 {
        let seq = self.next;
        self.next += 1;
        seq
    }
}

/// The highest sequence number ever trimmed away, so none is reused.
fn high_water(tx: &Connection) -> rusqlite::Result<i64> {
    let v: Option<String> = tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'stream_high_water'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

impl EmbeddedStream {
    pub fn capabilities(&self) -> Capabilities {
        super::CAPABILITIES
    }

    fn shard(&self, shard: &str) -> Result<i64, StreamError> {
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
        Ok(self.latest(idx)?.map(format_sequence))
    }

    fn latest(&self, idx: i64) -> Result<Option<i64>, StreamError> {
        self.store.read(|conn| {
            let mut st = conn.prepare_cached("SELECT MAX(seq) FROM stream WHERE shard = ?1")?;
            Ok(st.query_row([idx], |r| r.get::<_, Option<i64>>(0))?)
        })
    }

    /// Waits until the shard has a record after `after`, or `timeout` passes.
    /// Woken by commits, never by polling hot. Returns whether records are there.
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
            self.store.stream_notify(idx),
            deadline,
            self.store.external_poll,
            || {
                std::future::ready(
                    self.latest(idx)
                        .map(|l| (l.is_some_and(|s| s > after), None)),
                )
            },
            |found| *found,
        )
        .await
    }

    /// Deletes records at least `retention` old (DynamoDB keeps 24 hours).
    /// Returns how many went. Checkpoints are untouched.
    pub fn trim(&self, retention: Duration) -> Result<usize, StreamError> {
        let cutoff = now_ms() - super::store::ms(retention);
        let shards = self.store.shard_ids.len();
        self.store.write(|tx| {
            // Remember the highest number first: it must not come back.
            let mut seq = StreamSeq::default();
            seq.refresh(tx, shards)?;
            let highest = (seq.take() - 1).to_string();
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('stream_high_water', ?1)",
                [highest],
            )?;
            Ok(tx.execute("DELETE FROM stream WHERE at_ms <= ?1", [cutoff])?)
        })
    }

    fn record(&self, row: &rusqlite::Row<'_>) -> Result<StreamRecord, StreamError> {
        let seq: i64 = row.get(0)?;
        let event: String = row.get(1)?;
        let pk: String = row.get(2)?;
        let sk: String = row.get(3)?;
        let new_image: Option<String> = row.get(4)?;
        let old_image: Option<String> = row.get(5)?;
        let at_ms: i64 = row.get(6)?;

        let image = |body: Option<String>| -> Result<serde_dynamo::Item, StreamError> {
            let Some(body) = body else {
                return Ok(serde_dynamo::Item::from(std::collections::HashMap::<
                    String,
                    serde_dynamo::AttributeValue,
                >::new()));
            };
            let value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body)
                .map_err(|e| StreamError::Backend(format!("stream image is not JSON: {e}")))?;
            serde_dynamo::to_item(value)
                .map_err(|e| StreamError::Backend(format!("stream image: {e}")))
        };
        let size =
            new_image.as_ref().map_or(0, String::len) + old_image.as_ref().map_or(0, String::len);
        let mut change = Change::default();
        // Lambda reports whole seconds here.
        change.approximate_creation_date_time =
            chrono::DateTime::from_timestamp(at_ms.div_euclid(1000), 0).unwrap_or_default();
        // Built directly: both keys are strings.
        let mut keys = std::collections::HashMap::with_capacity(2);
        keys.insert("pk".to_owned(), serde_dynamo::AttributeValue::S(pk.clone()));
        keys.insert("sk".to_owned(), serde_dynamo::AttributeValue::S(sk.clone()));
        change.keys = serde_dynamo::Item::from(keys);
        change.new_image = image(new_image)?;
        change.old_image = image(old_image)?;
        change.sequence_number = Some(format_sequence(seq));
        change.size_bytes = (size + pk.len() + sk.len()) as i64;
        change.stream_view_type = Some(StreamViewType::NewAndOldImages);

        let mut rec = StreamRecord::default();
        rec.aws_region = LOCAL_REGION.to_owned();
        rec.change = change;
        // Derived from the sequence number: unique, and stable across reads.
        rec.event_id = format!("{seq:032x}");
        rec.event_name = event;
        rec.event_source = Some("aws:dynamodb".to_owned());
        rec.event_version = Some("1.1".to_owned());
        rec.event_source_arn = Some(self.store.stream_arn.clone());
        Ok(rec)
    }
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.store.read(|conn| {
            let mut st = conn.prepare_cached(
                "SELECT seq, event, pk, sk, new_image, old_image, at_ms FROM stream
                 WHERE shard = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let mut rows = st.query((idx, after, limit))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(self.record(row)?);
            }
            Ok(out)
        })
    }

    async fn checkpoint(&self, consumer: &str, shard: &str) -> Result<Option<String>, StreamError> {
        let idx = self.shard(shard)?;
        self.store.read(|conn| {
            let mut st = conn
                .prepare_cached("SELECT seq FROM checkpoints WHERE consumer = ?1 AND shard = ?2")?;
            Ok(st.query_row((consumer, idx), |r| r.get(0)).optional()?)
        })
    }

    async fn save_checkpoint(
        &self,
        consumer: &str,
        shard: &str,
        sequence: &str,
    ) -> Result<(), StreamError> {
        let idx = self.shard(shard)?;
        parse_sequence(sequence)?;
        let (consumer, sequence) = (consumer.to_owned(), sequence.to_owned());
        self.store
            .submit(move |b| {
                let mut st = b.tx.prepare_cached(
                    "INSERT INTO checkpoints (consumer, shard, seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT (consumer, shard) DO UPDATE SET seq = excluded.seq",
                )?;
                st.execute((consumer, idx, sequence))?;
                Ok::<_, StreamError>(())
            })
            .await
    }
}
