//! Stream consumers' `filter_criteria`: what is rejected at topology load,
//! and the plain path (deciding on the item's JSON) agreeing with the
//! general one (building the record as Lambda hands it over and matching its
//! JSON) over generated records and patterns.

use proptest::prelude::*;
use router_rules::{FilterError, StreamFilter, Topology};
use serde_json::{json, Map, Value};
use switchyard_shared::images::image_from_json;
use switchyard_shared::ports::{RecordParts, StreamRecord};

fn compile_err(patterns: Vec<Value>) -> String {
    StreamFilter::compile(&patterns)
        .expect_err("the filter must be rejected")
        .to_string()
}

#[test]
fn filters_that_name_what_no_stream_record_has_are_rejected() {
    let cases = [
        // The usual slip: the attribute without its DynamoDB type.
        (
            json!({"dynamodb": {"NewImage": {"type": ["order"]}}}),
            "give the attribute's DynamoDB type",
        ),
        (
            json!({"dynamodb": {"NewImage": {"type": {"STR": ["order"]}}}}),
            "\"STR\" is not a DynamoDB type",
        ),
        (
            json!({"dynamo": {"NewImage": {"type": {"S": ["order"]}}}}),
            "record field \"dynamo\"",
        ),
        (
            json!({"dynamodb": {"Image": {"type": {"S": ["order"]}}}}),
            "dynamodb field \"Image\"",
        ),
        (
            json!({"dynamodb": {"Keys": {"id": {"S": ["x"]}}}}),
            "key attribute \"id\"",
        ),
        (
            json!({"dynamodb": {"Keys": {"pk": {"N": ["1"]}}}}),
            "the table's keys are strings",
        ),
        (
            json!({"dynamodb": {"NewImage": {"items": {"M": {"sku": ["x"]}}}}}),
            "give the attribute's DynamoDB type",
        ),
        (
            json!({"eventName": "INSERT"}),
            "invalid pattern at eventName",
        ),
        (json!({}), "an empty pattern passes every record"),
    ];
    for (pattern, expected) in cases {
        let err = compile_err(vec![pattern.clone()]);
        assert!(
            err.starts_with("filter_criteria[0]: ") && err.contains(expected),
            "{pattern}: {err}"
        );
    }
    let six = vec![json!({"eventName": ["INSERT"]}); 6];
    assert_eq!(
        StreamFilter::compile(&six).unwrap_err(),
        FilterError::TooMany(6)
    );
    assert!(StreamFilter::compile(&[]).unwrap().is_none());
    // Typed paths into maps and lists are fine (they take the general path).
    let nested = json!({"dynamodb": {"NewImage": {"items": {"L": {"M": {"sku": {"S": ["x"]}}}}}}});
    let f = StreamFilter::compile(&[nested]).unwrap().unwrap();
    assert_eq!(f.plain_patterns(), 0);
}

#[test]
fn a_topology_with_a_bad_filter_names_the_consumer() {
    let yaml = router_rules::topology::DEFAULT_TOPOLOGY_YAML.replace(
        "              S: [order, image]",
        "              SS: [order, image]\n              X: [1]",
    );
    let err = Topology::from_yaml(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("stream consumer stream-reactor: filter_criteria[0]: invalid pattern at dynamodb.NewImage.type"),
        "{err}"
    );
}

