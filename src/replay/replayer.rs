//! The replayer: selects a log's events (time window, pattern), plans the
//! publish order (duplicates, reordering), writes the log's blobs, publishes
//! at a rate with faults switched on, waits until the system is quiet, and
//! gathers what resulted: the table snapshot, the dead letters, the events
//! the system emitted, the blobs, and an account of every event.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use router_rules::topology::{ConsumerSpec, Subscription};
use router_rules::{BusMatcher, TopicMatcher, Topology};
use serde::Serialize;
use switchyard_shared::config::DataDir;
use switchyard_shared::embedded::{FaultPlan, StoreOptions};
use switchyard_shared::events::sns_attributes;
use switchyard_shared::items::{applied_event_key, notification_key};
use switchyard_shared::ports::{
    Destination, EventPublisher, Item, PublishError, PublishReport, Table, VirtualClock,
};
use switchyard_shared::{BlobKey, DomainEvent, Envelope};
use uuid::Uuid;

use super::faults::{plan, ConsumerCounts, FaultSpec, ReplayHooks};
use super::log::{EventLog, LoggedEvent};
pub use super::report::Refusal;
use super::report::{digest, digest_of, ReplayReport};
use crate::embedded::EmbeddedSystem;
use crate::runtime::RuntimeOptions;
use crate::state::StateSnapshot;

/// Events per second, as fast as the system takes them, or at the log's
/// own pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    PerSecond(f64),
    /// Each event when its `time` comes, relative to the first one (an
    /// event whose time is before the previous one's goes right after it).
    /// On the virtual clock this costs no waiting; on the wall clock a log
    /// of an hour replays in an hour.
    Log,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        if s == "log" {
            return Ok(Rate::Log);
        }
        match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
            _ => Err(format!(
                "rate {s:?}: expected events per second (a number above 0), `max` or `log`"
            )),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(r) => write!(f, "{r}/s"),
            Rate::Log => f.write_str("log"),
        }
    }
}

/// Which clock a replay on the embedded backend runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayClock {
    /// Virtual time on a single-threaded runtime of its own: when every
    /// consumer is idle and only timers remain, time jumps to the next
    /// deadline. Timing is AWS's (a failed message returns after its
    /// visibility timeout), and a run is a pure function of the log, the
    /// topology and the seed.
    #[default]
    Virtual,
    /// The system clock, on the caller's runtime: the run takes the time it
    /// takes, with the short retry delays of [`RuntimeOptions`].
    Wall,
}

impl std::str::FromStr for ReplayClock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "virtual" => Ok(ReplayClock::Virtual),
            "wall" => Ok(ReplayClock::Wall),
            _ => Err(format!("clock {s:?}: expected `virtual` or `wall`")),
        }
    }
}

impl std::fmt::Display for ReplayClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplayClock::Virtual => "virtual",
            ReplayClock::Wall => "wall",
        })
    }
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The publishing pace: [`Rate::Max`] by default (every event at
    /// once, in plan order); [`Rate::Log`] publishes each when its `time`
    /// comes, which costs no waiting on the virtual clock.
    pub rate: Rate,
    pub clock: ReplayClock,
    /// Only events whose `time` is at or after this...
    pub from: Option<DateTime<Utc>>,
    /// ...and before this.
    pub to: Option<DateTime<Utc>>,
    /// Only events this EventBridge pattern matches.
    pub filter: Option<serde_json::Value>,
    pub faults: FaultSpec,
    pub seed: u64,
    /// How long the system may take to settle after the last publish.
    pub quiet_timeout: Duration,
    /// Base options for the consumers; the replay adds its hooks. On the
    /// virtual clock its timing fields (`retry_base`, `retry_cap`,
    /// `poll_wait`, `visibility_timeout`) give way to AWS's timing, which
    /// costs nothing there.
    pub runtime: RuntimeOptions,
    /// Visibility timeout while crashes or expiries are injected on the wall
    /// clock, so abandoned messages come back quickly (the virtual clock
    /// keeps each queue's own).
    pub fault_visibility: Duration,
    /// Events per publish call at `Rate::Max`.
    pub chunk: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            rate: Rate::Max,
            clock: ReplayClock::Virtual,
            from: None,
            to: None,
            filter: None,
            faults: FaultSpec::none(),
            seed: 0,
            quiet_timeout: Duration::from_secs(300),
            runtime: RuntimeOptions::default(),
            fault_visibility: Duration::from_secs(1),
            chunk: 256,
            progress: false,
        }
    }
}

