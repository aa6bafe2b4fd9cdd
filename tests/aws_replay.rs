//! Replay, publish and state dump on the AWS backend, against moto:
//! `switchyard replay LOG --backend aws`, reordered, publishes a log into
//! the provisioned resources, `switchyard up --backend aws` consumes it, and
//! the table reaches the state the embedded backend reaches on the same log
//! (`--expect` waits for it; `state dump --backend aws` prints it).
//! `switchyard publish --backend aws` then adds one more order.
//!
//! moto is wrong here: its TransactWriteItems is not atomic under concurrent
//! requests (two conditional creates of one key can both succeed; seen with
//! moto 5 and eight threads), so two deliveries of one order's events that
//! overlap in time can lose an update there, never on DynamoDB. The replay
//! therefore runs at a modest rate and without duplicates (the embedded
//! equivalence tests cover duplicates); the reordering still makes early
//! events wait for their turn.
//!
//! Needs `SWITCHYARD_MOTO_ENDPOINT` (scripts/test-aws sets it); skipped
//! with a message without it.

mod aws_common;

use std::process::Command;
use std::time::Duration;

use router_rules::Topology;
use switchyard::replay::generate::orders_with_images;
use switchyard::replay::{replay_embedded, EmbeddedTarget, ReplayOptions};
use switchyard::state::StateSnapshot;
use switchyard_shared::items::order_key;
use switchyard_shared::ports::Table;

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_log_replayed_into_moto_reaches_the_embedded_state() {
    let endpoint = moto_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let log = orders_with_images(11, 12);
    assert!(!log.blobs.is_empty(), "the log should carry an image");
    let log_path = dir.path().join("orders.jsonl");
    log.write(&log_path).unwrap();

    // The state the embedded backend reaches on the same log, fault-free.
    let embedded = replay_embedded(
        &log,
        &Topology::builtin(),
        &EmbeddedTarget::Memory {
            blob_dir: dir.path().join("blobs"),
        },
        &ReplayOptions::default(),
    )
    .await
    .unwrap();
    assert!(embedded.report.unaccounted.is_empty());
    let expected_path = dir.path().join("expected.json");
    std::fs::write(&expected_path, embedded.snapshot.to_json()).unwrap();

    run_ok(aws_common::switchyard(&endpoint).args(["provision", "--backend", "aws"]));
    let _up = aws_common::up_on_aws(&endpoint);

    // Consumer-side faults need the embedded runtime: refused, not ignored.
    let refused = aws_common::switchyard(&endpoint)
        .args(["replay", "--backend", "aws", "--faults", "crash=0.1"])
        .arg(&log_path)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("duplicate and reorder only"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let report = run_ok(
        aws_common::switchyard(&endpoint)
            .args([
                "replay",
                "--backend",
                "aws",
                "--quiet",
                "--rate",
                "10",
                "--faults",
                "reorder=4",
                "--seed",
                "5",
                "--timeout",
                "120",
                "--expect",
            ])
            .arg(&expected_path)
            .arg(&log_path),
    );
    assert!(report.contains("expected state:      matches"), "{report}");
    assert!(
        report.contains(&format!("blobs uploaded:      {}", log.blobs.len())),
        "{report}"
    );

    let dumped =
        run_ok(aws_common::switchyard(&endpoint).args(["state", "dump", "--backend", "aws"]));
    let dumped: StateSnapshot = serde_json::from_str(&dumped).unwrap();
    assert_eq!(dumped.diff(&embedded.snapshot), Vec::<String>::new());

    // One more order with `publish --backend aws`.
    let event = serde_json::json!({
        "detail-type": "OrderPlaced",
        "detail": {"order_id": "o-published", "customer_id": "c-9",
                   "items": [{"sku": "mug", "quantity": 1, "unit_price_cents": 700}],
                   "total_cents": 700, "currency": "EUR"}
    });
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let out = run_ok(
        aws_common::switchyard(&endpoint)
            .args(["publish", "--backend", "aws"])
            .arg(&event_path),
    );
    assert!(out.starts_with("published OrderPlaced "), "{out}");
    let clients = aws_common::clients(&endpoint).await;
    let table = switchyard_shared::aws::DynamoTable::new(
        &clients.dynamodb,
        &Topology::builtin().table.name,
    );
    let order = aws_common::eventually(
        "the published order in DynamoDB",
        Duration::from_secs(60),
        || {
            let table = table.clone();
            async move { table.get(&order_key("o-published")).await.ok().flatten() }
        },
    )
    .await;
    assert_eq!(order["status"], "PLACED");
}
