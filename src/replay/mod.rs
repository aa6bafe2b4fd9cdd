//! Replay: event logs, and running them through the system with faults.
//!
//! - [`log`]: the JSONL event log (events with where they were published,
//!   plus the blobs they refer to), read and written.
//! - [`import`]: logs made from a DLQ or from EventBridge, SNS or SQS JSON exports.
//! - [`faults`]: the fault spec (`duplicate`, `reorder`, `crash`,
//!   `transient`, `visibility-expiry`) and how each is injected.
//! - [`replayer`]: selects, plans, publishes at a rate, waits until quiet,
//!   and gathers the outcome; [`report`] is what it prints.
//! - [`aws`]: replay into the AWS backend (AWS, or a moto server).
//! - [`generate`]: the seeded generators behind `tests/fixtures` and the benchmark.
//! - [`bench`](mod@bench): `switchyard bench e2e`; [`moto_leg`] is its run on the AWS backend against moto.

pub mod aws;
pub mod bench;
pub mod faults;
pub mod generate;
pub mod import;
pub mod log;
pub mod measure;
pub mod moto_leg;
pub mod replayer;
pub mod report;

pub use faults::{FaultSpec, Reorder};
pub use log::{Entry, EventLog, LogError, LogWriter, LoggedBlob, LoggedEvent};
pub use replayer::{
    replay_embedded, DeadLetter, EmbeddedTarget, Rate, Refusal, ReplayClock, ReplayOptions,
    ReplayOutcome,
};
pub use report::ReplayReport;
