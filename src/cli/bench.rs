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
    /// The console: render times and page weights on a loaded store; the
    /// recorder's and a live tail's cost to the pipeline.
    Console(BenchConsoleArgs),
}

#[derive(Debug, Args)]
pub struct BenchConsoleArgs {
    /// Events run through the pipeline into the store before the renders.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Dead letters in order-processor-dlq for the renders.
    #[arg(long, default_value_t = 1_000)]
    pub dlq_messages: usize,
    /// Renders per page (the median is reported).
    #[arg(long, default_value_t = 50)]
    pub renders: usize,
    /// Events per pipeline run (no recorder / recorder / recorder and tail).
    #[arg(long, default_value_t = 20_000)]
    pub pipeline_events: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

pub async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Rules(a) => rules::bench(global, a).await,
        BenchCommand::Images(a) => images::bench(global, a).await,
        BenchCommand::E2e(a) => replay::bench_e2e(global, a).await,
        BenchCommand::Console(a) => {
            let options = switchyard::console::bench::BenchConsoleOptions {
                events: a.events,
                dlq_messages: a.dlq_messages,
                renders: a.renders,
                pipeline_events: a.pipeline_events,
                rounds: a.rounds,
            };
            switchyard::console::bench::run(
                std::sync::Arc::new(super::load_topology(global)?),
                options,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
