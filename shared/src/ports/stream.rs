//! The table's change stream, in the shape of DynamoDB Streams records
//! (`NEW_AND_OLD_IMAGES`), ordered per item key, sharded by partition key.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{StreamRecord as Change, StreamViewType};
use chrono::{DateTime, Utc};

use crate::images::ImageRef;

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
        let read = FilteredRead::unfiltered(self.read(shard, after, limit).await?);
        Ok(FilteredRead {
            records: read
                .records
                .into_iter()
                .filter(|r| filter.matches(r))
                .collect(),
            scanned: read.scanned,
        })
    }

    /// [`read_filtered`](Self::read_filtered), or [`read`](Self::read) with
    /// no filter, in the form cheapest for the adapter: a consumer in this
    /// process reads the images in place ([`ChangeView`]) and builds a
    /// [`StreamRecord`] only where it needs one. The default wraps built records.
    async fn read_changes(
        &self,
        shard: &str,
        after: Option<&str>,
        limit: usize,
        filter: Option<&dyn RecordFilter>,
    ) -> Result<FilteredRead<ChangeRecord>, StreamError> {
        let read = match filter {
            Some(filter) => self.read_filtered(shard, after, limit, filter).await?,
            None => FilteredRead::unfiltered(self.read(shard, after, limit).await?),
        };
        Ok(FilteredRead {
            records: read
                .records
                .into_iter()
                .map(|r| ChangeRecord::Built(Box::new(r)))
                .collect(),
            scanned: read.scanned,
        })
    }
}

/// What [`ChangeStream::read_filtered`] and [`ChangeStream::read_changes`] return.
#[derive(Debug)]
pub struct FilteredRead<R = StreamRecord> {
    /// The records that passed, in order.
    pub records: Vec<R>,
    /// The last sequence number read, whether its record passed or not
    /// (`None` when the shard had nothing after the position).
    pub scanned: Option<String>,
}

impl FilteredRead {
    /// `records` read with no filter: every one passed, the last scanned.
    fn unfiltered(records: Vec<StreamRecord>) -> Self {
        FilteredRead {
            scanned: records
                .last()
                .and_then(|r| r.change.sequence_number.clone()),
            records,
        }
    }
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

/// What a stream consumer reads of a record, whichever form it came in.
pub trait ChangeView {
    /// The record's sequence number.
    fn sequence(&self) -> &str;
    /// When the change was made, in whole seconds (as Lambda reports it).
    fn created_at(&self) -> DateTime<Utc>;
    fn new_image(&self) -> ImageRef<'_>;
    fn old_image(&self) -> ImageRef<'_>;
}

impl<T: ChangeView + ?Sized> ChangeView for &T {
    fn sequence(&self) -> &str {
        (**self).sequence()
    }
    fn created_at(&self) -> DateTime<Utc> {
        (**self).created_at()
    }
    fn new_image(&self) -> ImageRef<'_> {
        (**self).new_image()
    }
    fn old_image(&self) -> ImageRef<'_> {
        (**self).old_image()
    }
}

impl ChangeView for StreamRecord {
    fn sequence(&self) -> &str {
        self.change.sequence_number.as_deref().unwrap_or_default()
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.change.approximate_creation_date_time
    }
    fn new_image(&self) -> ImageRef<'_> {
        ImageRef::of_item(&self.change.new_image)
    }
    fn old_image(&self) -> ImageRef<'_> {
        ImageRef::of_item(&self.change.old_image)
    }
}

/// A record as a store keeps it, images still the item's JSON: the
/// embedded stream hands these over and builds no attribute maps.
#[derive(Debug, Clone)]
pub struct StoredChange {
    pub event_id: String,
    pub sequence: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: &'static str,
    pub pk: String,
    pub sk: String,
    pub new_image: Option<Arc<str>>,
    pub old_image: Option<Arc<str>>,
    pub created_ms: i64,
    pub region: &'static str,
    pub source_arn: Arc<str>,
}

impl StoredChange {
    /// The record as Lambda hands it over (`NEW_AND_OLD_IMAGES`).
    pub fn to_record(&self) -> Result<StreamRecord, StreamError> {
        let image = |body: Option<&str>| match body {
            None => Ok(serde_dynamo::Item::default()),
            Some(body) => crate::images::image_from_json_str(body)
                .map_err(|e| StreamError::Backend(format!("stream image is not JSON: {e}"))),
        };
        let size = [&self.new_image, &self.old_image]
            .iter()
            .map(|i| i.as_ref().map_or(0, |b| b.len()))
            .sum::<usize>()
            + self.pk.len()
            + self.sk.len();
        let mut change = Change::default();
        change.approximate_creation_date_time = self.created_at();
        // Built directly: both keys are strings.
        let mut keys = std::collections::HashMap::with_capacity(2);
        for (name, value) in [("pk", &self.pk), ("sk", &self.sk)] {
            keys.insert(
                name.to_owned(),
                serde_dynamo::AttributeValue::S(value.clone()),
            );
        }
        change.keys = serde_dynamo::Item::from(keys);
        change.new_image = image(self.new_image.as_deref())?;
        change.old_image = image(self.old_image.as_deref())?;
        change.sequence_number = Some(self.sequence.clone());
        change.size_bytes = size as i64;
        change.stream_view_type = Some(StreamViewType::NewAndOldImages);

        let mut record = StreamRecord::default();
        record.aws_region = self.region.to_owned();
        record.change = change;
        record.event_id = self.event_id.clone();
        record.event_name = self.event_name.to_owned();
        record.event_source = Some("aws:dynamodb".to_owned());
        record.event_version = Some("1.1".to_owned());
        record.event_source_arn = Some(self.source_arn.to_string());
        Ok(record)
    }
}

impl ChangeView for StoredChange {
    fn sequence(&self) -> &str {
        &self.sequence
    }
    fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.created_ms.div_euclid(1000), 0).unwrap_or_default()
    }
    fn new_image(&self) -> ImageRef<'_> {
        self.new_image
            .as_deref()
            .map_or(ImageRef::Absent, ImageRef::Json)
    }
    fn old_image(&self) -> ImageRef<'_> {
        self.old_image
            .as_deref()
            .map_or(ImageRef::Absent, ImageRef::Json)
    }
}

/// A record read by [`ChangeStream::read_changes`].
#[derive(Debug, Clone)]
pub enum ChangeRecord {
    /// Boxed: a built record is the larger by far.
    Built(Box<StreamRecord>),
    Stored(StoredChange),
}

impl ChangeRecord {
    /// The record as Lambda hands it over (built if it was stored).
    pub fn to_record(&self) -> Result<StreamRecord, StreamError> {
        match self {
            ChangeRecord::Built(r) => Ok((**r).clone()),
            ChangeRecord::Stored(s) => s.to_record(),
        }
    }

    /// [`to_record`](Self::to_record), without a copy of a built record.
    pub fn into_record(self) -> Result<StreamRecord, StreamError> {
        match self {
            ChangeRecord::Built(r) => Ok(*r),
            ChangeRecord::Stored(s) => s.to_record(),
        }
    }

    fn view(&self) -> &dyn ChangeView {
        match self {
            ChangeRecord::Built(r) => &**r,
            ChangeRecord::Stored(s) => s,
        }
    }
}

impl ChangeView for ChangeRecord {
    fn sequence(&self) -> &str {
        self.view().sequence()
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.view().created_at()
    }
    fn new_image(&self) -> ImageRef<'_> {
        self.view().new_image()
    }
    fn old_image(&self) -> ImageRef<'_> {
        self.view().old_image()
    }
}
