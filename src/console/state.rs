//! What the console's pages read: the recorder (embedded backend only), the
//! queues through their port, the table and the blobs, plus the token that
//! state-changing forms carry.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use router_rules::Topology;
use switchyard_shared::ports::{BlobStore, Table};

use super::queue_admin::aws::SqsQueues;
use super::queue_admin::embedded::EmbeddedQueues;
use super::queue_admin::{AdminError, QueueAdmin, QueueView};
use super::recorder::{Counts, Recorder};
use crate::aws::provision::AwsResources;
use crate::EmbeddedSystem;

/// Shared by every console request.
#[derive(Clone)]
pub struct Console {
    /// What the runtime saw (events, hops, counts). None on `--backend aws`,
    /// where the functions run elsewhere and this process sees no events.
    pub recorder: Option<Arc<Recorder>>,
    pub queues: Arc<dyn QueueAdmin>,
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub topology: Arc<Topology>,
    /// The CSRF token every state-changing form carries: random per server.
    pub token: Arc<str>,
    /// Recent totals, to turn counts into rates.
    samples: Arc<Mutex<VecDeque<(Instant, Counts)>>>,
}

impl Console {
    /// The console over `system` (after [`Recorder::install`]).
    pub fn new(system: &EmbeddedSystem, recorder: Arc<Recorder>) -> Self {
        Self::with(
            Some(recorder),
            Arc::new(EmbeddedQueues::new(system.store.clone())),
            system.table.clone(),
            system.blobs.clone(),
            system.topology.clone(),
        )
    }

    /// The console over provisioned AWS resources: queues, DLQs, the table
    /// and the blobs; no recorder.
    pub fn aws(topology: Arc<Topology>, resources: &AwsResources) -> Self {
        Self::with(
            None,
            Arc::new(SqsQueues::new(&topology, resources)),
            resources.table.clone(),
            resources.blobs.clone(),
            topology,
        )
    }

    fn with(
        recorder: Option<Arc<Recorder>>,
        queues: Arc<dyn QueueAdmin>,
        table: Arc<dyn Table>,
        blobs: Arc<dyn BlobStore>,
        topology: Arc<Topology>,
    ) -> Self {
        Console {
            recorder,
            queues,
            table,
            blobs,
            topology,
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

    /// Every queue's counts.
    pub async fn queue_views(&self) -> Result<Vec<QueueView>, AdminError> {
        self.queues.queues().await
    }

    /// The totals now, and the rate per second of each over the last ten
    /// seconds or so (from the samples earlier renders took).
    /// None without a recorder.
    pub fn counts_and_rates(&self) -> Option<(Counts, std::collections::BTreeMap<String, f64>)> {
        let counts = self.recorder.as_ref()?.counts();
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
        Some((counts, rates))
    }
}
