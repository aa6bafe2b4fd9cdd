//! The whole flow on moto, through the real AWS wire protocol:
//! 1. `switchyard provision` creates the topology in moto;
//! 2. `switchyard up --backend aws` runs against it;
//! 3. an `OrderPlaced` put on the bus with the aws CLI ends as an order item;
//! 4. an image put into S3 plus an `ImageUploaded` published to the topic
//!    with the aws CLI end as two thumbnails and a READY image item;
//! 5. the stream reactor's `OrderStatusChanged` reaches the bus.
//!
//! And a poison message ends in the DLQ after `maxReceiveCount`.
//!
//! Needs `SWITCHYARD_MOTO_ENDPOINT` and the aws CLI on PATH (scripts/test-aws
//! provides both); skipped with a message without the endpoint.

mod aws_common;
mod trace_hops;

use std::process::Command;
use std::time::{Duration, Instant};

use router_rules::Topology;
use serde_json::{json, Value};
use switchyard::aws::provision::AwsResources;
use switchyard_shared::aws::sdk::sqs::types::QueueAttributeName;
use switchyard_shared::aws::{AwsClients, SqsQueue};
use switchyard_shared::events::{sns_attributes, EventType, ImageUploaded};
use switchyard_shared::items::{image_key, order_key};
use switchyard_shared::ports::{BlobStore, Queue, Table};
use switchyard_shared::BlobKey;

const FLOW_DEADLINE: Duration = Duration::from_secs(90);

