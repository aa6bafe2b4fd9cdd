//! `switchyard state dump`: the table as canonical JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use switchyard::state::StateSnapshot;
use switchyard::EmbeddedSystem;

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
    },
}

pub async fn run(global: &GlobalArgs, args: StateArgs) -> anyhow::Result<ExitCode> {
    let StateCommand::Dump { data_dir } = args.command;
    let topology = Arc::new(super::load_topology(global)?);
    let system = EmbeddedSystem::open(&EmbeddedSystem::data_dir(data_dir), topology)?;
    println!("{}", StateSnapshot::of(&*system.table).await?.to_json());
    Ok(ExitCode::SUCCESS)
}
