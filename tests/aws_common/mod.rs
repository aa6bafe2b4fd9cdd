//! Shared by the `aws_*` tests: the moto endpoint, unique resource names
//! (tests of one file run in parallel against one moto), and waiting for a
//! condition with a deadline.
//!
//! The tests read the endpoint from `SWITCHYARD_MOTO_ENDPOINT`. Without it
//! they print why and pass, so plain `cargo test` needs no moto;
//! `scripts/test-aws` starts moto and sets it.

#![allow(dead_code)] // each test file uses part of this

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use router_rules::topology::{RouteSpec, Subscription};
use router_rules::Topology;
use switchyard::aws::provision::{provision, AwsResources};
use switchyard_shared::aws::AwsClients;

pub const ENDPOINT_VAR: &str = "SWITCHYARD_MOTO_ENDPOINT";

/// The moto endpoint, or `None` after saying the test is skipped.
pub fn endpoint() -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: {ENDPOINT_VAR} is not set; run scripts/test-aws to test against moto"
            );
            None
        }
    }
}

/// Returns from the test early (skipped) when no moto endpoint is set.
#[macro_export]
macro_rules! moto_or_skip {
    () => {
        match aws_common::endpoint() {
            Some(url) => url,
            None => return,
        }
    };
}

pub async fn clients(endpoint: &str) -> AwsClients {
    AwsClients::connect(Some(endpoint)).await
}

/// A short random suffix for resource names.
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// The built-in topology with every resource name suffixed, so tests that
/// provision in parallel never share a queue, table, bus or topic.
pub fn unique_topology(suffix: &str) -> Topology {
    let mut t = Topology::builtin();
    let s = |name: &str| format!("{name}-{suffix}");
    t.table.name = s(&t.table.name);
    t.bucket.name = s(&t.bucket.name);
    for b in &mut t.buses {
        b.name = s(&b.name);
    }
    for topic in &mut t.topics {
        topic.name = s(&topic.name);
    }
    let rename = |route: &mut RouteSpec| {
        route.bus = route.bus.as_deref().map(s);
        route.topic = route.topic.as_deref().map(s);
    };
    t.routes.values_mut().for_each(rename);
    t.api.permissions.publish.iter_mut().for_each(rename);
    for sc in &mut t.stream_consumers {
        sc.permissions.publish.iter_mut().for_each(rename);
    }
    for c in &mut t.consumers {
        c.permissions.publish.iter_mut().for_each(rename);
        c.name = s(&c.name);
        for sub in &mut c.subscriptions {
            match sub {
                Subscription::Bus(b) => b.bus = s(&b.bus),
                Subscription::Topic(tp) => tp.topic = s(&tp.topic),
            }
        }
    }
    for sc in &mut t.stream_consumers {
        sc.name = s(&sc.name);
    }
    t.validate().expect("a renamed topology stays valid");
    t
}

/// Polls `check` until it returns `Some`, or panics after `deadline` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    switchyard_shared::conformance::eventually(what, deadline, Duration::from_millis(100), check)
        .await
}

/// A freshly provisioned topology of unique names, and its adapters.
pub async fn provisioned(endpoint: &str) -> (AwsClients, Topology, AwsResources) {
    let clients = clients(endpoint).await;
    let topology = unique_topology(&suffix());
    provision(&topology, &clients).await.expect("provision");
    let resources = AwsResources::connect(&topology, &clients)
        .await
        .expect("connect");
    (clients, topology, resources)
}

/// The URL of a queue by name.
pub async fn queue_url(clients: &AwsClients, name: &str) -> String {
    let out = clients.sqs.get_queue_url().queue_name(name).send().await;
    out.unwrap_or_else(|e| panic!("queue {name}: {e}"))
        .queue_url
        .expect("a queue URL")
}

/// A child process killed and reaped when the test ends, pass or fail.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `switchyard` binary, pointed at the moto server.
pub fn switchyard(endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.env("SWITCHYARD_AWS_ENDPOINT", endpoint)
        .env("AWS_REGION", "us-east-1");
    cmd
}

/// `switchyard provision --backend aws` with `extra` arguments, against
/// moto; panics with what it said if it fails.
pub fn provision_with_cli(endpoint: &str, extra: &[&std::ffi::OsStr]) {
    let out = switchyard(endpoint)
        .args(["provision", "--backend", "aws"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "provision: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `switchyard up --backend aws` and returns once it printed its API
/// address (its pollers are running by then).
pub fn up_on_aws(endpoint: &str) -> Reaped {
    let mut up = Reaped(
        switchyard(endpoint)
            .args(["up", "--backend", "aws", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting switchyard up"),
    );
    let mut line = String::new();
    BufReader::new(up.0.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading up's first line");
    assert!(
        line.contains("API on http://127.0.0.1:"),
        "up said: {line:?}"
    );
    up
}
