//! `switchyard state dump`: the table as canonical JSON, from a data dir or
//! from the provisioned DynamoDB table (`--backend aws`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::state::StateSnapshot;
use crate::EmbeddedSystem;
use clap::{Args, Subcommand};
use switchyard_shared::aws::{AwsClients, DynamoTable};
use switchyard_shared::config::BackendKind;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print orders (status, version, payment, images and variants), sorted.
    Dump {
        #[arg(long, env = "SWITCHYARD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// `embedded` (a data dir) or `aws` (the provisioned table).
        #[arg(long, default_value = "embedded")]
        backend: BackendKind,
        /// With `--backend aws`: an AWS-compatible endpoint (a moto server) instead of AWS.
        #[arg(long, env = "SWITCHYARD_AWS_ENDPOINT")]
        endpoint: Option<String>,
    },
}

pub async fn run(global: &GlobalArgs, args: StateArgs) -> anyhow::Result<ExitCode> {
    let StateCommand::Dump {
        data_dir,
        backend,
        endpoint,
    } = args.command;
    let topology = Arc::new(super::load_topology(global)?);
    let snapshot = match backend {
        BackendKind::Embedded => {
            let system =
                EmbeddedSystem::open_for_reading(&EmbeddedSystem::data_dir(data_dir), topology)?;
            StateSnapshot::of(&*system.table).await?
        }
        BackendKind::Aws => {
            let clients = AwsClients::connect(endpoint.as_deref()).await;
            let table = DynamoTable::new(&clients.dynamodb, &topology.table.name);
            StateSnapshot::of(&table).await?
        }
    };
    println!("{}", snapshot.to_json());
    Ok(ExitCode::SUCCESS)
}