/// Where the replay runs on the embedded backend.
#[derive(Debug, Clone)]
pub enum EmbeddedTarget {
    /// A durable data dir (created if missing).
    DataDir(DataDir),
    /// An in-memory store, blobs in this folder.
    Memory { blob_dir: PathBuf },
    /// Store and blobs in memory: nothing on disk ([`crate::scenario::Scenario`]).
    Ephemeral,
}

/// One message in a dead-letter (or on-failure) queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub queue: String,
    pub event_id: Option<Uuid>,
    pub detail_type: Option<String>,
    pub order_id: Option<String>,
    /// Why it failed last (`None` if no failure was ever recorded).
    pub reason: Option<String>,
    pub body: String,
}

/// Everything a replay produced.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    pub report: ReplayReport,
    pub snapshot: StateSnapshot,
    pub dead_letters: Vec<DeadLetter>,
    /// Events the system published itself (stream reactor, image processor),
    /// first copy of each id, in publish order.
    pub emitted: Vec<Envelope>,
    /// Every blob: key -> size in bytes.
    pub blobs: BTreeMap<String, u64>,
    /// Every table item at the end, for what the snapshot does not model
    /// (what a user's own consumer wrote, say).
    pub items: Vec<Item>,
}

/// Records what the consumers publish, then passes it on.
struct Tap {
    inner: Arc<dyn EventPublisher>,
    seen: Mutex<(BTreeSet<Uuid>, Vec<Envelope>)>,
}

#[async_trait]
impl EventPublisher for Tap {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        let report = self.inner.publish(events).await?;
        let published: BTreeSet<&Uuid> = report.published.iter().collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for e in events.iter().filter(|e| published.contains(&e.id)) {
            if seen.0.insert(e.id) {
                seen.1.push(e.clone());
            }
        }
        Ok(report)
    }
}

/// The events of a log the options select, and what was left out.
pub struct Selection<'a> {
    pub events: Vec<&'a LoggedEvent>,
    pub outside_window: usize,
    pub filtered_out: usize,
}

/// Applies the time window and the pattern.
pub fn select<'a>(log: &'a EventLog, options: &ReplayOptions) -> anyhow::Result<Selection<'a>> {
    let filter = match &options.filter {
        Some(p) => Some(
            BusMatcher::compile([((), p)])
                .map_err(|e| anyhow::anyhow!("--filter is not a valid event pattern: {e}"))?,
        ),
        None => None,
    };
    let mut selection = Selection {
        events: Vec::new(),
        outside_window: 0,
        filtered_out: 0,
    };
    for e in &log.events {
        let t = e.event.time;
        if options.from.is_some_and(|f| t < f) || options.to.is_some_and(|to| t >= to) {
            selection.outside_window += 1;
        } else if filter
            .as_ref()
            .is_some_and(|m| m.matches(&e.event.to_json()).is_empty())
        {
            selection.filtered_out += 1;
        } else {
            selection.events.push(e);
        }
    }
    Ok(selection)
}

/// What a replay publishes: the selection, minus what cannot be published,
/// reordered and duplicated as the faults say.
pub struct Planned<'a> {
    pub selection: Selection<'a>,
    pub refused: Vec<Refusal>,
    /// The selected events that can be published, in log order.
    pub valid: Vec<&'a LoggedEvent>,
    /// What to publish, in publishing order, duplicates included.
    pub to_publish: Vec<Envelope>,
    pub duplicates: usize,
}

