//! What the console shows of the pipeline that the store does not keep: the
//! recent events and the hops they took (matched rule or filter policy,
//! handler outcomes with retries, table writes), kept in bounded rings, plus
//! a count per edge of the flow and a broadcast for the live tail.
//!
//! The runtime feeds it through three thin wrappers installed once, before
//! the consumers start ([`Recorder::install`]): the publishers (every event,
//! from the API or from a consumer), the table (every write that names the
//! event that made it) and the workers' batch hook (every handler outcome).
//! No handler knows about it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use router_rules::topology::Subscription;
use router_rules::{BusMatcher, TopicMatcher, Topology};
use switchyard_shared::events::sns_attributes;
use switchyard_shared::ports::{
    Destination, EventPublisher, Item, Key, PublishError, PublishReport, Table, TableError, TxOp,
};
use switchyard_shared::Envelope;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::runtime::{SettledBatch, WorkerHooks};
use crate::{EmbeddedSystem, RuntimeOptions};

/// How much the rings keep: the most recent events and hops, and at most
/// this many bytes of event JSON.
#[derive(Debug, Clone)]
pub struct RecorderLimits {
    pub events: usize,
    pub hops: usize,
    pub event_bytes: usize,
}

impl Default for RecorderLimits {
    fn default() -> Self {
        RecorderLimits {
            events: 20_000,
            hops: 100_000,
            event_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One published event as the console shows it.
#[derive(Debug)]
pub struct EventEntry {
    pub envelope: Envelope,
    /// The envelope as published (what patterns are matched against).
    pub json: String,
    pub at_ms: i64,
    /// `bus orders` or `topic images`.
    pub destination: String,
    /// Each queue it was routed to, with the rule or filter policy that matched.
    pub routes: Vec<Route>,
}

/// Shared strings: the matcher hands out a copy of its route per match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub queue: Arc<str>,
    pub consumer: Arc<str>,
    /// `rule order-lifecycle` or `filter policy (MessageAttributes)`.
    pub via: Arc<str>,
    /// Its edge in [`Counts`]: [`edge::routed`] of the queue.
    routed: Arc<str>,
}

/// Something that happened to an event after it was published.
#[derive(Debug, Clone)]
pub struct Hop {
    pub event_id: Uuid,
    pub at_ms: i64,
    pub kind: HopKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopKind {
    /// A handler ran on it.
    Handled {
        consumer: String,
        receive_count: u32,
        outcome: Outcome,
    },
    /// A table item was written because of it.
    TableWrite {
        pk: String,
        sk: String,
        item_type: String,
        status: Option<String>,
    },
    /// Publishing it failed.
    PublishFailed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Released for a retry (`dead_lettered` once it used its last receive).
    Failed {
        reason: String,
        permanent: bool,
        dead_lettered: bool,
    },
    /// The worker died mid-batch (injected faults).
    Crashed,
}

/// Totals per edge of the flow, by name (see [`edge`]).
pub type Counts = BTreeMap<String, u64>;

/// The names of the flow's edges in [`Counts`].
pub mod edge {
    pub fn published(destination: &str) -> String {
        format!("published {destination}")
    }
    pub fn routed(queue: &str) -> String {
        format!("routed {queue}")
    }
    pub fn succeeded(consumer: &str) -> String {
        format!("succeeded {consumer}")
    }
    pub fn failed(consumer: &str) -> String {
        format!("failed {consumer}")
    }
    pub fn dead_lettered(consumer: &str) -> String {
        format!("dead-lettered {consumer}")
    }
    pub const TABLE_WRITES: &str = "table writes";
    /// Events published with a cause (by a consumer: derived events).
    pub const DERIVED: &str = "derived";
}

struct Rings {
    events: VecDeque<Arc<EventEntry>>,
    event_bytes: usize,
    hops: VecDeque<Hop>,
    counts: Counts,
}

impl Rings {
    /// Adds one to the edge `key`; allocates only for an edge seen the first time.
    fn bump(&mut self, key: &str) {
        match self.counts.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(key.to_owned(), 1);
            }
        }
    }
}

/// Where one detail-type goes, resolved once from the topology.
struct TypeRoute {
    /// `bus orders` or `topic images`.
    destination: String,
    /// Its edge in [`Counts`]: [`edge::published`] of the destination.
    published: String,
    /// None: a detail-type the topology does not route.
    target: Option<Destination>,
}

impl TypeRoute {
    fn new(target: Option<Destination>) -> Self {
        let destination = match &target {
            Some(Destination::Bus(b)) => format!("bus {b}"),
            Some(Destination::Topic(t)) => format!("topic {t}"),
            None => "no route".to_owned(),
        };
        TypeRoute {
            published: edge::published(&destination),
            destination,
            target,
        }
    }
}

/// A consumer's edges in [`Counts`], formatted once.
struct ConsumerEdges {
    succeeded: String,
    failed: String,
    dead_lettered: String,
    max_receive_count: u32,
}

impl ConsumerEdges {
    fn new(consumer: &str, max_receive_count: u32) -> Self {
        ConsumerEdges {
            succeeded: edge::succeeded(consumer),
            failed: edge::failed(consumer),
            dead_lettered: edge::dead_lettered(consumer),
            max_receive_count,
        }
    }
}

/// The router the console matches events with: the topology's rules and
/// filter policies, compiled once, labelled with their queue.
struct Routes {
    buses: BTreeMap<String, BusMatcher<Route>>,
    topics: BTreeMap<String, TopicMatcher<Route>>,
    by_type: HashMap<String, TypeRoute>,
    no_route: TypeRoute,
}

impl Routes {
    fn compile(topology: &Topology) -> Result<Self, router_rules::PatternError> {
        let mut buses = BTreeMap::new();
        for bus in &topology.buses {
            let dest = Destination::Bus(bus.name.clone());
            let rules: Vec<_> = topology
                .subscriptions_on(&dest)
                .filter_map(|(c, s)| match s {
                    Subscription::Bus(b) => {
                        Some((route(c, format!("rule {}", b.rule)), &b.pattern))
                    }
                    Subscription::Topic(_) => None,
                })
                .collect();
            buses.insert(bus.name.clone(), BusMatcher::compile(rules)?);
        }
        let mut topics = BTreeMap::new();
        for topic in &topology.topics {
            let dest = Destination::Topic(topic.name.clone());
            let policies: Vec<_> = topology
                .subscriptions_on(&dest)
                .filter_map(|(c, s)| match s {
                    Subscription::Topic(t) => Some((
                        route(
                            c,
                            format!("filter policy ({})", t.filter_policy_scope.as_str()),
                        ),
                        &t.filter_policy,
                        t.filter_policy_scope,
                    )),
                    Subscription::Bus(_) => None,
                })
                .collect();
            topics.insert(topic.name.clone(), TopicMatcher::compile(policies)?);
        }
        let by_type = topology
            .routes
            .keys()
            .filter_map(|detail_type| {
                let target = topology.destination_of(detail_type)?;
                Some((detail_type.clone(), TypeRoute::new(Some(target))))
            })
            .collect();
        Ok(Routes {
            buses,
            topics,
            by_type,
            no_route: TypeRoute::new(None),
        })
    }

