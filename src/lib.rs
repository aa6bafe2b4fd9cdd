//! Switchyard, the application: the embedded system, the pollers that play
//! Lambda's event source mappings, the demo and the state snapshots. The
//! `switchyard` binary is a thin command line over this library.

pub mod console;
pub mod demo;
pub mod lambda_bench;
pub mod provision;
pub mod replay;
pub mod runtime;
pub mod scenario;
pub mod state;
pub mod system;

pub use system::{EmbeddedSystem, RuntimeOptions};
