//! The test API: replay a recorded log through the whole system, with
//! faults, and assert on what resulted. Use it from your own crate's tests
//! (`examples/scenario-test` in this repository is such a crate).
//!
//! ```
//! use switchyard::scenario::Scenario;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! // `fixtures/poison.jsonl` is found under this repository's `tests/`.
//! let clean = Scenario::replay("fixtures/poison.jsonl").run().await?;
//! let faulty = Scenario::replay("fixtures/poison.jsonl")
//!     .faults("duplicate=0.2,reorder=16,crash=0.1,transient=0.02,visibility-expiry=0.05".parse()?)
//!     .seed(7)
//!     .run()
//!     .await?;
//! faulty.assert_accounted(); // every event applied, or dead-lettered with a reason
//! faulty.assert_same_outcome(&clean); // same table, same DLQ entries, same blobs
//! faulty.assert_dead_lettered("OrderPaid", "ghost-0-2", "not placed yet");
//! // Every retry after a 30 s visibility timeout, in virtual time.
//! assert_eq!(faulty.report.clock, "virtual");
//! assert!(faulty.report.clock_secs > 30.0);
//! // The same seed, the same run: byte for byte, wall-clock durations aside.
//! let again = Scenario::replay("fixtures/poison.jsonl")
//!     .faults("duplicate=0.2,reorder=16,crash=0.1,transient=0.02,visibility-expiry=0.05".parse()?)
//!     .seed(7)
//!     .run()
//!     .await?;
//! assert_eq!(
//!     again.report.without_wall_times().to_string(),
//!     faulty.report.without_wall_times().to_string()
//! );
//! # Ok(()) }
//! ```
//!
//! A scenario runs on a fresh in-memory store with its blobs in memory too
//! (nothing is written to disk), on the **virtual clock** by default: when every consumer is idle
//! and only timers remain (visibility timeouts, delays, retries), time jumps
//! to the next deadline instead of sleeping. `.rate(Rate::Log)` publishes
//! each event when its `time` in the log comes, at no cost in waiting. Timing is AWS's (a failed message comes
//! back after its queue's visibility timeout), and the run is a pure function
//! of the log, the topology and the seed. `.clock(ReplayClock::Wall)` runs it
//! in real time instead, with the short retry delays of [`test_runtime`]
//! (`SWITCHYARD_CLOCK=wall` in the environment does so for every scenario).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use router_rules::Topology;
use switchyard_shared::events::{DomainEvent, OrderStatus};
use switchyard_shared::ports::{Item, Key};
use switchyard_shared::Envelope;

use crate::replay::{
    replay_embedded, DeadLetter, EmbeddedTarget, EventLog, FaultSpec, Rate, ReplayClock,
    ReplayOptions, ReplayOutcome,
};
use crate::runtime::RuntimeOptions;
use crate::state::{OrderState, StateSnapshot};

enum Source {
    Path(PathBuf),
    Log(Box<EventLog>),
}

/// A replay to run: a log, the topology (the built-in one unless
/// [`Scenario::topology`]), faults and a seed. See the module docs.
pub struct Scenario {
    source: Source,
    topology: Topology,
    options: ReplayOptions,
}

/// Retry delays short enough for tests on the wall clock, long enough to let
/// an early event wait its turn (the virtual clock uses AWS's timing).
pub fn test_runtime() -> RuntimeOptions {
    RuntimeOptions {
        retry_base: Duration::from_millis(2),
        retry_cap: Duration::from_millis(20),
        poll_wait: Duration::from_millis(50),
        ..RuntimeOptions::default()
    }
}

/// `path` as given if it exists, else under the repository's `tests/`
/// (so `fixtures/x.jsonl` names `tests/fixtures/x.jsonl`).
fn resolve(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let under_tests = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(path);
    if under_tests.exists() {
        under_tests
    } else {
        path.to_path_buf()
    }
}

impl Scenario {
    /// Replays the log at `path` (or `tests/<path>`).
    pub fn replay(path: impl AsRef<Path>) -> Self {
        Self::with(Source::Path(resolve(path.as_ref())))
    }

    /// Replays a log built in memory.
    pub fn from_log(log: EventLog) -> Self {
        Self::with(Source::Log(Box::new(log)))
    }

