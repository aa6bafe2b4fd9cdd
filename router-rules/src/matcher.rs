//! The one entry point for matching: compile the rules of a bus or topic
//! once, then ask which of them an event matches.
//!
//! This first engine interprets a subset of the pattern language (exact
//! values, `prefix`, `anything-but`, `exists`, `numeric`) directly over the
//! parsed event; the callers only see [`BusMatcher`] and [`TopicMatcher`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use switchyard_shared::events::SnsAttribute;

use crate::topology::FilterPolicyScope;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid pattern at {path}: {message}")]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

/// Compiled event patterns of one EventBridge bus.
#[derive(Debug, Clone)]
pub struct BusMatcher<T> {
    rules: Vec<(T, Map<String, Value>)>,
}

impl<T: Clone> BusMatcher<T> {
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = (T, &'a Value)>,
    ) -> Result<Self, PatternError> {
        let rules = rules
            .into_iter()
            .map(|(id, p)| Ok((id, as_object(p, "$")?.clone())))
            .collect::<Result<_, PatternError>>()?;
        Ok(BusMatcher { rules })
    }

    /// The ids of the rules that the event (an envelope's JSON text) matches.
    pub fn matches(&self, event_json: &str) -> Vec<T> {
        let Ok(event) = serde_json::from_str::<Value>(event_json) else {
            return Vec::new();
        };
        self.rules
            .iter()
            .filter(|(_, p)| object_matches(p, &event))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Compiled filter policies of one SNS topic.
#[derive(Debug, Clone)]
pub struct TopicMatcher<T> {
    policies: Vec<(T, Map<String, Value>, FilterPolicyScope)>,
}

impl<T: Clone> TopicMatcher<T> {
    pub fn compile<'a>(
        policies: impl IntoIterator<Item = (T, &'a Value, FilterPolicyScope)>,
    ) -> Result<Self, PatternError> {
        let policies = policies
            .into_iter()
            .map(|(id, p, scope)| Ok((id, as_object(p, "$")?.clone(), scope)))
            .collect::<Result<_, PatternError>>()?;
        Ok(TopicMatcher { policies })
    }

    /// The ids of the subscriptions whose policy accepts this message.
    pub fn matches(&self, attributes: &BTreeMap<String, SnsAttribute>, body: &str) -> Vec<T> {
        let attrs = Value::Object(
            attributes
                .iter()
                .map(|(k, a)| {
                    let v = match a {
                        SnsAttribute::String(s) => Value::String(s.clone()),
                        SnsAttribute::Number(n) => {
                            n.parse::<f64>().map(Value::from).unwrap_or(Value::Null)
                        }
                        SnsAttribute::StringArray(v) => {
                            v.iter().cloned().map(Value::String).collect()
                        }
                    };
                    (k.clone(), v)
                })
                .collect(),
        );
        let body = serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
        self.policies
            .iter()
            .filter(|(_, p, scope)| match scope {
                FilterPolicyScope::MessageAttributes => object_matches(p, &attrs),
                FilterPolicyScope::MessageBody => object_matches(p, &body),
            })
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, PatternError> {
    v.as_object().ok_or_else(|| PatternError {
        path: path.to_owned(),
        message: "must be a JSON object".into(),
    })
}

fn object_matches(pattern: &Map<String, Value>, event: &Value) -> bool {
    pattern.iter().all(|(field, p)| {
        let value = event.get(field);
        match p {
            Value::Object(nested) => value.is_some_and(|v| object_matches(nested, v)),
            Value::Array(alternatives) => alternatives.iter().any(|alt| leaf_matches(alt, value)),
            _ => false,
        }
    })
}

fn leaf_matches(alt: &Value, value: Option<&Value>) -> bool {
    let values: Vec<&Value> = match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    };
    match alt {
        Value::Object(op) => {
            if let Some(exists) = op.get("exists").and_then(Value::as_bool) {
                return exists != values.is_empty();
            }
            values.iter().any(|v| operator_matches(op, v))
        }
        literal => values.iter().any(|v| literal_eq(literal, v)),
    }
}

fn literal_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn operator_matches(op: &Map<String, Value>, v: &Value) -> bool {
    if let Some(prefix) = op.get("prefix").and_then(Value::as_str) {
        return v.as_str().is_some_and(|s| s.starts_with(prefix));
    }
    if let Some(but) = op.get("anything-but") {
        return match but {
            Value::Array(list) => !list.iter().any(|x| literal_eq(x, v)),
            single => !literal_eq(single, v),
        };
    }
    if let Some(Value::Array(ranges)) = op.get("numeric") {
        let Some(x) = v.as_f64() else { return false };
        return ranges.chunks(2).all(|pair| {
            match (pair[0].as_str(), pair.get(1).and_then(Value::as_f64)) {
                (Some("<"), Some(n)) => x < n,
                (Some("<="), Some(n)) => x <= n,
                (Some(">"), Some(n)) => x > n,
                (Some(">="), Some(n)) => x >= n,
                (Some("="), Some(n)) => x == n,
                _ => false,
            }
        });
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bus_matcher_routes_by_detail_type() {
        let p1 = json!({"detail-type": ["OrderPlaced"]});
        let p2 = json!({"detail": {"total_cents": [{"numeric": [">", 100]}]}});
        let m = BusMatcher::compile([(1, &p1), (2, &p2)]).unwrap();
        assert_eq!(
            m.matches(r#"{"detail-type":"OrderPlaced","detail":{"total_cents":5}}"#),
            vec![1]
        );
        assert_eq!(
            m.matches(r#"{"detail-type":"OrderPaid","detail":{"total_cents":500}}"#),
            vec![2]
        );
    }

    #[test]
    fn topic_matcher_reads_attributes() {
        let p = json!({"event_type": ["ImageUploaded"]});
        let m = TopicMatcher::compile([("img", &p, FilterPolicyScope::MessageAttributes)]).unwrap();
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "event_type".to_owned(),
            SnsAttribute::String("ImageUploaded".into()),
        );
        assert_eq!(m.matches(&attrs, "{}"), vec!["img"]);
        attrs.insert(
            "event_type".to_owned(),
            SnsAttribute::String("Other".into()),
        );
        assert!(m.matches(&attrs, "{}").is_empty());
    }
}