    /// Where `envelope` goes, and the queues whose rule or policy matched it.
    fn route(&self, envelope: &Envelope, json: &str) -> (&TypeRoute, Vec<Route>) {
        let to = self
            .by_type
            .get(&envelope.detail_type)
            .unwrap_or(&self.no_route);
        let routes = match &to.target {
            Some(Destination::Bus(b)) => self.buses.get(b).map(|m| m.matches(json)),
            Some(Destination::Topic(t)) => self
                .topics
                .get(t)
                .map(|m| m.matches(&sns_attributes(envelope), json)),
            None => None,
        };
        (to, routes.unwrap_or_default())
    }
}

fn route(c: &router_rules::topology::ConsumerSpec, via: String) -> Route {
    let queue = c.queue_name();
    Route {
        routed: edge::routed(&queue).into(),
        queue: queue.into(),
        consumer: c.name.as_str().into(),
        via: via.into(),
    }
}

pub struct Recorder {
    topology: Arc<Topology>,
    routes: Routes,
    consumers: HashMap<String, ConsumerEdges>,
    limits: RecorderLimits,
    rings: Mutex<Rings>,
    tail: broadcast::Sender<Arc<EventEntry>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Recorder {
    pub fn new(
        topology: Arc<Topology>,
        limits: RecorderLimits,
    ) -> Result<Arc<Self>, router_rules::PatternError> {
        let routes = Routes::compile(&topology)?;
        let consumers = topology
            .consumers
            .iter()
            .map(|c| {
                let edges = ConsumerEdges::new(&c.name, c.queue.max_receive_count);
                (c.name.clone(), edges)
            })
            .collect();
        let (tail, _) = broadcast::channel(1024);
        Ok(Arc::new(Recorder {
            topology,
            routes,
            consumers,
            limits,
            rings: Mutex::new(Rings {
                events: VecDeque::new(),
                event_bytes: 0,
                hops: VecDeque::new(),
                counts: Counts::new(),
            }),
            tail,
        }))
    }

    /// Feeds this recorder from `system`'s publishers and table and from the
    /// workers `options` starts. Call before [`EmbeddedSystem::start`] and
    /// before taking the API's state.
    pub fn install(self: &Arc<Self>, system: &mut EmbeddedSystem, options: &mut RuntimeOptions) {
        system.publisher = Arc::new(RecordingPublisher {
            inner: system.publisher.clone(),
            recorder: self.clone(),
        });
        system.consumer_publisher = Arc::new(RecordingPublisher {
            inner: system.consumer_publisher.clone(),
            recorder: self.clone(),
        });
        system.table = Arc::new(RecordingTable {
            inner: system.table.clone(),
            recorder: self.clone(),
        });
        options.hooks = Some(Arc::new(RecorderHooks(self.clone())));
    }

    fn lock(&self) -> MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Records events about to be published.
    pub fn published(&self, events: &[Envelope]) {
        let at_ms = now_ms();
        let entries: Vec<(Arc<EventEntry>, &str)> = events
            .iter()
            .map(|e| {
                let json = e.to_json();
                let (to, routes) = self.routes.route(e, &json);
                let entry = Arc::new(EventEntry {
                    envelope: e.clone(),
                    json,
                    at_ms,
                    destination: to.destination.clone(),
                    routes,
                });
                (entry, to.published.as_str())
            })
            .collect();
        {
            let mut rings = self.lock();
            for (entry, published) in &entries {
                rings.bump(published);
                for r in &entry.routes {
                    rings.bump(&r.routed);
                }
                if entry.envelope.causation_id.is_some() {
                    rings.bump(edge::DERIVED);
                }
                rings.event_bytes += entry.json.len();
                rings.events.push_back(entry.clone());
                while rings.events.len() > self.limits.events
                    || (rings.event_bytes > self.limits.event_bytes && rings.events.len() > 1)
                {
                    if let Some(old) = rings.events.pop_front() {
                        rings.event_bytes -= old.json.len();
                    }
                }
            }
        }
        if self.tail.receiver_count() > 0 {
            for (entry, _) in entries {
                // No receiver left is not an error: the tail closed.
                let _ = self.tail.send(entry);
            }
        }
    }

    fn hops(&self, hops: impl IntoIterator<Item = Hop>) {
        let mut rings = self.lock();
        for hop in hops {
            match &hop.kind {
                HopKind::Handled {
                    consumer, outcome, ..
                } => {
                    // A consumer the topology does not name: its edges formatted now.
                    let unnamed;
                    let edges = match self.consumers.get(consumer.as_str()) {
                        Some(edges) => edges,
                        None => {
                            unnamed = ConsumerEdges::new(consumer, u32::MAX);
                            &unnamed
                        }
                    };
                    match outcome {
                        Outcome::Succeeded => rings.bump(&edges.succeeded),
                        Outcome::Failed { dead_lettered, .. } => {
                            if *dead_lettered {
                                rings.bump(&edges.dead_lettered);
                            }
                            rings.bump(&edges.failed);
                        }
                        Outcome::Crashed => {}
                    }
                }
                HopKind::TableWrite { .. } => rings.bump(edge::TABLE_WRITES),
                HopKind::PublishFailed { .. } => {}
            }
            rings.hops.push_back(hop);
            if rings.hops.len() > self.limits.hops {
                rings.hops.pop_front();
            }
        }
    }

    /// A live feed of published events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventEntry>> {
        self.tail.subscribe()
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    /// The most recent events, newest first, that `keep` accepts.
    pub fn recent(&self, limit: usize, keep: impl Fn(&EventEntry) -> bool) -> Vec<Arc<EventEntry>> {
        let rings = self.lock();
        rings
            .events
            .iter()
            .rev()
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn event(&self, id: Uuid) -> Option<Arc<EventEntry>> {
        let rings = self.lock();
        rings
            .events
            .iter()
            .rev()
            .find(|e| e.envelope.id == id)
            .cloned()
    }

    /// Every recorded event of `correlation_id`, oldest first, with the hops
    /// each of them took.
    pub fn lineage(&self, correlation_id: Uuid) -> Vec<(Arc<EventEntry>, Vec<Hop>)> {
        self.with_hops(|e| e.envelope.correlation_id == correlation_id)
    }

    /// The events whose `detail.order_id` is `order_id`, oldest first, with their hops.
    pub fn order_history(&self, order_id: &str) -> Vec<(Arc<EventEntry>, Vec<Hop>)> {
        self.with_hops(|e| e.envelope.detail["order_id"].as_str() == Some(order_id))
    }

    fn with_hops(&self, keep: impl Fn(&EventEntry) -> bool) -> Vec<(Arc<EventEntry>, Vec<Hop>)> {
        let rings = self.lock();
        let events: Vec<Arc<EventEntry>> =
            rings.events.iter().filter(|e| keep(e)).cloned().collect();
        let ids: HashSet<Uuid> = events.iter().map(|e| e.envelope.id).collect();
        let mut hops: BTreeMap<Uuid, Vec<Hop>> = BTreeMap::new();
        for h in rings.hops.iter().filter(|h| ids.contains(&h.event_id)) {
            hops.entry(h.event_id).or_default().push(h.clone());
        }
        events
            .into_iter()
            .map(|e| {
                let h = hops.remove(&e.envelope.id).unwrap_or_default();
                (e, h)
            })
            .collect()
    }

    fn max_receive_count(&self, consumer: &str) -> u32 {
        self.consumers
            .get(consumer)
            .map_or(u32::MAX, |c| c.max_receive_count)
    }
}

/// Publishes through `inner`, recording each event first (so a consumer
/// that handles it at once finds it recorded).
struct RecordingPublisher {
    inner: Arc<dyn EventPublisher>,
    recorder: Arc<Recorder>,
}

#[async_trait::async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        self.recorder.published(events);
        let result = self.inner.publish(events).await;
        if let Err(e) = &result {
            let at_ms = now_ms();
            self.recorder.hops(events.iter().map(|ev| Hop {
                event_id: ev.id,
                at_ms,
                kind: HopKind::PublishFailed {
                    reason: e.to_string(),
                },
            }));
        }
        result
    }
}

/// The table, recording each write of an item that names the event that
/// made it (`last_event_id`: orders and images).
struct RecordingTable {
    inner: Arc<dyn Table>,
    recorder: Arc<Recorder>,
}

fn write_hop(item: &Item, at_ms: i64) -> Option<Hop> {
    let event_id = item.get("last_event_id")?.as_str()?.parse().ok()?;
    let text = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(Hop {
        event_id,
        at_ms,
        kind: HopKind::TableWrite {
            pk: text("pk").unwrap_or_default(),
            sk: text("sk").unwrap_or_default(),
            item_type: text("type").unwrap_or_default(),
            status: text("status"),
        },
    })
}

#[async_trait::async_trait]
impl Table for RecordingTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.inner.get(key).await
    }
    async fn get_text(&self, key: &Key) -> Result<Option<Arc<str>>, TableError> {
        self.inner.get_text(key).await
    }
    async fn put(
        &self,
        item: Item,
        condition: switchyard_shared::ports::Condition,
    ) -> Result<(), TableError> {
        let hop = write_hop(&item, 0);
        self.inner.put(item, condition).await?;
        if let Some(mut hop) = hop {
            hop.at_ms = now_ms();
            self.recorder.hops([hop]);
        }
        Ok(())
    }
    async fn delete(
        &self,
        key: &Key,
        condition: switchyard_shared::ports::Condition,
    ) -> Result<(), TableError> {
        self.inner.delete(key, condition).await
    }
    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), TableError> {
        let hops: Vec<Hop> = ops
            .iter()
            .filter_map(|op| match op {
                TxOp::Put { item, .. } => write_hop(item, 0),
                _ => None,
            })
            .collect();
        self.inner.transact(ops).await?;
        let at_ms = now_ms();
        self.recorder.hops(hops.into_iter().map(|mut h| {
            h.at_ms = at_ms;
            h
        }));
        Ok(())
    }
    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, TableError> {
        self.inner.query(pk, sk_prefix).await
    }
    async fn scan(&self) -> Result<Vec<Item>, TableError> {
        self.inner.scan().await
    }
}

