//! `switchyard bench ...`: each benchmark runs Switchyard and its peer side by
//! side in one run and ends with one summary line.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{images, replay, rules, GlobalArgs};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The rule engine against the quamina crate.
    Rules(rules::BenchRulesArgs),
    /// The image processor against sharp.
    Images(images::BenchImagesArgs),
    /// The whole pipeline end to end on a durable data dir, against the moto backend.
    E2e(replay::BenchE2eArgs),
}

pub async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Rules(a) => rules::bench(global, a).await,
        BenchCommand::Images(a) => images::bench(global, a).await,
        BenchCommand::E2e(a) => replay::bench_e2e(global, a).await,
    }
}
