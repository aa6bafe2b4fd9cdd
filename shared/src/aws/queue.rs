//! The [`Queue`] port on SQS.
//!
//! SQS itself keeps the semantics the port promises: visibility timeouts,
//! the receive count, and the move to the DLQ after `maxReceiveCount` (the
//! redrive policy that `switchyard provision` sets). Bodies that came from
//! EventBridge are turned back into Switchyard envelopes on receipt (see
//! [`super::transport::restore_body`]).
//!
//! With [`SqsQueue::with_heartbeat`], a received message's visibility is
//! extended every half visibility timeout until it is deleted or released,
//! so a long job (a big image) is not handed to a second worker meanwhile.
//! If the process dies, the heartbeats die with it and SQS returns the
//! message after its timeout, as it should.
//!
//! What SQS cannot do: keep a failure reason beside a message. The reason
//! given to [`Queue::release`] is logged with the message id instead, so
//! [`super::CAPABILITIES`] says `dlq_reasons: false`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};

use super::{describe, transport, MAX_LONG_POLL};
use crate::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};

/// SQS's limits per batch call.
const MAX_BATCH: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Error codes that mean the request itself was wrong (a retry cannot help).
const INVALID_REQUEST_CODES: &[&str] = &[
    "InvalidParameterValue",
    "InvalidMessageContents",
    "MissingParameter",
    "InvalidAttributeValue",
    "InvalidAttributeName",
    "BatchRequestTooLong",
    "TooManyEntriesInBatchRequest",
    "InvalidBatchEntryId",
];

/// Heartbeat tasks by receipt handle.
type Heartbeats = Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>;

/// SQS's FIFO deduplication window.
const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Message ids of this process's recent FIFO sends, by deduplication id.
type SentIds = Arc<Mutex<HashMap<String, (String, std::time::Instant)>>>;

/// A queue's approximate counts, as GetQueueAttributes gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqsCounts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// What [`SqsQueue::sweep`] does with a message it received.
enum Sweep {
    /// Return it, and make it visible again.
    Show,
    /// Leave it, unreturned (made visible again).
    Skip,
    /// Keep it hidden for the caller (to move or delete it).
    Take,
}

/// How long a swept message stays hidden: long enough to finish the sweep
/// (looked-at ones are made visible again at its end).
const SWEEP_VISIBILITY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    name: String,
    url: String,
    heartbeats: Option<Heartbeats>,
    /// AWS answers a deduplicated send with the first message's id; moto
    /// (5.x) mints a new one. Remembering the ids of our own sends keeps the
    /// port's promise ("a FIFO duplicate returns the first id") on both.
    sent: SentIds,
}

