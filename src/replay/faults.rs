//! Faults a replay injects, from `--faults duplicate=P,reorder=WINDOW,crash=P,transient=P,visibility-expiry=P`.
//!
//! - `duplicate` and `reorder` change what is published: a seeded plan of
//!   the log (see [`plan`]).
//! - `crash` and `visibility-expiry` happen in the queue workers, through
//!   [`WorkerHooks`]: a crashed batch is abandoned mid-way (nothing deleted
//!   or released), an expired message becomes visible while it is handled.
//!   `crash` also hits stream batches (no checkpoint is saved).
//! - `transient` fails that fraction of table and blob calls (the store's
//!   [`FaultPlan`](switchyard_shared::embedded::FaultPlan)).
//!
//! One seed drives all of them: the plan, the store's fault RNG and the
//! workers' fault RNG are each seeded from it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::{BatchFaults, SettledBatch, WorkerHooks};

/// How far events may move from their place in the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reorder {
    /// By up to this many positions.
    Events(usize),
    /// Among events whose `time` is within this window of each other.
    Time(Duration),
}

impl fmt::Display for Reorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reorder::Events(n) => write!(f, "{n}"),
            Reorder::Time(d) => write!(f, "{}ms", d.as_millis()),
        }
    }
}

/// Which faults to inject, and how often (probabilities are 0.0..=1.0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultSpec {
    /// Each event is published a second time (same id), a little later.
    pub duplicate: f64,
    pub reorder: Option<Reorder>,
    /// Per batch: the consumer dies mid-batch.
    pub crash: f64,
    /// Per table or blob call: a transient error.
    pub transient: f64,
    /// Per message: its visibility runs out while it is handled.
    pub visibility_expiry: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("fault {0:?}: expected NAME=VALUE (names: duplicate, reorder, crash, transient, visibility-expiry)")]
    Syntax(String),
    #[error(
        "unknown fault {0:?} (known: duplicate, reorder, crash, transient, visibility-expiry)"
    )]
    Unknown(String),
    #[error("fault {name}: {value:?} is not a probability within 0.0..=1.0")]
    Probability { name: String, value: String },
    #[error("fault reorder: {0:?} is not a window (a number of events like 32, or a time like 500ms or 2s)")]
    Window(String),
    #[error("fault {0} is given twice")]
    Repeated(String),
}

impl FaultSpec {
    pub fn none() -> Self {
        FaultSpec::default()
    }
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }
    pub fn reorder(mut self, events: usize) -> Self {
        self.reorder = Some(Reorder::Events(events));
        self
    }
    pub fn reorder_time(mut self, window: Duration) -> Self {
        self.reorder = Some(Reorder::Time(window));
        self
    }
    pub fn crash(mut self, p: f64) -> Self {
        self.crash = p;
        self
    }
    pub fn transient(mut self, p: f64) -> Self {
        self.transient = p;
        self
    }
    pub fn visibility_expiry(mut self, p: f64) -> Self {
        self.visibility_expiry = p;
        self
    }

    pub fn is_none(&self) -> bool {
        *self == FaultSpec::default()
    }

    /// Faults that make consumers fail or redeliver (and so use up receives).
    pub fn hits_consumers(&self) -> bool {
        self.crash > 0.0 || self.transient > 0.0 || self.visibility_expiry > 0.0
    }

    /// Checks every probability is within 0.0..=1.0 (builders do not check).
    pub fn validate(&self) -> Result<(), FaultSpecError> {
        for (name, p) in [
            ("duplicate", self.duplicate),
            ("crash", self.crash),
            ("transient", self.transient),
            ("visibility-expiry", self.visibility_expiry),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultSpecError::Probability {
                    name: name.into(),
                    value: p.to_string(),
                });
            }
        }
        if let Some(Reorder::Events(0)) = self.reorder {
            return Err(FaultSpecError::Window("0".into()));
        }
        Ok(())
    }

    /// How many receives a consumer needs so that these faults alone
    /// dead-letter a good message with a chance under one in a billion:
    /// a delivery fails with probability `f` (about 8 faultable store calls
    /// per message, a crash, an expiry), so `n` receives with `f^n < 1e-9`.
    pub fn receives_needed(&self) -> u32 {
        let ok =
            (1.0 - self.transient).powi(8) * (1.0 - self.crash) * (1.0 - self.visibility_expiry);
        let fail = 1.0 - ok;
        if fail <= 0.0 {
            return 1;
        }
        if fail >= 1.0 {
            return u32::MAX;
        }
        (1e-9f64.ln() / fail.ln()).ceil().max(1.0) as u32
    }
}

fn probability(name: &str, value: &str) -> Result<f64, FaultSpecError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or_else(|| FaultSpecError::Probability {
            name: name.into(),
            value: value.into(),
        })
}

