//! The one entry point for matching: compile the rules of a bus or topic
//! once, then ask which of them an event matches.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;
use switchyard_shared::events::SnsAttribute;

use crate::automaton::{Automaton, Work};
use crate::flat::{FieldVal, ScanError};
use crate::pattern::FilterPolicyScope;
pub use crate::pattern::PatternError;
use crate::pattern::{Dialect, Pattern};
use crate::reference;

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

/// Runs `f` with this thread's reusable buffers.
fn with_work<R>(f: impl FnOnce(&mut Work) -> R) -> R {
    WORK.with(|w| match w.try_borrow_mut() {
        Ok(mut work) => f(&mut work),
        // Only reached if a matcher is used from inside another's callback.
        Err(_) => f(&mut Work::default()),
    })
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("message attribute {name}: {message}")]
pub struct AttributeError {
    pub name: String,
    pub message: String,
}

/// Reads SNS message attributes in SNS's JSON shape,
/// `{"name": {"Type": "String" | "Number" | "String.Array" | "Binary", "Value": "..."}}`
/// (`DataType` / `StringValue` are accepted too). Binary attributes are
/// dropped: SNS ignores them when filtering.
pub fn parse_sns_attributes(v: &Value) -> Result<BTreeMap<String, SnsAttribute>, AttributeError> {
    let err = |name: &str, message: String| AttributeError {
        name: name.to_owned(),
        message,
    };
    let map = v.as_object().ok_or_else(|| {
        err(
            "(all)",
            "expected a JSON object of name -> {Type, Value}".into(),
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, attr) in map {
        let ty = attr
            .get("Type")
            .or_else(|| attr.get("DataType"))
            .and_then(Value::as_str);
        let text = match attr.get("Value").or_else(|| attr.get("StringValue")) {
            Some(Value::String(s)) => s.clone(),
            Some(array @ Value::Array(_)) if ty == Some("String.Array") => array.to_string(),
            _ => {
                return Err(err(
                    name,
                    "expected {\"Type\": ..., \"Value\": \"...\"}".into(),
                ))
            }
        };
        let parsed = match ty {
            Some("String") => SnsAttribute::String(text),
            Some("Number") => {
                if text.trim().parse::<f64>().is_err() {
                    return Err(err(name, format!("{text:?} is not a number")));
                }
                SnsAttribute::Number(text)
            }
            Some("String.Array") => {
                let items: Vec<Value> = serde_json::from_str(&text)
                    .map_err(|e| err(name, format!("a String.Array value is a JSON array: {e}")))?;
                // SNS arrays may hold numbers and booleans too; keep their text.
                SnsAttribute::StringArray(
                    items
                        .into_iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect(),
                )
            }
            Some("Binary") => continue,
            other => {
                return Err(err(
                    name,
                    format!("unknown Type {other:?}: use String, Number, String.Array or Binary"),
                ))
            }
        };
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

/// One rule's verdict on one event, for `switchyard rules explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict<T> {
    pub id: T,
    /// `None` when the rule matches; otherwise the first condition that failed.
    pub failure: Option<String>,
}

/// Compiled event patterns of one EventBridge bus.
#[derive(Debug)]
pub struct BusMatcher<T> {
    ids: Vec<T>,
    patterns: Vec<Pattern>,
    automaton: Automaton,
}

impl<T: Clone> BusMatcher<T> {
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = (T, &'a Value)>,
    ) -> Result<Self, PatternError> {
        let (ids, patterns): (Vec<T>, Vec<Pattern>) = rules
            .into_iter()
            .map(|(id, p)| Ok((id, Pattern::parse(p, Dialect::EventBridge)?)))
            .collect::<Result<Vec<_>, PatternError>>()?
            .into_iter()
            .unzip();
        let automaton = Automaton::build(
            patterns.iter().enumerate().map(|(i, p)| (i as u32, p)),
            false,
        );
        Ok(BusMatcher {
            ids,
            patterns,
            automaton,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids of the rules that the event (an envelope's JSON text) matches,
    /// in the order the rules were given. An event that is not a JSON object
    /// matches nothing.
    pub fn matches(&self, event_json: &str) -> Vec<T> {
        self.try_matches(event_json).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "event is not valid JSON; it matches no rule");
            Vec::new()
        })
    }

    /// As [`matches`](Self::matches), but says when the event is not JSON.
    /// Parts of the event after the last field any rule names are not read.
    pub fn try_matches(&self, event_json: &str) -> Result<Vec<T>, ScanError> {
        with_work(|work| {
            self.automaton.match_json(event_json, work)?;
            Ok(work
                .out
                .iter()
                .map(|&i| self.ids[i as usize].clone())
                .collect())
        })
    }

    /// How many rules match, without collecting their ids (for benchmarks).
    pub fn count_matches(&self, event_json: &str) -> Result<usize, ScanError> {
        with_work(|work| {
            self.automaton.match_json(event_json, work)?;
            Ok(work.out.len())
        })
    }

    /// Every rule's verdict, with the first failed condition of those that do not match.
    pub fn explain(&self, event_json: &str) -> Result<Vec<Verdict<T>>, serde_json::Error> {
        let event: Value = serde_json::from_str(event_json)?;
        let fields = reference::flatten_json(&event);
        Ok(self
            .ids
            .iter()
            .zip(&self.patterns)
            .map(|(id, p)| Verdict {
                id: id.clone(),
                failure: reference::why_not(p, &fields),
            })
            .collect())
    }
}

/// Is `text` one whole JSON object (checked without building it)?
pub(crate) fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Compiled filter policies of one SNS topic.
#[derive(Debug)]
pub struct TopicMatcher<T> {
    ids: Vec<T>,
    patterns: Vec<Pattern>,
    attributes: Automaton,
    body: Automaton,
}

impl<T: Clone> TopicMatcher<T> {
    pub fn compile<'a>(
        policies: impl IntoIterator<Item = (T, &'a Value, FilterPolicyScope)>,
    ) -> Result<Self, PatternError> {
        let (ids, patterns): (Vec<T>, Vec<Pattern>) = policies
            .into_iter()
            .map(|(id, p, scope)| {
                let dialect = match scope {
                    FilterPolicyScope::MessageAttributes => Dialect::SnsAttributes,
                    FilterPolicyScope::MessageBody => Dialect::SnsBody,
                };
                Ok((id, Pattern::parse(p, dialect)?))
            })
            .collect::<Result<Vec<_>, PatternError>>()?
            .into_iter()
            .unzip();
        let of = |d: Dialect| {
            let rules = patterns
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.dialect == d);
            Automaton::build(rules.map(|(i, p)| (i as u32, p)), true)
        };
        let (attributes, body) = (of(Dialect::SnsAttributes), of(Dialect::SnsBody));
        Ok(TopicMatcher {
            ids,
            patterns,
            attributes,
            body,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids of the subscriptions whose policy accepts this message, in
    /// the order they were given. A body that is not JSON matches no
    /// `MessageBody` policy.
    pub fn matches(&self, attributes: &BTreeMap<String, SnsAttribute>, body: &str) -> Vec<T> {
        with_work(|work| {
            work.flat.clear();
            for (name, attr) in attributes {
                let Some(path) = self.attributes.path_id(std::slice::from_ref(name)) else {
                    continue;
                };
                match attr {
                    SnsAttribute::String(s) => work.flat.push_owned_str(path, s),
                    SnsAttribute::Number(n) => {
                        if let Ok(x) = n.trim().parse::<f64>() {
                            work.flat.push(path, FieldVal::Num(x));
                        }
                    }
                    SnsAttribute::StringArray(items) => {
                        for item in items {
                            work.flat.push_owned_str(path, item);
                        }
                    }
                }
            }
            self.attributes.match_flat("", work);
            let mut hits = std::mem::take(&mut work.out);
            if !self.body.is_empty() {
                // The automaton stops reading after the last field a policy
                // names; SNS judges the whole body, so a body that is not one
                // JSON object matches no MessageBody policy (and is no error).
                if !is_json_object(body) {
                    tracing::debug!(
                        "message body is not a JSON object; MessageBody policies do not match"
                    );
                    work.out.clear();
                } else if let Err(e) = self.body.match_json(body, work) {
                    tracing::debug!(error = %e, "message body is not JSON; MessageBody policies do not match");
                    work.out.clear();
                }
            }
            hits.extend_from_slice(&work.out);
            hits.sort_unstable();
            let ids = hits.iter().map(|&i| self.ids[i as usize].clone()).collect();
            hits.clear();
            work.out = hits;
            ids
        })
    }

    /// Every policy's verdict, with the first failed condition of those that do not match.
    pub fn explain(
        &self,
        attributes: &BTreeMap<String, SnsAttribute>,
        body: &str,
    ) -> Vec<Verdict<T>> {
        let attr_fields = reference::flatten_attributes(attributes);
        let body_fields = serde_json::from_str::<Value>(body)
            .ok()
            .filter(Value::is_object)
            .map(|v| reference::flatten_json(&v));
        self.ids
            .iter()
            .zip(&self.patterns)
            .map(|(id, p)| {
                let failure = match (p.dialect, &body_fields) {
                    (Dialect::SnsBody, None) => {
                        Some("the message body is not a JSON object".to_owned())
                    }
                    (Dialect::SnsBody, Some(fields)) => reference::why_not(p, fields),
                    _ => reference::why_not(p, &attr_fields),
                };
                Verdict {
                    id: id.clone(),
                    failure,
                }
            })
            .collect()
    }
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

    #[test]
    fn array_elements_do_not_combine() {
        let p = json!({"items": {"sku": ["a"], "qty": [2]}});
        let m = BusMatcher::compile([(0, &p)]).unwrap();
        assert!(m
            .matches(r#"{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}"#)
            .is_empty());
        assert_eq!(
            m.matches(r#"{"items":[{"sku":"b","qty":1},{"sku":"a","qty":2}]}"#),
            vec![0]
        );
    }

    #[test]
    fn sns_attributes_parse_in_sns_shape() {
        let v = json!({
            "a": {"Type": "String", "Value": "x"},
            "n": {"Type": "Number", "Value": "1.5"},
            "l": {"Type": "String.Array", "Value": "[\"p\", 2]"},
            "b": {"Type": "Binary", "Value": "AAE="}
        });
        let attrs = parse_sns_attributes(&v).unwrap();
        assert_eq!(
            attrs["l"],
            SnsAttribute::StringArray(vec!["p".into(), "2".into()])
        );
        assert_eq!(attrs.len(), 3);
        let bad =
            parse_sns_attributes(&json!({"n": {"Type": "Number", "Value": "many"}})).unwrap_err();
        assert_eq!(bad.name, "n");
        assert!(parse_sns_attributes(&json!({"s": {"Type": "Strin", "Value": "x"}})).is_err());
    }

    #[test]
    fn anything_but_conditions_sharing_a_rule_exclude_separately() {
        // 0 is not "x", so the first condition holds even though the second excludes 0.
        let p = json!({"k": [{"anything-but": "x"}, {"anything-but": [0]}]});
        let m = BusMatcher::compile([(0, &p)]).unwrap();
        assert_eq!(m.matches(r#"{"k": 0}"#), vec![0]);
        assert_eq!(m.matches(r#"{"k": "x"}"#), vec![0]);
        let both = json!({"k": [{"anything-but": ["x", "y"]}]});
        let m = BusMatcher::compile([(0, &both)]).unwrap();
        assert!(m.matches(r#"{"k": "y"}"#).is_empty());
    }

    #[test]
    fn explain_names_the_failed_condition() {
        let p = json!({"detail": {"total_cents": [{"numeric": [">", 100]}]}});
        let m = BusMatcher::compile([("big", &p)]).unwrap();
        let v = m.explain(r#"{"detail":{"total_cents":5}}"#).unwrap();
        let why = v[0].failure.as_deref().unwrap();
        assert!(
            why.contains("detail.total_cents") && why.contains('5'),
            "{why}"
        );
    }
}
