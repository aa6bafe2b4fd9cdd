//! The cross-cutting concerns, as tower layers around a per-message handler:
//!
//! ```text
//! SqsBatch            SqsEvent -> SqsBatchResponse (partial batch: only failed items come back)
//!   └ Tracing         one span per message, carrying the correlation id and
//!                     the trace it continues (W3C trace context)
//!     └ CatchPanic    a panic becomes a failed item, not a dead consumer
//!       └ Idempotency skip events this consumer already handled (optional)
//!         └ handler   the business logic, one envelope at a time
//! ```
//!
//! On Lambda, [`crate::emf::EmfLayer`] wraps the batch and writes its metrics.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use serde_json::json;
use switchyard_shared::items::{applied_event_key, APPLIED_EVENT_TTL, TTL_ATTRIBUTE};
use switchyard_shared::ports::{Condition, Item, Key, Table, TableError};
use switchyard_shared::{Envelope, TraceContext};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One message handed to a handler: the decoded envelope plus delivery facts.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub envelope: Envelope,
    pub message_id: String,
    /// 1 on the first delivery (SQS `ApproximateReceiveCount`).
    pub receive_count: u32,
    /// The trace: on arrival, the span that published the event (its
    /// `traceparent`, else X-Ray's `AWSTraceHeader`, else a new trace rooted
    /// at the event); once [`TracingLayer`] has opened its span, this hop's
    /// own span, which whatever the handler writes or emits carries on.
    pub trace: TraceContext,
}

/// Why a message failed. Every failure is retried until `maxReceiveCount`
/// and then dead-lettered with this message as the reason; `permanent` ones
/// are released at once, since waiting will not help them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    pub permanent: bool,
}

impl HandlerError {
    /// A failure that may pass later (the order is not placed yet, a store blip).
    pub fn retry(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            permanent: false,
        }
    }
    /// A failure that will fail the same way every time (bad input, invalid transition).
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<TableError> for HandlerError {
    fn from(e: TableError) -> Self {
        HandlerError::retry(format!("table: {e}"))
    }
}

/// The business logic of a consumer: one envelope at a time.
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError>;
}

/// A per-message tower service built from a [`MessageHandler`].
pub struct HandlerService<H: ?Sized>(Arc<H>);

impl<H: ?Sized> Clone for HandlerService<H> {
    fn clone(&self) -> Self {
        HandlerService(self.0.clone())
    }
}

impl<H: MessageHandler + ?Sized> HandlerService<H> {
    pub fn new(handler: Arc<H>) -> Self {
        HandlerService(handler)
    }
}

impl<H: MessageHandler + ?Sized> Service<Delivery> for HandlerService<H> {
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, delivery: Delivery) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move { handler.handle(delivery).await })
    }
}

/// Opens one span per message with the correlation id, event id and type,
/// and the trace: `trace_id`, this hop's `span_id` and its `parent_id`.
#[derive(Debug, Clone)]
pub struct TracingLayer {
    consumer: Arc<str>,
}

impl TracingLayer {
    pub fn new(consumer: &str) -> Self {
        TracingLayer {
            consumer: consumer.into(),
        }
    }
}

impl<S> Layer<S> for TracingLayer {
    type Service = Traced<S>;
    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            consumer: self.consumer.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
    consumer: Arc<str>,
}

impl<S> Service<Delivery> for Traced<S>
where
    S: Service<
        Delivery,
        Response = (),
        Error = HandlerError,
        Future = BoxFuture<Result<(), HandlerError>>,
    >,
{
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut d: Delivery) -> Self::Future {
        let parent = d.trace;
        d.trace = parent.child(&self.consumer, d.envelope.id.as_bytes());
        let span = tracing::info_span!(
            "message",
            consumer = %self.consumer,
            correlation_id = %d.envelope.correlation_id,
            event_id = %d.envelope.id,
            detail_type = %d.envelope.detail_type,
            receive_count = d.receive_count,
            trace_id = %d.trace.trace_id_hex(),
            span_id = %d.trace.span_id_hex(),
            parent_id = %parent.span_id_hex(),
        );
        let fut = self.inner.call(d);
        Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(()) => tracing::debug!("handled"),
                    // A retryable failure is routine (an event ahead of its turn); a permanent one is not.
                    Err(e) if e.permanent => {
                        tracing::warn!(error = %e.message, "failed permanently")
                    }
                    Err(e) => tracing::info!(error = %e.message, "failed, will retry"),
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Turns a panic inside the handler into a permanent failure of that message.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> Service<Delivery> for CatchPanic<S>
where
    S: Service<
        Delivery,
        Response = (),
        Error = HandlerError,
        Future = BoxFuture<Result<(), HandlerError>>,
    >,
{
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, d: Delivery) -> Self::Future {
        // Calling the inner service can itself panic, before any future exists.
        let fut = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(d)));
        Box::pin(async move {
            let fut = fut.map_err(|p| {
                HandlerError::permanent(format!("handler panicked: {}", panic_message(&p)))
            })?;
            AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .unwrap_or_else(|p| {
                    Err(HandlerError::permanent(format!(
                        "handler panicked: {}",
                        panic_message(&p)
                    )))
                })
        })
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Skips events this consumer has already handled, and records those it
/// handles. For handlers whose writes are not idempotent by themselves.
#[derive(Clone)]
pub struct IdempotencyLayer {
    table: Arc<dyn Table>,
    consumer: Arc<str>,
}

