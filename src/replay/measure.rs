//! What the end-to-end benchmark measures, shared by its embedded run
//! ([`super::bench`]) and its moto leg ([`super::moto_leg`]): the options,
//! the figures of one run, and the clock that sees each event consumed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;
use switchyard_shared::Envelope;

use crate::runtime::{SettledBatch, WorkerHooks};

#[derive(Debug, Clone)]
pub struct E2eOptions {
    /// Events in the log (the bar: 100,000).
    pub events: usize,
    /// The fixed rate of the latency run.
    pub latency_rate: f64,
    /// Events in the latency run (the log's first ones).
    pub latency_events: usize,
    /// Events of the moto leg.
    pub moto_events: usize,
    /// A moto server with the topology provisioned, for the moto leg.
    pub moto_endpoint: Option<String>,
    /// Pollers per consumer queue: Lambda's SQS event source mapping
    /// starts with five concurrent batches per queue.
    pub pollers: usize,
    /// Full speed: at most this many events in flight (published, not yet
    /// consumed); 0 for no limit.
    pub window: usize,
    /// Where the durable data dirs go (a fresh one per run, removed after).
    pub dir: PathBuf,
    pub seed: u64,
    /// Per run, to see every event consumed.
    pub timeout: Duration,
    pub progress: bool,
}

impl Default for E2eOptions {
    fn default() -> Self {
        E2eOptions {
            events: 100_000,
            latency_rate: 10_000.0,
            latency_events: 50_000,
            moto_events: 500,
            moto_endpoint: None,
            pollers: 5,
            window: 10_000,
            dir: std::env::temp_dir(),
            seed: 42,
            timeout: Duration::from_secs(600),
            progress: false,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunFigures {
    pub events: usize,
    pub elapsed: Duration,
    pub events_per_sec: f64,
    /// Publish → consumption, sorted.
    pub latencies: Vec<Duration>,
    /// The process's CPU time (user and system, all threads) over the run,
    /// where measured: unlike events/s, barely moved by other load on a
    /// shared machine.
    pub cpu: Option<Duration>,
}

impl RunFigures {
    /// Figures from when each slot's event was published and consumed.
    pub fn from_times(
        events: usize,
        start: Instant,
        published_at: &[Option<Instant>],
        consumed_at: &[Option<Instant>],
    ) -> Self {
        let last = consumed_at.iter().flatten().max().copied().unwrap_or(start);
        let mut latencies: Vec<Duration> = consumed_at
            .iter()
            .zip(published_at)
            .filter_map(|(c, p)| Some(c.as_ref()?.saturating_duration_since(*p.as_ref()?)))
            .collect();
        latencies.sort();
        let elapsed = last.duration_since(start);
        RunFigures {
            events,
            elapsed,
            events_per_sec: events as f64 / elapsed.as_secs_f64().max(1e-9),
            latencies,
            cpu: None,
        }
    }

    /// CPU time per event, where measured.
    pub fn cpu_per_event(&self) -> Option<Duration> {
        Some(self.cpu? / self.events.max(1) as u32)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The `p` quantile (0..=1) of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Where an event of the benchmark's log keeps its times: order
/// `bench-N`'s event of version `v` (its `OrderStatusChanged` says `v`) is
/// slot `3N + v - 1`.
fn slot(order_id: &str, version: u64) -> Option<usize> {
    let n: usize = order_id.strip_prefix("bench-")?.parse().ok()?;
    (1..=3)
        .contains(&version)
        .then(|| 3 * n + version as usize - 1)
}

/// The slot of each event of a chunk, counting versions per order as the
/// events go by (every order's events come in history order).
#[derive(Debug, Default)]
pub struct Versions(HashMap<String, u64>);

impl Versions {
    pub fn slot_of(&mut self, e: &Envelope) -> Option<usize> {
        let order_id = e.detail["order_id"].as_str()?;
        let v = self.0.entry(order_id.to_owned()).or_default();
        *v += 1;
        slot(order_id, *v)
    }
}

#[derive(Deserialize)]
struct StatusChangedBody {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: StatusChangedDetail,
}

#[derive(Deserialize)]
struct StatusChangedDetail {
    order_id: String,
    version: u64,
}

/// Records when each event's `OrderStatusChanged` was consumed by `consumer`.
#[derive(Debug)]
pub struct ConsumedClock {
    consumer: String,
    expected: usize,
    state: Mutex<ClockState>,
    done: tokio::sync::Notify,
    /// Fired whenever the count goes up.
    progress: tokio::sync::Notify,
}

#[derive(Debug)]
struct ClockState {
    consumed_at: Vec<Option<Instant>>,
    count: usize,
}

impl ConsumedClock {
    /// A clock for `expected` events of the benchmark's log.
    pub fn new(consumer: &str, expected: usize) -> Self {
        ConsumedClock {
            consumer: consumer.to_owned(),
            expected,
            state: Mutex::new(ClockState {
                consumed_at: vec![None; 3 * expected],
                count: 0,
            }),
            done: tokio::sync::Notify::new(),
            progress: tokio::sync::Notify::new(),
        }
    }

    fn consumed(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// Waits until every event was consumed, or fails at the deadline with the count.
    pub async fn wait_all(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let n = self.consumed();
            if n >= self.expected {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "only {n} of {} events were consumed end to end within {timeout:?}",
                    self.expected
                );
            }
        }
    }

    /// Waits until at most `window` of the `published` events are not consumed yet.
    pub async fn wait_within(&self, published: usize, window: usize) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if published.saturating_sub(self.consumed()) <= window {
                return;
            }
            notified.await;
        }
    }

    /// Consumption time by slot.
    pub fn times(&self) -> Vec<Option<Instant>> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .consumed_at
            .clone()
    }
}

impl WorkerHooks for ConsumedClock {
    fn batch_settled(&self, consumer: &str, batch: &SettledBatch<'_>) {
        if consumer != self.consumer || batch.crashed {
            return;
        }
        let now = Instant::now();
        let hits: Vec<usize> = batch
            .messages
            .iter()
            .filter(|m| !batch.failures.contains_key(&m.message_id))
            .filter_map(|m| serde_json::from_str::<StatusChangedBody>(&m.body).ok())
            .filter(|b| b.detail_type == "OrderStatusChanged")
            .filter_map(|b| slot(&b.detail.order_id, b.detail.version))
            .collect();
        if hits.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for i in hits {
            if let Some(t @ None) = state.consumed_at.get_mut(i) {
                *t = Some(now);
                state.count += 1;
            }
        }
        if state.count >= self.expected {
            self.done.notify_waiters();
        }
        self.progress.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::generate;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn every_event_has_its_own_slot_matching_its_status_change() {
        let mut versions = Versions::default();
        let mut seen = std::collections::HashSet::new();
        for e in generate::BenchEvents::new(5, 2000) {
            let slot = versions.slot_of(&e).expect("a bench order id");
            assert!(seen.insert(slot), "slot {slot} twice");
            assert!(slot < 3 * 2000);
            // The version the order processor gives this event.
            let version = match e.detail_type.as_str() {
                "OrderPlaced" => 1,
                "OrderPaid" | "OrderCancelled" => 2,
                _ => 3,
            };
            let order_id = e.detail["order_id"].as_str().unwrap();
            assert_eq!(Some(slot), super::slot(order_id, version), "{e:?}");
        }
        assert_eq!(seen.len(), 2000);
        assert_eq!(super::slot("order-1", 1), None);
        assert_eq!(super::slot("bench-0000002", 4), None);
    }
}
