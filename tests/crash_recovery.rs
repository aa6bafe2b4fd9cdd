//! `kill -9` of `switchyard up` in the middle of 1,000 orders, then a
//! restart: every acknowledged command survives, and every order ends in
//! its final state.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use router_rules::Topology;
use serde_json::json;
use switchyard::state::StateSnapshot;
use switchyard::EmbeddedSystem;
use switchyard_shared::config::DataDir;
use switchyard_shared::events::OrderStatus;
use uuid::Uuid;

const ORDERS: usize = 1000;
const KILL_AFTER: usize = 400;

struct Up {
    child: Child,
    base: String,
}

impl Drop for Up {
    // A failing test must not leave a server behind holding its pipes.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_up(data_dir: &Path) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting switchyard up");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("up prints its URL")
        .to_owned();
    Up { child, base }
}

/// The requests for order `i`, each with its own idempotency key, so a retry is a duplicate.
fn requests(i: usize) -> Vec<(String, serde_json::Value, Uuid)> {
    let id = format!("k-{i:04}");
    // The v7 builder overwrites the version nibble of byte 0 and the variant bits of
    // byte 2 of these ten; keep the step and the index clear of them.
    let key = |step: u8| {
        let random = [step, 0, 0, (i >> 8) as u8, i as u8, 0, 0, 0, 0, 0];
        uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000, &random).into_uuid()
    };
    let mut out = vec![(
        "/orders".to_owned(),
        json!({"order_id": id, "customer_id": "c", "items": [{"sku": "s", "quantity": 2, "unit_price_cents": 150}], "currency": "EUR"}),
        key(1),
    )];
    if i % 3 == 2 {
        out.push((
            format!("/orders/{id}/cancel"),
            json!({"reason": "changed mind"}),
            key(2),
        ));
    } else {
        out.push((
            format!("/orders/{id}/pay"),
            json!({"payment_id": format!("p{i}"), "amount_cents": 300}),
            key(3),
        ));
        out.push((
            format!("/orders/{id}/ship"),
            json!({"carrier": "DHL", "tracking_number": format!("t{i}")}),
            key(4),
        ));
    }
    out
}

fn expected(i: usize) -> OrderStatus {
    if i % 3 == 2 {
        OrderStatus::Cancelled
    } else {
        OrderStatus::Shipped
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    (path, body, key): &(String, serde_json::Value, Uuid),
) -> Result<u16, reqwest::Error> {
    let r = client
        .post(format!("{base}{path}"))
        .header("Idempotency-Key", key.to_string())
        .json(body)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let all: Vec<_> = (0..ORDERS).flat_map(requests).collect();
    let cut = (0..KILL_AFTER).map(|i| requests(i).len()).sum::<usize>();

    let mut up = start_up(dir.path());
    for r in &all[..cut] {
        assert_eq!(send(&client, &up.base, r).await.unwrap(), 202, "{r:?}");
    }
    up.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    up.child.wait().unwrap();

    let up = start_up(dir.path());
    for (n, r) in all[cut..].iter().enumerate() {
        let status = send(&client, &up.base, r).await.unwrap();
        // Only commands whose state already moved on can be refused, and only right after the restart.
        assert!(
            status == 202 || (n < 3 && status == 409),
            "{r:?} answered {status}"
        );
    }

    let data_dir = DataDir::new(dir.path());
    // `up` owns the data dir: look at it read-only, as of its last commit, afresh each round.
    let observe = || EmbeddedSystem::open_for_reading(&data_dir, Arc::new(Topology::builtin()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let observer = loop {
        let observer = observe().unwrap();
        let snapshot = StateSnapshot::of(&*observer.table).await.unwrap();
        let wrong: Vec<String> = (0..ORDERS)
            .filter(|i| {
                snapshot
                    .orders
                    .get(&format!("k-{i:04}"))
                    .and_then(|o| o.status)
                    != Some(expected(*i))
            })
            .map(|i| {
                format!(
                    "k-{i:04}: {:?}",
                    snapshot.orders.get(&format!("k-{i:04}")).map(|o| o.status)
                )
            })
            .collect();
        if wrong.is_empty() {
            break observer;
        }
        assert!(
            Instant::now() < deadline,
            "{} orders not final, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dead: u64 = observer
        .queue_stats()
        .unwrap()
        .iter()
        .filter(|q| q.name.ends_with("-dlq"))
        .map(|q| q.visible + q.in_flight)
        .sum();
    assert_eq!(dead, 0, "nothing should be dead-lettered");
}
