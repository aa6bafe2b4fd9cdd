//! Stream images between JSON items and DynamoDB attribute values, by hand:
//! the embedded stream builds an image per record and the stream reactor
//! reads one back, and going through serde_dynamo's serializers (plus a
//! clone of the whole image on the way back) was a sixth of the pipeline.
//!
//! The mapping is serde_dynamo's: strings `S`, numbers `N` (their JSON
//! text), booleans `BOOL`, null `NULL`, arrays `L`, objects `M`.

use std::collections::HashMap;

use serde_dynamo::AttributeValue;
use serde_json::{Map, Number, Value};

/// A JSON object as a stream image.
pub fn image_from_json(item: Map<String, Value>) -> serde_dynamo::Item {
    let map: HashMap<String, AttributeValue> = item
        .into_iter()
        .map(|(k, v)| (k, attribute_from_json(v)))
        .collect();
    serde_dynamo::Item::from(map)
}

fn attribute_from_json(v: Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        // Floats as Rust prints them (1.0 is "1"), as serde_dynamo does.
        Value::Number(n) => AttributeValue::N(match n.as_f64() {
            Some(f) if n.is_f64() => f.to_string(),
            _ => n.to_string(),
        }),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(a) => AttributeValue::L(a.into_iter().map(attribute_from_json).collect()),
        Value::Object(o) => AttributeValue::M(
            o.into_iter()
                .map(|(k, v)| (k, attribute_from_json(v)))
                .collect(),
        ),
    }
}

/// A stream image as a JSON object; `None` for an empty image (no item).
pub fn image_to_json(image: &serde_dynamo::Item) -> Result<Option<Map<String, Value>>, String> {
    let map: &HashMap<String, AttributeValue> = image.as_ref();
    if map.is_empty() {
        return Ok(None);
    }
    map.iter()
        .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
        .collect::<Result<_, String>>()
        .map(Some)
}

fn attribute_to_json(v: &AttributeValue) -> Result<Value, String> {
    let number = |n: &str| {
        n.parse::<Number>()
            .map(Value::Number)
            .map_err(|e| format!("stream image: number {n:?}: {e}"))
    };
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => number(n)?,
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(l) => {
            Value::Array(l.iter().map(attribute_to_json).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => {
            Value::Array(ns.iter().map(|n| number(n)).collect::<Result<_, _>>()?)
        }
        AttributeValue::B(_) | AttributeValue::Bs(_) => {
            return Err("stream image: binary attributes are not JSON".to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agrees_with_serde_dynamo_both_ways() {
        let item = json!({
            "pk": "order#1", "sk": "meta", "version": 3, "total": 12.5, "big": 12345678901234u64,
            "neg": -7, "paid": true, "note": null,
            "lines": [{"sku": "a", "qty": 2}, "x", 1.0],
            "nested": {"deep": {"s": "é\"\n"}}
        });
        let Value::Object(map) = item else {
            unreachable!()
        };
        let ours = image_from_json(map.clone());
        let theirs: serde_dynamo::Item = serde_dynamo::to_item(map.clone()).unwrap();
        assert_eq!(ours, theirs);
        let back = image_to_json(&ours).unwrap().unwrap();
        let theirs_back: Map<String, Value> = serde_dynamo::from_item(theirs).unwrap();
        assert_eq!(back, theirs_back);
        assert_eq!(
            image_to_json(&serde_dynamo::Item::from(
                HashMap::<String, AttributeValue>::new()
            ))
            .unwrap(),
            None
        );
    }
}
