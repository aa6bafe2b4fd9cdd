//! Command-line parsing and dispatch. Each command group has its own module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod dlq;
mod global;
mod images;
mod provision;
mod publish;
mod replay;
mod rules;
mod schema;
mod state;
mod topology;
pub mod up;

pub use global::{load_topology, GlobalArgs, LogFormat, Setup};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Event-driven orders and images, on AWS or on one laptop"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the system: consumers plus the HTTP API on 127.0.0.1.
    Up(up::UpArgs),
    /// Run the whole flow on a fresh data dir and print a summary.
    Demo(demo::DemoArgs),
    /// Publish events from JSON (a file or stdin).
    Publish(publish::PublishArgs),
    /// Inspect and redrive dead-letter queues.
    Dlq(dlq::DlqArgs),
    /// Replay an event log into a backend, with faults; make logs.
    Replay(Box<replay::ReplayArgs>),
    /// The table as canonical JSON.
    State(state::StateArgs),
    /// Match events against EventBridge patterns and SNS filter policies.
    Rules(rules::RulesArgs),
    /// Make thumbnails from local files with the image processor's code path.
    Images(images::ImagesArgs),
    /// Benchmarks, side by side with their peers.
    Bench(bench::BenchArgs),
    /// Event JSON Schemas.
    Schema(schema::SchemaArgs),
    /// The topology: print or export it.
    Topology(topology::TopologyArgs),
    /// Create the topology's resources on AWS (or a moto endpoint), idempotently.
    Provision(provision::ProvisionArgs),
}

pub fn init_logging(global: &GlobalArgs, command: &Command) {
    // The demo refuses commands on purpose; its summary says so, so keep its log to errors.
    let default = if matches!(command, Command::Demo(_)) {
        "error"
    } else {
        "warn"
    };
    let format = match global.log_format {
        LogFormat::Json => switchyard_shared::logging::LogFormat::Json,
        LogFormat::Text => switchyard_shared::logging::LogFormat::Text,
    };
    switchyard_shared::logging::init(switchyard_shared::logging::LogConfig::cli(format, default));
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => up::run(&cli.global, args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Publish(args) => publish::run(&cli.global, args).await,
        Command::Dlq(args) => dlq::run(&cli.global, args).await,
        Command::Replay(args) => replay::run(&cli.global, *args).await,
        Command::State(args) => state::run(&cli.global, args).await,
        Command::Rules(args) => rules::run(&cli.global, args).await,
        Command::Images(args) => images::run(&cli.global, args).await,
        Command::Bench(args) => bench::run(&cli.global, args).await,
        Command::Schema(args) => schema::run(args),
        Command::Topology(args) => topology::run(&cli.global, args),
        Command::Provision(args) => provision::run(&cli.global, args).await,
    }
}