    fn with(source: Source) -> Self {
        let scenario = Scenario {
            source,
            topology: Topology::builtin(),
            options: ReplayOptions {
                runtime: test_runtime(),
                quiet_timeout: Duration::from_secs(120),
                fault_visibility: Duration::from_millis(250),
                ..ReplayOptions::default()
            },
        };
        // `SWITCHYARD_CLOCK=wall` runs every scenario in real time (to watch
        // one, or to compare).
        match std::env::var("SWITCHYARD_CLOCK").as_deref() {
            Ok("wall") => scenario.clock(ReplayClock::Wall),
            _ => scenario,
        }
    }

    /// The faults to inject (`"duplicate=0.1,crash=0.05".parse()?`).
    pub fn faults(mut self, faults: FaultSpec) -> Self {
        self.options.faults = faults;
        self
    }

    /// The seed of every fault decision: the same seed, the same run.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = seed;
        self
    }

    /// The publishing pace: [`Rate::Max`] by default.
    pub fn rate(mut self, rate: Rate) -> Self {
        self.options.rate = rate;
        self
    }

    /// The clock: virtual by default.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// use switchyard::replay::ReplayClock;
    /// use switchyard::scenario::Scenario;
    ///
    /// let run = Scenario::replay("fixtures/out-of-order.jsonl")
    ///     .clock(ReplayClock::Wall)
    ///     .run()
    ///     .await?;
    /// run.assert_accounted();
    /// assert_eq!(run.report.clock, "wall");
    /// # Ok(()) }
    /// ```
    pub fn clock(mut self, clock: ReplayClock) -> Self {
        self.options.clock = clock;
        self
    }

    /// Only events whose time is in `from..to`.
    pub fn window(
        mut self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        self.options.from = from;
        self.options.to = to;
        self
    }

    /// Only events this EventBridge pattern matches.
    pub fn filter(mut self, pattern: serde_json::Value) -> Self {
        self.options.filter = Some(pattern);
        self
    }

    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    pub fn runtime(mut self, runtime: RuntimeOptions) -> Self {
        self.options.runtime = runtime;
        self
    }

    /// The handlers the topology's consumers name (the built-in ones by
    /// default): a topology with a consumer of your own needs its handler here.
    pub fn registry(mut self, registry: switchyard_consumers::Registry) -> Self {
        self.options.runtime.registry = std::sync::Arc::new(registry);
        self
    }

    /// The thumbnails to make (smaller ones keep image-heavy scenarios fast).
    pub fn variants(mut self, variants: Vec<switchyard_imaging::VariantSpec>) -> Self {
        self.options.runtime.variants = variants;
        self
    }

    /// Replays the log and waits until the system is quiet. Runs on any
    /// tokio runtime: on the virtual clock the replay has a thread and a
    /// runtime of its own.
    pub async fn run(self) -> anyhow::Result<ScenarioRun> {
        let log = match self.source {
            Source::Path(p) => EventLog::read(&p)?,
            Source::Log(l) => *l,
        };
        let outcome = replay_embedded(
            &log,
            &self.topology,
            &EmbeddedTarget::Ephemeral,
            &self.options,
        )
        .await?;
        Ok(ScenarioRun { outcome })
    }
}

/// What a scenario produced, with assertions that explain themselves.
pub struct ScenarioRun {
    pub outcome: ReplayOutcome,
}

impl std::ops::Deref for ScenarioRun {
    type Target = ReplayOutcome;
    fn deref(&self) -> &ReplayOutcome {
        &self.outcome
    }
}

/// What landed in a dead-letter queue, without ids or reasons: `(queue, detail-type, order id)`.
pub type DeadLetterKey = (String, String, String);

impl ScenarioRun {
    pub fn snapshot(&self) -> &StateSnapshot {
        &self.outcome.snapshot
    }

    /// The order's state; panics if the table has no such order.
    pub fn order(&self, order_id: &str) -> &OrderState {
        self.outcome
            .snapshot
            .orders
            .get(order_id)
            .unwrap_or_else(|| panic!("no order {order_id:?} in the final state"))
    }

    /// Dead letters as `(queue, detail-type, order id)`, sorted (duplicates kept).
    pub fn dead_letter_keys(&self) -> Vec<DeadLetterKey> {
        let mut keys: Vec<DeadLetterKey> = self
            .outcome
            .dead_letters
            .iter()
            .map(|d| {
                (
                    d.queue.clone(),
                    d.detail_type.clone().unwrap_or_default(),
                    d.order_id.clone().unwrap_or_default(),
                )
            })
            .collect();
        keys.sort();
        keys
    }

