//! The embedded system: one journaled in-memory store, a blob folder, the local fan-out
//! and, when started, one queue worker per consumer and one stream worker
//! per shard, all in this process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use router_rules::Topology;
use switchyard_consumers::registry::{Adapters, Deps};
use switchyard_producer::api::ApiState;
use switchyard_producer::LocalFanout;
use switchyard_shared::config::DataDir;
use switchyard_shared::embedded::{
    EmbeddedStore, EmbeddedStream, FolderBlobStore, MemoryBlobStore, QueueConfig, QueueStats,
    StoreOptions,
};
use switchyard_shared::ports::{BlobStore, ChangeStream, EventPublisher, Queue, Table};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::runtime::RuntimeOptions;
use crate::runtime::{self, RecordWaiter, StreamWorkerConfig};

pub struct EmbeddedSystem {
    pub store: Arc<EmbeddedStore>,
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    /// Publishes and answers once what it published is durable: for
    /// publishers outside the pipeline (the HTTP API, the CLI, replays).
    pub publisher: Arc<dyn EventPublisher>,
    /// What the consumers publish through (the stream reactor's outbox):
    /// no wait for the commit, as a crash redoes their work. Replace it
    /// before [`EmbeddedSystem::start`] to watch what they emit.
    pub consumer_publisher: Arc<dyn EventPublisher>,
    pub topology: Arc<Topology>,
    /// Where blob keys live on disk (None: blobs in memory, see [`EmbeddedSystem::ephemeral`]).
    pub blob_root: Option<PathBuf>,
    stream: EmbeddedStream,
    /// The data dir, for file-backed stores (`None` in memory).
    data_dir: Option<DataDir>,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl EmbeddedSystem {
    /// Opens (creating if needed) the store in `data_dir` and every queue the
    /// topology declares. Nothing consumes until [`EmbeddedSystem::start`].
    pub fn open(data_dir: &DataDir, topology: Arc<Topology>) -> anyhow::Result<Self> {
        Self::open_with(data_dir, topology, StoreOptions::default())
    }

    /// [`EmbeddedSystem::open`] with store options (a replay's clock).
    pub fn open_with(
        data_dir: &DataDir,
        topology: Arc<Topology>,
        options: StoreOptions,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&data_dir.root)
            .with_context(|| format!("creating {}", data_dir.root.display()))?;
        let store = EmbeddedStore::open_with(data_dir.database(), options)
            .with_context(|| format!("opening {}", data_dir.database().display()))?;
        let blobs = FolderBlobStore::new(data_dir.blobs())
            .with_context(|| format!("opening blob folder {}", data_dir.blobs().display()))?;
        let mut system = Self::with_folder(store, blobs, topology)?;
        system.data_dir = Some(data_dir.clone());
        Ok(system)
    }

    /// Opens an existing data dir read-only, as of its last commit, whether
    /// or not another process owns it (`switchyard up`): for commands that
    /// only look (`state dump`, `dlq list`, `dlq show`). It never creates,
    /// folds or truncates a file, so a damaged journal stays as it was
    /// found, and a mistyped data dir is an error.
    pub fn open_for_reading(data_dir: &DataDir, topology: Arc<Topology>) -> anyhow::Result<Self> {
        let store = EmbeddedStore::open_read_only(data_dir.database())
            .with_context(|| format!("opening {} read-only", data_dir.database().display()))?;
        let blobs = FolderBlobStore::existing(data_dir.blobs())
            .with_context(|| format!("opening blob folder {}", data_dir.blobs().display()))?;
        let mut system = Self::with_folder(store, blobs, topology)?;
        system.data_dir = Some(data_dir.clone());
        Ok(system)
    }

    /// An in-memory store (for tests), with blobs in `blob_dir`.
    pub fn in_memory(blob_dir: &Path, topology: Arc<Topology>) -> anyhow::Result<Self> {
        Self::in_memory_with(blob_dir, topology, StoreOptions::default())
    }

    /// [`EmbeddedSystem::in_memory`] with store options (a replay's clock).
    pub fn in_memory_with(
        blob_dir: &Path,
        topology: Arc<Topology>,
        options: StoreOptions,
    ) -> anyhow::Result<Self> {
        // Nothing in memory survives a crash: its blobs need no fsync either.
        let blobs = FolderBlobStore::new(blob_dir)
            .with_context(|| format!("opening blob folder {}", blob_dir.display()))?
            .without_fsync();
        Self::with_folder(
            EmbeddedStore::open_with(":memory:", options)?,
            blobs,
            topology,
        )
    }

