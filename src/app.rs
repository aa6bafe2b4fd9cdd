//! The application entry point: the `switchyard` binary's `main`, and a
//! user's. A program built on Switchyard is its topology and its handlers,
//! handed to the same command line:
//!
//! ```no_run
//! use std::process::ExitCode;
//! use switchyard::App;
//! use switchyard_consumers::Registry;
//!
//! fn main() -> ExitCode {
//!     let registry = Registry::builtin(); // .sqs("audit-log", |deps| ...)
//!     App::new().registry(registry).run() // `up`, `replay`, `provision`, `dlq`...
//! }
//! ```
//!
//! `examples/custom-consumer` in this repository is such a program.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use router_rules::Topology;
use switchyard_consumers::Registry;

use crate::cli::{self, Cli, Setup};

/// A `switchyard` command line over a topology and a set of handlers.
#[derive(Debug, Default)]
pub struct App {
    setup: Setup,
}

impl App {
    /// Switchyard's own topology and handlers.
    pub fn new() -> Self {
        App::default()
    }

    /// The topology used when `--topology` names none.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.setup.topology = Some(Arc::new(topology));
        self
    }

    /// The handlers the topology's consumers name.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.setup.registry = Arc::new(registry);
        self
    }

    /// Parses the process's arguments and runs the command.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// [`App::run`] on `args` (the first is the program's name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args = Cli::parse_from(args);
        args.global.setup = self.setup;
        cli::init_logging(&args.global, &args.command);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime starts");
        // The command runs as a task on the worker threads, not on this thread
        // beside them: on a small machine a third busy thread only adds
        // context switches.
        let outcome = runtime.block_on(async {
            match tokio::spawn(cli::run(args)).await {
                Ok(outcome) => outcome,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        });
        match outcome {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(2)
            }
        }
    }
}
