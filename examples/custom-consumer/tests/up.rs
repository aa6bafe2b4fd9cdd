//! The example's own binary runs the whole system with the audit log in it:
//! `custom-switchyard up` on the embedded backend.

mod common;

use std::time::Duration;

use switchyard_shared::conformance::eventually;

#[tokio::test]
async fn up_runs_the_audit_log_beside_the_builtin_consumers() {
    let data = tempfile::tempdir().unwrap();
    let up = common::up(&["--data-dir", &data.path().display().to_string()], &[]);
    let event_id = common::place_order(&up.addr, "o-audited").await;

    // The console's lineage of the event: the audit log handled it and wrote
    // its entry, and the order processor did its part.
    let lineage = format!("/console/events/{event_id}");
    let page = eventually(
        "the audit entry",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let page = common::get(&up.addr, &lineage).await;
            page.contains("audit AUDIT#o-audited").then_some(page)
        },
    )
    .await;
    assert!(page.contains("audit-log: succeeded"), "{page}");
    assert!(page.contains("order-processor: succeeded"), "{page}");

    // The queue page lists it with the others.
    let queues = common::get(&up.addr, "/console/queues").await;
    assert!(queues.contains("audit-log-dlq"), "{queues}");
}

#[test]
fn a_topology_naming_a_handler_nobody_registered_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("typo.yaml").display().to_string();
    let data = dir.path().join("data").display().to_string();
    let text = include_str!("../topology.yaml").replace("handler: audit-log", "handler: audit-lg");
    std::fs::write(&topology, text).unwrap();
    let out = common::command()
        .args([
            "--topology",
            &topology,
            "up",
            "--port",
            "0",
            "--data-dir",
            &data,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(r#"consumer audit-log: no handler named "audit-lg" is registered (registered: audit-log, image-processor, notifier, order-processor)"#),
        "{said}"
    );
}