/// Runs the aws CLI against moto; panics with its output if it fails.
fn aws(endpoint: &str, args: &[&str]) -> Value {
    let out = Command::new("aws")
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("the aws CLI on PATH (scripts/test-aws installs it into .venv)");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn sample_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(960, 720, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A queue with a rule on the bus that copies every `OrderStatusChanged` into it.
async fn observe_status_changes(clients: &AwsClients, topology: &Topology) -> SqsQueue {
    let name = "flow-observer";
    let url = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let bus = &topology.buses[0].name;
    clients
        .eventbridge
        .put_rule()
        .name("flow-observer")
        .event_bus_name(bus)
        .event_pattern(json!({"detail-type": ["OrderStatusChanged"]}).to_string())
        .send()
        .await
        .unwrap();
    let target = switchyard_shared::aws::sdk::eventbridge::types::Target::builder()
        .id("observer")
        .arn(arn)
        .build()
        .unwrap();
    clients
        .eventbridge
        .put_targets()
        .rule("flow-observer")
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .unwrap();
    SqsQueue::connect(&clients.sqs, name).await.unwrap()
}

#[tokio::test]
async fn order_and_image_flow_through_moto() {
    let endpoint = moto_or_skip!();
    let started = Instant::now();
    let topology = Topology::builtin();
    let clients = aws_common::clients(&endpoint).await;

    // 1. provision, with the CLI.
    aws_common::provision_with_cli(&endpoint, &[]);
    let observer = observe_status_changes(&clients, &topology).await;

    // 2. up, against moto; it prints its API address once ready.
    let _up = aws_common::up_on_aws(&endpoint);
    let resources = AwsResources::connect(&topology, &clients).await.unwrap();

    // 3. OrderPlaced via the aws CLI onto the bus -> the order item.
    let detail = json!({"order_id": "o-flow", "customer_id": "c-1", "items": [{"sku": "s", "quantity": 1, "unit_price_cents": 900}], "total_cents": 900, "currency": "EUR"});
    let entries = json!([{"Source": "switchyard.orders", "DetailType": "OrderPlaced", "Detail": detail.to_string(), "EventBusName": topology.buses[0].name}]);
    let put = aws(
        &endpoint,
        &["events", "put-events", "--entries", &entries.to_string()],
    );
    assert_eq!(put["FailedEntryCount"], 0, "{put}");
    let table = resources.table.clone();
    let order = aws_common::eventually("the order item in DynamoDB", FLOW_DEADLINE, || {
        let table = table.clone();
        async move { table.get(&order_key("o-flow")).await.ok().flatten() }
    })
    .await;
    assert_eq!(order["status"], "PLACED");

    // 4. An image into S3, ImageUploaded via the aws CLI onto the topic -> thumbnails + READY item.
    let jpeg = sample_jpeg();
    let source = BlobKey::new("uploads/o-flow/i-flow.jpg").unwrap();
    resources
        .blobs
        .put(&source, jpeg.clone().into(), "image/jpeg")
        .await
        .unwrap();
    let uploaded = ImageUploaded {
        image_id: "i-flow".into(),
        order_id: "o-flow".into(),
        key: source.to_string(),
        content_type: "image/jpeg".into(),
        size_bytes: jpeg.len() as u64,
    }
    .into_envelope();
    let attributes: serde_json::Map<String, Value> = sns_attributes(&uploaded)
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                json!({"DataType": a.data_type(), "StringValue": a.string_value()}),
            )
        })
        .collect();
    let topic_arn = resources.publisher.targets().topics[&topology.topics[0].name]
        .arn
        .clone();
    aws(
        &endpoint,
        &[
            "sns",
            "publish",
            "--topic-arn",
            &topic_arn,
            "--message",
            &uploaded.to_json(),
            "--message-attributes",
            &Value::Object(attributes).to_string(),
        ],
    );
    let image = aws_common::eventually("a READY image item", FLOW_DEADLINE, || {
        let table = table.clone();
        async move {
            table
                .get(&image_key("o-flow", "i-flow"))
                .await
                .ok()
                .flatten()
                .filter(|i| i["status"] == "READY")
        }
    })
    .await;
    let variants = image["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2, "{image:?}");
    for v in variants {
        let key = BlobKey::new(v["key"].as_str().unwrap()).unwrap();
        let blob = resources
            .blobs
            .get(&key)
            .await
            .expect("the thumbnail is in S3");
        assert_eq!(&blob.bytes[..2], b"\xff\xd8", "{key} is a JPEG");
    }
    let thumbnails = resources.blobs.list("thumbnails/").await.unwrap();
    assert_eq!(thumbnails.len(), 2, "{thumbnails:?}");

    // 5. The stream reactor's OrderStatusChanged reached the bus (the observer rule copied it).
    let changed = aws_common::eventually("OrderStatusChanged on the bus", FLOW_DEADLINE, || {
        let observer = observer.clone();
        async move {
            let got = observer
                .receive(10, Duration::from_secs(30), Duration::from_secs(1))
                .await
                .ok()?;
            got.into_iter().find(|m| m.body.contains("o-flow"))
        }
    })
    .await;
    let event = switchyard_shared::Envelope::from_json(&changed.body).unwrap();
    assert_eq!(event.detail_type, "OrderStatusChanged");
    assert_eq!(event.detail["to"], "PLACED");

    // Poison: a message no handler can read reaches the DLQ after maxReceiveCount receives.
    let processor = topology.consumer("order-processor").unwrap();
    let queue_url = resources.queues["order-processor"].url().to_owned();
    aws(
        &endpoint,
        &[
            "sqs",
            "send-message",
            "--queue-url",
            &queue_url,
            "--message-body",
            "poison: not an envelope",
        ],
    );
    let dlq = resources.dlqs["order-processor"].clone();
    let dead = aws_common::eventually("the poison message in the DLQ", FLOW_DEADLINE, || {
        let dlq = dlq.clone();
        async move {
            let got = dlq
                .receive(10, Duration::from_secs(30), Duration::from_secs(1))
                .await
                .ok()?;
            got.into_iter().find(|m| m.body.starts_with("poison"))
        }
    })
    .await;
    assert!(dead.receive_count >= 1);
    assert!(processor.queue.max_receive_count > 1);
    // The order item is untouched by the poison message.
    assert_eq!(
        table.get(&order_key("o-flow")).await.unwrap().unwrap()["status"],
        "PLACED"
    );

    println!(
        "moto flow test: steps 1-5 and poison -> DLQ in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Issue 19, on moto: the same trace across the API, the order processor,
/// the stream reactor and the notifier, through EventBridge, SQS and
/// DynamoDB Streams as the AWS adapters carry it. On a topology of its own
/// names: a killed `up`'s pending long polls would hide the other test's
/// messages for a visibility timeout.
#[tokio::test]
async fn one_trace_follows_an_order_across_every_hop_on_moto() {
    let endpoint = moto_or_skip!();
    let suffix = aws_common::suffix();
    let topology = aws_common::unique_topology(&suffix);
    let dir = tempfile::tempdir().unwrap();
    let topology_file = dir.path().join("topology.yaml");
    // JSON is YAML: the topology file as `--topology` reads it.
    std::fs::write(&topology_file, serde_json::to_string(&topology).unwrap()).unwrap();
    aws_common::provision_with_cli(&endpoint, &["--topology".as_ref(), topology_file.as_ref()]);
    let log = dir.path().join("up.log");
    let mut up = aws_common::switchyard(&endpoint);
    up.args(["up", "--backend", "aws", "--port", "0", "--topology"])
        .arg(&topology_file);
    let up = trace_hops::UpWithLog::start(up, &log);
    up.place_traced_order("o-traced-moto").await;
    // The consumers carry the topology's (suffixed) names; the API and the
    // stream reactor name their hops themselves.
    let chain = trace_hops::CHAIN.map(|hop| {
        let renamed = format!("{hop}-{suffix}");
        let is_consumer = topology.consumers.iter().any(|c| c.name == renamed);
        if is_consumer {
            renamed
        } else {
            hop.to_owned()
        }
    });
    trace_hops::assert_one_trace_across_hops(&log, &chain, FLOW_DEADLINE).await;
}