impl SqsQueue {
    /// Looks the queue up by name.
    pub async fn connect(client: &aws_sdk_sqs::Client, name: &str) -> Result<Self, QueueError> {
        let out = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| {
                // Older servers answer with the query protocol's code for the same error.
                let missing = e
                    .as_service_error()
                    .is_some_and(|s| s.is_queue_does_not_exist())
                    || e.code().is_some_and(|c| c.contains("NonExistentQueue"));
                if missing {
                    QueueError::NoSuchQueue(name.to_owned())
                } else {
                    QueueError::Backend(describe(&e))
                }
            })?;
        let url = out
            .queue_url()
            .ok_or_else(|| QueueError::NoSuchQueue(name.to_owned()))?
            .to_owned();
        Ok(SqsQueue {
            client: client.clone(),
            name: name.to_owned(),
            url,
            heartbeats: None,
            sent: Arc::default(),
        })
    }

    /// Keeps received messages invisible while they are being handled (see the module docs).
    pub fn with_heartbeat(mut self) -> Self {
        self.heartbeats = Some(Arc::default());
        self
    }

    /// Messages whose visibility a heartbeat is extending now.
    pub fn heartbeats(&self) -> usize {
        self.heartbeats
            .as_ref()
            .map_or(0, |h| h.lock().expect("heartbeat map").len())
    }

    fn start_heartbeat(&self, handle: &str, visibility: Duration) {
        let Some(beats) = &self.heartbeats else {
            return;
        };
        if visibility < Duration::from_secs(2) {
            return;
        }
        let (client, url, handle_owned) =
            (self.client.clone(), self.url.clone(), handle.to_owned());
        let task = tokio::spawn(async move {
            loop {
                // Renew at half-time: one lost call still leaves the other half.
                tokio::time::sleep(visibility / 2).await;
                let renewed = client
                    .change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle(&handle_owned)
                    .visibility_timeout(secs(visibility))
                    .send()
                    .await;
                if let Err(e) = renewed {
                    tracing::warn!(error = %describe(&e), "visibility heartbeat stopped");
                    break;
                }
            }
        });
        beats
            .lock()
            .expect("heartbeat map")
            .insert(handle.to_owned(), task.abort_handle());
    }

    fn stop_heartbeat(&self, handle: &str) {
        if let Some(task) = self
            .heartbeats
            .as_ref()
            .and_then(|b| b.lock().expect("heartbeat map").remove(handle))
        {
            task.abort();
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The queue's approximate counts (GetQueueAttributes), as SQS reports them.
    pub async fn counts(&self) -> Result<SqsCounts, QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let get = |name: A| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(SqsCounts {
            visible: get(A::ApproximateNumberOfMessages),
            in_flight: get(A::ApproximateNumberOfMessagesNotVisible),
            delayed: get(A::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// Up to `limit` messages, seen by receiving them for a moment and making
    /// them visible again at once (SQS has no peek: each look counts as a
    /// receive, so only queues nobody polls, the DLQs, should be looked at).
    pub async fn look(&self, limit: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        let seen = self.sweep(limit, |_| Sweep::Show).await?;
        Ok(seen.into_iter().map(|(m, _)| m).collect())
    }

    /// Moves the messages `pick` chooses to `to` (body and attributes as
    /// they were sent, so a redriven EventBridge or SNS delivery is the same
    /// delivery), leaving the rest; returns how many moved. Each is sent
    /// before it is deleted here: a crash between the two duplicates a
    /// message and loses none.
    pub async fn move_to(
        &self,
        to: &SqsQueue,
        max: usize,
        pick: impl Fn(&str) -> bool,
    ) -> Result<usize, QueueError> {
        let mut moved = 0;
        let picked = self
            .sweep(max, |id| if pick(id) { Sweep::Take } else { Sweep::Skip })
            .await?;
        for raw in picked.into_iter().filter_map(|(_, raw)| raw) {
            let entry = SendMessageBatchRequestEntry::builder()
                .id("0")
                .message_body(raw.body().unwrap_or_default())
                .set_message_attributes(raw.message_attributes().cloned())
                .build()
                .map_err(|e| QueueError::Invalid(e.to_string()))?;
            let out = to
                .client
                .send_message_batch()
                .queue_url(&to.url)
                .entries(entry)
                .send()
                .await
                .map_err(|e| to.error(e))?;
            if let Some(f) = out.failed().first() {
                return Err(QueueError::Backend(format!(
                    "moving {} to {}: {} {}",
                    raw.message_id().unwrap_or_default(),
                    to.name,
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
            if let Some(handle) = raw.receipt_handle() {
                self.delete_batch(&[handle.to_owned()]).await?;
            }
            moved += 1;
        }
        Ok(moved)
    }

    /// Deletes the message with this id; returns whether it was found.
    pub async fn delete_by_id(&self, message_id: &str) -> Result<bool, QueueError> {
        let taken = self
            .sweep(1, |id| {
                if id == message_id {
                    Sweep::Take
                } else {
                    Sweep::Skip
                }
            })
            .await?;
        let handles: Vec<String> = taken
            .iter()
            .filter_map(|(_, raw)| raw.as_ref()?.receipt_handle().map(str::to_owned))
            .collect();
        self.delete_batch(&handles).await?;
        Ok(!handles.is_empty())
    }

    /// Receives the queue's messages (until a receive brings nothing new,
    /// or `limit` are shown or taken), then makes every untaken one
    /// visible again. Taken ones stay hidden for [`SWEEP_VISIBILITY`] and come
    /// back with their raw form, for the caller to move or delete.
    async fn sweep(
        &self,
        limit: usize,
        choose: impl Fn(&str) -> Sweep,
    ) -> Result<Vec<(ReceivedMessage, Option<Message>)>, QueueError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut kept_handles = Vec::new();
        let mut quiet = 0;
        let result = async {
            while out.len() < limit {
                let resp = self
                    .client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(MAX_BATCH as i32)
                    .visibility_timeout(secs(SWEEP_VISIBILITY))
                    .wait_time_seconds(0)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send()
                    .await
                    .map_err(|e| self.error(e))?;
                let mut new = 0;
                for m in resp.messages() {
                    let received = self.to_received(m)?;
                    if !seen.insert(received.message_id.clone()) {
                        continue;
                    }
                    new += 1;
                    match choose(&received.message_id) {
                        Sweep::Take if out.len() < limit => out.push((received, Some(m.clone()))),
                        Sweep::Show if out.len() < limit => {
                            kept_handles.push(received.receipt_handle.clone());
                            out.push((received, None));
                        }
                        _ => kept_handles.push(received.receipt_handle.clone()),
                    }
                }
                // Short polling samples a subset of SQS's servers: an empty
                // answer twice in a row is taken to mean nothing is left.
                quiet = if new == 0 { quiet + 1 } else { 0 };
                if quiet == 2 {
                    break;
                }
            }
            Ok::<_, QueueError>(())
        }
        .await;
        // Whatever happened, what was only looked at becomes visible again.
        for h in &kept_handles {
            if let Err(e) = self.change_visibility(h, Duration::ZERO).await {
                tracing::warn!(queue = %self.name, error = %e, "could not make a looked-at message visible again");
            }
        }
        result?;
        Ok(out)
    }

    async fn send_chunk(&self, chunk: &[OutgoingMessage]) -> Result<Vec<String>, QueueError> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .set_message_attributes(Some(
                    transport::attributes_to_sqs(&m.attributes).map_err(QueueError::Invalid)?,
                ))
                .set_message_group_id(m.group_id.clone())
                .set_message_deduplication_id(m.dedup_id.clone())
                .set_delay_seconds((!m.delay.is_zero()).then(|| secs(m.delay)))
                .build()
                .map_err(|e| QueueError::Invalid(e.to_string()))?;
            entries.push(entry);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        if let Some(f) = out.failed().first() {
            let detail = out
                .failed()
                .iter()
                .map(|f| {
                    format!(
                        "entry {}: {} {}",
                        f.id(),
                        f.code(),
                        f.message().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(if f.sender_fault() {
                QueueError::Invalid(detail)
            } else {
                QueueError::Backend(detail)
            });
        }
        let mut ids = vec![String::new(); chunk.len()];
        for ok in out.successful() {
            if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| ids.get_mut(i)) {
                *slot = ok.message_id().to_owned();
            }
        }
        let now = std::time::Instant::now();
        let mut sent = self.sent.lock().expect("sent-id map");
        sent.retain(|_, (_, at)| now.duration_since(*at) < DEDUP_WINDOW);
        for (m, id) in chunk.iter().zip(ids.iter_mut()) {
            let Some(dedup) = &m.dedup_id else { continue };
            match sent.get(dedup) {
                Some((first, _)) => id.clone_from(first),
                None => {
                    sent.insert(dedup.clone(), (id.clone(), now));
                }
            }
        }
        Ok(ids)
    }

    fn error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
        &self,
        e: aws_sdk_sqs::error::SdkError<E, R>,
    ) -> QueueError {
        match e.code() {
            Some(code)
                if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") =>
            {
                QueueError::NoSuchQueue(self.name.clone())
            }
            Some(code)
                if code.contains("ReceiptHandleIsInvalid")
                    || code.contains("MessageNotInflight") =>
            {
                QueueError::StaleReceipt(describe(&e))
            }
            Some(code) if INVALID_REQUEST_CODES.iter().any(|c| code.contains(c)) => {
                QueueError::Invalid(describe(&e))
            }
            _ => QueueError::Backend(describe(&e)),
        }
    }

    fn to_received(&self, m: &Message) -> Result<ReceivedMessage, QueueError> {
        let system = m.attributes();
        let sys = |name: MessageSystemAttributeName| {
            system.and_then(|a| a.get(&name)).map(String::as_str)
        };
        let body = m.body().unwrap_or_default();
        let attributes: BTreeMap<_, _> = m
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                Some((
                    k.clone(),
                    transport::attribute_from_sqs(v.data_type(), v.string_value())?,
                ))
            })
            .collect();
        Ok(ReceivedMessage {
            message_id: m.message_id().unwrap_or_default().to_owned(),
            receipt_handle: m
                .receipt_handle()
                .ok_or_else(|| {
                    QueueError::Backend("SQS returned a message without a receipt handle".into())
                })?
                .to_owned(),
            body: transport::restore_body(body).unwrap_or_else(|| body.to_owned()),
            attributes,
            receive_count: sys(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            group_id: sys(MessageSystemAttributeName::MessageGroupId).map(str::to_owned),
            sent_at_ms: sys(MessageSystemAttributeName::SentTimestamp)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
        })
    }
}

/// SQS takes whole seconds; round up so a visibility is never shorter than asked.
fn secs(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX)
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<String>, QueueError> {
        // SQS's own rule, checked here too because emulators (moto) let it pass.
        if let Some(i) = messages.iter().position(|m| m.body.is_empty()) {
            return Err(QueueError::Invalid(format!(
                "message {i} has an empty body; SQS needs at least 1 character"
            )));
        }
        if self.name.ends_with(".fifo") {
            if let Some(i) = messages.iter().position(|m| m.group_id.is_none()) {
                return Err(QueueError::Invalid(format!(
                    "message {i} has no group id; a FIFO queue needs one"
                )));
            }
        }
        let mut ids = Vec::with_capacity(messages.len());
        let mut start = 0;
        while start < messages.len() {
            // Greedy chunk within both of SQS's batch limits.
            let mut end = start;
            let mut bytes = 0;
            while end < messages.len() && end - start < MAX_BATCH {
                let size = messages[end].body.len()
                    + messages[end]
                        .attributes
                        .iter()
                        .map(|(k, v)| k.len() + v.string_value().len())
                        .sum::<usize>();
                if end > start && bytes + size > MAX_BATCH_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            ids.extend(self.send_chunk(&messages[start..end]).await?);
            start = end;
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        if max == 0 {
            return Err(QueueError::Invalid(
                "receive at least 1 message (SQS takes 1 to 10 per call)".into(),
            ));
        }
        let mut out = Vec::new();
        let mut wait = wait.min(MAX_LONG_POLL);
        while out.len() < max {
            let want = (max - out.len()).min(MAX_BATCH);
            let resp = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(want as i32)
                .visibility_timeout(secs(visibility))
                .wait_time_seconds(secs(wait))
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| self.error(e))?;
            let got = resp.messages();
            for m in got {
                let received = self.to_received(m)?;
                self.start_heartbeat(&received.receipt_handle, visibility);
                out.push(received);
            }
            // SQS returns at most 10 per call: keep going without waiting while it has more.
            if got.len() < want {
                break;
            }
            wait = Duration::ZERO;
        }
        Ok(out)
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        for h in receipt_handles {
            self.stop_heartbeat(h);
        }
        for chunk in receipt_handles.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| QueueError::Invalid(e.to_string()))?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error(e))?;
            if let Some(f) = out.failed().first() {
                let msg = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                return Err(if f.code().contains("ReceiptHandleIsInvalid") {
                    QueueError::StaleReceipt(msg)
                } else {
                    QueueError::Backend(msg)
                });
            }
        }
        Ok(())
    }

    async fn release(
        &self,
        receipt_handle: &str,
        visibility: Duration,
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        if let Some(reason) = reason {
            // SQS has nowhere to keep it: the log is the record.
            tracing::warn!(queue = %self.name, %reason, "message released for retry");
        }
        self.change_visibility(receipt_handle, visibility).await
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        // An explicit visibility replaces the heartbeat's.
        self.stop_heartbeat(receipt_handle);
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_rounds_up_to_whole_seconds() {
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(30_000)), 30);
        assert_eq!(secs(Duration::from_millis(30_001)), 31);
    }
}
