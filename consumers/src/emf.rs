//! CloudWatch metrics without an agent: an outer tower layer around the SQS
//! batch handler that records, for every invocation, the batch size, the
//! items that failed, the items that will be dead-lettered, the handler's
//! duration, each message's age and (once per process) the cold start, and
//! flushes them at the end of the invocation as one Embedded Metric Format
//! object per line, dimensioned by function name and consumer.
//!
//! The figures go through the `metrics` facade; on Lambda its recorder is
//! `metrics_cloudwatch_embedded`'s collector (see [`EmfSink::lambda`]), which
//! writes the EMF documents. Without a recorder (the embedded runtime, tests
//! of other layers) recording costs nothing and nothing is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use metrics::Unit;
use metrics_cloudwatch_embedded::Collector;
use tower::{Layer, Service};

use crate::layers::{BatchOutcome, BoxFuture};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Switchyard";
/// Messages in the invocation's batch.
pub const BATCH_SIZE: &str = "BatchSize";
/// Messages reported back as failed (they will be delivered again, or dead-lettered).
pub const ITEMS_FAILED: &str = "ItemsFailed";
/// Failed messages on their last receive (`maxReceiveCount`): SQS moves them to the DLQ.
pub const ITEMS_DEAD_LETTERED: &str = "ItemsDeadLettered";
/// Wall time of the whole batch, in milliseconds.
pub const HANDLER_DURATION: &str = "HandlerDuration";
/// Per message: now less the time SQS received it (`SentTimestamp`), in milliseconds.
pub const MESSAGE_AGE: &str = "MessageAge";
/// 1 on the process's first invocation, 0 after.
pub const COLD_START: &str = "ColdStart";
/// The dimension naming the consumer (the function name is the collector's).
pub const CONSUMER_DIMENSION: &str = "Consumer";
/// The dimension naming the Lambda function.
pub const FUNCTION_DIMENSION: &str = "FunctionName";

/// Where the EMF documents go: the collector (the `metrics` recorder) and the
/// writer each invocation's documents are flushed to.
pub struct EmfSink {
    collector: &'static Collector,
    out: Mutex<Box<dyn Write + Send>>,
    cold: AtomicBool,
}

impl EmfSink {
    /// Over an installed collector, flushing into `out`.
    pub fn new(collector: &'static Collector, out: Box<dyn Write + Send>) -> Self {
        describe();
        EmfSink {
            collector,
            out: Mutex::new(out),
            cold: AtomicBool::new(true),
        }
    }

    /// Installs the collector as the process's `metrics` recorder, with the
    /// function's name (`AWS_LAMBDA_FUNCTION_NAME`, else `fallback_name`) as
    /// a dimension, flushing to stdout (CloudWatch Logs reads EMF lines there).
    pub fn lambda(fallback_name: &str) -> Result<Self, metrics_cloudwatch_embedded::Error> {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| fallback_name.to_owned());
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .with_dimension(FUNCTION_DIMENSION, function)
            // A batch with no failure still says ItemsFailed 0.
            .emit_zeros(true)
            .init()?;
        Ok(EmfSink::new(collector, Box::new(std::io::stdout())))
    }

    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.collector.flush(&mut *out).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "could not write the EMF metrics");
        }
    }
}

/// Units for the collector (EMF `Unit`s).
fn describe() {
    metrics::describe_counter!(BATCH_SIZE, Unit::Count, "messages in the batch");
    metrics::describe_counter!(ITEMS_FAILED, Unit::Count, "messages reported as failed");
    metrics::describe_counter!(
        ITEMS_DEAD_LETTERED,
        Unit::Count,
        "failed messages on their last receive"
    );
    metrics::describe_histogram!(HANDLER_DURATION, Unit::Milliseconds, "batch wall time");
    metrics::describe_histogram!(MESSAGE_AGE, Unit::Milliseconds, "age of each message");
    metrics::describe_counter!(COLD_START, Unit::Count, "first invocation of the process");
}

/// The layer; `max_receive_count` is the queue's (from the topology), which
/// tells a failed message's last receive.
#[derive(Clone)]
pub struct EmfLayer {
    sink: Arc<EmfSink>,
    consumer: Arc<str>,
    max_receive_count: Option<u32>,
}

impl EmfLayer {
    pub fn new(sink: Arc<EmfSink>, consumer: &str, max_receive_count: Option<u32>) -> Self {
        EmfLayer {
            sink,
            consumer: consumer.into(),
            max_receive_count,
        }
    }
}

impl<S> Layer<S> for EmfLayer {
    type Service = Emf<S>;
    fn layer(&self, inner: S) -> Emf<S> {
        Emf {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Emf<S> {
    inner: S,
    layer: EmfLayer,
}

impl<S> Service<SqsEvent> for Emf<S>
where
    S: Service<
        SqsEvent,
        Response = BatchOutcome,
        Error = std::convert::Infallible,
        Future = BoxFuture<Result<BatchOutcome, std::convert::Infallible>>,
    >,
{
    type Response = BatchOutcome;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<BatchOutcome, std::convert::Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: SqsEvent) -> Self::Future {
        let layer = self.layer.clone();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let batch_size = event.records.len();
        let mut receives = BTreeMap::new();
        let mut ages = Vec::with_capacity(batch_size);
        for message in &event.records {
            let attribute = |name: &str| message.attributes.get(name).and_then(|v| v.parse().ok());
            if let Some(sent) = attribute("SentTimestamp") {
                ages.push(now_ms.saturating_sub(sent) as f64);
            }
            let count = attribute("ApproximateReceiveCount").unwrap_or(1u128);
            receives.insert(message.message_id.clone().unwrap_or_default(), count);
        }
        let started = Instant::now();
        let fut = self.inner.call(event);
        Box::pin(async move {
            let outcome = fut.await?;
            let duration = started.elapsed();
            let dead_lettered = layer.max_receive_count.map_or(0, |max| {
                outcome
                    .failures
                    .keys()
                    .filter(|id| receives.get(*id).is_some_and(|&c| c >= u128::from(max)))
                    .count()
            });
            let labels = [(CONSUMER_DIMENSION, layer.consumer.to_string())];
            let cold = layer.sink.cold.swap(false, Ordering::Relaxed);
            metrics::counter!(COLD_START, &labels).increment(u64::from(cold));
            metrics::counter!(BATCH_SIZE, &labels).increment(batch_size as u64);
            metrics::counter!(ITEMS_FAILED, &labels).increment(outcome.failures.len() as u64);
            metrics::counter!(ITEMS_DEAD_LETTERED, &labels).increment(dead_lettered as u64);
            metrics::histogram!(HANDLER_DURATION, &labels).record(duration.as_secs_f64() * 1e3);
            let age = metrics::histogram!(MESSAGE_AGE, &labels);
            for a in ages {
                age.record(a);
            }
            layer.sink.flush();
            Ok(outcome)
        })
    }
}
