//! `switchyard` with the audit log in it: the same commands (`up`, `replay`,
//! `provision`, `dlq`, `state dump`, `topology export`...) on this crate's
//! topology and handlers.

use std::process::ExitCode;

fn main() -> ExitCode {
    switchyard::App::new()
        .topology(switchyard_custom_consumer::topology())
        .registry(switchyard_custom_consumer::registry())
        .run()
}
