//! Batched delivery with per-entry retries, shared by the EventBridge and SNS
//! publishers: chunk by count and bytes, retry only the entries that failed
//! with a retryable error, back off with full jitter, and account for every
//! entry in the [`PublishReport`].

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use crate::ports::{PublishFailure, PublishReport};

/// One event on its way out.
#[derive(Debug, Clone)]
pub(crate) struct Entry<T> {
    pub event_id: Uuid,
    /// Size as the service counts it against its per-request limit.
    pub size: usize,
    pub payload: T,
}

/// What the service said about one entry of a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Sent,
    /// Failed, worth another try (throttled, internal error).
    Retry(String),
    /// Failed for good (malformed, not authorised).
    Fatal(String),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Total tries per entry, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniform in `[0, min(max, base * 2^attempt)]`.
    fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

/// Splits entries into requests of at most `max_entries` and `max_bytes`.
/// An entry over `max_bytes` on its own is returned in the second list.
pub(crate) fn chunk<T>(
    entries: Vec<Entry<T>>,
    max_entries: usize,
    max_bytes: usize,
) -> (Vec<Vec<Entry<T>>>, Vec<Entry<T>>) {
    let mut chunks: Vec<Vec<Entry<T>>> = Vec::new();
    let mut oversized = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        if entry.size > max_bytes {
            oversized.push(entry);
            continue;
        }
        match chunks.last_mut() {
            Some(last) if last.len() < max_entries && bytes + entry.size <= max_bytes => {
                bytes += entry.size;
                last.push(entry);
            }
            _ => {
                bytes = entry.size;
                chunks.push(vec![entry]);
            }
        }
    }
    (chunks, oversized)
}

/// Sends every entry, retrying those that fail retryably. `send` gets one
/// request's payloads and answers one [`Outcome`] per payload, in order, or
/// an error for the whole request (with whether it is retryable).
pub(crate) async fn deliver<T, F, Fut>(
    entries: Vec<Entry<T>>,
    max_entries: usize,
    max_bytes: usize,
    policy: RetryPolicy,
    mut send: F,
) -> PublishReport
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<Outcome>, (String, bool)>>,
{
    let mut report = PublishReport::default();
    let mut pending = entries;
    let mut attempt = 0;
    while !pending.is_empty() {
        let (chunks, oversized) = chunk(pending, max_entries, max_bytes);
        for e in oversized {
            report.failed.push(PublishFailure {
                event_id: e.event_id,
                reason: format!(
                    "entry is {} bytes, over the {max_bytes}-byte request limit",
                    e.size
                ),
            });
        }
        let last_try = attempt + 1 >= policy.attempts;
        let mut retry = Vec::new();
        for chunk in chunks {
            let outcomes = match send(chunk.iter().map(|e| e.payload.clone()).collect()).await {
                Ok(outcomes) => outcomes,
                Err((reason, true)) => vec![Outcome::Retry(reason); chunk.len()],
                Err((reason, false)) => vec![Outcome::Fatal(reason); chunk.len()],
            };
            let mut outcomes = outcomes.into_iter();
            for entry in chunk {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Outcome::Fatal("the service returned no result for this entry".into())
                });
                match outcome {
                    Outcome::Sent => report.published.push(entry.event_id),
                    Outcome::Retry(reason) if last_try => report.failed.push(PublishFailure {
                        event_id: entry.event_id,
                        reason: format!("{reason} (gave up after {} attempts)", policy.attempts),
                    }),
                    Outcome::Retry(reason) => {
                        tracing::debug!(event_id = %entry.event_id, %reason, attempt, "retrying entry");
                        retry.push(entry);
                    }
                    Outcome::Fatal(reason) => report.failed.push(PublishFailure {
                        event_id: entry.event_id,
                        reason,
                    }),
                }
            }
        }
        if !retry.is_empty() {
            // Backoff between tries, not a synchronisation wait.
            tokio::time::sleep(policy.delay(attempt)).await;
        }
        attempt += 1;
        pending = retry;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(sizes: &[usize]) -> Vec<Entry<usize>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Entry {
                event_id: Uuid::now_v7(),
                size,
                payload: i,
            })
            .collect()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn chunks_respect_count_and_bytes() {
        let (chunks, over) = chunk(entries(&[1; 25]), 10, 1000);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        assert!(over.is_empty());
        let (chunks, over) = chunk(entries(&[60, 50, 30, 101, 100]), 10, 100);
        assert_eq!(
            chunks
                .iter()
                .map(|c| c.iter().map(|e| e.size).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            [vec![60], vec![50, 30], vec![100]]
        );
        assert_eq!(over.len(), 1);
    }

    #[tokio::test]
    async fn retries_only_failed_entries_until_they_pass() {
        let input = entries(&[1; 12]);
        let mut calls: Vec<Vec<usize>> = Vec::new();
        // Payloads 3 and 11 fail on their first try, as FailedEntryCount would report.
        let report = deliver(input.clone(), 10, 1000, fast(), |batch: Vec<usize>| {
            let first = !calls.iter().flatten().any(|p| batch.contains(p));
            calls.push(batch.clone());
            let out = batch
                .iter()
                .map(|p| {
                    if first && (*p == 3 || *p == 11) {
                        Outcome::Retry("ThrottlingException".into())
                    } else {
                        Outcome::Sent
                    }
                })
                .collect();
            async move { Ok(out) }
        })
        .await;
        assert_eq!(
            calls,
            vec![(0..10).collect::<Vec<_>>(), vec![10, 11], vec![3, 11]]
        );
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(report.published.len(), 12);
    }

    #[tokio::test]
    async fn reports_entries_that_never_pass() {
        let input = entries(&[1, 1, 1]);
        let ids: Vec<Uuid> = input.iter().map(|e| e.event_id).collect();
        let mut tries = 0;
        let report = deliver(input, 10, 1000, fast(), |batch: Vec<usize>| {
            tries += 1;
            let out = batch
                .iter()
                .map(|p| match p {
                    0 => Outcome::Sent,
                    1 => Outcome::Retry("InternalFailure".into()),
                    _ => Outcome::Fatal("MalformedDetail".into()),
                })
                .collect();
            async move { Ok(out) }
        })
        .await;
        assert_eq!(tries, 3, "the retryable entry is tried `attempts` times");
        assert_eq!(report.published, vec![ids[0]]);
        let failed: Vec<(Uuid, &str)> = report
            .failed
            .iter()
            .map(|f| (f.event_id, f.reason.as_str()))
            .collect();
        assert_eq!(failed[0], (ids[2], "MalformedDetail"));
        assert_eq!(failed[1].0, ids[1]);
        assert!(failed[1].1.contains("gave up after 3 attempts"));
    }

    #[tokio::test]
    async fn whole_request_errors_fail_every_entry_of_it() {
        let report = deliver(entries(&[1, 1]), 10, 1000, fast(), |_b: Vec<usize>| async {
            Err(("AccessDenied".to_string(), false))
        })
        .await;
        assert_eq!(report.failed.len(), 2);
        assert!(report.published.is_empty());
    }
}
