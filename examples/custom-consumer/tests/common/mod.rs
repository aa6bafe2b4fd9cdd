//! The example's own binary as a child process, and HTTP to its API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `custom-switchyard` with `args`, killed and reaped when dropped.
pub struct Running {
    child: Child,
    /// The API's `host:port`.
    pub addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custom-switchyard"))
}

/// Starts `custom-switchyard up --port 0 ARGS` and returns once it printed
/// its API address (its consumers are running by then).
pub fn up(args: &[&str], envs: &[(&str, &str)]) -> Running {
    let mut child = command()
        .args(["up", "--port", "0"])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting custom-switchyard up");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading up's first line");
    let addr = switchyard::cli::up::announced_address(&line)
        .unwrap_or_else(|| panic!("no API address in {line:?}"))
        .to_owned();
    Running { child, addr }
}

/// The body of `GET path`.
#[allow(dead_code)] // each test file compiles this module; not every one reads pages
pub async fn get(addr: &str, path: &str) -> String {
    let response = reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    response.text().await.expect("a page")
}

/// Places order `order_id` through the API; its event's id.
pub async fn place_order(addr: &str, order_id: &str) -> String {
    let body = serde_json::json!({
        "order_id": order_id,
        "customer_id": "c-1",
        "items": [{"sku": "mug", "quantity": 1, "unit_price_cents": 900}],
        "currency": "EUR",
    });
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/orders"))
        .json(&body)
        .send()
        .await
        .expect("POST /orders");
    assert_eq!(response.status().as_u16(), 202, "{response:?}");
    let value: serde_json::Value = response.json().await.expect("a JSON answer");
    value["event_id"].as_str().expect("an event id").to_owned()
}
