//! `switchyard demo`: the whole flow on a fresh data dir, with a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use crate::console::{Console, Recorder, RecorderLimits};
use crate::demo::{self, DemoOptions};
use crate::{EmbeddedSystem, RuntimeOptions};
use clap::Args;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many orders to place.
    #[arg(long, default_value_t = 200)]
    pub orders: usize,
    /// A fresh (empty or missing) data dir; default: a new folder under the system temp dir.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How long each phase may take to settle.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
    /// Then keep the system up and serve the console (and the API) on it until Ctrl-C.
    #[arg(long)]
    pub console: bool,
    /// The console's port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080, requires = "console")]
    pub port: u16,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let data_dir = demo::fresh_data_dir(args.data_dir)?;
    let options = DemoOptions {
        orders: args.orders,
        data_dir,
        quiet_timeout: Duration::from_secs(args.timeout_s),
    };
    if args.console {
        return with_console(options, args.port).await;
    }
    let outcome = demo::run(options).await?;
    report(&outcome)
}

fn report(outcome: &demo::DemoOutcome) -> anyhow::Result<ExitCode> {
    print!("{}", outcome.summary);
    if outcome.unaccounted.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("\nunaccounted for:");
        for line in &outcome.unaccounted {
            eprintln!("  {line}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The demo with the console recording it, then serving it until Ctrl-C.
async fn with_console(options: DemoOptions, port: u16) -> anyhow::Result<ExitCode> {
    let topology = Arc::new(router_rules::Topology::builtin());
    let mut system = EmbeddedSystem::open(&options.data_dir, topology.clone())?;
    let mut runtime = RuntimeOptions::default();
    let recorder = Recorder::new(topology, RecorderLimits::default())?;
    recorder.install(&mut system, &mut runtime);
    system.start(&runtime).await?;
    // Bound first, so a port in use fails before the demo runs.
    let listener = super::up::bind_local(port).await?;
    let outcome = demo::run_on(&system, &options).await?;
    let code = report(&outcome)?;
    let addr = listener.local_addr()?;
    super::up::announce(&format!("\nconsole on http://{addr}/ (Ctrl-C to stop)\n"))?;
    let console = crate::console::router(Console::new(&system, recorder));
    super::up::serve_api(listener, system.api_state(), &runtime, console).await?;
    system.shutdown().await;
    Ok(code)
}
