//! The pollers that play Lambda's event source mappings, for any backend:
//! a queue worker per consumer (SQS → handler → delete the successes,
//! release the failures) and a stream worker per shard (stream → handler →
//! checkpoint; retry from the first failed record; after the retry limit,
//! the record goes to the on-failure queue).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use router_rules::topology::{ConsumerSpec, StreamConsumerSpec};
use switchyard_consumers::registry::{Adapters, Deps, ImageSettings, Registry};
use switchyard_consumers::stream_handler::changes;
use switchyard_consumers::{SqsBatchHandler, StreamHandler};
use switchyard_imaging::{Limits, VariantSpec};
use switchyard_shared::envelope::LOCAL_REGION;
use switchyard_shared::ports::{
    ChangeRecord, ChangeStream, ChangeView, FilteredRead, OutgoingMessage, Queue, QueueError,
    ReceivedMessage, RecordFilter,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the consumers run.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The handlers the topology's consumers name (the built-in ones by default).
    pub registry: Arc<Registry>,
    pub variants: Vec<VariantSpec>,
    pub limits: Limits,
    /// First retry delay of a failed message (doubles per receive).
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Long-poll wait; also how soon messages sent by another process are seen.
    pub poll_wait: Duration,
    /// Pollers per consumer queue (Lambda's concurrency; 1 by default).
    pub queue_pollers: usize,
    /// Replaces every queue's visibility timeout (replays with crashes use a
    /// short one, so abandoned messages return in milliseconds, not 30 s).
    pub visibility_timeout: Option<Duration>,
    /// Fault and observation hooks for the workers (replays, benchmarks).
    pub hooks: Option<Arc<dyn WorkerHooks>>,
    /// The stream workers' wait before retrying a failed record
    /// (`retry_base` when `None`).
    pub stream_retry_delay: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            registry: Arc::new(Registry::builtin()),
            variants: VariantSpec::defaults(),
            limits: Limits::default(),
            retry_base: Duration::from_millis(20),
            retry_cap: Duration::from_secs(2),
            poll_wait: Duration::from_millis(200),
            queue_pollers: 1,
            visibility_timeout: None,
            hooks: None,
            stream_retry_delay: None,
        }
    }
}

/// How a queue worker polls and retries.
#[derive(Debug, Clone)]
pub struct QueueWorkerConfig {
    pub consumer: String,
    pub batch_size: usize,
    pub visibility_timeout: Duration,
    /// Long-poll wait per receive.
    pub wait: Duration,
    /// First retry delay of a failed message; doubles per receive, capped at the visibility timeout.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl QueueWorkerConfig {
    /// The delay before a failed message is offered again.
    pub fn retry_delay(&self, receive_count: u32, permanent: bool) -> Duration {
        if permanent {
            // Waiting will not help; let it run out its receives and reach the DLQ.
            return Duration::ZERO;
        }
        let factor = 1u32 << receive_count.saturating_sub(1).min(16);
        (self.retry_base * factor)
            .min(self.retry_cap)
            .min(self.visibility_timeout)
    }
}

impl RuntimeOptions {
    /// What the handlers are built from: `adapters`, and these image settings.
    pub fn deps(&self, adapters: Adapters) -> Deps {
        let images = ImageSettings {
            variants: self.variants.clone(),
            limits: self.limits.clone(),
        };
        Deps::new(Arc::new(adapters), images)
    }

    /// The SQS handler consumer `c` names.
    pub fn queue_handler(&self, c: &ConsumerSpec, deps: &Deps) -> anyhow::Result<SqsBatchHandler> {
        Ok(self.registry.sqs_handler(&c.handler, &c.name, deps)?)
    }

    /// The stream handler stream consumer `s` names.
    pub fn stream_handler(
        &self,
        s: &StreamConsumerSpec,
        deps: &Deps,
    ) -> anyhow::Result<Arc<dyn StreamHandler>> {
        Ok(self.registry.stream_handler(&s.handler, &s.name, deps)?)
    }
}

