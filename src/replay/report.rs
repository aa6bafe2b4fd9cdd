//! The final report of a replay, and the state digest.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::faults::ConsumerCounts;
use crate::state::StateSnapshot;

/// An event the replay did not publish, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub event_id: Uuid,
    pub detail_type: String,
    pub reason: String,
}

/// `sha256:<hex>` of the snapshot's canonical JSON: equal digests, equal states.
pub fn digest(snapshot: &StateSnapshot) -> String {
    digest_of(snapshot.to_json().as_bytes())
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Event lines in the log, and blob lines.
    pub log_events: usize,
    pub log_blobs: usize,
    /// Events inside the window that the filter kept.
    pub selected: usize,
    pub outside_window: usize,
    pub filtered_out: usize,
    /// Events not published, with the reason (invalid, no route, publish failure).
    pub refused: Vec<Refusal>,
    /// Events published, duplicates included.
    pub published: usize,
    pub duplicates: usize,
    pub faults: String,
    pub seed: u64,
    pub rate: String,
    /// Receive limits the faults raised, by consumer.
    pub receive_limits: BTreeMap<String, u32>,
    /// What each queue consumer did.
    pub consumers: BTreeMap<String, ConsumerCounts>,
    /// Stream batches abandoned by an injected crash.
    pub stream_crashes: u64,
    /// Injected transient faults: [table, blob].
    pub transient_faults: [u64; 2],
    /// Dead letters by queue.
    pub dead_letters: BTreeMap<String, usize>,
    pub orders: usize,
    pub status_counts: BTreeMap<String, usize>,
    /// Events the system emitted (distinct ids).
    pub emitted: usize,
    pub state_digest: String,
    /// `sha256:` of the ids of the events the system emitted, in order.
    pub emitted_digest: String,
    /// `sha256:` of the dead letters (queue, event id, reason), in queue order.
    pub dead_letter_digest: String,
    /// Which clock the consumers ran on: `virtual` or `wall`.
    pub clock: String,
    /// Time that passed on that clock from the first publish until quiet
    /// (on the virtual clock: virtual seconds, the same on every run).
    pub clock_secs: f64,
    pub publish_secs: f64,
    /// From the first publish until the system was quiet.
    pub settle_secs: f64,
    pub total_secs: f64,
    /// Events neither applied nor dead-lettered with a reason (should be empty).
    pub unaccounted: Vec<String>,
}

impl ReplayReport {
    /// The report without what the wall clock decides (its durations): two
    /// runs of one log, topology and seed on the virtual clock give equal
    /// bytes here.
    pub fn without_wall_times(&self) -> ReplayReport {
        let mut r = self.clone();
        (r.publish_secs, r.settle_secs, r.total_secs) = (0.0, 0.0, 0.0);
        if r.clock == "wall" {
            r.clock_secs = 0.0;
        }
        r
    }
    pub fn invocations(&self) -> u64 {
        self.consumers.values().map(|c| c.invocations).sum()
    }
    /// Deliveries that had to be repeated: failures released for a retry,
    /// messages abandoned by crashes, and expired ones received again.
    pub fn retries(&self) -> u64 {
        self.consumers.values().map(|c| c.redeliveries).sum()
    }
    pub fn dead_letter_count(&self) -> usize {
        self.dead_letters.values().sum()
    }
    /// Events per second from the first publish until quiet.
    pub fn events_per_sec(&self) -> f64 {
        if self.settle_secs > 0.0 {
            self.published as f64 / self.settle_secs
        } else {
            0.0
        }
    }
}

fn counts<T: fmt::Display>(items: impl IntoIterator<Item = (String, T)>) -> String {
    let parts: Vec<String> = items.into_iter().map(|(k, v)| format!("{k} {v}")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "replay report")?;
        writeln!(
            f,
            "  events in:           {} ({} blobs); selected {} ({} outside the window, {} filtered out)",
            self.log_events, self.log_blobs, self.selected, self.outside_window, self.filtered_out
        )?;
        writeln!(
            f,
            "  published:           {} ({} duplicates), {} refused; rate {}",
            self.published,
            self.duplicates,
            self.refused.len(),
            self.rate
        )?;
        for r in &self.refused {
            writeln!(
                f,
                "    refused {} {}: {}",
                r.detail_type, r.event_id, r.reason
            )?;
        }
        writeln!(
            f,
            "  faults:              {} (seed {})",
            self.faults, self.seed
        )?;
        if !self.receive_limits.is_empty() {
            writeln!(
                f,
                "    receive limits raised for the faults: {}",
                counts(self.receive_limits.clone())
            )?;
        }
        if self.transient_faults != [0, 0] || self.stream_crashes > 0 {
            writeln!(
                f,
                "    injected: {} table and {} blob transient errors, {} stream crashes",
                self.transient_faults[0], self.transient_faults[1], self.stream_crashes
            )?;
        }
        writeln!(
            f,
            "  handler invocations: {} ({})",
            self.invocations(),
            counts(
                self.consumers
                    .iter()
                    .map(|(k, c)| (k.clone(), c.invocations))
            )
        )?;
        writeln!(f, "  retries:             {}", self.retries())?;
        for (name, c) in &self.consumers {
            if c.failures + c.crashes + c.expired > 0 {
                writeln!(
                    f,
                    "    {name}: {} failed and retried, {} crashes abandoning {} messages, {} visibility expiries",
                    c.failures, c.crashes, c.abandoned, c.expired
                )?;
            }
        }
        writeln!(
            f,
            "  dlq entries:         {} ({})",
            self.dead_letter_count(),
            counts(self.dead_letters.clone())
        )?;
        writeln!(
            f,
            "  final state:         {} orders ({}); {} events emitted",
            self.orders,
            counts(self.status_counts.clone()),
            self.emitted
        )?;
        writeln!(f, "  state digest:        {}", self.state_digest)?;
        writeln!(
            f,
            "  emitted, dead ids:   {} {}",
            self.emitted_digest, self.dead_letter_digest
        )?;
        writeln!(
            f,
            "  clock:               {} ({:.3}s passed on it until quiet)",
            self.clock, self.clock_secs
        )?;
        writeln!(
            f,
            "  time:                published in {:.2}s, quiet after {:.2}s ({:.0} events/s end to end)",
            self.publish_secs,
            self.settle_secs,
            self.events_per_sec()
        )?;
        if self.unaccounted.is_empty() {
            write!(
                f,
                "  accounted:           every event applied, or dead-lettered with a reason"
            )
        } else {
            write!(f, "  UNACCOUNTED:         {}", self.unaccounted.len())?;
            for u in &self.unaccounted {
                write!(f, "\n    {u}")?;
            }
            Ok(())
        }
    }
}
