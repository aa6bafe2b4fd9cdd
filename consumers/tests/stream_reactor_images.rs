//! The stream reactor reads orders and images in place from the typed
//! stream images. These tests hold it to what it did when it converted each
//! image back to JSON and built the whole `Order` / `ImageRecord`: the same
//! events with the same ids, and a failure wherever that failed.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use switchyard_consumers::stream_reactor::{derive_event, derived_event, Cause, StreamReactor};
use switchyard_shared::embedded::{EmbeddedStore, StoreOptions};
use switchyard_shared::events::{
    ImageProcessed, ImageVariant, LineItem, OrderStatus, OrderStatusChanged,
};
use switchyard_shared::images::{image_from_json_str, image_to_json};
use switchyard_shared::items::{item_type, ImageRecord, ImageStatus, Order, TableRecord};
use switchyard_shared::ports::{
    ChangeStream, Condition, EventPublisher, PublishError, PublishReport, StoredChange, Table,
};
use switchyard_shared::{Envelope, TraceContext};
use uuid::Uuid;

/// The reactor's derivation as it was, through `image_to_json` and the whole records.
fn derive_event_via_json(record: &EventRecord) -> Result<Option<Envelope>, String> {
    let image_of = switchyard_shared::images::image_to_json;
    let Some(new) = image_of(&record.change.new_image)? else {
        return Ok(None);
    };
    let old = image_of(&record.change.old_image)?;
    let at = record.change.approximate_creation_date_time;
    match item_type(&new) {
        Some(Order::TYPE) => {
            let order = Order::from_item(&new).map_err(|e| e.to_string())?;
            let before = old.as_ref().map(Order::from_item).transpose();
            let from = before.map_err(|e| e.to_string())?.map(|o| o.status);
            if from == Some(order.status) {
                return Ok(None);
            }
            let seed = format!("status/{}/{}", order.order_id, order.version);
            let detail = OrderStatusChanged {
                order_id: order.order_id.clone(),
                from,
                to: order.status,
                version: order.version,
            };
            let cause =
                Cause::of_record(order.correlation_id, order.last_event_id, order.traceparent);
            Ok(Some(derived_event(detail, &seed, cause, at)))
        }
        Some(ImageRecord::TYPE) => {
            let image = ImageRecord::from_item(&new).map_err(|e| e.to_string())?;
            let before = old.as_ref().map(ImageRecord::from_item).transpose();
            let was_ready = before
                .map_err(|e| e.to_string())?
                .is_some_and(|i| i.status == ImageStatus::Ready);
            if image.status != ImageStatus::Ready || was_ready {
                return Ok(None);
            }
            let seed = format!("processed/{}/{}", image.order_id, image.image_id);
            let detail = ImageProcessed {
                image_id: image.image_id.clone(),
                order_id: image.order_id.clone(),
                variants: image.variants,
            };
            let cause =
                Cause::of_record(image.correlation_id, image.last_event_id, image.traceparent);
            Ok(Some(derived_event(detail, &seed, cause, at)))
        }
        _ => Ok(None),
    }
}

fn record(new: Option<&Map<String, Value>>, old: Option<&Map<String, Value>>) -> EventRecord {
    // Through the JSON text, as the embedded stream builds images.
    let image = |item: Option<&Map<String, Value>>| {
        image_from_json_str(&serde_json::to_string(&item.cloned().unwrap_or_default()).unwrap())
            .unwrap()
    };
    let mut record = EventRecord::default();
    record.change.new_image = image(new);
    record.change.old_image = image(old);
    record.change.approximate_creation_date_time =
        DateTime::<Utc>::from_timestamp(1_760_000_000, 0).unwrap();
    record
}

/// The same change as the embedded stream hands it over: the images still JSON.
fn stored(new: Option<&Map<String, Value>>, old: Option<&Map<String, Value>>) -> StoredChange {
    let json = |item: Option<&Map<String, Value>>| {
        item.map(|i| Arc::from(serde_json::to_string(i).unwrap()))
    };
    StoredChange {
        event_id: "0".repeat(32),
        sequence: "1".into(),
        event_name: if old.is_some() { "MODIFY" } else { "INSERT" },
        pk: "pk".into(),
        sk: "sk".into(),
        new_image: json(new),
        old_image: json(old),
        created_ms: 1_760_000_000_000,
        region: "local",
        source_arn: Arc::from("arn"),
    }
}

fn order_status() -> impl Strategy<Value = OrderStatus> {
    prop::sample::select(vec![
        OrderStatus::Placed,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ])
}

