//! The moto leg of `switchyard bench e2e`: the same events, the same
//! pipeline and the same measurement as the embedded runs, through the AWS
//! backend against a moto server (provisioned here, on a reset moto state).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use router_rules::Topology;
use switchyard_shared::aws::AwsClients;

use super::generate;
use super::measure::{ConsumedClock, E2eOptions, RunFigures, Versions};
use super::replayer::{publish_paced, Rate};
use crate::aws::{provision, AwsSystem};
use crate::runtime::RuntimeOptions;

/// Runs `events` of the benchmark's log through the AWS backend at `endpoint`.
pub async fn run(
    endpoint: &str,
    events: usize,
    options: &E2eOptions,
) -> anyhow::Result<RunFigures> {
    // The bench's order ids repeat from run to run: start from an empty moto.
    reset_moto(endpoint).context("resetting the moto server's state")?;
    let topology = Arc::new(Topology::builtin());
    let clients = AwsClients::connect(Some(endpoint)).await;
    provision(&topology, &clients)
        .await
        .with_context(|| format!("provisioning the topology in {endpoint}"))?;
    let mut system = AwsSystem::connect(topology, &clients).await?;
    let clock = Arc::new(ConsumedClock::new(
        switchyard_consumers::notifier::NAME,
        events,
    ));
    system
        .start(&RuntimeOptions {
            hooks: Some(clock.clone()),
            queue_pollers: options.pollers,
            ..RuntimeOptions::default()
        })
        .await?;
    let mut published_at: Vec<Option<Instant>> = vec![None; 3 * events];
    let mut versions = Versions::default();
    let start = Instant::now();
    let report = publish_paced(
        &*system.resources.publisher,
        generate::BenchEvents::new(options.seed, events),
        Rate::Max,
        500,
        1,
        |part, at| {
            for e in part {
                if let Some(t) = versions.slot_of(e).and_then(|s| published_at.get_mut(s)) {
                    *t = Some(at);
                }
            }
        },
    )
    .await;
    let outcome = match report {
        Ok(r) if !r.failed.is_empty() => Err(anyhow::anyhow!(
            "{} events failed to publish to moto: {}",
            r.failed.len(),
            r.failed[0].reason
        )),
        Ok(_) => clock.wait_all(options.timeout).await,
        Err(e) => Err(e),
    };
    system.shutdown().await;
    outcome.context("the moto run")?;
    Ok(RunFigures::from_times(
        events,
        start,
        &published_at,
        &clock.times(),
    ))
}

/// `POST /moto-api/reset`: moto's own endpoint that forgets every resource.
fn reset_moto(endpoint: &str) -> anyhow::Result<()> {
    let authority = endpoint
        .strip_prefix("http://")
        .context("the moto endpoint must be http://HOST:PORT")?
        .trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(authority)
        .with_context(|| format!("connecting to {authority}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        conn,
        "POST /moto-api/reset HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        bail!("moto answered {status} to POST /moto-api/reset");
    }
    Ok(())
}
