//! `switchyard`: the one user-facing binary. It parses the command line and
//! hands off to the command's module; the work lives in the libraries.

use std::process::ExitCode;

use clap::Parser;

mod cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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