    /// Store and blobs in memory: nothing touches the disk (scenarios, and
    /// replays that keep nothing).
    pub fn ephemeral(topology: Arc<Topology>, options: StoreOptions) -> anyhow::Result<Self> {
        let store = EmbeddedStore::open_with(":memory:", options)?;
        // One fault switch for table and blobs, so one seed drives both.
        let blobs = MemoryBlobStore::new().with_faults(store.faults().clone());
        Self::with_store(store, Arc::new(blobs), None, topology)
    }

    fn with_folder(
        store: Arc<EmbeddedStore>,
        blobs: FolderBlobStore,
        topology: Arc<Topology>,
    ) -> anyhow::Result<Self> {
        let root = blobs.root().to_path_buf();
        // One fault switch for table and blobs, so one seed drives both.
        let blobs = blobs.with_faults(store.faults().clone());
        Self::with_store(store, Arc::new(blobs), Some(root), topology)
    }

    fn with_store(
        store: Arc<EmbeddedStore>,
        blobs: Arc<dyn BlobStore>,
        blob_root: Option<PathBuf>,
        topology: Arc<Topology>,
    ) -> anyhow::Result<Self> {
        let mut queues: BTreeMap<String, Arc<dyn Queue>> = BTreeMap::new();
        // A read-only store has the queues its owner created.
        let create = |cfg: QueueConfig| -> anyhow::Result<()> {
            if !store.is_read_only() {
                store.create_queue(cfg)?;
            }
            Ok(())
        };
        for c in &topology.consumers {
            create(QueueConfig::new(c.dlq_name()))?;
            create(
                QueueConfig::new(c.queue_name()).with_dlq(c.dlq_name(), c.queue.max_receive_count),
            )?;
            queues.insert(c.queue_name(), Arc::new(store.queue(&c.queue_name())?));
        }
        for s in &topology.stream_consumers {
            create(QueueConfig::new(s.on_failure_queue()))?;
        }
        let fanout: Arc<dyn EventPublisher> = Arc::new(LocalFanout::new(topology.clone(), queues)?);
        let publisher = Arc::new(DurablePublisher {
            inner: fanout.clone(),
            store: store.clone(),
        });
        let (shutdown, _) = watch::channel(false);
        Ok(EmbeddedSystem {
            table: Arc::new(store.table()),
            stream: store.stream(),
            blobs,
            publisher,
            consumer_publisher: fanout,
            topology,
            blob_root,
            data_dir: None,
            store,
            shutdown,
            workers: Vec::new(),
        })
    }

    pub fn api_state(&self) -> ApiState {
        ApiState::new(
            self.table.clone(),
            self.blobs.clone(),
            self.publisher.clone(),
        )
    }

    fn deps(&self, options: &RuntimeOptions) -> Deps {
        options.deps(Adapters {
            table: self.table.clone(),
            blobs: self.blobs.clone(),
            publisher: self.consumer_publisher.clone(),
        })
    }

    /// Starts one worker per consumer and one per stream shard.
    pub async fn start(&mut self, options: &RuntimeOptions) -> anyhow::Result<()> {
        let deps = self.deps(options);
        for c in &self.topology.consumers {
            let handler = options.queue_handler(c, &deps)?;
            let queue: Arc<dyn Queue> = Arc::new(self.store.queue(&c.queue_name())?);
            self.workers.extend(runtime::spawn_queue_workers(
                c,
                queue,
                handler,
                options.poll_wait,
                options,
                &self.shutdown,
            ));
        }
        let shards = self.stream.shards().await?;
        for s in &self.topology.stream_consumers {
            let reactor = options.stream_handler(s, &deps)?;
            let on_failure: Arc<dyn Queue> = Arc::new(self.store.queue(&s.on_failure_queue())?);
            // One config (and one compiled filter) for every shard's worker.
            let retry = options.stream_retry_delay.unwrap_or(options.retry_base);
            let config = StreamWorkerConfig::for_consumer(s, retry, options.poll_wait)?;
            for shard in &shards {
                self.workers
                    .push(tokio::spawn(runtime::run_stream_worker_with(
                        Arc::new(self.stream.clone()),
                        Arc::new(StreamWaiter(self.stream.clone())),
                        shard.clone(),
                        reactor.clone(),
                        on_failure.clone(),
                        config.clone(),
                        options.hooks.clone(),
                        self.shutdown.subscribe(),
                    )));
            }
        }
        Ok(())
    }

