//! Conformance suites: one per port, the same for every backend.
//!
//! Each suite takes the port as a trait object plus the adapter's
//! [`Capabilities`](crate::ports::Capabilities), and panics with a message
//! naming the case on the first broken expectation. Cases the capabilities
//! rule out are skipped with a printed note. The suites share a backend with
//! whatever else is in it: every run uses its own key prefix and queue names
//! (see [`run_id`]) and never assumes an empty table, stream or bucket.
//!
//! Time-dependent cases wait for a condition with a deadline; they never
//! assert on elapsed time.

mod blobs;
mod queue;
mod stream;
mod table;

use std::future::Future;
use std::time::Duration;

pub use blobs::blob_suite;
pub use queue::{queue_suite, EmbeddedQueueHarness, QueueHarness};
pub use stream::stream_suite;
pub use table::table_suite;

/// How long any "eventually" in the suites may take before it is a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A short id unique to this run, for key prefixes and queue names.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Prints why a case did not run (the test output shows it).
pub fn skip(suite: &str, case: &str, why: &str) {
    println!("conformance {suite}/{case}: SKIPPED: {why}");
}

/// Probes until it yields `Some`, for at most `deadline`, pausing `interval`
/// between probes. Panics naming `what` if the deadline passes.
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    interval: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() >= until {
            panic!("{what}: not reached within {deadline:?}");
        }
        tokio::time::sleep(interval).await;
    }
}