/// Starts `options.queue_pollers` workers for consumer `c` on `queue` (as
/// Lambda's event source mapping runs concurrent batches), each receiving
/// with a long-poll `wait`. Both backends start their consumers this way.
pub fn spawn_queue_workers(
    c: &ConsumerSpec,
    queue: Arc<dyn Queue>,
    handler: SqsBatchHandler,
    wait: Duration,
    options: &RuntimeOptions,
    shutdown: &watch::Sender<bool>,
) -> Vec<JoinHandle<()>> {
    let config = QueueWorkerConfig {
        consumer: c.name.clone(),
        batch_size: c.queue.batch_size as usize,
        visibility_timeout: options
            .visibility_timeout
            .unwrap_or(Duration::from_secs(u64::from(c.queue.visibility_timeout_s))),
        wait,
        retry_base: options.retry_base,
        retry_cap: options.retry_cap,
    };
    (0..options.queue_pollers.max(1))
        .map(|_| {
            tokio::spawn(run_queue_worker_with(
                queue.clone(),
                handler.clone(),
                config.clone(),
                options.hooks.clone(),
                shutdown.subscribe(),
            ))
        })
        .collect()
}

/// What goes wrong with one batch, on purpose (replays with faults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFaults {
    /// The consumer dies after handling this many of the batch's messages:
    /// nothing is deleted or released, so the whole batch returns after its
    /// visibility timeout (for a stream batch: no checkpoint is saved).
    pub crash_after: Option<usize>,
    /// Messages (by index in the batch) whose visibility runs out while they
    /// are handled, so another poller may receive them again meanwhile.
    pub expire: Vec<usize>,
}

/// Hooks a worker consults once per batch, for replays with faults and for
/// benchmarks; none are installed by default, so the normal path pays one
/// `Option` check per batch.
pub trait WorkerHooks: Send + Sync + std::fmt::Debug {
    /// What goes wrong with this batch (nothing, by default).
    fn batch_faults(&self, _consumer: &str, _batch_len: usize) -> BatchFaults {
        BatchFaults::default()
    }
    /// A queue batch is over; see [`SettledBatch`].
    fn batch_settled(&self, _consumer: &str, _batch: &SettledBatch<'_>) {}
}

/// How a queue batch ended.
#[derive(Debug)]
pub struct SettledBatch<'a> {
    /// The whole batch as received.
    pub messages: &'a [ReceivedMessage],
    /// How many of them (from the first) the handler saw: all, unless it crashed.
    pub handled: usize,
    /// Handled messages that failed (message id -> (reason, permanent)):
    /// released for a retry. The other handled ones were deleted.
    pub failures: &'a BTreeMap<String, (String, bool)>,
    /// Abandoned by a crash: nothing was deleted or released.
    pub crashed: bool,
}

/// The `SqsEvent` Lambda would build from these messages.
pub fn sqs_event(queue_name: &str, messages: &[ReceivedMessage]) -> SqsEvent {
    let arn = format!("arn:aws:sqs:{LOCAL_REGION}:000000000000:{queue_name}");
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut msg = SqsMessage::default();
            msg.message_id = Some(m.message_id.clone());
            msg.receipt_handle = Some(m.receipt_handle.clone());
            msg.body = Some(m.body.clone());
            msg.attributes.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string(),
            );
            msg.attributes
                .insert("SentTimestamp".into(), m.sent_at_ms.to_string());
            if let Some(group) = &m.group_id {
                msg.attributes
                    .insert("MessageGroupId".into(), group.clone());
            }
            for (name, attr) in &m.attributes {
                let mut a = SqsMessageAttribute::default();
                a.data_type = Some(attr.data_type().to_owned());
                a.string_value = Some(attr.string_value());
                msg.message_attributes.insert(name.clone(), a);
            }
            msg.event_source = Some("aws:sqs".into());
            msg.event_source_arn = Some(arn.clone());
            msg.aws_region = Some(LOCAL_REGION.into());
            msg
        })
        .collect();
    event
}

