//! `switchyard publish`: events from JSON (a file or stdin) into a data dir,
//! or onto the provisioned bus and topic with `--backend aws`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::aws::provision::resources::publish_targets;
use crate::EmbeddedSystem;
use anyhow::Context;
use clap::Args;
use switchyard_producer::input::envelope_from_json;
use switchyard_shared::aws::{AwsClients, AwsPublisher};
use switchyard_shared::config::BackendKind;
use switchyard_shared::ports::EventPublisher;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// A JSON file with one event, an array of events, or one event per line; `-` or nothing for stdin.
    pub input: Option<PathBuf>,
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `embedded` (a data dir on this machine) or `aws` (the provisioned bus and topic).
    #[arg(long, default_value = "embedded")]
    pub backend: BackendKind,
    /// With `--backend aws`: an AWS-compatible endpoint (a moto server) instead of AWS.
    #[arg(long, env = "SWITCHYARD_AWS_ENDPOINT")]
    pub endpoint: Option<String>,
}

/// Splits the input into event texts: an array, one object, or JSON lines.
fn event_texts(text: &str) -> anyhow::Result<Vec<String>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(text).context("input is not a JSON array of events")?;
        return Ok(items.iter().map(|v| v.to_string()).collect());
    }
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return Ok(vec![text.to_owned()]);
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

pub async fn run(global: &GlobalArgs, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let text = match args.input.as_deref() {
        None => read_stdin()?,
        Some(p) if p.as_os_str() == "-" => read_stdin()?,
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
    };
    let texts = event_texts(&text)?;
    if texts.is_empty() {
        anyhow::bail!("no event in the input");
    }
    // Parse everything before publishing anything.
    let mut events = Vec::with_capacity(texts.len());
    for (n, t) in texts.iter().enumerate() {
        let label = if texts.len() > 1 {
            format!("event {}", n + 1)
        } else {
            "event".to_owned()
        };
        events.push(
            envelope_from_json(t)
                .with_context(|| format!("{label} is not publishable; nothing was published"))?,
        );
    }
    let topology = Arc::new(super::load_topology(global)?);
    let publisher: Arc<dyn EventPublisher> = match args.backend {
        BackendKind::Embedded => {
            EmbeddedSystem::open(&EmbeddedSystem::data_dir(args.data_dir), topology)?.publisher
        }
        BackendKind::Aws => {
            let clients = AwsClients::connect(args.endpoint.as_deref()).await;
            let targets = publish_targets(&topology, &clients).await?;
            Arc::new(AwsPublisher::new(&clients, targets))
        }
    };
    let ids = publisher.publish(&events).await?.into_result()?;
    for (id, e) in ids.iter().zip(&events) {
        println!("published {} {id}", e.detail_type);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading stdin")?;
    Ok(s)
}
