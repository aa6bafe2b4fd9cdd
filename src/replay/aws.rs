//! Replay into the AWS backend (AWS itself, or a moto server): the log's
//! blobs go to the bucket, its events to the provisioned bus and topic, at
//! the asked rate, filtered, windowed, duplicated and reordered as the
//! faults say. The consumers are whatever runs there: Lambda on AWS, or
//! `switchyard up --backend aws` against moto.
//!
//! The other fault kinds act inside the consumers' runtime and store
//! (crashes, transient store errors, visibility expiries), which a replay
//! into AWS does not own, so they are refused rather than ignored.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use router_rules::Topology;
use switchyard_shared::aws::{AwsClients, AwsPublisher, DynamoTable, S3Blobs};
use switchyard_shared::ports::BlobStore;
use switchyard_shared::BlobKey;

use super::log::EventLog;
use super::replayer::{
    planned, progress_bar, publish_paced, publish_refusals, Refusal, ReplayOptions,
};
use crate::aws::provision::resources::publish_targets;
use crate::state::StateSnapshot;

/// What a replay into AWS did.
#[derive(Debug)]
pub struct AwsReplayOutcome {
    pub selected: usize,
    pub outside_window: usize,
    pub filtered_out: usize,
    pub blobs: usize,
    pub published: usize,
    pub duplicates: usize,
    pub refused: Vec<Refusal>,
    pub publish_secs: f64,
}

impl std::fmt::Display for AwsReplayOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "replay into aws")?;
        writeln!(
            f,
            "  events selected:     {} ({} outside the window, {} filtered out)",
            self.selected, self.outside_window, self.filtered_out
        )?;
        writeln!(f, "  blobs uploaded:      {}", self.blobs)?;
        writeln!(
            f,
            "  events published:    {} ({} duplicates) in {:.2}s",
            self.published, self.duplicates, self.publish_secs
        )?;
        write!(f, "  refused:             {}", self.refused.len())?;
        for r in &self.refused {
            write!(f, "\n    {} {}: {}", r.detail_type, r.event_id, r.reason)?;
        }
        Ok(())
    }
}

/// Replays `log` into the resources `switchyard provision` made at `endpoint`
/// (AWS itself when `None`).
pub async fn replay_aws(
    log: &EventLog,
    topology: &Topology,
    endpoint: Option<&str>,
    options: &ReplayOptions,
) -> anyhow::Result<AwsReplayOutcome> {
    options.faults.validate()?;
    let f = &options.faults;
    if f.crash > 0.0 || f.transient > 0.0 || f.visibility_expiry > 0.0 {
        bail!(
            "--backend aws takes the faults duplicate and reorder only: crash, transient and \
             visibility-expiry act inside the consumers' runtime, which the embedded backend owns"
        );
    }
    let plan = planned(log, topology, options)?;
    let clients = AwsClients::connect(endpoint).await;
    let publisher = AwsPublisher::new(&clients, publish_targets(topology, &clients).await?);
    let blobs = S3Blobs::new(&clients.s3, &topology.bucket.name);
    for b in &log.blobs {
        let key =
            BlobKey::new(b.key.clone()).with_context(|| format!("blob {:?} in the log", b.key))?;
        blobs
            .put(&key, Bytes::clone(&b.bytes), &b.content_type)
            .await
            .with_context(|| format!("uploading blob {key} to {}", topology.bucket.name))?;
    }
    let bar = progress_bar(options.progress, plan.to_publish.len());
    let started = Instant::now();
    let published = publish_paced(
        &publisher,
        plan.to_publish.iter().cloned(),
        options.rate,
        options.chunk,
        1,
        |part, _| bar.inc(part.len() as u64),
    )
    .await?;
    bar.finish_and_clear();
    let mut refused = plan.refused;
    refused.extend(publish_refusals(&published, &plan.to_publish));
    Ok(AwsReplayOutcome {
        selected: plan.selection.events.len(),
        outside_window: plan.selection.outside_window,
        filtered_out: plan.selection.filtered_out,
        blobs: log.blobs.len(),
        published: published.published.len(),
        duplicates: plan.duplicates,
        refused,
        publish_secs: started.elapsed().as_secs_f64(),
    })
}

/// Reads the provisioned table's snapshot until it equals `expected` or
/// `timeout` passes (the consumers run elsewhere, so "done" is only visible
/// in the state). Returns the differences left; empty means equal.
pub async fn await_state(
    topology: &Topology,
    endpoint: Option<&str>,
    expected: &StateSnapshot,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let clients = AwsClients::connect(endpoint).await;
    let table = DynamoTable::new(&clients.dynamodb, &topology.table.name);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let diff = StateSnapshot::of(&table).await?.diff(expected);
        if diff.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(diff);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
