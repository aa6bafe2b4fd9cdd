//! The options every command takes, and the topology they name.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SWITCHYARD_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Topology file (defaults to the built-in router-rules/topology.yaml).
    #[arg(long, global = true, env = "SWITCHYARD_TOPOLOGY")]
    pub topology: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Loads the topology named on the command line, or the built-in one.
pub fn load_topology(global: &GlobalArgs) -> anyhow::Result<router_rules::Topology> {
    Ok(match &global.topology {
        Some(path) => router_rules::Topology::load(path)?,
        None => router_rules::Topology::builtin(),
    })
}
