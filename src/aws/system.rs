//! `switchyard up --backend aws`: the same pollers as the embedded system
//! ([`crate::runtime`]) driving the AWS adapters of a provisioned topology.
//! On AWS itself Lambda's event source mappings do this job; against moto,
//! which cannot run Lambda functions here, these pollers stand in for them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use router_rules::Topology;
use switchyard_consumers::registry::{Adapters, Deps};
use switchyard_consumers::StreamHandler;
use switchyard_producer::api::ApiState;
use switchyard_shared::aws::AwsClients;
use switchyard_shared::ports::{ChangeStream, Queue};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::provision::AwsResources;
use crate::runtime::{self, RecordWaiter, StreamWorkerConfig, WorkerHooks};
use crate::RuntimeOptions;

/// SQS long-poll wait per receive (SQS allows up to 20 s).
const LONG_POLL: Duration = Duration::from_secs(10);
/// How often the stream's shard list is read again: DynamoDB opens new
/// shards over time, and each needs its own worker.
const SHARD_SCAN: Duration = Duration::from_secs(15);
/// How long a stream worker waits before reading a quiet shard again.
const STREAM_IDLE: Duration = Duration::from_millis(500);

pub struct AwsSystem {
    pub resources: AwsResources,
    pub topology: Arc<Topology>,
    workers: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// A remote stream cannot be waited on; a poller just waits and reads again.
struct PollAgain;

#[async_trait::async_trait]
impl RecordWaiter for PollAgain {
    async fn wait_for_records(&self, _shard: &str, _after: Option<&str>, timeout: Duration) {
        tokio::time::sleep(timeout).await;
    }
}

impl AwsSystem {
    /// Connects to the provisioned resources (see [`AwsResources::connect`]).
    pub async fn connect(topology: Arc<Topology>, clients: &AwsClients) -> anyhow::Result<Self> {
        let resources = AwsResources::connect(&topology, clients).await?;
        Ok(AwsSystem {
            resources,
            topology,
            workers: Vec::new(),
            shutdown: watch::channel(false).0,
        })
    }

    pub fn api_state(&self) -> ApiState {
        ApiState::new(
            self.resources.table.clone(),
            self.resources.blobs.clone(),
            self.resources.publisher.clone(),
        )
    }

    fn deps(&self, options: &RuntimeOptions) -> Deps {
        options.deps(Adapters {
            table: self.resources.table.clone(),
            blobs: self.resources.blobs.clone(),
            publisher: self.resources.publisher.clone(),
        })
    }

    /// Starts one queue poller per consumer, and the stream pollers (one per
    /// shard and stream consumer, for shards present now and found later).
    pub async fn start(&mut self, options: &RuntimeOptions) -> anyhow::Result<()> {
        let deps = self.deps(options);
        for c in &self.topology.consumers {
            let handler = options.queue_handler(c, &deps)?;
            let queue: Arc<dyn Queue> = self.resources.queues[&c.name].clone();
            self.workers.extend(runtime::spawn_queue_workers(
                c,
                queue,
                handler,
                LONG_POLL,
                options,
                &self.shutdown,
            ));
        }
        for s in &self.topology.stream_consumers {
            let reactor = options.stream_handler(s, &deps)?;
            let on_failure: Arc<dyn Queue> = self.resources.stream_failures[&s.name].clone();
            let config = StreamWorkerConfig::for_consumer(s, options.retry_base, STREAM_IDLE)?;
            let stream: Arc<dyn ChangeStream> = self.resources.stream.clone();
            // Fail now, not in the background, if the stream cannot be read at all.
            stream
                .shards()
                .await
                .context("listing the table stream's shards")?;
            self.workers.push(tokio::spawn(watch_shards(
                stream,
                reactor,
                on_failure,
                config,
                options.hooks.clone(),
                self.shutdown.subscribe(),
            )));
        }
        Ok(())
    }

    /// Stops every poller after its current batch.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for w in self.workers.drain(..) {
            let _ = w.await;
        }
    }
}

/// Runs a stream worker for every shard the stream has, now and later.
async fn watch_shards(
    stream: Arc<dyn ChangeStream>,
    reactor: Arc<dyn StreamHandler>,
    on_failure: Arc<dyn Queue>,
    config: StreamWorkerConfig,
    hooks: Option<Arc<dyn WorkerHooks>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut known = HashSet::new();
    let mut workers = Vec::new();
    while !*shutdown.borrow() {
        match stream.shards().await {
            Ok(shards) => {
                for shard in shards.into_iter().filter(|s| known.insert(s.clone())) {
                    tracing::info!(consumer = %config.consumer, %shard, "polling stream shard");
                    workers.push(tokio::spawn(runtime::run_stream_worker_with(
                        stream.clone(),
                        Arc::new(PollAgain),
                        shard,
                        reactor.clone(),
                        on_failure.clone(),
                        config.clone(),
                        hooks.clone(),
                        shutdown.clone(),
                    )));
                }
            }
            Err(e) => {
                tracing::error!(consumer = %config.consumer, error = %e, "listing stream shards failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SHARD_SCAN) => {}
            _ = shutdown.changed() => {}
        }
    }
    for w in workers {
        let _ = w.await;
    }
}
