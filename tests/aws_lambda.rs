//! A built Lambda binary under `cargo lambda watch`: the order processor
//! (from `cargo lambda build --release`) gets a real `SqsEvent` through the
//! Lambda runtime API emulator, answers an `SqsBatchResponse`, and its write
//! lands in moto's DynamoDB.
//!
//! Needs `SWITCHYARD_MOTO_ENDPOINT`, `SWITCHYARD_LAMBDA_DIR` (the
//! `target/lambda` folder) and `cargo lambda` on PATH; scripts/test-aws sets
//! all three. Skipped with a message otherwise.

mod aws_common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde_json::json;
use switchyard::lambda_bench::sqs_record;
use switchyard_shared::events::{EventType, OrderPlaced};
use switchyard_shared::items::order_key;
use switchyard_shared::ports::Table;

/// Kills and reaps a child process when the test ends, pass or fail.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn order_processor_binary_answers_a_real_sqs_event() {
    let endpoint = moto_or_skip!();
    let Some(dir) = std::env::var_os("SWITCHYARD_LAMBDA_DIR").map(PathBuf::from) else {
        eprintln!("skipped: SWITCHYARD_LAMBDA_DIR is not set; scripts/test-aws builds the Lambda binaries and sets it");
        return;
    };
    let bootstrap = dir.join("order-processor").join("bootstrap");
    assert!(
        bootstrap.is_file(),
        "{} is missing: run `cargo lambda build --release`",
        bootstrap.display()
    );

    let (_, topology, resources) = aws_common::provisioned(&endpoint).await;

    // The runtime API emulator alone; the function is the release binary, started below.
    let port = free_port();
    let _watch = Reaped(
        Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                // An invocation the function never answers fails instead of hanging the test.
                "--timeout",
                "60",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cargo lambda on PATH"),
    );
    aws_common::eventually(
        "cargo lambda watch to listen",
        Duration::from_secs(60),
        || async {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        },
    )
    .await;

    let _function = Reaped(
        Command::new(&bootstrap)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("SWITCHYARD_TABLE", &topology.table.name)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the bootstrap binary"),
    );

    let placed = OrderPlaced {
        order_id: "o-lambda".into(),
        customer_id: "c-1".into(),
        items: vec![],
        total_cents: 500,
        currency: "EUR".into(),
    }
    .into_envelope();
    let event = json!({"Records": [
        sqs_record("order-processor", "m-good", &placed.to_json()),
        sqs_record("order-processor", "m-bad", "{not json"),
    ]});
    // `cargo lambda invoke` posts it to the emulator's Invoke API, as `aws lambda invoke` would.
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("sqs-event.json");
    std::fs::write(&payload, event.to_string()).unwrap();
    let out = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--output-format",
            "json",
            "--data-file",
        ])
        .arg(&payload)
        .arg("_")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "invoke failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: SqsBatchResponse = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-bad"], "only the malformed message comes back");

    let order = resources
        .table
        .get(&order_key("o-lambda"))
        .await
        .unwrap()
        .expect("the order item is in moto's DynamoDB");
    assert_eq!(order["status"], "PLACED");
}