/// Polls `queue` and runs each batch through `handler` until `shutdown` turns true.
pub async fn run_queue_worker(
    queue: Arc<dyn Queue>,
    handler: SqsBatchHandler,
    config: QueueWorkerConfig,
    shutdown: watch::Receiver<bool>,
) {
    run_queue_worker_with(queue, handler, config, None, shutdown).await
}

/// [`run_queue_worker`] with optional [`WorkerHooks`].
pub async fn run_queue_worker_with(
    queue: Arc<dyn Queue>,
    handler: SqsBatchHandler,
    config: QueueWorkerConfig,
    hooks: Option<Arc<dyn WorkerHooks>>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let received = tokio::select! {
            r = queue.receive(config.batch_size, config.visibility_timeout, config.wait) => r,
            _ = shutdown.changed() => break,
        };
        let messages = match received {
            Ok(m) if m.is_empty() => continue,
            Ok(m) => m,
            Err(e) => {
                tracing::error!(consumer = %config.consumer, error = %e, "receive failed");
                // No longer than a long poll (a replay's retry delay may be hours).
                tokio::time::sleep(config.retry_base.min(config.wait)).await;
                continue;
            }
        };
        let faults = match &hooks {
            Some(h) => h.batch_faults(&config.consumer, messages.len()),
            None => BatchFaults::default(),
        };
        for m in faults.expire.iter().filter_map(|&i| messages.get(i)) {
            // As if the handler outlived the visibility timeout: visible again now.
            if let Err(e) = queue
                .change_visibility(&m.receipt_handle, Duration::ZERO)
                .await
            {
                tracing::warn!(consumer = %config.consumer, error = %e, "expiring visibility failed");
            }
        }
        // A crash dies mid-batch: what was handled stays handled, nothing is settled.
        let crashed = faults.crash_after.is_some();
        let handled = &messages[..faults.crash_after.unwrap_or(usize::MAX).min(messages.len())];
        let outcome = handler.handle_batch(sqs_event(queue.name(), handled)).await;
        if crashed {
            tracing::info!(consumer = %config.consumer, handled = handled.len(), batch = messages.len(), "injected crash mid-batch");
        } else {
            // With faults injected, stale receipts are what expiries and crashes cause.
            let stale_expected = hooks.is_some();
            settle(
                &*queue,
                &config,
                &messages,
                &outcome.failures,
                stale_expected,
            )
            .await;
        }
        if let Some(h) = &hooks {
            let batch = SettledBatch {
                messages: &messages,
                handled: handled.len(),
                failures: &outcome.failures,
                crashed,
            };
            h.batch_settled(&config.consumer, &batch);
        }
    }
}

/// Deletes the handled messages and releases the failed ones for a retry.
async fn settle(
    queue: &dyn Queue,
    config: &QueueWorkerConfig,
    messages: &[ReceivedMessage],
    failures: &BTreeMap<String, (String, bool)>,
    stale_expected: bool,
) {
    let report = |e: &QueueError, what: &str| match e {
        QueueError::StaleReceipt(_) if stale_expected => {
            tracing::info!(consumer = %config.consumer, error = %e, "{what} failed");
        }
        _ => tracing::warn!(consumer = %config.consumer, error = %e, "{what} failed"),
    };
    let mut done = Vec::with_capacity(messages.len());
    for m in messages {
        match failures.get(&m.message_id) {
            None => done.push(m.receipt_handle.clone()),
            Some((reason, permanent)) => {
                let delay = config.retry_delay(m.receive_count, *permanent);
                if let Err(e) = queue.release(&m.receipt_handle, delay, Some(reason)).await {
                    report(&e, "release (the visibility timeout will return it)");
                }
            }
        }
    }
    if !done.is_empty() {
        if let Err(e) = queue.delete_batch(&done).await {
            // The messages come back after their visibility timeout; handlers are idempotent.
            report(&e, "delete");
        }
    }
}