/// Selects, refuses and plans (seeded) what a replay of `log` publishes.
pub fn planned<'a>(
    log: &'a EventLog,
    topology: &Topology,
    options: &ReplayOptions,
) -> anyhow::Result<Planned<'a>> {
    let selection = select(log, options)?;
    let mut refused = Vec::new();
    let mut valid: Vec<&LoggedEvent> = Vec::new();
    for e in &selection.events {
        match refusal(topology, e) {
            Some(reason) => refused.push(Refusal {
                event_id: e.event.id,
                detail_type: e.event.detail_type.clone(),
                reason,
            }),
            None => valid.push(e),
        }
    }
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let times: Vec<i64> = valid
        .iter()
        .map(|e| e.event.time.timestamp_millis())
        .collect();
    let (order, duplicates) = plan(&times, &options.faults, &mut rng);
    let to_publish = order.iter().map(|&i| valid[i].event.clone()).collect();
    Ok(Planned {
        selection,
        refused,
        valid,
        to_publish,
        duplicates,
    })
}

/// The events a publish could not deliver, as refusals.
pub fn publish_refusals(report: &PublishReport, sent: &[Envelope]) -> Vec<Refusal> {
    report
        .failed
        .iter()
        .map(|f| Refusal {
            event_id: f.event_id,
            detail_type: sent
                .iter()
                .find(|e| e.id == f.event_id)
                .map(|e| e.detail_type.clone())
                .unwrap_or_default(),
            reason: format!("publish failed: {}", f.reason),
        })
        .collect()
}

/// Why an event cannot be published as logged, if it cannot.
fn refusal(topology: &Topology, e: &LoggedEvent) -> Option<String> {
    if let Err(err) = DomainEvent::validate(&e.event) {
        return Some(err.to_string());
    }
    match topology.destination_of(&e.event.detail_type) {
        None => Some(format!(
            "no route for detail-type {:?} in the topology",
            e.event.detail_type
        )),
        Some(d) if d != e.destination => Some(format!(
            "logged as published to {}, but the topology publishes {} to {d}",
            e.destination, e.event.detail_type
        )),
        Some(_) => None,
    }
}

/// The topology a replay runs on: the given one, with every consumer's
/// receive limit raised by what the faults can use up (so faults alone do
/// not dead-letter good messages). Returns the raised limits.
pub fn replay_topology(
    topology: &Topology,
    faults: &FaultSpec,
) -> (Topology, BTreeMap<String, u32>) {
    let mut t = topology.clone();
    let mut raised = BTreeMap::new();
    if faults.hits_consumers() {
        let extra = faults.receives_needed();
        for c in &mut t.consumers {
            // SQS allows at most 1,000.
            c.queue.max_receive_count = c.queue.max_receive_count.saturating_add(extra).min(1000);
            raised.insert(c.name.clone(), c.queue.max_receive_count);
        }
    }
    (t, raised)
}

/// Which consumers an event reaches (the topology's rules, as the fan-out applies them).
pub struct Routing<'a> {
    topology: &'a Topology,
    rules: Vec<(&'a ConsumerSpec, Rule)>,
}

enum Rule {
    Bus(String, BusMatcher<()>),
    Topic(String, TopicMatcher<()>),
}

impl<'a> Routing<'a> {
    pub fn new(topology: &'a Topology) -> anyhow::Result<Self> {
        let mut rules = Vec::new();
        for c in &topology.consumers {
            for s in &c.subscriptions {
                let rule = match s {
                    Subscription::Bus(b) => {
                        Rule::Bus(b.bus.clone(), BusMatcher::compile([((), &b.pattern)])?)
                    }
                    Subscription::Topic(t) => Rule::Topic(
                        t.topic.clone(),
                        TopicMatcher::compile([((), &t.filter_policy, t.filter_policy_scope)])?,
                    ),
                };
                rules.push((c, rule));
            }
        }
        Ok(Routing { topology, rules })
    }