fn window(value: &str) -> Result<Reorder, FaultSpecError> {
    let bad = || FaultSpecError::Window(value.into());
    let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
    let reorder = if let Some(ms) = value.strip_suffix("ms") {
        Reorder::Time(Duration::from_millis(number(ms)?))
    } else if let Some(s) = value.strip_suffix('s') {
        Reorder::Time(Duration::from_secs(number(s)?))
    } else {
        Reorder::Events(number(value)? as usize)
    };
    match reorder {
        Reorder::Events(0) => Err(bad()),
        Reorder::Time(d) if d.is_zero() => Err(bad()),
        r => Ok(r),
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    /// `duplicate=0.1,reorder=32,crash=0.05,transient=0.05,visibility-expiry=0.05`;
    /// `none` or an empty string is no faults.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::default();
        let mut seen = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| FaultSpecError::Syntax(part.into()))?;
            let (name, value) = (name.trim(), value.trim());
            if seen.contains(&name) {
                return Err(FaultSpecError::Repeated(name.into()));
            }
            seen.push(name);
            match name {
                "duplicate" => spec.duplicate = probability(name, value)?,
                "reorder" => spec.reorder = Some(window(value)?),
                "crash" => spec.crash = probability(name, value)?,
                "transient" => spec.transient = probability(name, value)?,
                "visibility-expiry" => spec.visibility_expiry = probability(name, value)?,
                other => return Err(FaultSpecError::Unknown(other.into())),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.duplicate > 0.0 {
            parts.push(format!("duplicate={}", self.duplicate));
        }
        if let Some(r) = self.reorder {
            parts.push(format!("reorder={r}"));
        }
        for (name, p) in [
            ("crash", self.crash),
            ("transient", self.transient),
            ("visibility-expiry", self.visibility_expiry),
        ] {
            if p > 0.0 {
                parts.push(format!("{name}={p}"));
            }
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// A duplicate lands up to this many positions after its original when no
/// reorder window is given (at-least-once delivery redelivers a little later).
const DUPLICATE_SPREAD: f64 = 8.0;

/// The publish order: indexes into `times` (one per selected event, its
/// `time` in ms), with duplicates appearing twice. Returns the order and the
/// number of duplicates.
pub fn plan(times: &[i64], spec: &FaultSpec, rng: &mut fastrand::Rng) -> (Vec<usize>, usize) {
    // Each copy gets a sort key; the stable sort by key is the publish order.
    let mut keyed: Vec<(f64, usize)> = Vec::with_capacity(times.len());
    let base = times.first().copied().unwrap_or(0);
    let mut duplicates = 0;
    for (i, &t) in times.iter().enumerate() {
        let (place, spread) = match spec.reorder {
            None => (i as f64, 0.0),
            Some(Reorder::Events(n)) => (i as f64, n as f64),
            // Keys in ms since the first event: events within the window may swap.
            Some(Reorder::Time(w)) => ((t - base) as f64, w.as_millis() as f64),
        };
        let key = place + rng.f64() * spread;
        keyed.push((key, i));
        if spec.duplicate > 0.0 && rng.f64() < spec.duplicate {
            let later = match spec.reorder {
                Some(Reorder::Time(w)) => w.as_millis() as f64,
                Some(Reorder::Events(n)) => n as f64,
                None => DUPLICATE_SPREAD,
            };
            keyed.push((key + rng.f64() * later, i));
            duplicates += 1;
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    (keyed.into_iter().map(|(_, i)| i).collect(), duplicates)
}

/// Counts of what the workers did, per consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerCounts {
    /// Messages handed to the handler.
    pub invocations: u64,
    /// Messages that failed and were released for another try.
    pub failures: u64,
    /// Batches abandoned by an injected crash, and the messages in them.
    pub crashes: u64,
    pub abandoned: u64,
    /// Messages whose visibility was made to run out.
    pub expired: u64,
    /// Deliveries after the first (receive count above 1).
    pub redeliveries: u64,
}

/// The replay's worker hooks: injects crashes and visibility expiries as the
/// spec says, and counts what every consumer did (also with no faults).
#[derive(Debug)]
pub struct ReplayHooks {
    spec: FaultSpec,
    rng: Mutex<fastrand::Rng>,
    counts: Mutex<BTreeMap<String, ConsumerCounts>>,
    stream_crashes: AtomicU64,
}

impl ReplayHooks {
    pub fn new(spec: FaultSpec, seed: u64) -> Self {
        ReplayHooks {
            spec,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            counts: Mutex::new(BTreeMap::new()),
            stream_crashes: AtomicU64::new(0),
        }
    }

    pub fn counts(&self) -> BTreeMap<String, ConsumerCounts> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stream batches abandoned by an injected crash.
    pub fn stream_crashes(&self) -> u64 {
        self.stream_crashes.load(Ordering::Relaxed)
    }
}

impl WorkerHooks for ReplayHooks {
    fn batch_faults(&self, consumer: &str, batch_len: usize) -> BatchFaults {
        if !self.spec.hits_consumers() || batch_len == 0 {
            return BatchFaults::default();
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let crash_after =
            (self.spec.crash > 0.0 && rng.f64() < self.spec.crash).then(|| rng.usize(0..batch_len));
        let expire = if self.spec.visibility_expiry > 0.0 {
            (0..batch_len)
                .filter(|_| rng.f64() < self.spec.visibility_expiry)
                .collect()
        } else {
            Vec::new()
        };
        drop(rng);
        let is_queue = consumer != switchyard_consumers::stream_reactor::NAME;
        if crash_after.is_some() && !is_queue {
            self.stream_crashes.fetch_add(1, Ordering::Relaxed);
        }
        if is_queue && !expire.is_empty() {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            counts.entry(consumer.to_owned()).or_default().expired += expire.len() as u64;
        }
        BatchFaults {
            crash_after,
            expire: if is_queue { expire } else { Vec::new() },
        }
    }

    fn batch_settled(&self, consumer: &str, batch: &SettledBatch<'_>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts.entry(consumer.to_owned()).or_default();
        c.invocations += batch.handled as u64;
        c.failures += batch.failures.len() as u64;
        c.redeliveries += batch
            .messages
            .iter()
            .filter(|m| m.receive_count > 1)
            .count() as u64;
        if batch.crashed {
            c.crashes += 1;
            c.abandoned += batch.messages.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_specs() {
        let spec: FaultSpec =
            "duplicate=0.1, reorder=32,crash=0.05,transient=0.02,visibility-expiry=0.2"
                .parse()
                .unwrap();
        assert_eq!(
            spec,
            FaultSpec::none()
                .duplicate(0.1)
                .reorder(32)
                .crash(0.05)
                .transient(0.02)
                .visibility_expiry(0.2)
        );
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert_eq!(
            "reorder=500ms".parse::<FaultSpec>().unwrap().reorder,
            Some(Reorder::Time(Duration::from_millis(500)))
        );
        assert_eq!(
            "reorder=2s".parse::<FaultSpec>().unwrap().reorder,
            Some(Reorder::Time(Duration::from_secs(2)))
        );
        assert!("none".parse::<FaultSpec>().unwrap().is_none());
        assert_eq!(FaultSpec::none().to_string(), "none");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("crash", "NAME=VALUE"),
            ("explode=0.1", "unknown fault \"explode\""),
            ("crash=1.5", "crash: \"1.5\" is not a probability"),
            ("duplicate=x", "duplicate: \"x\""),
            ("reorder=0", "not a window"),
            ("reorder=5m", "not a window"),
            ("crash=0.1,crash=0.2", "given twice"),
        ];
        for (input, expected) in cases {
            let err = input.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
        assert!(FaultSpec::none().crash(2.0).validate().is_err());
    }

    #[test]
    fn plans_are_seeded_and_keep_events_within_the_window() {
        let times: Vec<i64> = (0..1000).map(|i| i * 10).collect();
        let spec = FaultSpec::none().reorder(16).duplicate(0.25);
        let (a, dups) = plan(&times, &spec, &mut fastrand::Rng::with_seed(7));
        let (b, _) = plan(&times, &spec, &mut fastrand::Rng::with_seed(7));
        let (c, _) = plan(&times, &spec, &mut fastrand::Rng::with_seed(8));
        assert_eq!(a, b, "same seed, same plan");
        assert_ne!(a, c, "another seed, another plan");
        assert_eq!(a.len(), 1000 + dups);
        assert!((150..350).contains(&dups), "{dups} duplicates at 0.25");
        // Every event appears; among first copies, none moves 16 places or more.
        let mut seen = vec![false; 1000];
        let originals: Vec<usize> = a
            .iter()
            .copied()
            .filter(|&i| !std::mem::replace(&mut seen[i], true))
            .collect();
        assert_eq!(originals.len(), 1000, "every event is published");
        let mut moved = 0;
        for (pos, &i) in originals.iter().enumerate() {
            assert!(pos.abs_diff(i) < 16, "event {i} at {pos}");
            moved += usize::from(pos != i);
        }
        assert!(moved > 500, "reordering moved only {moved} events");
        let (same, none) = plan(&times, &FaultSpec::none(), &mut fastrand::Rng::with_seed(7));
        assert_eq!((same, none), ((0..1000).collect::<Vec<_>>(), 0));
    }

    #[test]
    fn receive_budget_grows_with_fault_rates() {
        assert_eq!(FaultSpec::none().receives_needed(), 1);
        let light = FaultSpec::none().crash(0.05).receives_needed();
        let heavy = FaultSpec::none()
            .crash(0.1)
            .transient(0.1)
            .visibility_expiry(0.1)
            .receives_needed();
        assert!((5..=10).contains(&light), "{light}");
        assert!(heavy > light && heavy < 100, "{heavy}");
    }
}
