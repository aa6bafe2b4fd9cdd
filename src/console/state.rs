//! What the console's pages read: the recorder, the store's queues, the
//! table and the blobs, plus the token that state-changing forms carry.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use router_rules::Topology;
use switchyard_shared::embedded::{EmbeddedStore, QueueStats};
use switchyard_shared::ports::{BlobStore, Table};

use super::recorder::{Counts, Recorder};
use crate::EmbeddedSystem;

/// Shared by every console request.
#[derive(Clone)]
pub struct Console {
    pub recorder: Arc<Recorder>,
    pub store: Arc<EmbeddedStore>,
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub topology: Arc<Topology>,
    /// The CSRF token every state-changing form carries: random per server.
    pub token: Arc<str>,
    /// Recent totals, to turn counts into rates.
    samples: Arc<Mutex<VecDeque<(Instant, Counts)>>>,
}

/// A queue's counts plus the age of its oldest message.
pub struct QueueView {
    pub stats: QueueStats,
    pub oldest: Option<Duration>,
}

impl Console {
    /// The console over `system` (after [`Recorder::install`]).
    pub fn new(system: &EmbeddedSystem, recorder: Arc<Recorder>) -> Self {
        Console {
            recorder,
            store: system.store.clone(),
            table: system.table.clone(),
            blobs: system.blobs.clone(),
            topology: system.topology.clone(),
            token: uuid::Uuid::new_v4().simple().to_string().into(),
            samples: Arc::default(),
        }
    }

    /// Whether a form carried this server's token (the CSRF check; the
    /// same-origin check is the router's).
    pub fn check_token(&self, token: &str) -> Result<(), &'static str> {
        let (a, b) = (token.as_bytes(), self.token.as_bytes());
        // Constant time: compare every byte whatever the first difference.
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(())
        } else {
            Err("this form's token is missing or stale: reload the page and try again")
        }
    }

    /// Every queue's counts, by name.
    pub fn queues(&self) -> anyhow::Result<Vec<QueueView>> {
        let stats = self.store.queue_stats()?;
        let now = super::recorder::now_ms();
        stats
            .into_iter()
            .map(|stats| {
                let oldest =
                    self.store.list_messages(&stats.name, 1)?.first().map(|m| {
                        Duration::from_millis(u64::try_from(now - m.sent_at_ms).unwrap_or(0))
                    });
                Ok(QueueView { stats, oldest })
            })
            .collect()
    }

    /// The totals now, and the rate per second of each over the last ten
    /// seconds or so (from the samples earlier renders took).
    pub fn counts_and_rates(&self) -> (Counts, std::collections::BTreeMap<String, f64>) {
        let counts = self.recorder.counts();
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > Duration::from_secs(30))
        {
            samples.pop_front();
        }
        let base = samples
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= Duration::from_secs(5))
            .or(samples.front());
        let rates = match base {
            Some((at, old)) => {
                let secs = now.duration_since(*at).as_secs_f64().max(0.001);
                counts
                    .iter()
                    .map(|(k, v)| {
                        let before = old.get(k).copied().unwrap_or(0);
                        (k.clone(), v.saturating_sub(before) as f64 / secs)
                    })
                    .collect()
            }
            None => Default::default(),
        };
        if samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_millis(500))
        {
            samples.push_back((now, counts.clone()));
        }
        (counts, rates)
    }
}
