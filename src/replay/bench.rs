//! `switchyard bench e2e`: the whole pipeline, end to end, on a durable
//! embedded data dir, beside the moto backend on the same events.
//!
//! An event counts once the `OrderStatusChanged` it causes has been consumed
//! (handled by the notifier): publish → order-processor → table → stream →
//! stream reactor → bus → notifier. The log is [`generate::BenchEvents`]:
//! every event changes its order's status, so each has exactly one
//! `OrderStatusChanged`, identified by (order id, version).
//!
//! - throughput: the whole log at full speed; events / (last consumed - first published);
//! - latency: the log at a fixed rate (10,000 events/s), publish to consumption, p50/p99;
//! - peak RSS: the process's high-water mark (VmHWM) after both runs;
//! - the moto leg: the log cut to 500 events through the AWS backend against
//!   a moto server, end to end the same way; the ratio is embedded over moto.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use router_rules::Topology;
use serde::Deserialize;
use switchyard_shared::config::DataDir;
use switchyard_shared::ports::{EventPublisher, PublishError, PublishReport};
use switchyard_shared::Envelope;

use super::generate;
use super::replayer::{publish_paced, Rate};
use crate::runtime::{SettledBatch, WorkerHooks};
use crate::system::{EmbeddedSystem, RuntimeOptions};

#[derive(Debug, Clone)]
pub struct E2eOptions {
    /// Events in the log (the issue's bar: 100,000).
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

/// The whole benchmark's result.
#[derive(Debug, Clone)]
pub struct E2eReport {
    /// The peer on this machine in this run: bare SQLite commits of one row
    /// per second (same pragmas as the store), so a figure can be read
    /// against how busy the shared machine was.
    pub bare_commits_per_sec: f64,
    pub throughput: RunFigures,
    pub latency: RunFigures,
    pub latency_rate: f64,
    pub peak_rss_mb: f64,
    /// Events/s of the moto leg, or why there is none.
    pub moto: Result<RunFigures, String>,
}

impl E2eReport {
    pub fn ratio_vs_moto(&self) -> Option<f64> {
        self.moto
            .as_ref()
            .ok()
            .map(|m| self.throughput.events_per_sec / m.events_per_sec)
    }

    /// `e2e-bench events_per_s=N p50_ms=X p99_ms=X peak_rss_mb=N ratio_vs_moto=X`
    pub fn summary_line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ratio = match self.ratio_vs_moto() {
            Some(r) => format!("{r:.0}"),
            None => "NA".to_owned(),
        };
        format!(
            "e2e-bench events_per_s={:.0} p50_ms={:.2} p99_ms={:.2} peak_rss_mb={:.0} ratio_vs_moto={ratio}",
            self.throughput.events_per_sec,
            ms(self.latency.percentile(0.50)),
            ms(self.latency.percentile(0.99)),
            self.peak_rss_mb,
        )
    }
}

/// The process's peak resident set (VmHWM), in MB; 0 where /proc is missing.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The process's CPU time so far (user and system, every thread), from
/// /proc; `None` where it is missing.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // In clock ticks, which Linux fixes at 100 per second for user space.
    Some(Duration::from_millis((utime + stime) * 10))
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

/// Publish calls the bench keeps in flight, as independent clients of the
/// API would: each waits for the flush to disk that acknowledges it, and
/// calls that overlap share one flush.
const PUBLISH_CALLS_IN_FLIGHT: usize = 16;

/// Holds full-speed publishing to a window of events in flight.
struct Windowed<'a> {
    inner: &'a dyn EventPublisher,
    clock: &'a ConsumedClock,
    window: usize,
    published: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventPublisher for Windowed<'_> {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        use std::sync::atomic::Ordering;
        let before = self.published.fetch_add(events.len(), Ordering::Relaxed);
        self.clock
            .wait_within(before + events.len(), self.window)
            .await;
        self.inner.publish(events).await
    }
}

