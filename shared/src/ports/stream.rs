//! The table's change stream, in the shape of DynamoDB Streams records
//! (`NEW_AND_OLD_IMAGES`), ordered per item key, sharded by partition key.

use async_trait::async_trait;

/// A stream record exactly as Lambda hands it to a DynamoDB stream handler.
pub type StreamRecord = aws_lambda_events::event::dynamodb::EventRecord;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("no shard {0:?}")]
    NoSuchShard(String),
    #[error("stream backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait ChangeStream: Send + Sync {
    /// Shard ids; every record of one item key is in the same shard.
    async fn shards(&self) -> Result<Vec<String>, StreamError>;

    /// Up to `limit` records of a shard, in order, after the given sequence number.
    async fn read(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StreamError>;

    /// The consumer's last processed sequence number in the shard.
    async fn checkpoint(&self, consumer: &str, shard: &str) -> Result<Option<String>, StreamError>;

    async fn save_checkpoint(
        &self,
        consumer: &str,
        shard: &str,
        sequence: &str,
    ) -> Result<(), StreamError>;

    /// [`read`](Self::read), keeping only the records `filter` lets through
    /// (Lambda's event filtering). Records filtered out count as processed:
    /// `scanned` is the last sequence number looked at, passed or not, so a
    /// consumer checkpoints past them even when none passed.
    ///
    /// The default builds every record and asks [`RecordFilter::matches`];
    /// an adapter that can decide from its stored form overrides it.
    async fn read_filtered(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
        filter: &dyn RecordFilter,
    ) -> Result<FilteredRead, StreamError> {
        let records = self.read(shard, after, limit).await?;
        let scanned = records
            .last()
            .and_then(|r| r.change.sequence_number.clone());
        Ok(FilteredRead {
            records: records.into_iter().filter(|r| filter.matches(r)).collect(),
            scanned,
        })
    }
}

/// What [`ChangeStream::read_filtered`] returns.
#[derive(Debug, Default)]
pub struct FilteredRead {
    /// The records that passed, in order.
    pub records: Vec<StreamRecord>,
    /// The last sequence number read, whether its record passed or not
    /// (`None` when the shard had nothing after the position).
    pub scanned: Option<String>,
}

/// A change before it is built into a [`StreamRecord`]: its event name and
/// key, and its images as the item's plain JSON (`{"type": "order"}`, not
/// `{"type": {"S": "order"}}`).
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: &'a str,
    pub pk: &'a str,
    pub sk: &'a str,
    pub new_image: Option<&'a str>,
    pub old_image: Option<&'a str>,
}

/// Which stream records a consumer is handed (Lambda's `FilterCriteria`).
pub trait RecordFilter: Send + Sync + std::fmt::Debug {
    /// The verdict from the record's parts, or `None` when this filter needs
    /// the built record (then [`matches`](Self::matches) decides).
    fn decide(&self, parts: &RecordParts<'_>) -> Option<bool>;

    /// The verdict on a built record.
    fn matches(&self, record: &StreamRecord) -> bool;
}