    /// The dead letter of this type for this order, if any.
    pub fn dead_letter(&self, detail_type: &str, order_id: &str) -> Option<&DeadLetter> {
        self.outcome.dead_letters.iter().find(|d| {
            d.detail_type.as_deref() == Some(detail_type) && d.order_id.as_deref() == Some(order_id)
        })
    }

    /// The table items of one `type` at the end of the run (what a consumer
    /// of your own wrote, say), in key order.
    pub fn items_of_type(&self, item_type: &str) -> Vec<&Item> {
        let mut items: Vec<&Item> = self
            .outcome
            .items
            .iter()
            .filter(|i| switchyard_shared::items::item_type(i) == Some(item_type))
            .collect();
        items.sort_by_key(|i| Key::of(i));
        items
    }

    /// Events the system emitted of one detail-type.
    pub fn emitted_of(&self, detail_type: &str) -> Vec<&Envelope> {
        self.outcome
            .emitted
            .iter()
            .filter(|e| e.detail_type == detail_type)
            .collect()
    }

    /// Every event was applied, or sits in a DLQ with a reason (or was refused at publish).
    pub fn assert_accounted(&self) {
        let r = &self.outcome.report;
        assert!(
            r.unaccounted.is_empty(),
            "{} events unaccounted for:\n  {}\n{r}",
            r.unaccounted.len(),
            r.unaccounted.join("\n  ")
        );
    }

    /// The final table state is `expected`; the panic lists what differs.
    pub fn assert_state(&self, expected: &StateSnapshot) {
        let diff = self.outcome.snapshot.diff(expected);
        assert!(
            diff.is_empty(),
            "final state differs from the expected one ({} lines):\n{}\n{}",
            diff.len(),
            diff.join("\n"),
            self.outcome.report
        );
    }

    /// Same table state, same dead letters (by queue, type and order) and
    /// the same blobs as `other`: what the faults must not change.
    pub fn assert_same_outcome(&self, other: &ScenarioRun) {
        self.assert_state(&other.outcome.snapshot);
        let (mine, theirs) = (self.dead_letter_keys(), other.dead_letter_keys());
        let mut distinct = mine.clone();
        distinct.dedup();
        let mut expected = theirs.clone();
        expected.dedup();
        // A duplicated poison message is dead-lettered once per copy: compare what, not how many.
        assert_eq!(
            distinct, expected,
            "dead letters differ\n{}",
            self.outcome.report
        );
        let keys = |r: &ScenarioRun| r.outcome.blobs.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(self), keys(other), "blobs differ");
    }

    /// A `detail_type` event for `order_id` is dead-lettered with a reason containing `reason`.
    pub fn assert_dead_lettered(&self, detail_type: &str, order_id: &str, reason: &str) {
        let d = self.dead_letter(detail_type, order_id).unwrap_or_else(|| {
            panic!(
                "no {detail_type} for {order_id} in any DLQ; dead letters: {:?}",
                self.dead_letter_keys()
            )
        });
        let got = d.reason.as_deref().unwrap_or("");
        assert!(
            got.contains(reason),
            "{detail_type} for {order_id} is in {} with reason {got:?}, expected one containing {reason:?}",
            d.queue
        );
    }

    /// The outbox lost nothing: for every order, the last status change the
    /// system emitted (`OrderStatusChanged` of highest version) is to the
    /// order's final status.
    pub fn assert_outbox_complete(&self) {
        let mut last: BTreeMap<String, (u64, OrderStatus)> = BTreeMap::new();
        for e in &self.outcome.emitted {
            if let Ok(DomainEvent::OrderStatusChanged(c)) = DomainEvent::from_envelope(e) {
                let entry = last.entry(c.order_id).or_insert((c.version, c.to));
                if c.version >= entry.0 {
                    *entry = (c.version, c.to);
                }
            }
        }
        for (id, order) in &self.outcome.snapshot.orders {
            let Some(status) = order.status else { continue };
            match last.get(id) {
                Some((_, to)) if *to == status => {}
                got => panic!(
                    "order {id} is {}, but the last OrderStatusChanged emitted for it is {got:?}",
                    status.as_str()
                ),
            }
        }
    }
}
