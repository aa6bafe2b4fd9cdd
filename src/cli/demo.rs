//! `switchyard demo`: the whole flow on a fresh data dir, with a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use switchyard::demo::{self, DemoOptions};

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
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let data_dir = demo::fresh_data_dir(args.data_dir)?;
    let outcome = demo::run(DemoOptions {
        orders: args.orders,
        data_dir,
        quiet_timeout: Duration::from_secs(args.timeout_s),
    })
    .await?;
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