impl IdempotencyLayer {
    pub fn new(table: Arc<dyn Table>, consumer: &str) -> Self {
        IdempotencyLayer {
            table,
            consumer: consumer.into(),
        }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotent<S>;
    fn layer(&self, inner: S) -> Idempotent<S> {
        Idempotent {
            inner,
            table: self.table.clone(),
            consumer: self.consumer.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Idempotent<S> {
    inner: S,
    table: Arc<dyn Table>,
    consumer: Arc<str>,
}

impl<S> Service<Delivery> for Idempotent<S>
where
    S: Service<
            Delivery,
            Response = (),
            Error = HandlerError,
            Future = BoxFuture<Result<(), HandlerError>>,
        > + Clone
        + Send
        + 'static,
{
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, d: Delivery) -> Self::Future {
        let (table, consumer) = (self.table.clone(), self.consumer.clone());
        let inner = self.inner.clone();
        Box::pin(async move {
            let key = applied_event_key(d.envelope.id, &consumer);
            if table.get(&key).await?.is_some() {
                tracing::debug!("duplicate delivery skipped");
                return Ok(());
            }
            inner.oneshot(d).await?;
            let marker = applied_event_marker(&key);
            match table.put(marker, Condition::Absent).await {
                Ok(()) | Err(TableError::ConditionFailed { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// The item that records "this consumer has handled this event". It carries
/// the table's TTL attribute, so DynamoDB drops it once no copy of the event
/// can still arrive ([`APPLIED_EVENT_TTL`]).
pub fn applied_event_marker(key: &Key) -> Item {
    applied_event_marker_at(key, SystemTime::now())
}

fn applied_event_marker_at(key: &Key, now: SystemTime) -> Item {
    let expires_at = now.duration_since(UNIX_EPOCH).unwrap_or_default() + APPLIED_EVENT_TTL;
    let serde_json::Value::Object(mut item) =
        json!({ "pk": key.pk, "sk": key.sk, "type": "applied-event" })
    else {
        unreachable!()
    };
    item.insert(TTL_ATTRIBUTE.to_owned(), expires_at.as_secs().into());
    item
}

/// The per-message service stack every consumer runs behind.
pub type MessageService = tower::util::BoxCloneSyncService<Delivery, (), HandlerError>;

/// Wraps a handler in the standard layers; `idempotency` adds the marker layer.
pub fn message_service(
    consumer: &str,
    handler: Arc<dyn MessageHandler>,
    idempotency: Option<Arc<dyn Table>>,
) -> MessageService {
    let core = HandlerService::new(handler);
    match idempotency {
        Some(table) => MessageService::new(
            tower::ServiceBuilder::new()
                .layer(TracingLayer::new(consumer))
                .layer(CatchPanicLayer)
                .layer(IdempotencyLayer::new(table, consumer))
                .service(core),
        ),
        None => MessageService::new(
            tower::ServiceBuilder::new()
                .layer(TracingLayer::new(consumer))
                .layer(CatchPanicLayer)
                .service(core),
        ),
    }
}

/// What a batch came to: the Lambda response, plus the reason of each failure
/// (the embedded runtime keeps reasons beside dead-lettered messages).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    /// message id -> (reason, permanent)
    pub failures: BTreeMap<String, (String, bool)>,
}

/// The outermost layer: runs a whole `SqsEvent` through the per-message
/// service, in order, and reports only the failed items.
#[derive(Clone)]
pub struct SqsBatchHandler {
    service: MessageService,
}

impl SqsBatchHandler {
    pub fn new(service: MessageService) -> Self {
        SqsBatchHandler { service }
    }

    /// Handles a batch the way Lambda's SQS integration expects: messages run
    /// concurrently (so their writes can share commits), except that the
    /// messages of one FIFO group run in order, and once one of them fails the
    /// rest of its group fails too, unhandled, to keep the group's order.
    pub async fn handle_batch(&self, event: SqsEvent) -> BatchOutcome {
        let mut groups: Vec<Vec<SqsMessage>> = Vec::new();
        let mut group_index: BTreeMap<String, usize> = BTreeMap::new();
        for message in event.records {
            match message.attributes.get("MessageGroupId").cloned() {
                Some(group) => {
                    let index = *group_index.entry(group).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[index].push(message);
                }
                None => groups.push(vec![message]),
            }
        }
        let results =
            futures::future::join_all(groups.into_iter().map(|group| self.handle_group(group)))
                .await;
        let mut outcome = BatchOutcome::default();
        for (id, error) in results.into_iter().flatten() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            outcome.response.batch_item_failures.push(failure);
            outcome
                .failures
                .insert(id, (error.message, error.permanent));
        }
        outcome
    }

    /// Runs one group in order; returns the failed message ids with their errors.
    async fn handle_group(&self, group: Vec<SqsMessage>) -> Vec<(String, HandlerError)> {
        let mut failed = Vec::new();
        for message in group {
            let id = message.message_id.clone().unwrap_or_default();
            if let Some((_, first)) = failed.first() {
                let first: &HandlerError = first;
                let blocked = HandlerError {
                    message: format!(
                        "not handled: an earlier message of its group failed ({})",
                        first.message
                    ),
                    permanent: false,
                };
                failed.push((id, blocked));
            } else if let Err(e) = self.handle_message(message).await {
                failed.push((id, e));
            }
        }
        failed
    }

    async fn handle_message(&self, message: SqsMessage) -> Result<(), HandlerError> {
        let body = message.body.as_deref().unwrap_or_default();
        let envelope =
            Envelope::from_json(body).map_err(|e| HandlerError::permanent(e.to_string()))?;
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let trace = envelope
            .traceparent
            .or_else(|| {
                message
                    .attributes
                    .get("AWSTraceHeader")
                    .and_then(|h| TraceContext::from_xray(h))
            })
            .unwrap_or_else(|| TraceContext::root(envelope.id));
        let delivery = Delivery {
            envelope,
            message_id: message.message_id.unwrap_or_default(),
            receive_count,
            trace,
        };
        self.service.clone().oneshot(delivery).await
    }
}

/// The batch as a tower service, for batch-level layers (see [`crate::emf`]).
impl Service<SqsEvent> for SqsBatchHandler {
    type Response = BatchOutcome;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<BatchOutcome, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: SqsEvent) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle_batch(event).await) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_marker_expires_after_the_ttl_in_epoch_seconds() {
        let key = applied_event_key(uuid::Uuid::nil(), "order-processor");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let marker = applied_event_marker_at(&key, now);
        assert_eq!(marker["pk"], key.pk.as_str());
        assert_eq!(marker["type"], "applied-event");
        // A number (DynamoDB TTL ignores any other type), in seconds, not millis.
        assert_eq!(
            marker[TTL_ATTRIBUTE].as_u64(),
            Some(1_700_000_000 + APPLIED_EVENT_TTL.as_secs())
        );
        let live = applied_event_marker(&key)[TTL_ATTRIBUTE].as_u64().unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(live >= (now + APPLIED_EVENT_TTL - Duration::from_secs(60)).as_secs());
    }

    /// Longer than any copy of an event can still be delivered: the longest
    /// receive cycle of any queue in the topology, then 14 days (SQS's
    /// longest retention) in the queue and 14 more in its DLQ.
    #[test]
    fn the_marker_ttl_outlasts_every_redelivery_window() {
        const SQS_MAX_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
        let topology = router_rules::Topology::builtin();
        let longest_cycle = topology
            .consumers
            .iter()
            .map(|c| {
                // infra/ raises visibility to 6x the function timeout.
                let visibility = c.queue.visibility_timeout_s.max(6 * c.function.timeout_s);
                Duration::from_secs(u64::from(visibility) * u64::from(c.queue.max_receive_count))
            })
            .max()
            .unwrap();
        assert!(longest_cycle > Duration::ZERO);
        assert!(
            APPLIED_EVENT_TTL > longest_cycle + 2 * SQS_MAX_RETENTION,
            "{APPLIED_EVENT_TTL:?} vs {longest_cycle:?} + 28 days"
        );
    }
}