#[derive(Debug)]
struct RecorderHooks(Arc<Recorder>);

impl WorkerHooks for RecorderHooks {
    fn batch_settled(&self, consumer: &str, batch: &SettledBatch<'_>) {
        let at_ms = now_ms();
        let max_receives = self.0.max_receive_count(consumer);
        let hops = batch.messages[..batch.handled].iter().filter_map(|m| {
            // The body is the envelope (raw delivery); anything else is not an event.
            let id = Envelope::id_in_json(&m.body)?;
            let outcome = if batch.crashed {
                Outcome::Crashed
            } else {
                match batch.failures.get(&m.message_id) {
                    None => Outcome::Succeeded,
                    Some((reason, permanent)) => Outcome::Failed {
                        reason: reason.clone(),
                        permanent: *permanent,
                        dead_lettered: m.receive_count >= max_receives,
                    },
                }
            };
            Some(Hop {
                event_id: id,
                at_ms,
                kind: HopKind::Handled {
                    consumer: consumer.to_owned(),
                    receive_count: m.receive_count,
                    outcome,
                },
            })
        });
        self.0.hops(hops.collect::<Vec<_>>());
    }
}

/// How long ago `at_ms` was, for display.
pub fn age(at_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(now_ms() - at_ms).unwrap_or(0))
}
