//! The stream image built straight from an item's JSON text is the one the
//! `serde_json::Value` route builds, for any JSON text; and reading a typed
//! value back from an image agrees with reading its JSON object.

use proptest::prelude::*;
use serde_dynamo::AttributeValue;
use serde_json::{Map, Value};
use switchyard_shared::images::{from_image, image_from_json, image_from_json_str, image_to_json};

/// The route the stream took before: parse a `Map`, then convert it.
fn via_value(text: &str) -> Result<serde_dynamo::Item, serde_json::Error> {
    serde_json::from_str::<Map<String, Value>>(text).map(image_from_json)
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1",
            "-0",
            "0",
            "-0.0",
            "1.0",
            "1.5e300",
            "1e400",
            "1e-400",
            "12345678901234567890",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            "2.5E-3",
            "01",
            "1.",
            "-",
        ])
        .prop_map(str::to_owned),
        "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
    ]
}

fn string_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a",
        "é",
        "😀",
        "\\u00e9",
        "\\ud83d\\ude00",
        "\\ud800",
        "\\/",
        "\\n",
        "\\t",
        "\\\"",
        "\\\\",
        "\\u0000",
        "\\x",
        "pk",
        "type",
    ]);
    prop_oneof![
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        prop::collection::vec(piece, 0..6).prop_map(|p| format!("\"{}\"", p.concat())),
        // Few distinct keys, so objects repeat them.
        prop::sample::select(vec!["\"k\"", "\"pk\""]).prop_map(str::to_owned),
    ]
}

fn object_text(value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::collection::vec((string_text(), value), 0..6).prop_map(|entries| {
        let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

fn value_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["null", "true", "false"]).prop_map(str::to_owned),
        number_text(),
        string_text(),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| format!("[ {} ]", v.join(" , "))),
            object_text(inner),
        ]
    })
}

/// Mostly objects (the items), sometimes other JSON or text that is not JSON.
fn item_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => object_text(value_text()),
        1 => value_text(),
        1 => (object_text(value_text()), prop::sample::select(vec![" ", "\n\t", "}", "x", ",{}"]))
            .prop_map(|(o, tail)| format!("{o}{tail}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn text_straight_to_image_equals_the_value_route(text in item_text()) {
        match (via_value(&text), image_from_json_str(&text)) {
            (Ok(old), Ok(new)) => prop_assert_eq!(old, new),
            (Err(_), Err(_)) => {}
            (old, new) => prop_assert!(false, "{text}: value route {old:?}, straight {new:?}"),
        }
    }

    #[test]
    fn reading_an_image_equals_reading_its_json(text in object_text(value_text())) {
        if let Ok(image) = image_from_json_str(&text) {
            let through_json = image_to_json(&image).unwrap().unwrap_or_default();
            let read: Map<String, Value> = from_image(&image).unwrap();
            prop_assert_eq!(read, through_json);
        }
    }
}

#[test]
fn numbers_keep_their_json_text_and_floats_print_as_rust_does() {
    let text = r#"{"one": 1, "negzero": -0, "big": 12345678901234567890, "huge": 1.5e300,
            "float": 1.5, "whole": 1.0, "tiny": 2.5e-3, "neg": -7, "s": "é\"\n\ud83d\ude00"}"#;
    let image = image_from_json_str(text).unwrap();
    assert_eq!(image, via_value(text).unwrap());
    let n = |k: &str| match image.get(k) {
        Some(AttributeValue::N(n)) => n.as_str(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(n("one"), "1");
    assert_eq!(n("negzero"), "-0");
    assert_eq!(n("big"), "12345678901234567890");
    assert_eq!(n("huge"), format!("15{}", "0".repeat(299)));
    assert_eq!(n("float"), "1.5");
    assert_eq!(n("whole"), "1");
    assert_eq!(n("tiny"), "0.0025");
    assert_eq!(n("neg"), "-7");
    assert_eq!(
        image.get("s"),
        Some(&AttributeValue::S("é\"\n😀".to_owned()))
    );
}

#[test]
fn only_an_object_is_an_image() {
    for text in ["[1]", "1", "\"x\"", "null", "{", "{} x", ""] {
        assert!(image_from_json_str(text).is_err(), "{text:?} accepted");
    }
    assert!(image_from_json_str(" {} ").unwrap().is_empty());
}