    pub fn consumers_of(&self, event: &Envelope) -> Vec<&'a ConsumerSpec> {
        let Some(destination) = self.topology.destination_of(&event.detail_type) else {
            return Vec::new();
        };
        let body = event.to_json();
        let attributes = sns_attributes(event);
        let mut out: Vec<&ConsumerSpec> = Vec::new();
        for (c, rule) in &self.rules {
            let hit = match (rule, &destination) {
                (Rule::Bus(bus, m), Destination::Bus(d)) => {
                    bus == d && !m.matches(&body).is_empty()
                }
                (Rule::Topic(topic, m), Destination::Topic(d)) => {
                    topic == d && !m.matches(&attributes, &body).is_empty()
                }
                _ => false,
            };
            if hit && !out.iter().any(|o| o.name == c.name) {
                out.push(c);
            }
        }
        out
    }
}

/// Whether `consumer` has applied `event`: its applied-event marker, or for
/// the notifier (keyed on the event id already) its notification.
pub async fn applied(
    table: &dyn Table,
    consumer: &ConsumerSpec,
    event: &Envelope,
) -> anyhow::Result<bool> {
    let key = if consumer.handler == switchyard_consumers::notifier::NAME {
        let order_id = event.detail["order_id"].as_str().unwrap_or_default();
        notification_key(order_id, event.id)
    } else {
        applied_event_key(event.id, &consumer.name)
    };
    Ok(table.get(&key).await?.is_some())
}

/// Every message in the dead-letter and on-failure queues.
pub fn dead_letters(system: &EmbeddedSystem) -> anyhow::Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for queue in system.dead_letter_queues() {
        for m in system.store.list_messages(&queue, usize::MAX)? {
            let envelope = Envelope::from_json(&m.body).ok();
            // On-failure records carry their reason in the body.
            let reason = m.last_failure.clone().or_else(|| {
                serde_json::from_str::<serde_json::Value>(&m.body)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_owned))
            });
            out.push(DeadLetter {
                queue: queue.clone(),
                event_id: envelope.as_ref().map(|e| e.id),
                detail_type: envelope.as_ref().map(|e| e.detail_type.clone()),
                order_id: envelope
                    .as_ref()
                    .and_then(|e| e.detail["order_id"].as_str().map(str::to_owned)),
                reason,
                body: m.body,
            });
        }
    }
    Ok(out)
}

/// Publishes `events` in order at `rate`, in chunks; after each chunk calls
/// `published` with it and the moment its publish call started. Returns the
/// publish reports merged.
///
/// With `in_flight` above 1, up to that many publish calls overlap, as
/// independent clients would: a durable publisher's answer waits for the
/// disk, and overlapping calls share one flush. Chunks still start in
/// order; a replay, whose order matters, passes 1.
pub async fn publish_paced(
    publisher: &dyn EventPublisher,
    events: impl IntoIterator<Item = Envelope>,
    rate: Rate,
    max_chunk: usize,
    in_flight: usize,
    mut published: impl FnMut(&[Envelope], Instant),
) -> anyhow::Result<PublishReport> {
    use futures::stream::{FuturesOrdered, StreamExt};
    let mut report = PublishReport::default();
    let start = tokio::time::Instant::now();
    let max_chunk = max_chunk.max(1);
    let mut events = events.into_iter().peekable();
    let mut sent = 0usize;
    let mut calls = FuturesOrdered::new();
    let mut settle = |(part, at, r): (Vec<Envelope>, Instant, Result<PublishReport, _>)| {
        let r: PublishReport = anyhow::Context::context(r, "publishing replayed events")?;
        report.published.extend(r.published);
        report.failed.extend(r.failed);
        published(&part, at);
        anyhow::Ok(())
    };
    // At the log's pace: where the log's time stood at the last event.
    let mut log_at: Option<DateTime<Utc>> = None;
    let mut log_start: Option<DateTime<Utc>> = None;
    while let Some(first) = events.peek() {
        // At a fixed rate, publish what is due (at least one event a
        // millisecond; more when a slow call left it behind).
        let chunk = match rate {
            Rate::Max => max_chunk,
            Rate::Log => {
                let at = log_at.map_or(first.time, |prev| prev.max(first.time));
                log_at = Some(at);
                let origin = *log_start.get_or_insert(at);
                let offset = (at - origin).to_std().unwrap_or_default();
                let next = start + offset;
                loop {
                    tokio::select! {
                        biased;
                        Some(done) = calls.next(), if !calls.is_empty() => settle(done)?,
                        _ = tokio::time::sleep_until(next) => break,
                    }
                }
                1
            }
            Rate::PerSecond(r) => {
                let next = start + Duration::from_secs_f64(sent as f64 / r);
                loop {
                    tokio::select! {
                        biased;
                        Some(done) = calls.next(), if !calls.is_empty() => settle(done)?,
                        _ = tokio::time::sleep_until(next) => break,
                    }
                }
                let due = (start.elapsed().as_secs_f64() * r) as usize;
                due.saturating_sub(sent)
                    .max((r / 1000.0).ceil() as usize)
                    .clamp(1, max_chunk)
            }
        };
        while calls.len() >= in_flight.max(1) {
            let done = calls.next().await.expect("calls in flight");
            settle(done)?;
        }
        let part: Vec<Envelope> = events.by_ref().take(chunk).collect();
        sent += part.len();
        calls.push_back(async move {
            let at = Instant::now();
            let r = publisher.publish(&part).await;
            (part, at, r)
        });
    }
    while let Some(done) = calls.next().await {
        settle(done)?;
    }
    Ok(report)
}