#[test]
fn the_builtin_filter_keeps_orders_and_images_only() {
    let spec = &Topology::builtin().stream_consumers[0];
    let f = spec.filter().unwrap().unwrap();
    let decide = |new: Option<&str>| {
        f.decide_parts(&RecordParts {
            event_name: "MODIFY",
            pk: "ORDER#1",
            sk: "ORDER",
            new_image: new,
            old_image: None,
        })
    };
    assert_eq!(
        decide(Some(r#"{"pk":"ORDER#1","type":"order"}"#)),
        Some(true)
    );
    assert_eq!(
        decide(Some(r#"{"type":"image","v":[1,{"a":null}]}"#)),
        Some(true)
    );
    assert_eq!(decide(Some(r#"{"type":"applied-event"}"#)), Some(false));
    assert_eq!(decide(Some(r#"{"type":["order"]}"#)), Some(false));
    assert_eq!(decide(None), Some(false));
    // Escaped strings are read as their value; broken JSON is left to the general path.
    assert_eq!(decide(Some(r#"{"type":"\u006frder"}"#)), Some(true));
    assert_eq!(decide(Some(r#"{"type":"order""#)), None);
}

/// The record as the embedded stream builds it.
fn record(
    event_name: &str,
    pk: &str,
    sk: &str,
    new: Option<&Value>,
    old: Option<&Value>,
) -> StreamRecord {
    let image = |v: Option<&Value>| {
        image_from_json(v.and_then(Value::as_object).cloned().unwrap_or_default())
    };
    let mut r = StreamRecord::default();
    r.event_name = event_name.to_owned();
    r.event_source = Some("aws:dynamodb".into());
    r.aws_region = "us-east-1".into();
    r.change.keys = image(Some(&json!({"pk": pk, "sk": sk})));
    r.change.new_image = image(new);
    r.change.old_image = image(old);
    r.change.sequence_number = Some("000000000000000000042".into());
    r
}

const WORDS: &[&str] = &[
    "order",
    "image",
    "Order",
    "ord",
    "image-x",
    "",
    "a\"b",
    "é",
    "ORDER#1",
    "IMAGE#9",
    "applied-event",
    "INSERT",
    "MODIFY",
];
const ATTRS: &[&str] = &["type", "status", "note"];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_owned)
}

fn attribute() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => word().prop_map(Value::String),
        1 => any::<i32>().prop_map(|n| json!(n)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => prop::collection::vec(word(), 0..3).prop_map(|w| json!(w)),
        // An object whose key is a type name: typed, it is `M`, never `S`.
        1 => word().prop_map(|w| json!({"S": w})),
    ]
}

fn item() -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(
        0.85,
        prop::collection::btree_map(prop::sample::select(ATTRS), attribute(), 0..4).prop_map(|m| {
            Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<_, _>>(),
            )
        }),
    )
}

fn cond() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => word().prop_map(Value::String),
        1 => word().prop_map(|w| json!({"prefix": w})),
        1 => word().prop_map(|w| json!({"suffix": w})),
        1 => word().prop_map(|w| json!({"equals-ignore-case": w})),
        1 => Just(json!({"wildcard": "*a*"})),
        1 => prop::collection::vec(word(), 1..3).prop_map(|w| json!({"anything-but": w})),
        1 => word().prop_map(|w| json!({"anything-but": {"prefix": w}})),
        1 => any::<bool>().prop_map(|b| json!({"exists": b})),
        1 => Just(json!({"numeric": [">", 0]})),
    ]
}

/// A leaf's path: mostly ones the plain path reads, some it cannot.
fn path() -> impl Strategy<Value = Vec<String>> {
    let attr = prop::sample::select(ATTRS);
    let image = prop::sample::select(&["NewImage", "OldImage"][..]);
    let own = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    prop_oneof![
        2 => Just(own(&["eventName"])),
        1 => prop::sample::select(&["pk", "sk"][..]).prop_map(move |k| own(&["dynamodb", "Keys", k, "S"])),
        6 => (image.clone(), attr.clone()).prop_map(move |(i, a)| own(&["dynamodb", i, a, "S"])),
        1 => (image, attr, prop::sample::select(&["N", "BOOL", "NULL"][..]))
            .prop_map(move |(i, a, t)| own(&["dynamodb", i, a, t])),
        1 => Just(own(&["eventSource"])),
    ]
}

fn insert(into: &mut Map<String, Value>, path: &[String], leaf: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = into;
    for p in parents {
        let next = at.entry(p.clone()).or_insert_with(|| json!({}));
        if !next.is_object() {
            *next = json!({});
        }
        at = next.as_object_mut().unwrap();
    }
    at.insert(last.clone(), leaf);
}

fn conjunction() -> impl Strategy<Value = Value> {
    prop::collection::vec((path(), prop::collection::vec(cond(), 1..3)), 1..4).prop_map(|leaves| {
        let mut m = Map::new();
        for (p, conds) in leaves {
            insert(&mut m, &p, Value::Array(conds));
        }
        Value::Object(m)
    })
}

fn pattern() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => conjunction(),
        1 => prop::collection::vec(conjunction(), 2..3).prop_map(|alts| json!({"$or": alts})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_plain_path_agrees_with_matching_the_built_record(
        patterns in prop::collection::vec(pattern(), 1..3),
        event_name in prop::sample::select(&["INSERT", "MODIFY", "REMOVE"][..]),
        pk in word(),
        sk in word(),
        new in item(),
        old in item(),
    ) {
        // Some generated patterns are not valid EventBridge patterns: not this test's subject.
        let Ok(Some(filter)) = StreamFilter::compile(&patterns) else {
            return Ok(());
        };
        let new_text = new.as_ref().map(Value::to_string);
        let old_text = old.as_ref().map(Value::to_string);
        let parts = RecordParts {
            event_name,
            pk: &pk,
            sk: &sk,
            new_image: new_text.as_deref(),
            old_image: old_text.as_deref(),
        };
        let general = filter.matches_record(&record(event_name, &pk, &sk, new.as_ref(), old.as_ref()));
        match filter.decide_parts(&parts) {
            Some(plain) => prop_assert_eq!(plain, general, "patterns {:?}", patterns),
            None => prop_assert!(
                filter.plain_patterns() < patterns.len(),
                "every pattern has the plain form, yet it did not decide: {:?}", patterns
            ),
        }
    }
}
