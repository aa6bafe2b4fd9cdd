//! Switchyard, the application: the embedded system and its runtime (the
//! pollers that play Lambda's event source mappings), the AWS provisioner,
//! replays and scenarios for tests, the console, and the command line. The
//! `switchyard` binary is [`App`] with the built-in topology and handlers.
//!
//! A user's own binary is the same command line (`up`, `replay`,
//! `provision`, `dlq`, `state dump`...) with their topology and handlers in
//! it (`examples/custom-consumer/src/main.rs` in the repository):
//!
//! ```no_run
//! use switchyard::{App, Registry};
//!
//! fn main() -> std::process::ExitCode {
//!     // A file that extends the built-in topology (`extends: builtin`).
//!     let topology = router_rules::Topology::from_yaml(include_str!("../examples/custom-consumer/topology.yaml"))
//!         .expect("a valid topology");
//!     App::new()
//!         .topology(topology)
//!         .registry(Registry::builtin() /* .sqs("audit-log", ...) */)
//!         .run()
//! }
//! ```
//!
//! and its Lambda function is one named handler of the registry:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! switchyard::lambda::run_sqs("order-processor", switchyard::Registry::new().with_order_processor()).await
//! # }
//! ```
//!
//! Integration tests replay an event log through the whole system, on a
//! virtual clock, with faults ([`scenario::Scenario`]; its docs show one).

pub mod app;
pub mod aws;
pub mod cli;
pub mod console;
pub mod demo;
pub mod embedded;
pub mod lambda_bench;
pub mod replay;
pub mod runtime;
pub mod scenario;
pub mod state;

pub use app::App;
pub use embedded::EmbeddedSystem;
pub use runtime::RuntimeOptions;
/// A consumer as a Lambda function: [`lambda::run_sqs`], [`lambda::run_stream`].
pub use switchyard_consumers::lambda;
pub use switchyard_consumers::registry::{self, Registry};
