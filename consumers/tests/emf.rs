//! The EMF lines the metrics layer writes for a batch with one failing item,
//! checked against the CloudWatch Embedded Metric Format specification: the
//! `_aws` metadata (`Timestamp` in epoch milliseconds, `CloudWatchMetrics`
//! directives), every directive's dimensions and metric names present in the
//! object as the spec types them, and units from the allowed set.
//!
//! Real parts: the order processor on an in-memory embedded table, behind the
//! standard layers; the collector is metrics_cloudwatch_embedded's, installed
//! as this test process's `metrics` recorder (so one test in this file).

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::Value;
use switchyard_consumers::emf::{self, EmfLayer, EmfSink};
use switchyard_consumers::layers::message_service;
use switchyard_consumers::order_processor::OrderProcessor;
use switchyard_consumers::SqsBatchHandler;
use switchyard_shared::embedded::EmbeddedStore;
use switchyard_shared::events::{EventType, LineItem, OrderPaid, OrderPlaced};
use switchyard_shared::ports::Table;
use tower::{Layer, ServiceExt};

/// The units EMF allows (CloudWatch `StandardUnit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The documents written since the last call.
    fn take(&self) -> Vec<Value> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn message(id: &str, body: String, receive_count: u32, sent_ms: u128) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(body);
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m.attributes
        .insert("SentTimestamp".into(), sent_ms.to_string());
    m
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn placed(order_id: &str) -> String {
    OrderPlaced {
        order_id: order_id.into(),
        customer_id: "c-1".into(),
        items: vec![LineItem {
            sku: "mug".into(),
            quantity: 1,
            unit_price_cents: 500,
        }],
        total_cents: 500,
        currency: "EUR".into(),
    }
    .into_envelope()
    .to_json()
}

/// Checks one document against the EMF specification; returns its directive's
/// metric names with their units.
fn check_emf(doc: &Value) -> Vec<(String, String)> {
    let root = doc.as_object().expect("an EMF document is a JSON object");
    let aws = root["_aws"].as_object().expect("_aws metadata");
    let timestamp = aws["Timestamp"]
        .as_u64()
        .expect("_aws.Timestamp, an integer");
    let now = now_ms() as u64;
    assert!(
        timestamp <= now && now - timestamp < 60_000,
        "Timestamp {timestamp} is not epoch milliseconds of now ({now})"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics array");
    assert!(!directives.is_empty());
    let mut metrics = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace string");
        assert!(!namespace.is_empty() && namespace.len() <= 1024);
        let sets = directive["Dimensions"]
            .as_array()
            .expect("Dimensions array");
        for set in sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "at most 30 dimensions in a set");
            for name in set {
                let name = name.as_str().expect("dimension names are strings");
                assert!(
                    root.get(name).is_some_and(Value::is_string),
                    "dimension {name} is not a string member of the object: {doc}"
                );
            }
        }
        let list = directive["Metrics"].as_array().expect("Metrics array");
        assert!(list.len() <= 100, "at most 100 metrics per directive");
        for metric in list {
            let name = metric["Name"].as_str().expect("metric Name string");
            let value = root
                .get(name)
                .unwrap_or_else(|| panic!("metric {name} is not a member of the object: {doc}"));
            let numeric = value.is_number()
                || value.as_array().is_some_and(|a| {
                    !a.is_empty() && a.len() <= 100 && a.iter().all(Value::is_number)
                });
            assert!(
                numeric,
                "metric {name} is not a number or array of numbers: {value}"
            );
            let unit = metric.get("Unit").and_then(Value::as_str).unwrap_or("None");
            assert!(
                UNITS.contains(&unit),
                "unit {unit} of {name} is not an EMF unit"
            );
            metrics.push((name.to_owned(), unit.to_owned()));
        }
    }
    metrics
}

