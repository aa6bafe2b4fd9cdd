//! `switchyard`: the one user-facing binary, Switchyard's own topology and
//! handlers on the command line of [`switchyard::App`].

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    switchyard::App::new().run()
}
