//! `switchyard rules ...` and `switchyard bench rules`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate every pattern and filter policy of the topology.
    Check,
}

#[derive(Debug, Args)]
pub struct BenchRulesArgs {}

pub async fn run(global: &GlobalArgs, args: RulesArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RulesCommand::Check => {
            let topology = super::load_topology(global)?;
            println!("topology ok: {} consumers", topology.consumers.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn bench(_global: &GlobalArgs, _args: BenchRulesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the rules benchmark is not built yet")
}
