//! `switchyard bench ...`: each benchmark runs Switchyard and its peer side by
//! side in one run and ends with one summary line.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::lambda_bench;
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
    /// Cold starts of the Lambda bootstraps against a local runtime API, beside a hello-world floor.
    Lambda(BenchLambdaArgs),
    /// The console: render times and page weights on a loaded store; the
    /// recorder's and a live tail's cost to the pipeline.
    Console(BenchConsoleArgs),
}

#[derive(Debug, Args)]
pub struct BenchLambdaArgs {
    /// cargo lambda's output folder (one `<function>/bootstrap` each).
    #[arg(long, env = "SWITCHYARD_LAMBDA_DIR", default_value = "target/lambda")]
    pub dir: PathBuf,
    /// Cold starts per function (the median is reported).
    #[arg(long, default_value_t = 21)]
    pub rounds: u32,
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
    /// Feed the pipeline runs at this many events per second (the issue's
    /// 10,000) instead of as fast as they take them.
    #[arg(long)]
    pub rate: Option<u32>,
}

pub async fn run(global: &GlobalArgs, args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Rules(a) => rules::bench(global, a).await,
        BenchCommand::Images(a) => images::bench(global, a).await,
        BenchCommand::E2e(a) => replay::bench_e2e(global, a).await,
        BenchCommand::Lambda(a) => bench_lambda(a).await,
        BenchCommand::Console(a) => {
            let options = crate::console::bench::BenchConsoleOptions {
                events: a.events,
                dlq_messages: a.dlq_messages,
                renders: a.renders,
                pipeline_events: a.pipeline_events,
                rounds: a.rounds,
                rate: a.rate,
            };
            crate::console::bench::run(std::sync::Arc::new(super::load_topology(global)?), options)
                .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn bench_lambda(args: BenchLambdaArgs) -> anyhow::Result<ExitCode> {
    let reports = lambda_bench::run(&args.dir, args.rounds.max(1)).await?;
    let floor = reports
        .iter()
        .find(|r| r.name == "lambda-floor")
        .map(|r| r.init())
        .unwrap_or_default();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{:<16} {:>11} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "function", "bootstrap", "zip", "init", "÷ floor", "first call", "peak RSS"
    );
    for r in &reports {
        println!(
            "{:<16} {:>8.2} MB {:>6.2} MB {:>6.2} ms {:>8.1}× {:>8.2} ms {:>6.1} MB",
            r.name,
            mb(r.bootstrap_bytes),
            mb(r.zip_bytes),
            ms(r.init()),
            ms(r.init()) / ms(floor).max(1e-9),
            ms(r.first_invocation()),
            mb(r.peak_rss()),
        );
    }
    let largest = reports.iter().map(|r| r.bootstrap_bytes).max().unwrap_or(0);
    let slowest = reports
        .iter()
        .max_by_key(|r| r.init())
        .map(|r| (r.name.clone(), r.init()))
        .unwrap_or_default();
    println!(
        "summary: {} cold starts each; largest bootstrap {:.2} MB; slowest init {} {:.2} ms (floor {:.2} ms); medians",
        args.rounds.max(1),
        mb(largest),
        slowest.0,
        ms(slowest.1),
        ms(floor),
    );
    Ok(ExitCode::SUCCESS)
}