/// How a stream worker reads and retries.
#[derive(Debug, Clone)]
pub struct StreamWorkerConfig {
    pub consumer: String,
    pub batch_size: usize,
    /// Retries of a failing record before it goes to the on-failure queue.
    pub retry_attempts: u32,
    pub retry_delay: Duration,
    /// How long to wait for new records before reading again.
    pub idle_wait: Duration,
    /// The consumer's `filter_criteria`: records it drops never reach the
    /// handler, and the checkpoint moves past them.
    pub filter: Option<Arc<dyn RecordFilter>>,
}

impl StreamWorkerConfig {
    /// The worker settings of stream consumer `s`, its filter compiled.
    pub fn for_consumer(
        s: &StreamConsumerSpec,
        retry_delay: Duration,
        idle_wait: Duration,
    ) -> anyhow::Result<Self> {
        Ok(StreamWorkerConfig {
            consumer: s.name.clone(),
            batch_size: s.batch_size as usize,
            retry_attempts: s.retry_attempts,
            retry_delay,
            idle_wait,
            filter: s.filter()?.map(|f| Arc::new(f) as Arc<dyn RecordFilter>),
        })
    }
}

/// Something that can wait for new records of a shard (the embedded stream
/// can; pollers of remote streams just wait `idle_wait`).
#[async_trait::async_trait]
pub trait RecordWaiter: Send + Sync {
    async fn wait_for_records(&self, shard: &str, after: Option<&str>, timeout: Duration);
}

/// Reads one shard in order, hands batches to the reactor and checkpoints.
pub async fn run_stream_worker(
    stream: Arc<dyn ChangeStream>,
    waiter: Arc<dyn RecordWaiter>,
    shard: String,
    reactor: Arc<dyn StreamHandler>,
    on_failure: Arc<dyn Queue>,
    config: StreamWorkerConfig,
    shutdown: watch::Receiver<bool>,
) {
    run_stream_worker_with(
        stream, waiter, shard, reactor, on_failure, config, None, shutdown,
    )
    .await
}

