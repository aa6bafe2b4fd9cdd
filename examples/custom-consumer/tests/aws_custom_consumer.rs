//! The audit log on the AWS backend, against a moto server: the example's
//! own binary provisions its queue, DLQ and rule from the topology entry,
//! then runs it (`up --backend aws`, whose pollers stand in for Lambda's
//! event source mappings), and the entry lands in DynamoDB.
//! Skipped (with a message) when `SWITCHYARD_MOTO_ENDPOINT` is unset;
//! `scripts/test-aws` sets it.

mod common;

use std::time::Duration;

use switchyard_shared::aws::sdk::sqs::types::QueueAttributeName;
use switchyard_shared::aws::AwsClients;
use switchyard_shared::ports::Table;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_creates_the_audit_log_and_up_runs_it_on_moto() {
    let Some(endpoint) = std::env::var("SWITCHYARD_MOTO_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!("skipped: SWITCHYARD_MOTO_ENDPOINT is not set; run scripts/test-aws");
        return;
    };
    let env = [
        ("SWITCHYARD_AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];

    let out = common::command()
        .args(["provision", "--backend", "aws"])
        .envs(env)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for resource in [
        "queue audit-log",
        "queue audit-log-dlq",
        "audit-order-lifecycle",
    ] {
        let created = |l: &&str| l.starts_with("created") && l.contains(resource);
        assert!(said.lines().any(|l| created(&l)), "{resource}: {said}");
    }

    // The queue dead-letters into its DLQ after the topology's receive count.
    let topology = switchyard_custom_consumer::topology();
    let audit = topology
        .consumers
        .iter()
        .find(|c| c.name == "audit-log")
        .unwrap();
    let clients = AwsClients::connect(Some(&endpoint)).await;
    let url = clients
        .sqs
        .get_queue_url()
        .queue_name(audit.queue_name())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    let target = redrive["deadLetterTargetArn"].as_str().unwrap_or_default();
    assert!(
        target.ends_with(&format!(":{}", audit.dlq_name())),
        "{redrive}"
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5",
        "{redrive}"
    );

    // Run it: an order placed through the API reaches the audit log through
    // EventBridge and SQS, and its entry is in DynamoDB.
    let up = common::up(&["--backend", "aws"], &env);
    common::place_order(&up.addr, "o-on-moto").await;
    let table = switchyard_shared::aws::DynamoTable::new(&clients.dynamodb, &topology.table.name);
    let entries = switchyard_shared::conformance::eventually(
        "the audit entry in DynamoDB",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let items = table.query("AUDIT#o-on-moto", None).await.ok()?;
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["detail_type"], "OrderPlaced");
}