prop_compose! {
    fn order()(
        // Quotes, backslashes and non-ASCII: JSON strings that cannot be borrowed.
        id in "[a-z0-9\"\\\\é\n]{1,8}",
        status in order_status(),
        version in 1u64..1000,
        items in prop::collection::vec(("[a-z]{1,4}", 1u32..9, 1u64..10_000), 0..3),
        paid in any::<bool>(),
        payment_id in proptest::option::of("[a-z]{1,4}"),
        correlation in any::<u128>(),
        last in any::<u128>(),
    ) -> Order {
        Order {
            order_id: id,
            status,
            version,
            customer_id: "c1".into(),
            items: items
                .into_iter()
                .map(|(sku, quantity, unit_price_cents)| LineItem { sku, quantity, unit_price_cents })
                .collect(),
            total_cents: 100,
            currency: "EUR".into(),
            paid,
            payment_id,
            carrier: None,
            tracking_number: None,
            cancel_reason: None,
            correlation_id: Uuid::from_u128(correlation),
            last_event_id: Uuid::from_u128(last),
            // Records from before tracing have none; both must derive.
            traceparent: (last % 2 == 0).then(|| TraceContext::root(Uuid::from_u128(correlation))),
        }
    }
}

prop_compose! {
    fn image()(
        ready in any::<bool>(),
        variants in 0usize..3,
        reject in proptest::option::of("[A-Z_]{1,6}"),
        correlation in any::<u128>(),
    ) -> ImageRecord {
        ImageRecord {
            image_id: "img1".into(),
            order_id: "o1".into(),
            status: if ready { ImageStatus::Ready } else { ImageStatus::Rejected },
            source_key: "uploads/o1/img1".into(),
            variants: (0..variants)
                .map(|i| ImageVariant {
                    name: format!("v{i}"),
                    key: format!("thumbs/v{i}.jpg"),
                    width: 128,
                    height: 128,
                    format: "jpeg".into(),
                    bytes: 4096,
                })
                .collect(),
            reject_code: reject,
            reject_reason: None,
            correlation_id: Uuid::from_u128(correlation),
            last_event_id: Uuid::from_u128(correlation ^ 1),
            traceparent: (correlation % 2 == 0).then(|| TraceContext::root(Uuid::from_u128(correlation))),
        }
    }
}

/// Values of every kind, and ones a field of the wrong kind might still accept.
fn odd_value() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        Value::Null,
        json!(true),
        json!(5),
        json!(-1),
        json!(1.5),
        json!(1.0),
        json!(""),
        json!("x"),
        json!("PAID"),
        json!("READY"),
        json!("0191d0f4-7f3a-7c11-8d2e-5b6a7c8d9e0f"),
        json!([]),
        json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
        json!({}),
        json!({"PAID": null}),
        json!([{"sku": "a", "quantity": 1, "unit_price_cents": 2, "extra": 1}]),
        json!([{"name": "v", "key": "k", "width": 1, "height": 1, "format": "f"}]),
    ])
}

/// What is done to an item: nothing, a field removed or given another value,
/// in the item or in the first of its line items / variants.
#[derive(Debug, Clone)]
enum Change {
    None,
    Remove(usize, bool),
    Set(usize, bool, Value),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        2 => Just(Change::None),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, n)| Change::Remove(i, n)),
        2 => (any::<usize>(), any::<bool>(), odd_value()).prop_map(|(i, n, v)| Change::Set(i, n, v)),
    ]
}

fn apply(mut item: Map<String, Value>, change: &Change) -> Map<String, Value> {
    let (index, nested) = match change {
        Change::None => return item,
        Change::Remove(i, n) | Change::Set(i, n, _) => (*i, *n),
    };
    let list = ["items", "variants"].into_iter().find(|list| {
        item.get(*list)
            .and_then(|l| l.get(0))
            .is_some_and(Value::is_object)
    });
    let target = match list {
        Some(list) if nested => item[list][0].as_object_mut().unwrap(),
        _ => &mut item,
    };
    let key = target.keys().nth(index % target.len()).unwrap().clone();
    match change {
        Change::Set(_, _, v) => target.insert(key, v.clone()),
        _ => target.remove(&key),
    };
    item
}