#[tokio::test]
async fn a_batch_with_one_failing_item_writes_one_valid_emf_document() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(emf::NAMESPACE)
        .with_dimension(emf::FUNCTION_DIMENSION, "switchyard-order-processor")
        .emit_zeros(true)
        .init()
        .unwrap();
    let lines = Lines::default();
    let sink = Arc::new(EmfSink::new(collector, Box::new(lines.clone())));
    let store = EmbeddedStore::in_memory().unwrap();
    let table: Arc<dyn Table> = Arc::new(store.table());
    let batch = EmfLayer::new(sink, "order-processor", Some(3)).layer(SqsBatchHandler::new(
        message_service(
            "order-processor",
            Arc::new(OrderProcessor::new(table)),
            None,
        ),
    ));

    // Two orders placed, and a payment for an order never placed, on its
    // third (last: maxReceiveCount 3) receive: it fails and is dead-lettered.
    let sent = now_ms() - 1_500;
    let orphan_payment = OrderPaid {
        order_id: "o-missing".into(),
        payment_id: "p-1".into(),
        amount_cents: 500,
    }
    .into_envelope()
    .to_json();
    let mut event = SqsEvent::default();
    event.records = vec![
        message("m-1", placed("o-1"), 1, sent),
        message("m-2", placed("o-2"), 1, sent),
        message("m-3", orphan_payment, 3, sent),
    ];
    let outcome = batch.clone().oneshot(event).await.unwrap();
    assert_eq!(outcome.failures.keys().collect::<Vec<_>>(), ["m-3"]);

    let docs = lines.take();
    assert_eq!(docs.len(), 1, "one EMF document per batch: {docs:?}");
    let doc = &docs[0];
    let metrics = check_emf(doc);
    let mut names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            emf::BATCH_SIZE,
            emf::COLD_START,
            emf::HANDLER_DURATION,
            emf::ITEMS_DEAD_LETTERED,
            emf::ITEMS_FAILED,
            emf::MESSAGE_AGE,
        ]
    );
    let unit = |name: &str| metrics.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(unit(emf::HANDLER_DURATION), "Milliseconds");
    assert_eq!(unit(emf::MESSAGE_AGE), "Milliseconds");
    assert_eq!(unit(emf::BATCH_SIZE), "Count");
    assert_eq!(doc[emf::FUNCTION_DIMENSION], "switchyard-order-processor");
    assert_eq!(doc[emf::CONSUMER_DIMENSION], "order-processor");
    let dims = &doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
    assert_eq!(
        *dims,
        serde_json::json!([emf::FUNCTION_DIMENSION, emf::CONSUMER_DIMENSION])
    );
    assert_eq!(doc[emf::BATCH_SIZE], 3);
    assert_eq!(doc[emf::ITEMS_FAILED], 1);
    assert_eq!(doc[emf::ITEMS_DEAD_LETTERED], 1);
    assert_eq!(doc[emf::COLD_START], 1);
    let ages = doc[emf::MESSAGE_AGE].as_array().unwrap();
    assert_eq!(ages.len(), 3);
    assert!(
        ages.iter().all(|a| a.as_f64().unwrap() >= 1_500.0),
        "{ages:?}"
    );
    assert_eq!(doc[emf::HANDLER_DURATION].as_array().unwrap().len(), 1);

    // The next invocation: warm, and only its own figures.
    let mut event = SqsEvent::default();
    event.records = vec![message("m-4", placed("o-3"), 1, now_ms())];
    let outcome = batch.oneshot(event).await.unwrap();
    assert!(outcome.failures.is_empty());
    let docs = lines.take();
    assert_eq!(docs.len(), 1, "{docs:?}");
    check_emf(&docs[0]);
    assert_eq!(docs[0][emf::COLD_START], 0);
    assert_eq!(docs[0][emf::BATCH_SIZE], 1);
    assert_eq!(docs[0][emf::ITEMS_FAILED], 0);
    assert_eq!(docs[0][emf::ITEMS_DEAD_LETTERED], 0);
}
