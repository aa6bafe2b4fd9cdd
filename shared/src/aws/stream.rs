//! The [`ChangeStream`] port on DynamoDB Streams.
//!
//! Records come back in the shape Lambda hands a stream handler
//! ([`StreamRecord`]), so the poller builds the same batches an event source
//! mapping would. Shards are listed parents first: DynamoDB keeps each item
//! key's records in one shard lineage, so reading a parent to its end before
//! its children keeps per-key order.
//!
//! Checkpoints live in a separate table, `<table>-checkpoints` (see
//! [`checkpoint_table_name`]), created by `switchyard provision`: writing
//! them into the streamed table would feed the stream its own checkpoints.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{StreamRecord as Change, StreamViewType};
use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};
use chrono::{TimeZone, Utc};
use serde_json::json;

use super::table::DynamoTable;
use super::{describe, AwsClients};
use crate::ports::{ChangeStream, Condition, Key, StreamError, StreamRecord, Table};

/// DynamoDB Streams' ceiling for one `GetRecords`.
const MAX_GET_RECORDS: usize = 1000;
/// Empty pages to skip before concluding a shard has nothing after a point:
/// a fresh iterator can land before the first record and answer empty.
const EMPTY_PAGES: usize = 4;

/// The table holding stream consumers' checkpoints for `table`.
pub fn checkpoint_table_name(table: &str) -> String {
    format!("{table}-checkpoints")
}

#[derive(Debug, Clone)]
pub struct DynamoStream {
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    stream_arn: String,
    checkpoints: DynamoTable,
}

impl DynamoStream {
    /// Finds the table's latest stream; an error if the table has none.
    pub async fn connect(clients: &AwsClients, table: &str) -> Result<Self, StreamError> {
        let out = clients
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                StreamError::Backend(format!("describe table {table}: {}", describe(&e)))
            })?;
        let stream_arn = out
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| StreamError::Backend(format!("table {table} has no stream enabled")))?
            .to_owned();
        Ok(DynamoStream {
            streams: clients.streams.clone(),
            table: table.to_owned(),
            stream_arn,
            checkpoints: DynamoTable::new(&clients.dynamodb, &checkpoint_table_name(table)),
        })
    }

    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    async fn all_shards(&self) -> Result<Vec<Shard>, StreamError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| StreamError::Backend(describe(&e)))?;
            let Some(desc) = out.stream_description else {
                break;
            };
            shards.extend(desc.shards.unwrap_or_default());
            match desc.last_evaluated_shard_id {
                Some(id) => start = Some(id),
                None => break,
            }
        }
        Ok(shards)
    }

    fn convert(&self, r: &Record) -> StreamRecord {
        let change = r.dynamodb();
        let image = |m: Option<
            &HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >| { m.cloned().map(serde_dynamo::Item::from).unwrap_or_default() };
        let mut c = Change::default();
        c.approximate_creation_date_time = change
            .and_then(|c| c.approximate_creation_date_time())
            .and_then(|t| t.to_millis().ok())
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .unwrap_or_default();
        c.keys = image(change.and_then(|c| c.keys()));
        c.new_image = image(change.and_then(|c| c.new_image()));
        c.old_image = image(change.and_then(|c| c.old_image()));
        c.sequence_number = change.and_then(|c| c.sequence_number()).map(str::to_owned);
        c.size_bytes = change.and_then(|c| c.size_bytes()).unwrap_or_default();
        c.stream_view_type =
            change
                .and_then(|c| c.stream_view_type())
                .and_then(|v| match v.as_str() {
                    "NEW_IMAGE" => Some(StreamViewType::NewImage),
                    "OLD_IMAGE" => Some(StreamViewType::OldImage),
                    "NEW_AND_OLD_IMAGES" => Some(StreamViewType::NewAndOldImages),
                    "KEYS_ONLY" => Some(StreamViewType::KeysOnly),
                    _ => None,
                });
        let mut record = StreamRecord::default();
        record.aws_region = r.aws_region().unwrap_or_default().to_owned();
        record.change = c;
        record.event_id = r.event_id().unwrap_or_default().to_owned();
        record.event_name = r
            .event_name()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        record.event_source = Some(r.event_source().unwrap_or("aws:dynamodb").to_owned());
        record.event_version = r.event_version().map(str::to_owned);
        record.event_source_arn = Some(self.stream_arn.clone());
        record.table_name = Some(self.table.clone());
        record
    }
}

