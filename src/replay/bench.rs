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

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use router_rules::Topology;
use switchyard_shared::config::DataDir;
use switchyard_shared::ports::{EventPublisher, PublishError, PublishReport};
use switchyard_shared::Envelope;

use super::generate;
pub use super::measure::{percentile, E2eOptions, RunFigures};
use super::measure::{ConsumedClock, Versions};
use super::replayer::{publish_paced, Rate};
use crate::embedded::EmbeddedSystem;
use crate::runtime::RuntimeOptions;

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
