//! The command line on a stopped data dir: publish (good and bad events),
//! state dump, dlq, schema and topology export.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn switchyard(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn publish_refuses_malformed_events_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The second event is bad, so the first must not be published either.
    let batch = r#"[
        {"detail-type": "OrderPlaced", "detail": {"order_id": "p-1", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}},
        {"detail-type": "OrderPaid", "detail": {"order_id": "p-1", "payment_id": "x", "amount_cents": -5}}
    ]"#;
    let out = switchyard(&["publish", "--data-dir", d, "-"], Some(batch));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("event 2")
            && err.contains("amount_cents")
            && err.contains("nothing was published"),
        "{err}"
    );
    let stats = switchyard(&["dlq", "list", "--data-dir", d], None);
    assert!(stats.status.success(), "{}", text(&stats.stderr));

    let good = r#"{"detail-type": "OrderPlaced", "detail": {"order_id": "p-1", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}}"#;
    let out = switchyard(&["publish", "--data-dir", d], Some(good));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("published OrderPlaced "));

    for (bad, needle) in [
        ("{not json", "not JSON"),
        (r#"{"detail-type":"Nope","detail":{}}"#, "Nope"),
        ("", "no event"),
    ] {
        let out = switchyard(&["publish", "--data-dir", d], Some(bad));
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(
            text(&out.stderr).contains(needle),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn schema_and_topology_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard(
        &["schema", "export", "--out", dir.path().to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("OrderPlaced.schema.json")).unwrap())
            .unwrap();
    assert!(schema["properties"]["order_id"].is_object());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 8);

    let out = switchyard(&["topology", "export"], None);
    let topology: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(topology["consumers"][0]["name"], "order-processor");
}

#[test]
fn dlq_commands_name_the_valid_queues() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard(
        &[
            "dlq",
            "show",
            "orders",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("order-processor-dlq"),
        "{}",
        text(&out.stderr)
    );
}
