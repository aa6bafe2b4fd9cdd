//! `switchyard provision` against a moto server: it creates the whole
//! topology, a second run changes nothing, and drift is put back.
//! Skipped (with a message) when `SWITCHYARD_MOTO_ENDPOINT` is unset.

mod aws_common;

use std::process::Command;

use router_rules::topology::Subscription;
use serde_json::Value;
use switchyard::aws::provision::{provision, Change};
use switchyard_shared::aws::sdk::dynamodb::types::{StreamViewType, TimeToLiveStatus};
use switchyard_shared::aws::sdk::sqs::types::QueueAttributeName as A;
use switchyard_shared::aws::stream::checkpoint_table_name;
use switchyard_shared::items::TTL_ATTRIBUTE;

fn json(text: Option<&String>) -> Value {
    serde_json::from_str(text.expect("attribute present")).expect("attribute is JSON")
}

#[tokio::test]
async fn provisions_everything_once_and_then_changes_nothing() {
    let endpoint = moto_or_skip!();
    let clients = aws_common::clients(&endpoint).await;
    let topology = aws_common::unique_topology(&aws_common::suffix());

    let first = provision(&topology, &clients).await.unwrap();
    assert_eq!(first.count(Change::Updated), 0, "{first:?}");
    assert!(
        first.steps.iter().all(|s| s.change == Change::Created),
        "a fresh account: {first:?}"
    );
    let second = provision(&topology, &clients).await.unwrap();
    assert_eq!(second.steps.len(), first.steps.len());
    let changed: Vec<_> = second
        .steps
        .iter()
        .filter(|s| s.change != Change::Unchanged)
        .collect();
    assert!(changed.is_empty(), "a second run changed {changed:?}");

    // The queues: redrive to the DLQ, visibility, and a policy for each subscription's sender.
    for c in &topology.consumers {
        let url = aws_common::queue_url(&clients, &c.queue_name()).await;
        let attrs = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let redrive = json(attrs.get(&A::RedrivePolicy));
        assert_eq!(
            redrive["maxReceiveCount"].as_u64(),
            Some(u64::from(c.queue.max_receive_count)),
            "{}",
            c.name
        );
        assert!(redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", c.dlq_name())));
        assert_eq!(
            attrs[&A::VisibilityTimeout],
            c.queue.visibility_timeout_s.to_string()
        );
        let policy = json(attrs.get(&A::Policy));
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), c.subscriptions.len());
        for (s, sub) in statements.iter().zip(&c.subscriptions) {
            let (service, source_suffix) = match sub {
                Subscription::Bus(b) => (
                    "events.amazonaws.com",
                    format!(":rule/{}/{}", b.bus, b.rule),
                ),
                Subscription::Topic(t) => ("sns.amazonaws.com", format!(":{}", t.topic)),
            };
            assert_eq!(s["Principal"]["Service"], service);
            assert!(
                s["Condition"]["ArnEquals"]["aws:SourceArn"]
                    .as_str()
                    .unwrap()
                    .ends_with(&source_suffix),
                "{s}"
            );
        }
    }

    // The rules and their targets.
    for c in &topology.consumers {
        for sub in &c.subscriptions {
            match sub {
                Subscription::Bus(b) => {
                    let rule = clients
                        .eventbridge
                        .describe_rule()
                        .name(&b.rule)
                        .event_bus_name(&b.bus)
                        .send()
                        .await
                        .unwrap();
                    let pattern: Value =
                        serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
                    assert_eq!(pattern, b.pattern);
                    let targets = clients
                        .eventbridge
                        .list_targets_by_rule()
                        .rule(&b.rule)
                        .event_bus_name(&b.bus)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(targets.targets().len(), 1);
                    assert!(targets.targets()[0]
                        .arn()
                        .ends_with(&format!(":{}", c.queue_name())));
                }
                Subscription::Topic(t) => {
                    let topics = clients.sns.list_topics().send().await.unwrap();
                    let arn = topics
                        .topics()
                        .iter()
                        .filter_map(|x| x.topic_arn())
                        .find(|a| a.ends_with(&format!(":{}", t.topic)))
                        .unwrap();
                    let subs = clients
                        .sns
                        .list_subscriptions_by_topic()
                        .topic_arn(arn)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(subs.subscriptions().len(), 1);
                    let sub_arn = subs.subscriptions()[0].subscription_arn().unwrap();
                    let attrs = clients
                        .sns
                        .get_subscription_attributes()
                        .subscription_arn(sub_arn)
                        .send()
                        .await
                        .unwrap()
                        .attributes
                        .unwrap();
                    assert_eq!(attrs["RawMessageDelivery"], "true");
                    assert_eq!(json(attrs.get("FilterPolicy")), t.filter_policy);
                }
            }
        }
    }

    // The table with its stream, the checkpoint table without one, the bucket, the on-failure queue.
    let table = clients
        .dynamodb
        .describe_table()
        .table_name(&topology.table.name)
        .send()
        .await
        .unwrap();
    let spec = table.table().unwrap().stream_specification().unwrap();
    assert!(spec.stream_enabled());
    assert_eq!(
        spec.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert!(table.table().unwrap().latest_stream_arn().is_some());
    // Applied-event markers expire, as in infra/; the checkpoint table keeps everything.
    let ttl_of = |name: String| {
        let ddb = clients.dynamodb.clone();
        async move {
            ddb.describe_time_to_live()
                .table_name(name)
                .send()
                .await
                .unwrap()
                .time_to_live_description
        }
    };
    let ttl = ttl_of(topology.table.name.clone()).await.unwrap();
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    let checkpoint_ttl = ttl_of(checkpoint_table_name(&topology.table.name)).await;
    assert!(
        checkpoint_ttl.is_none_or(|d| d.time_to_live_status() == Some(&TimeToLiveStatus::Disabled))
    );
    let checkpoints = clients
        .dynamodb
        .describe_table()
        .table_name(checkpoint_table_name(&topology.table.name))
        .send()
        .await
        .unwrap();
    assert!(checkpoints
        .table()
        .unwrap()
        .stream_specification()
        .is_none_or(|s| !s.stream_enabled()));
    clients
        .s3
        .head_bucket()
        .bucket(&topology.bucket.name)
        .send()
        .await
        .unwrap();
    for s in &topology.stream_consumers {
        clients
            .sqs
            .get_queue_url()
            .queue_name(s.on_failure_queue())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn drift_is_put_back_and_only_there() {
    let endpoint = moto_or_skip!();
    let clients = aws_common::clients(&endpoint).await;
    let topology = aws_common::unique_topology(&aws_common::suffix());
    provision(&topology, &clients).await.unwrap();

    let c = &topology.consumers[0];
    let url = aws_common::queue_url(&clients, &c.queue_name()).await;
    clients
        .sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(A::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap();

    let report = provision(&topology, &clients).await.unwrap();
    let changed: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.change != Change::Unchanged)
        .map(|s| format!("{} {}", s.change, s.resource))
        .collect();
    assert_eq!(changed, [format!("updated queue {}", c.queue_name())]);
    let attrs = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(A::VisibilityTimeout)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs.attributes.unwrap()[&A::VisibilityTimeout],
        c.queue.visibility_timeout_s.to_string()
    );
}

#[test]
fn the_cli_provisions_and_refuses_the_embedded_backend() {
    let Some(endpoint) = aws_common::endpoint() else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_switchyard");
    let out = Command::new(bin)
        .args(["provision", "--backend", "embedded"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--backend aws"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = || {
        let out = Command::new(bin)
            .args(["provision", "--backend", "aws", "--endpoint", &endpoint])
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run();
    let second = run();
    let summary = second.lines().last().unwrap();
    assert!(summary.starts_with("0 created, 0 updated, "), "{second}");
}
