//! The stream reactor: turns table changes into events, an outbox that
//! needs no second write. An order whose status changed becomes
//! `OrderStatusChanged`; an image that became READY becomes `ImageProcessed`.
//!
//! Records are handled in order, every one of them. If publishing fails at
//! some record, the response names that record, so the stream retries from
//! it; events derived from a record keep their id across retries.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use switchyard_shared::events::{
    EventType, ImageProcessed, ImageVariant, OrderStatus, OrderStatusChanged,
};
use switchyard_shared::images::ImageRef;
use switchyard_shared::items::{ImageRecord, ImageStatus, Order, TableRecord};
use switchyard_shared::ports::{ChangeView, EventPublisher, TableError};
use switchyard_shared::{Envelope, TraceContext};
use uuid::Uuid;

use crate::stream_handler::{Change, StreamHandler};

pub const NAME: &str = "stream-reactor";

pub struct StreamReactor {
    publisher: Arc<dyn EventPublisher>,
}

#[async_trait::async_trait]
impl StreamHandler for StreamReactor {
    async fn handle_records(&self, records: &[Change<'_>]) -> DynamoDbEventResponse {
        StreamReactor::handle_records(self, records).await
    }
}

impl StreamReactor {
    pub fn new(publisher: Arc<dyn EventPublisher>) -> Self {
        StreamReactor { publisher }
    }

    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        self.handle_records(&event.records).await
    }

    /// [`StreamReactor::handle`] on borrowed records in either form: as
    /// Lambda hands them over, or as the embedded stream stores them (images
    /// still JSON). A poller that keeps the batch (for its on-failure
    /// destination) need not copy it.
    pub async fn handle_records<R: ChangeView + Sync>(
        &self,
        records: &[R],
    ) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        // Derive every record's events first; one publish call for the batch.
        let mut pending = Pending::default();
        for record in records {
            let sequence = record.sequence().to_owned();
            // The trace fields are filled in once the record is read (derived_event).
            let span = tracing::info_span!(
                "stream-record",
                consumer = NAME,
                sequence = %sequence,
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
                parent_id = tracing::field::Empty,
            );
            let _guard = span.enter();
            match derive_event(record) {
                Ok(Some(envelope)) => {
                    tracing::debug!(event_id = %envelope.id, detail_type = %envelope.detail_type, "derived");
                    pending.sequences.push(sequence);
                    pending.envelopes.push(envelope);
                }
                Ok(None) => {}
                Err(reason) => {
                    // A record we cannot read will not read better on retry; say
                    // so, and report it so the stream sends it to the on-failure destination.
                    tracing::error!(%reason, "unreadable stream record");
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(sequence);
                    response.batch_item_failures.push(failure);
                    return self.publish_before(pending, response).await;
                }
            }
        }
        self.publish_before(pending, response).await
    }

    /// Publishes `pending` in order; the first record whose event failed
    /// becomes the failure (replacing a later one already recorded).
    async fn publish_before(
        &self,
        pending: Pending,
        mut response: DynamoDbEventResponse,
    ) -> DynamoDbEventResponse {
        let Pending {
            sequences,
            envelopes,
        } = pending;
        if envelopes.is_empty() {
            return response;
        }
        let failed_ids: Vec<uuid::Uuid> = match self.publisher.publish(&envelopes).await {
            Ok(report) => report.failed.into_iter().map(|f| f.event_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "publishing stream events failed");
                envelopes.iter().map(|e| e.id).collect()
            }
        };
        if let Some(index) = envelopes.iter().position(|e| failed_ids.contains(&e.id)) {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequences[index].clone());
            response.batch_item_failures = vec![failure];
        }
        response
    }
}

/// The events derived from a batch and their records' sequence numbers, side
/// by side, so the events are published without a copy.
#[derive(Default)]
struct Pending {
    sequences: Vec<String>,
    envelopes: Vec<Envelope>,
}

/// An [`Order`] read in place from a stream image: the fields the events
/// need, and every other field of an order checked as [`Order`] checks it
/// (borrowed, not kept), so an image that is not a whole order still fails.
#[derive(Deserialize)]
#[allow(dead_code)] // The checked-only fields are never read.
struct OrderImage<'a> {
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    status: OrderStatus,
    version: u64,
    correlation_id: Uuid,
    last_event_id: Uuid,
    #[serde(borrow)]
    customer_id: Cow<'a, str>,
    #[serde(borrow)]
    items: Vec<LineItemImage<'a>>,
    total_cents: u64,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(default)]
    paid: bool,
    #[serde(default, borrow)]
    payment_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    carrier: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tracking_number: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    cancel_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    traceparent: Option<TraceContext>,
}

