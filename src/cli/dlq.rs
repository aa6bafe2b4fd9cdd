//! `switchyard dlq list|show|redrive` for the embedded queues.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::embedded::system::dead_letter_queues;
use crate::EmbeddedSystem;
use clap::{Args, Subcommand};

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
    let dlqs = dead_letter_queues(&topology);
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
    if let DlqCommand::Show { queue, .. } | DlqCommand::Redrive { queue, .. } = &args.command {
        known(queue)?;
    }
    let data_dir = EmbeddedSystem::data_dir(args.data_dir);
    // Only a redrive writes: the others never change (or create) a file.
    let system = if let DlqCommand::Redrive { .. } = args.command {
        if !data_dir.database().is_file() {
            anyhow::bail!("no Switchyard data dir at {}", data_dir.root.display());
        }
        EmbeddedSystem::open(&data_dir, topology)?
    } else {
        EmbeddedSystem::open_for_reading(&data_dir, topology)?
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
            let moved = system.store.redrive(&queue, max)?;
            println!("moved {moved} message(s) from {queue} back to their source queue");
        }
    }
    Ok(ExitCode::SUCCESS)
}