/// A progress bar on stderr, or a hidden one.
pub(crate) fn progress_bar(show: bool, len: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:<10} [{bar:30}] {pos}/{len} events  {per_sec}  {elapsed}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    bar.set_message("publishing");
    bar
}

/// Replays `log` on the embedded backend, on the clock `options.clock` names.
///
/// On the virtual clock the replay runs on a single-threaded tokio runtime
/// of its own, on a thread of its own, with tokio's time paused: whenever
/// every task waits and only timers remain, time jumps to the next
/// deadline. Nothing else moves it (blocking work runs inline, waits for the
/// store's commit thread block), so the run is reproducible.
pub async fn replay_embedded(
    log: &EventLog,
    topology: &Topology,
    target: &EmbeddedTarget,
    options: &ReplayOptions,
) -> anyhow::Result<ReplayOutcome> {
    options.faults.validate()?;
    match options.clock {
        ReplayClock::Wall => replay_on(log, topology, target, options, None).await,
        ReplayClock::Virtual => {
            let (log, topology) = (log.clone(), topology.clone());
            let (target, options) = (target.clone(), options.clone());
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("switchyard-replay".into())
                .spawn(move || {
                    let _ = tx.send(replay_virtual(&log, &topology, &target, &options));
                })
                .context("starting the replay thread")?;
            rx.await
                .context("the replay thread ended without an outcome (it panicked)")?
        }
    }
}

/// [`replay_embedded`] on a fresh single-threaded runtime with paused time.
fn replay_virtual(
    log: &EventLog,
    topology: &Topology,
    target: &EmbeddedTarget,
    options: &ReplayOptions,
) -> anyhow::Result<ReplayOutcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .context("building the replay runtime")?;
    switchyard_shared::ports::clock::set_inline_blocking(true);
    let outcome = runtime.block_on(async {
        // Virtual time starts at the log's first event.
        let epoch = planned(log, topology, options)?
            .to_publish
            .first()
            .map_or(0, |e| e.time.timestamp_millis());
        let clock = VirtualClock::starting_at(epoch);
        replay_on(log, topology, target, options, Some(clock)).await
    });
    switchyard_shared::ports::clock::set_inline_blocking(false);
    outcome
}

/// How long a store on the virtual clock waits before looking again for
/// work another process may have left (none does): the longest SQS long
/// poll, so idle workers cost a wakeup per 20 virtual seconds.
const VIRTUAL_POLL: Duration = Duration::from_secs(20);

