//! `switchyard schema export`: the JSON Schema of every event detail.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchyard_shared::DomainEvent;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(subcommand)]
    pub command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write one `<DetailType>.schema.json` per event type (or print them all as one JSON object).
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    let SchemaCommand::Export { out } = args.command;
    let schemas = DomainEvent::schemas();
    match out {
        None => println!("{}", serde_json::to_string_pretty(&schemas)?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, schema) in &schemas {
                let path = dir.join(format!("{name}.schema.json"));
                std::fs::write(&path, serde_json::to_string_pretty(schema)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
