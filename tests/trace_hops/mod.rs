//! One trace across every hop, read back from `switchyard up --log-format
//! json`: the same check on the embedded backend (tests/http_api.rs) and on
//! moto (tests/aws_flow.rs).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C recommendation's own example: the caller's span.
pub const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// The hops one order takes, each the parent of the next, as the built-in
/// topology names them.
pub const CHAIN: [&str; 4] = [
    "orders-api",
    "order-processor",
    "stream-reactor",
    "notifier",
];

/// The log filter that shows one line inside each hop's span.
pub const LOG_FILTER: &str = "warn,switchyard_producer=debug,switchyard_consumers=debug";

/// `switchyard up` as a child process, logging JSON into `log`, killed when dropped.
pub struct UpWithLog {
    child: Child,
    pub addr: String,
}

impl Drop for UpWithLog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl UpWithLog {
    /// Starts `cmd` (a `switchyard up ...` command) with JSON logs into
    /// `log`, and returns once it printed its URL.
    pub fn start(mut cmd: Command, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let mut child = cmd
            .args(["--log-format", "json"])
            .env("SWITCHYARD_LOG", LOG_FILTER)
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("starting switchyard up");
        let mut line = String::new();
        // Blocks until `up` prints its first line (or exits).
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("up prints its URL, said {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        UpWithLog { child, addr }
    }

    /// Places an order through the HTTP API as a caller in trace [`CALLER`].
    pub async fn place_traced_order(&self, order_id: &str) {
        let res = reqwest::Client::new()
            .post(format!("http://{}/orders", self.addr))
            .header("traceparent", CALLER)
            .json(&json!({"order_id": order_id, "customer_id": "c-trace", "items": [{"sku": "s", "quantity": 1, "unit_price_cents": 700}], "currency": "EUR"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{:?}", res.text().await);
    }
}

/// A hop as its span reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub span_id: String,
    pub parent_id: Option<String>,
}

/// Every hop of trace `trace_id` in a JSON log, by consumer (every line of a
/// hop must name the same span).
pub fn hops(log: &str, trace_id: &str) -> BTreeMap<String, Hop> {
    let mut hops: BTreeMap<String, Hop> = BTreeMap::new();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let span = &entry["span"];
        if span["trace_id"] != trace_id {
            continue;
        }
        let field = |name: &str| span[name].as_str().map(str::to_owned);
        let consumer = field("consumer").expect("a hop's span names its consumer");
        let hop = Hop {
            span_id: field("span_id").expect("a hop's span has its span id"),
            parent_id: field("parent_id"),
        };
        let first = hops.entry(consumer.clone()).or_insert_with(|| hop.clone());
        assert_eq!(*first, hop, "{consumer} logged two spans in one trace");
    }
    hops
}

/// Waits until the log at `path` shows every hop of `chain` (consumer names,
/// [`CHAIN`] in the built-in topology) in trace [`CALLER_TRACE_ID`], then
/// checks each is the child of the one before, the first a child of the caller.
pub async fn assert_one_trace_across_hops(path: &Path, chain: &[String], deadline: Duration) {
    let started = Instant::now();
    let hops = loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let hops = hops(&log, CALLER_TRACE_ID);
        if chain.iter().all(|c| hops.contains_key(c)) {
            break hops;
        }
        assert!(
            started.elapsed() < deadline,
            "after {deadline:?} the trace has only {hops:?}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut parent = CALLER_SPAN_ID.to_owned();
    for consumer in chain {
        let hop = &hops[consumer];
        assert_eq!(
            hop.parent_id.as_deref(),
            Some(parent.as_str()),
            "{consumer}'s parent; hops: {hops:?}"
        );
        assert_ne!(hop.span_id, parent, "{consumer} has a span of its own");
        parent = hop.span_id.clone();
    }
}
