//! `switchyard dlq list|show|redrive` for the embedded queues.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use switchyard::EmbeddedSystem;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[arg(long, global = true, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every dead-letter queue with its message count.
    List,
    /// The messages of one dead-letter queue, with the reason each failed.
    Show {
        queue: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Moves a dead-letter queue's messages back to the queue they came from.
    Redrive {
        queue: String,
        #[arg(long, default_value_t = 10_000)]
        max: usize,
    },
}

pub async fn run(global: &GlobalArgs, args: DlqArgs) -> anyhow::Result<ExitCode> {
    let topology = Arc::new(super::load_topology(global)?);
    let system =
        EmbeddedSystem::open_for_reading(&EmbeddedSystem::data_dir(args.data_dir), topology)?;
    let dlqs = system.dead_letter_queues();
    let known = |q: &str| -> anyhow::Result<()> {
        if dlqs.iter().any(|d| d == q) {
            Ok(())
        } else {
            anyhow::bail!(
                "{q:?} is not a dead-letter queue; try one of: {}",
                dlqs.join(", ")
            )
        }
    };
    match args.command {
        DlqCommand::List => {
            let stats = system.queue_stats()?;
            for name in &dlqs {
                let count = stats
                    .iter()
                    .find(|s| &s.name == name)
                    .map_or(0, |s| s.visible + s.in_flight + s.delayed);
                println!("{name:<28} {count:>6}");
            }
        }
        DlqCommand::Show { queue, limit } => {
            known(&queue)?;
            for m in system.store.list_messages(&queue, limit)? {
                println!(
                    "{}  from {}  receives {}  reason: {}\n  {}",
                    m.message_id,
                    m.source_queue.as_deref().unwrap_or("?"),
                    m.receive_count,
                    m.last_failure.as_deref().unwrap_or("(none recorded)"),
                    m.body
                );
            }
        }
        DlqCommand::Redrive { queue, max } => {
            known(&queue)?;
            let moved = system.store.redrive(&queue, max)?;
            println!("moved {moved} message(s) from {queue} back to their source queue");
        }
    }
    Ok(ExitCode::SUCCESS)
}