/// [`run_stream_worker`] with optional [`WorkerHooks`] (only crashes apply).
#[allow(clippy::too_many_arguments)]
pub async fn run_stream_worker_with(
    stream: Arc<dyn ChangeStream>,
    waiter: Arc<dyn RecordWaiter>,
    shard: String,
    reactor: Arc<dyn StreamHandler>,
    on_failure: Arc<dyn Queue>,
    config: StreamWorkerConfig,
    hooks: Option<Arc<dyn WorkerHooks>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempts: HashMap<String, u32> = HashMap::new();
    // The shard's position, kept here between batches: this worker is the
    // only one saving it. `None` = read it from the store (at start, and
    // after a save failed, so the records are redelivered as before).
    let mut position: Option<Option<String>> = None;
    while !*shutdown.borrow() {
        let after = match &position {
            Some(p) => p.clone(),
            None => match stream.checkpoint(&config.consumer, &shard).await {
                Ok(a) => {
                    position = Some(a.clone());
                    a
                }
                Err(e) => {
                    tracing::error!(shard = %shard, error = %e, "reading checkpoint failed");
                    tokio::time::sleep(config.retry_delay).await;
                    continue;
                }
            },
        };
        let read = stream
            .read_changes(
                &shard,
                after.as_deref(),
                config.batch_size,
                config.filter.as_deref(),
            )
            .await;
        let FilteredRead { records, scanned } = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(shard = %shard, error = %e, "reading stream failed");
                tokio::time::sleep(config.retry_delay).await;
                continue;
            }
        };
        if records.is_empty() {
            match scanned {
                // Everything read was filtered out: processed, as Lambda counts it.
                Some(seq) => {
                    if !save_position(&*stream, &config, &shard, seq, &mut position).await {
                        // Nothing else slows this loop down while the store fails.
                        tokio::time::sleep(config.retry_delay).await;
                    }
                }
                None => tokio::select! {
                    _ = waiter.wait_for_records(&shard, after.as_deref(), config.idle_wait) => {}
                    _ = shutdown.changed() => break,
                },
            }
            continue;
        }
        if let Some(n) = hooks
            .as_ref()
            .and_then(|h| h.batch_faults(&config.consumer, records.len()).crash_after)
        {
            // Dies mid-batch: the records it handled are read again, as no checkpoint is saved.
            let _ = reactor
                .handle_records(&changes(&records[..n.min(records.len())]))
                .await;
            tracing::info!(consumer = %config.consumer, shard = %shard, "injected crash mid-batch");
            continue;
        }
        let sequences: Vec<String> = records.iter().map(|r| r.sequence().to_owned()).collect();
        let response = reactor.handle_records(&changes(&records)).await;
        let failed_at = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .filter_map(|id| sequences.iter().position(|s| s == id))
            .min();
        let checkpoint = match failed_at {
            // Past the records the filter dropped after the last one handled, too.
            None => scanned.or_else(|| sequences.last().cloned()),
            Some(index) => {
                let failed_seq = &sequences[index];
                let tries = attempts.entry(failed_seq.clone()).or_insert(0);
                *tries += 1;
                if *tries > config.retry_attempts {
                    let reason = format!("{} failed {} times", config.consumer, tries);
                    if let Err(e) = send_to_on_failure(&*on_failure, &records[index], &reason).await
                    {
                        tracing::error!(error = %e, "on-failure destination unavailable; retrying the record");
                        sequences.get(index.wrapping_sub(1)).cloned()
                    } else {
                        tracing::error!(sequence = %failed_seq, %reason, "record sent to the on-failure destination");
                        attempts.remove(failed_seq);
                        Some(failed_seq.clone())
                    }
                } else {
                    // Everything before the failed record is done; retry from it.
                    let before = index.checked_sub(1).map(|i| sequences[i].clone());
                    tokio::time::sleep(config.retry_delay).await;
                    before
                }
            }
        };
        if let Some(seq) = checkpoint {
            save_position(&*stream, &config, &shard, seq, &mut position).await;
        }
    }
}

/// Checkpoints `seq` and keeps it as the worker's position; if the save
/// fails, the position is read back from the store (records are redelivered).
/// Returns whether it was saved.
async fn save_position(
    stream: &dyn ChangeStream,
    config: &StreamWorkerConfig,
    shard: &str,
    seq: String,
    position: &mut Option<Option<String>>,
) -> bool {
    match stream.save_checkpoint(&config.consumer, shard, &seq).await {
        Ok(()) => {
            *position = Some(Some(seq));
            true
        }
        Err(e) => {
            tracing::error!(shard = %shard, error = %e, "saving checkpoint failed; records will be redelivered");
            *position = None;
            false
        }
    }
}

async fn send_to_on_failure(
    queue: &dyn Queue,
    record: &ChangeRecord,
    reason: &str,
) -> Result<(), String> {
    let record = record.to_record().map_err(|e| e.to_string())?;
    let body = serde_json::json!({ "reason": reason, "record": record }).to_string();
    queue
        .send_batch(vec![OutgoingMessage::new(body)])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_cap() {
        let c = QueueWorkerConfig {
            consumer: "c".into(),
            batch_size: 10,
            visibility_timeout: Duration::from_secs(30),
            wait: Duration::from_millis(100),
            retry_base: Duration::from_millis(10),
            retry_cap: Duration::from_millis(50),
        };
        let delays: Vec<_> = (1..=5)
            .map(|n| c.retry_delay(n, false).as_millis())
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 50, 50]);
        assert_eq!(c.retry_delay(3, true), Duration::ZERO);
    }
}