/// On the virtual clock, a failed message returns after its queue's
/// visibility timeout, as Lambda leaves it (the retry delay is capped there).
const AWS_RETRY: Duration = Duration::from_secs(12 * 3600);

async fn replay_on(
    log: &EventLog,
    topology: &Topology,
    target: &EmbeddedTarget,
    options: &ReplayOptions,
    clock: Option<VirtualClock>,
) -> anyhow::Result<ReplayOutcome> {
    let started = Instant::now();
    let Planned {
        selection,
        mut refused,
        valid,
        to_publish,
        duplicates,
    } = planned(log, topology, options)?;

    let (topology, raised) = replay_topology(topology, &options.faults);
    let topology = Arc::new(topology);
    let store_options = match &clock {
        Some(c) => StoreOptions {
            clock: Arc::new(c.clone()),
            external_poll: VIRTUAL_POLL,
            ..StoreOptions::default()
        },
        None => StoreOptions::default(),
    };
    let mut system = match target {
        EmbeddedTarget::DataDir(dir) => {
            EmbeddedSystem::open_with(dir, topology.clone(), store_options)?
        }
        EmbeddedTarget::Memory { blob_dir } => {
            EmbeddedSystem::in_memory_with(blob_dir, topology.clone(), store_options)?
        }
        EmbeddedTarget::Ephemeral => EmbeddedSystem::ephemeral(topology.clone(), store_options)?,
    };
    for b in &log.blobs {
        let key =
            BlobKey::new(b.key.clone()).with_context(|| format!("blob {:?} in the log", b.key))?;
        system
            .blobs
            .put(&key, Bytes::clone(&b.bytes), &b.content_type)
            .await
            .with_context(|| format!("writing blob {key}"))?;
    }
    let replay_publisher = system.publisher.clone();
    let tap = Arc::new(Tap {
        inner: system.consumer_publisher.clone(),
        seen: Mutex::new((BTreeSet::new(), Vec::new())),
    });
    // The consumers publish through the tap; the replay publishes around it.
    system.consumer_publisher = tap.clone();
    let hooks = Arc::new(ReplayHooks::new(
        options.faults,
        options.seed ^ 0x5157_4f52_4b45_5253,
    ));
    let mut runtime = options.runtime.clone();
    runtime.hooks = Some(hooks.clone());
    if clock.is_some() {
        // AWS's timing: each queue's own visibility timeout, failures back after it.
        runtime.visibility_timeout = None;
        runtime.stream_retry_delay = Some(runtime.retry_base);
        (runtime.retry_base, runtime.retry_cap) = (AWS_RETRY, AWS_RETRY);
        runtime.poll_wait = VIRTUAL_POLL;
    } else if options.faults.crash > 0.0 || options.faults.visibility_expiry > 0.0 {
        runtime.visibility_timeout = Some(options.fault_visibility);
    }
    if options.faults.visibility_expiry > 0.0 {
        // An expired message is only received again meanwhile if another poller is there.
        runtime.queue_pollers = runtime.queue_pollers.max(2);
    }
    if options.faults.transient > 0.0 {
        system.store.faults().set(Some(FaultPlan {
            seed: options.seed ^ 0x7472_616e_7369_656e,
            table_error_rate: options.faults.transient,
            blob_error_rate: options.faults.transient,
        }))?;
    }
    system.start(&runtime).await?;

    let bar = progress_bar(options.progress, to_publish.len());
    let publish_started = Instant::now();
    let clock_started = tokio::time::Instant::now();
    let published = publish_paced(
        &*replay_publisher,
        to_publish.iter().cloned(),
        options.rate,
        options.chunk,
        1,
        |part, _| bar.inc(part.len() as u64),
    )
    .await;
    let published = match published {
        Ok(p) => p,
        Err(e) => {
            system.shutdown().await;
            return Err(e);
        }
    };
    let publish_time = publish_started.elapsed();
    refused.extend(publish_refusals(&published, &to_publish));
    bar.set_message("settling");
    // On the virtual clock a look costs no waiting, but each is work: look
    // every 100 virtual ms rather than every 10.
    let every = Duration::from_millis(if clock.is_some() { 100 } else { 10 });
    let quiet = system.wait_quiet_every(options.quiet_timeout, every).await;
    let settle_time = publish_started.elapsed();
    let clock_time = clock_started.elapsed();
    bar.finish_and_clear();
    // The final state is read without faults.
    system.store.faults().set(None)?;
    if let Err(e) = quiet {
        system.shutdown().await;
        return Err(e);
    }
    let items = system.table.scan().await?;
    let snapshot = StateSnapshot::of_items(&items)?;
    let dead = dead_letters(&system)?;
    let mut blobs = BTreeMap::new();
    for key in system.blobs.list("").await? {
        let size = system.blobs.size(&key).await?.unwrap_or(0);
        blobs.insert(key.to_string(), size);
    }

    // Every published event: applied by each consumer it reaches, or in that consumer's DLQ.
    let routing = Routing::new(&topology)?;
    let failed: BTreeSet<Uuid> = published.failed.iter().map(|f| f.event_id).collect();
    let mut unaccounted = Vec::new();
    let mut accounted = BTreeSet::new();
    for e in valid.iter().map(|e| &e.event) {
        if failed.contains(&e.id) || !accounted.insert(e.id) {
            continue;
        }
        for c in routing.consumers_of(e) {
            if applied(&*system.table, c, e).await? {
                continue;
            }
            match dead
                .iter()
                .find(|d| d.queue == c.dlq_name() && d.event_id == Some(e.id))
            {
                Some(d) if d.reason.as_deref().is_some_and(|r| !r.is_empty()) => {}
                Some(_) => unaccounted.push(format!(
                    "{} {} for {}: in {} without a reason",
                    e.detail_type,
                    e.id,
                    e.detail["order_id"],
                    c.dlq_name()
                )),
                None => unaccounted.push(format!(
                    "{} {} for {}: neither applied by {} nor in its DLQ",
                    e.detail_type, e.id, e.detail["order_id"], c.name
                )),
            }
        }
    }
    let (table_faults, blob_faults) = system.store.faults().injected();
    let emitted = std::mem::take(&mut tap.seen.lock().unwrap_or_else(|e| e.into_inner()).1);
    system.shutdown().await;

    let mut dead_by_queue: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dead {
        *dead_by_queue.entry(d.queue.clone()).or_default() += 1;
    }
    let consumers: BTreeMap<String, ConsumerCounts> = hooks.counts();
    let report = ReplayReport {
        log_events: log.events.len(),
        log_blobs: log.blobs.len(),
        selected: selection.events.len(),
        outside_window: selection.outside_window,
        filtered_out: selection.filtered_out,
        refused,
        published: published.published.len(),
        duplicates,
        faults: options.faults.to_string(),
        seed: options.seed,
        rate: options.rate.to_string(),
        receive_limits: raised,
        consumers,
        stream_crashes: hooks.stream_crashes(),
        transient_faults: [table_faults, blob_faults],
        dead_letters: dead_by_queue,
        orders: snapshot.orders.len(),
        status_counts: snapshot.status_counts(),
        emitted: emitted.len(),
        state_digest: digest(&snapshot),
        emitted_digest: digest_of(
            emitted
                .iter()
                .map(|e| e.id.to_string())
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        ),
        dead_letter_digest: digest_of(
            dead.iter()
                .map(|d| format!("{} {:?} {:?}", d.queue, d.event_id, d.reason))
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        ),
        clock: if clock.is_some() { "virtual" } else { "wall" }.to_owned(),
        clock_secs: clock_time.as_secs_f64(),
        publish_secs: publish_time.as_secs_f64(),
        settle_secs: settle_time.as_secs_f64(),
        total_secs: started.elapsed().as_secs_f64(),
        unaccounted,
    };
    Ok(ReplayOutcome {
        report,
        snapshot,
        dead_letters: dead,
        emitted,
        blobs,
        items,
    })
}
