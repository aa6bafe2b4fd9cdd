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
}
