//! What a stream consumer implements: one batch of table changes in, the
//! partial-batch response out, as Lambda's DynamoDB Streams event source
//! mapping calls it. The embedded stream workers, the moto-mode pollers and
//! the Lambda runtime all call this one method.

use async_trait::async_trait;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use switchyard_shared::ports::ChangeView;

/// A change record, whichever form it came in (Lambda's, or the embedded
/// stream's with its images still JSON).
pub type Change<'a> = &'a (dyn ChangeView + Sync);

#[async_trait]
pub trait StreamHandler: Send + Sync + 'static {
    /// Handles `records` in shard order. A record named in the response's
    /// `batch_item_failures` is retried, with everything after it.
    async fn handle_records(&self, records: &[Change<'_>]) -> DynamoDbEventResponse;
}

/// `records` as [`Change`]s, for [`StreamHandler::handle_records`].
pub fn changes<R: ChangeView + Sync>(records: &[R]) -> Vec<Change<'_>> {
    records.iter().map(|r| r as Change<'_>).collect()
}