    /// Queue counts, for `dlq list`, `up`'s health and the demo.
    pub fn queue_stats(&self) -> anyhow::Result<Vec<QueueStats>> {
        Ok(self.store.queue_stats()?)
    }

    /// Names of the queues that hold given-up work: DLQs and on-failure queues.
    pub fn dead_letter_queues(&self) -> Vec<String> {
        dead_letter_queues(&self.topology)
    }

    /// True when no message waits or is in flight on any consumer queue and
    /// every stream consumer has caught up with every shard.
    pub async fn is_quiet(&self) -> anyhow::Result<bool> {
        let sinks = self.dead_letter_queues();
        let busy = self
            .queue_stats()?
            .iter()
            .any(|q| !sinks.contains(&q.name) && q.visible + q.in_flight + q.delayed > 0);
        if busy {
            return Ok(false);
        }
        for shard in self.stream.shards().await? {
            let Some(latest) = self.stream.latest_sequence(&shard)? else {
                continue;
            };
            for s in &self.topology.stream_consumers {
                let done = self.stream.checkpoint(&s.name, &shard).await?;
                if done.as_deref() < Some(latest.as_str()) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Waits until the system is quiet (twice in a row, so that work handed
    /// from one stage to the next between two looks is not missed), or fails
    /// at the deadline.
    pub async fn wait_quiet(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_quiet_every(timeout, Duration::from_millis(10))
            .await
    }

    /// [`EmbeddedSystem::wait_quiet`], looking every `every` (on tokio's
    /// clock, which is virtual in a replay); `timeout` is wall time.
    pub async fn wait_quiet_every(&self, timeout: Duration, every: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut quiet_looks = 0;
        while Instant::now() < deadline {
            if self.is_quiet().await? {
                quiet_looks += 1;
                if quiet_looks == 2 {
                    return Ok(());
                }
            } else {
                quiet_looks = 0;
            }
            tokio::time::sleep(every).await;
        }
        let stats: Vec<String> = self
            .queue_stats()?
            .iter()
            .filter(|q| q.visible + q.in_flight + q.delayed > 0)
            .map(|q| {
                format!(
                    "{}: {} visible, {} in flight, {} delayed",
                    q.name, q.visible, q.in_flight, q.delayed
                )
            })
            .collect();
        bail!(
            "the system did not become quiet within {timeout:?} ({})",
            stats.join("; ")
        )
    }

    /// Stops every worker after its current batch.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for w in self.workers.drain(..) {
            let _ = w.await;
        }
        // What the consumers did is committed before the process goes.
        if let Err(e) = self.store.sync().await {
            tracing::error!(error = %e, "the last changes could not be committed");
        }
    }

    /// The data dir a command should use: `--data-dir`, or `.switchyard/`.
    pub fn data_dir(arg: Option<PathBuf>) -> DataDir {
        DataDir::new(
            arg.unwrap_or_else(|| PathBuf::from(switchyard_shared::config::DEFAULT_DATA_DIR)),
        )
    }
}

/// The embedded publisher for the system's edge: publishes, then waits for
/// the store's commit, so an acknowledged event survives `kill -9`.
struct DurablePublisher {
    inner: Arc<dyn EventPublisher>,
    store: Arc<EmbeddedStore>,
}

#[async_trait::async_trait]
impl EventPublisher for DurablePublisher {
    async fn publish(
        &self,
        events: &[switchyard_shared::Envelope],
    ) -> Result<switchyard_shared::ports::PublishReport, switchyard_shared::ports::PublishError>
    {
        let report = self.inner.publish(events).await?;
        self.store
            .sync()
            .await
            .map_err(|e| switchyard_shared::ports::PublishError::Backend(e.to_string()))?;
        Ok(report)
    }
}

struct StreamWaiter(EmbeddedStream);

#[async_trait::async_trait]
impl RecordWaiter for StreamWaiter {
    async fn wait_for_records(&self, shard: &str, after: Option<&str>, timeout: Duration) {
        let _ = self.0.wait_for_records(shard, after, timeout).await;
    }
}

/// The topology's dead-letter queues: each consumer's DLQ, then each stream
/// consumer's on-failure queue.
pub fn dead_letter_queues(topology: &Topology) -> Vec<String> {
    let mut names: Vec<String> = topology.consumers.iter().map(|c| c.dlq_name()).collect();
    names.extend(
        topology
            .stream_consumers
            .iter()
            .map(|s| s.on_failure_queue()),
    );
    names
}