/// Orders shards so that every parent comes before its children.
fn parents_first(shards: Vec<Shard>) -> Vec<String> {
    let ids: HashSet<String> = shards
        .iter()
        .filter_map(|s| s.shard_id().map(str::to_owned))
        .collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(shards.len());
    let mut pending: Vec<&Shard> = shards.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|s| {
            let Some(id) = s.shard_id() else { return false };
            // A parent past retention is gone from the listing: nothing to wait for.
            let ready = s
                .parent_shard_id()
                .is_none_or(|p| !ids.contains(p) || done.contains(p));
            if ready {
                done.insert(id.to_owned());
                out.push(id.to_owned());
            }
            !ready
        });
        if pending.len() == before {
            // A cycle cannot happen on DynamoDB; keep the rest rather than loop.
            out.extend(
                pending
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned)),
            );
            break;
        }
    }
    out
}

#[async_trait]
impl ChangeStream for DynamoStream {
    async fn shards(&self) -> Result<Vec<String>, StreamError> {
        Ok(parents_first(self.all_shards().await?))
    }

    async fn read(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        let kind = if after.is_some() {
            ShardIteratorType::AfterSequenceNumber
        } else {
            ShardIteratorType::TrimHorizon
        };
        let iterator = self
            .streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => {
                    StreamError::NoSuchShard(shard.to_owned())
                }
                _ => StreamError::Backend(describe(&e)),
            })?;
        let mut iterator = iterator.shard_iterator;
        let limit = limit.clamp(1, MAX_GET_RECORDS);
        for _ in 0..EMPTY_PAGES {
            let Some(it) = iterator.take() else { break };
            let out = self
                .streams
                .get_records()
                .shard_iterator(it)
                .limit(limit as i32)
                .send()
                .await
                .map_err(|e| StreamError::Backend(describe(&e)))?;
            if !out.records().is_empty() {
                return Ok(out.records().iter().map(|r| self.convert(r)).collect());
            }
            iterator = out.next_shard_iterator;
        }
        Ok(Vec::new())
    }

    async fn checkpoint(&self, consumer: &str, shard: &str) -> Result<Option<String>, StreamError> {
        let item = self
            .checkpoints
            .get(&Key::new(consumer, shard))
            .await
            .map_err(|e| StreamError::Backend(format!("read checkpoint: {e}")))?;
        Ok(item.and_then(|i| {
            i.get("sequence")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        }))
    }

    async fn save_checkpoint(
        &self,
        consumer: &str,
        shard: &str,
        sequence: &str,
    ) -> Result<(), StreamError> {
        let item = json!({"pk": consumer, "sk": shard, "sequence": sequence, "stream_arn": self.stream_arn});
        let serde_json::Value::Object(item) = item else {
            unreachable!("a json! object literal")
        };
        self.checkpoints
            .put(item, Condition::Always)
            .await
            .map_err(|e| StreamError::Backend(format!("save checkpoint: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> Shard {
        Shard::builder()
            .shard_id(id)
            .set_parent_shard_id(parent.map(str::to_owned))
            .build()
    }

    #[test]
    fn parents_come_before_children() {
        let order = parents_first(vec![
            shard("c2", Some("c1")),
            shard("c1", Some("root")),
            shard("root", None),
            shard("orphan", Some("trimmed-away")),
        ]);
        assert_eq!(order, ["root", "orphan", "c1", "c2"]);
    }
}