/// One run on a fresh durable data dir: publish the log's first `events`
/// at `rate`, wait until every one is consumed end to end.
pub async fn embedded_run(
    events: usize,
    rate: Rate,
    options: &E2eOptions,
    label: &str,
) -> anyhow::Result<RunFigures> {
    let dir = tempfile::Builder::new()
        .prefix("switchyard-bench-")
        .tempdir_in(&options.dir)
        .with_context(|| format!("creating a data dir in {}", options.dir.display()))?;
    let data_dir = DataDir::new(dir.path());
    let topology = Arc::new(Topology::builtin());
    let mut system = EmbeddedSystem::open(&data_dir, topology)?;
    let clock = Arc::new(ConsumedClock::new(
        switchyard_consumers::notifier::NAME,
        events,
    ));
    let runtime = RuntimeOptions {
        hooks: Some(clock.clone()),
        queue_pollers: options.pollers,
        ..RuntimeOptions::default()
    };
    system.start(&runtime).await?;
    let bar = if options.progress {
        let bar = indicatif::ProgressBar::new(events as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:<12} [{bar:30}] {pos}/{len} published  {per_sec}",
            )
            .expect("a valid progress template"),
        );
        bar.set_message(label.to_owned());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut published_at: Vec<Option<Instant>> = vec![None; 3 * events];
    let mut versions = Versions::default();
    let windowed = Windowed {
        inner: &*system.publisher,
        clock: &clock,
        window: options.window,
        published: Default::default(),
    };
    let publisher: &dyn EventPublisher = match rate {
        Rate::Max if options.window > 0 => &windowed,
        _ => &*system.publisher,
    };
    let start = Instant::now();
    let cpu_at_start = process_cpu();
    let report = publish_paced(
        publisher,
        generate::BenchEvents::new(options.seed, events),
        rate,
        500,
        PUBLISH_CALLS_IN_FLIGHT,
        |part, at| {
            for e in part {
                if let Some(t) = versions.slot_of(e).and_then(|s| published_at.get_mut(s)) {
                    *t = Some(at);
                }
            }
            bar.inc(part.len() as u64);
        },
    )
    .await;
    bar.finish_and_clear();
    let outcome = match report {
        Ok(r) if !r.failed.is_empty() => Err(anyhow::anyhow!(
            "{} events failed to publish: {}",
            r.failed.len(),
            r.failed[0].reason
        )),
        Ok(_) => clock.wait_all(options.timeout).await,
        Err(e) => Err(e),
    };
    let cpu = process_cpu()
        .zip(cpu_at_start)
        .map(|(end, start)| end.saturating_sub(start));
    system.shutdown().await;
    outcome.with_context(|| format!("the {label} run"))?;
    Ok(RunFigures {
        cpu,
        ..RunFigures::from_times(events, start, &published_at, &clock.times())
    })
}

/// The moto leg: the same events through the AWS backend against a moto
/// server ([`super::moto_leg`]), or why it did not run.
pub async fn moto_run(events: usize, options: &E2eOptions) -> Result<RunFigures, String> {
    let Some(endpoint) = &options.moto_endpoint else {
        return Err("no moto endpoint (set SWITCHYARD_MOTO_ENDPOINT or pass --moto-endpoint; scripts/moto/run starts one)".into());
    };
    super::moto_leg::run(endpoint, events, options)
        .await
        .map_err(|e| format!("{e:#}"))
}

/// One-row commits per second for `time` on a fresh file database in
/// `dir`, with the store's pragmas (WAL, synchronous=NORMAL).
pub fn bare_commits(dir: &std::path::Path, time: Duration) -> anyhow::Result<f64> {
    let file = tempfile::Builder::new()
        .prefix("switchyard-bench-peer-")
        .tempdir_in(dir)?;
    let conn = rusqlite::Connection::open(file.path().join("peer.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE t (pk TEXT NOT NULL, sk TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID",
    )?;
    let body = r#"{"pk":"ORDER#x","sk":"ORDER","status":"PLACED","version":1}"#;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached("INSERT INTO t (pk, sk, body) VALUES (?1, 'ORDER', ?2)")?
            .execute((format!("ORDER#{n}"), body))?;
        conn.execute_batch("COMMIT")?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs the whole benchmark.
pub async fn run(options: &E2eOptions) -> anyhow::Result<E2eReport> {
    if options.events == 0 || options.latency_events == 0 {
        bail!("the benchmark needs at least one event per run");
    }
    let bare_commits_per_sec = bare_commits(&options.dir, Duration::from_secs(2))?;
    let throughput = embedded_run(options.events, Rate::Max, options, "full speed").await?;
    let latency = embedded_run(
        options.latency_events.min(options.events),
        Rate::PerSecond(options.latency_rate),
        options,
        "fixed rate",
    )
    .await?;
    let peak_rss_mb = peak_rss_mb();
    let moto = moto_run(options.moto_events.min(options.events), options).await;
    Ok(E2eReport {
        bare_commits_per_sec,
        throughput,
        latency,
        latency_rate: options.latency_rate,
        peak_rss_mb,
        moto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