fn item(order: Order, image: ImageRecord, kind: u8) -> Map<String, Value> {
    match kind {
        0 => order.to_item(),
        1 => image.to_item(),
        _ => {
            let mut note = order.to_item();
            note.insert("type".into(), json!("notification"));
            note
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn derives_what_the_whole_records_derived(
        kind in 0u8..3,
        new in (order(), image(), change()),
        old in proptest::option::of((order(), image(), change())),
    ) {
        let new_item = apply(item(new.0, new.1, kind), &new.2);
        let old_item = old.map(|(o, i, c)| apply(item(o, i, kind), &c));
        let record = record(Some(&new_item), old_item.as_ref());
        let stored = stored(Some(&new_item), old_item.as_ref());
        match (derive_event_via_json(&record), derive_event(&record), derive_event(&stored)) {
            (Ok(before), Ok(now), Ok(from_json)) => {
                prop_assert_eq!(&before, &now);
                prop_assert_eq!(before, from_json);
            }
            (Err(_), Err(_), Err(_)) => {}
            (before, now, from_json) => {
                prop_assert!(false, "before {before:?}, now {now:?}, from JSON {from_json:?}")
            }
        }
    }
}

#[test]
fn a_status_change_becomes_its_event_and_a_broken_order_an_error() {
    let mut order = Order {
        order_id: "o7".into(),
        status: OrderStatus::Paid,
        version: 2,
        customer_id: "c".into(),
        items: vec![],
        total_cents: 1,
        currency: "EUR".into(),
        paid: true,
        payment_id: None,
        carrier: None,
        tracking_number: None,
        cancel_reason: None,
        correlation_id: Uuid::from_u128(7),
        last_event_id: Uuid::from_u128(8),
        traceparent: None,
    };
    let paid = order.to_item();
    order.status = OrderStatus::Placed;
    order.version = 1;
    let placed = order.to_item();
    let event = derive_event(&record(Some(&paid), Some(&placed)))
        .unwrap()
        .expect("a status change is an event");
    assert_eq!(
        event.detail,
        json!({"order_id": "o7", "from": "PLACED", "to": "PAID", "version": 2})
    );
    assert_eq!(event.correlation_id, Uuid::from_u128(7));
    assert_eq!(event.causation_id, Some(Uuid::from_u128(8)));
    assert_eq!(
        derive_event(&record(Some(&paid), Some(&paid))).unwrap(),
        None
    );

    let mut broken = paid.clone();
    broken.insert("status".into(), json!("LOST"));
    let err = derive_event(&record(Some(&broken), None)).unwrap_err();
    assert!(err.contains("order item") && err.contains("LOST"), "{err}");
    broken = paid.clone();
    broken.remove("customer_id");
    let err = derive_event(&record(Some(&broken), None)).unwrap_err();
    assert!(err.contains("customer_id"), "{err}");
}

/// Records what it publishes.
#[derive(Default)]
struct Recording(Mutex<Vec<Envelope>>);

#[async_trait]
impl EventPublisher for Recording {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(PublishReport {
            published: events.iter().map(|e| e.id).collect(),
            ..Default::default()
        })
    }
}

#[tokio::test]
async fn a_malformed_order_in_the_stream_is_a_batch_item_failure() {
    let store = EmbeddedStore::open_with(
        ":memory:",
        StoreOptions {
            shards: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let table = store.table();
    let good = |id: &str| Order {
        order_id: id.into(),
        status: OrderStatus::Placed,
        version: 1,
        customer_id: "c".into(),
        items: vec![],
        total_cents: 1,
        currency: "EUR".into(),
        paid: false,
        payment_id: None,
        carrier: None,
        tracking_number: None,
        cancel_reason: None,
        correlation_id: Uuid::now_v7(),
        last_event_id: Uuid::now_v7(),
        traceparent: None,
    };
    let mut malformed = good("bad").to_item();
    malformed.insert("version".into(), json!("two"));
    for item in [good("a").to_item(), malformed, good("c").to_item()] {
        table.put(item, Condition::Absent).await.unwrap();
    }
    let stream = store.stream();
    let shard = stream.shards().await.unwrap().remove(0);
    let records = stream.read(&shard, None, 10).await.unwrap();
    assert_eq!(records.len(), 3);

    let published = Arc::new(Recording::default());
    let reactor = StreamReactor::new(published.clone());
    let response = reactor.handle_records(&records).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![records[1].change.sequence_number.clone()]);
    let published = published.0.lock().unwrap();
    assert_eq!(published.len(), 1, "only the order before the failure");
    assert_eq!(published[0].detail["order_id"], "a");
}

#[test]
fn an_image_becoming_ready_is_processed_once() {
    let mut image = ImageRecord {
        image_id: "i1".into(),
        order_id: "o1".into(),
        status: ImageStatus::Ready,
        source_key: "uploads/i1".into(),
        variants: vec![],
        reject_code: None,
        reject_reason: None,
        correlation_id: Uuid::from_u128(3),
        last_event_id: Uuid::from_u128(4),
        traceparent: None,
    };
    let ready = image.to_item();
    let event = derive_event(&record(Some(&ready), None))
        .unwrap()
        .expect("a ready image is processed");
    assert_eq!(event.detail["image_id"], "i1");
    assert_eq!(
        derive_event(&record(Some(&ready), Some(&ready))).unwrap(),
        None
    );
    image.status = ImageStatus::Rejected;
    assert_eq!(
        derive_event(&record(Some(&image.to_item()), None)).unwrap(),
        None
    );
    assert!(image_to_json(&record(Some(&ready), None).change.old_image)
        .unwrap()
        .is_none());
}
