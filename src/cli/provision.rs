//! `switchyard provision --backend aws [--endpoint URL]`: creates the
//! topology's resources, idempotently (see `switchyard::provision`).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use router_rules::Topology;
use switchyard::provision::{provision, AwsSystem, Change};
use switchyard::RuntimeOptions;
use switchyard_shared::aws::AwsClients;
use switchyard_shared::config::BackendKind;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Only `aws` has resources to create; the embedded backend makes its own on start.
    #[arg(long)]
    pub backend: BackendKind,
    /// An AWS-compatible endpoint (a moto server), instead of AWS itself.
    #[arg(long, env = "SWITCHYARD_AWS_ENDPOINT")]
    pub endpoint: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: ProvisionArgs) -> anyhow::Result<ExitCode> {
    if args.backend != BackendKind::Aws {
        bail!("`provision` creates AWS resources: use `--backend aws` (the embedded backend needs none)");
    }
    let topology = super::load_topology(global)?;
    let clients = AwsClients::connect(args.endpoint.as_deref()).await;
    let report = provision(&topology, &clients).await.with_context(|| {
        format!(
            "provisioning in {}",
            args.endpoint.as_deref().unwrap_or("AWS")
        )
    })?;
    for step in &report.steps {
        println!("{:<9} {}", step.change, step.resource);
    }
    println!(
        "{} created, {} updated, {} unchanged",
        report.count(Change::Created),
        report.count(Change::Updated),
        report.count(Change::Unchanged)
    );
    Ok(ExitCode::SUCCESS)
}

/// `switchyard up --backend aws`: the pollers and the HTTP API on the
/// provisioned resources, until Ctrl-C or SIGTERM.
pub async fn up(
    topology: Arc<Topology>,
    endpoint: Option<&str>,
    port: u16,
) -> anyhow::Result<ExitCode> {
    let clients = AwsClients::connect(endpoint).await;
    let mut system = AwsSystem::connect(topology, &clients).await?;
    let options = RuntimeOptions::default();
    system.start(&options).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    super::up::announce(&format!(
        "switchyard up: API on http://{addr} (backend aws, {})\nswitchyard up: console on http://{addr}/\n",
        endpoint.unwrap_or("AWS")
    ))?;
    // Queues, dead letters, orders and images from SQS, DynamoDB and S3;
    // the pages that need the recorder say why they are empty here.
    let console = switchyard::console::router(switchyard::console::Console::aws(
        system.topology.clone(),
        &system.resources,
    ));
    super::up::serve_api(listener, system.api_state(), &options, console).await?;
    eprintln!("switchyard up: stopping pollers after their current batch");
    system.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
