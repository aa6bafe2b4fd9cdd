//! `switchyard provision --backend aws [--endpoint URL]`: creates the
//! topology's resources, idempotently (see `crate::aws::provision`).

use std::process::ExitCode;

use crate::aws::provision::{provision, Change};
use anyhow::{bail, Context};
use clap::Args;
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
