//! The options every command takes, and the topology they name.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use router_rules::Topology;
use switchyard_consumers::Registry;

use crate::RuntimeOptions;

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SWITCHYARD_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Topology file (defaults to the built-in router-rules/topology.yaml).
    #[arg(long, global = true, env = "SWITCHYARD_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// What the program was built with (not a flag): see [`crate::App`].
    #[arg(skip)]
    pub setup: Setup,
}

/// The topology used when no `--topology` is given, and the handlers.
#[derive(Debug, Clone)]
pub struct Setup {
    pub topology: Option<Arc<Topology>>,
    pub registry: Arc<Registry>,
}

impl Default for Setup {
    /// Switchyard's own topology and handlers.
    fn default() -> Self {
        Setup {
            topology: None,
            registry: Arc::new(Registry::builtin()),
        }
    }
}

impl GlobalArgs {
    /// The runtime's defaults, with this program's handlers.
    pub fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            registry: self.setup.registry.clone(),
            ..RuntimeOptions::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Loads the topology named on the command line, or the program's own; every
/// consumer in it must name a handler the program has.
pub fn load_topology(global: &GlobalArgs) -> anyhow::Result<Topology> {
    let topology = match (&global.topology, &global.setup.topology) {
        (Some(path), _) => Topology::load(path)?,
        (None, Some(own)) => Topology::clone(own),
        (None, None) => Topology::builtin(),
    };
    global.setup.registry.check(&topology)?;
    Ok(topology)
}
