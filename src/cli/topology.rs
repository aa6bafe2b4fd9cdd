//! `switchyard topology export`: the topology as JSON (infra/ reads it).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct TopologyArgs {
    #[command(subcommand)]
    pub command: TopologyCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// Print the topology as JSON.
    Export,
}

pub fn run(global: &GlobalArgs, args: TopologyArgs) -> anyhow::Result<ExitCode> {
    let TopologyCommand::Export = args.command;
    println!("{}", super::load_topology(global)?.export_json());
    Ok(ExitCode::SUCCESS)
}