/// A [`LineItem`](switchyard_shared::events::LineItem), checked only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LineItemImage<'a> {
    #[serde(borrow)]
    sku: Cow<'a, str>,
    quantity: u32,
    unit_price_cents: u64,
}

/// An [`ImageRecord`] read in place from a stream image, as [`OrderImage`].
#[derive(Deserialize)]
#[allow(dead_code)]
struct ImageImage<'a> {
    #[serde(borrow)]
    image_id: Cow<'a, str>,
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    status: ImageStatus,
    #[serde(default)]
    variants: Vec<ImageVariant>,
    correlation_id: Uuid,
    last_event_id: Uuid,
    #[serde(borrow)]
    source_key: Cow<'a, str>,
    #[serde(default, borrow)]
    reject_code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reject_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    traceparent: Option<TraceContext>,
}

/// A record of type `R` read from an image; `None` for no item.
/// Errors read as [`TableRecord::from_item`]'s.
fn read_image<'a, R: TableRecord, T: Deserialize<'a>>(
    image: ImageRef<'a>,
    spare: &'a OnceCell<serde_dynamo::Item>,
) -> Result<Option<T>, String> {
    image
        .read(spare)
        .map_err(|e| TableError::InvalidItem(format!("{} item: {e}", R::TYPE)).to_string())
}

/// What caused a change: the event that made it and the span that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    pub correlation_id: Uuid,
    pub event_id: Uuid,
    /// The writer's span; a record from before tracing starts a trace at its event.
    pub trace: TraceContext,
}

impl Cause {
    pub fn of_record(correlation_id: Uuid, event_id: Uuid, trace: Option<TraceContext>) -> Self {
        Cause {
            correlation_id,
            event_id,
            trace: trace.unwrap_or_else(|| TraceContext::root(event_id)),
        }
    }
}

/// An event on behalf of a change made at `at`, caused by the event that
/// made it; its id derived from `seed`, so a retry keeps it. The stream
/// reactor's span for the change is a child of the writer's span (derived
/// from `seed` too), recorded on the current span and carried by the event.
pub fn derived_event<E: EventType>(
    detail: E,
    seed: &str,
    cause: Cause,
    at: DateTime<Utc>,
) -> Envelope {
    let span = cause.trace.child(NAME, seed.as_bytes());
    let current = tracing::Span::current();
    current.record("trace_id", tracing::field::display(span.trace_id_hex()));
    current.record("span_id", tracing::field::display(span.span_id_hex()));
    current.record(
        "parent_id",
        tracing::field::display(cause.trace.span_id_hex()),
    );
    let mut event = detail
        .into_envelope()
        .caused_by(cause.correlation_id, cause.event_id)
        .traced(span);
    event.id = Envelope::derived_id(at, seed);
    event.time = at;
    event
}

/// The event a change stands for, if any.
pub fn derive_event(record: &impl ChangeView) -> Result<Option<Envelope>, String> {
    let (new, old) = (record.new_image(), record.old_image());
    let (new_spare, old_spare) = (OnceCell::new(), OnceCell::new());
    let at = record.created_at();
    // Most changes (markers, notifications) stand for nothing.
    match new.item_type().as_deref() {
        Some(Order::TYPE) => {
            let Some(order) = read_image::<Order, OrderImage>(new, &new_spare)? else {
                return Ok(None);
            };
            let from = read_image::<Order, OrderImage>(old, &old_spare)?.map(|o| o.status);
            if from == Some(order.status) {
                return Ok(None);
            }
            let seed = format!("status/{}/{}", order.order_id, order.version);
            let detail = OrderStatusChanged {
                order_id: order.order_id.into_owned(),
                from,
                to: order.status,
                version: order.version,
            };
            let cause =
                Cause::of_record(order.correlation_id, order.last_event_id, order.traceparent);
            Ok(Some(derived_event(detail, &seed, cause, at)))
        }
        Some(ImageRecord::TYPE) => {
            let Some(image) = read_image::<ImageRecord, ImageImage>(new, &new_spare)? else {
                return Ok(None);
            };
            let was_ready = read_image::<ImageRecord, ImageImage>(old, &old_spare)?
                .is_some_and(|i| i.status == ImageStatus::Ready);
            if image.status != ImageStatus::Ready || was_ready {
                return Ok(None);
            }
            let seed = format!("processed/{}/{}", image.order_id, image.image_id);
            let detail = ImageProcessed {
                image_id: image.image_id.into_owned(),
                order_id: image.order_id.into_owned(),
                variants: image.variants,
            };
            let cause =
                Cause::of_record(image.correlation_id, image.last_event_id, image.traceparent);
            Ok(Some(derived_event(detail, &seed, cause, at)))
        }
        _ => Ok(None),
    }
}
