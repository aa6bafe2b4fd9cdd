//! `switchyard rules check`: every pattern and filter policy of the topology
//! is valid, compiles with its neighbours, and names only fields that some
//! event routed to its bus or topic has (with the closest name suggested).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;
use switchyard_shared::events::{sns_attributes, EVENT_TYPES};
use switchyard_shared::{DomainEvent, Envelope};

use crate::pattern::FilterPolicyScope;
use crate::pattern::{closest, display_path, Cond, Dialect, Lit, Pattern};
use crate::topology::{Subscription, Topology};
use crate::{BusMatcher, TopicMatcher};

/// One thing wrong with one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `consumer X, rule R on bus B` or `consumer X, subscription to topic T`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// What a field path is in the events: a leaf value, an object, or (across types) both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldKind {
    pub leaf: bool,
    pub object: bool,
}

/// The fields events can carry, by dotted path.
pub type Fields = BTreeMap<String, FieldKind>;

/// The envelope's own fields (everything but `detail`) as leaves, plus
/// `detail` itself as an object.
pub fn envelope_fields() -> Fields {
    let sample = Envelope::new("s", "t", 1, Value::Object(Default::default()));
    // With a cause, so that the optional `causation-id` is serialised too.
    let sample = sample.clone().caused_by(sample.id, sample.id);
    let value = serde_json::to_value(&sample).expect("an envelope serialises");
    let mut out = Fields::new();
    for key in value.as_object().into_iter().flat_map(|m| m.keys()) {
        let kind = out.entry(key.clone()).or_default();
        if key == "detail" {
            kind.object = true;
        } else {
            kind.leaf = true;
        }
    }
    out
}

/// The fields of an envelope carrying any of `detail_types`, from their JSON Schemas.
pub fn event_fields(detail_types: &[&str]) -> Fields {
    let schemas = DomainEvent::schemas();
    let mut out = envelope_fields();
    for t in detail_types {
        if let Some(schema) = schemas.get(t) {
            walk_schema(schema, schema, &mut vec!["detail".to_owned()], &mut out, 0);
        }
    }
    out
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or(r);
            root.get("$defs")
                .or_else(|| root.get("definitions"))
                .and_then(|d| d.get(name))
                .unwrap_or(schema)
        }
        None => schema,
    }
}

fn walk_schema(
    schema: &Value,
    root: &Value,
    path: &mut Vec<String>,
    out: &mut Fields,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    let schema = resolve(schema, root);
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for sub in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk_schema(sub, root, path, out, depth + 1);
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.entry(path.join(".")).or_default().object = true;
        for (name, sub) in props {
            path.push(name.clone());
            walk_schema(sub, root, path, out, depth + 1);
            path.pop();
        }
    } else if types.contains(&"array") {
        // Arrays are transparent to patterns: their elements stand at the same path.
        if let Some(items) = schema.get("items") {
            walk_schema(items, root, path, out, depth + 1);
        }
    }
    if types
        .iter()
        .any(|t| matches!(*t, "string" | "integer" | "number" | "boolean" | "null"))
        || schema.get("enum").is_some()
    {
        out.entry(path.join(".")).or_default().leaf = true;
    }
}

/// A made-up instance of a schema, to learn what `sns_attributes` derives from it.
fn sample(schema: &Value, root: &Value, depth: usize) -> Value {
    let schema = resolve(schema, root);
    if depth > 16 {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let non_null = branches
            .iter()
            .find(|b| b.get("type").and_then(Value::as_str) != Some("null"));
        return non_null
            .map(|b| sample(b, root, depth + 1))
            .unwrap_or(Value::Null);
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "object",
    };
    match ty {
        "string" => Value::from("x"),
        "integer" | "number" => Value::from(1),
        "boolean" => Value::from(true),
        "array" => Value::Array(
            schema
                .get("items")
                .map(|i| vec![sample(i, root, depth + 1)])
                .unwrap_or_default(),
        ),
        "null" => Value::Null,
        _ => Value::Object(
            schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), sample(v, root, depth + 1)))
                .collect(),
        ),
    }
}

/// The SNS message attribute names that events of these types carry.
pub fn attribute_names(detail_types: &[&str]) -> BTreeSet<String> {
    let schemas = DomainEvent::schemas();
    let mut out = BTreeSet::new();
    for t in detail_types {
        let Some((_, source, version)) = EVENT_TYPES.iter().find(|(name, _, _)| name == t) else {
            continue;
        };
        let detail = schemas
            .get(t)
            .map(|s| sample(s, s, 0))
            .unwrap_or(Value::Null);
        out.extend(sns_attributes(&Envelope::new(source, t, *version, detail)).into_keys());
    }
    out
}

/// Checks every subscription of the topology. An empty list means all is well.
pub fn check_topology(topology: &Topology) -> Vec<Problem> {
    let mut problems = Vec::new();
    let routed_to = |bus: Option<&str>, topic: Option<&str>| -> Vec<&'static str> {
        EVENT_TYPES
            .iter()
            .map(|(t, _, _)| *t)
            .filter(|t| {
                topology
                    .routes
                    .get(*t)
                    .is_some_and(|r| r.bus.as_deref() == bus && r.topic.as_deref() == topic)
            })
            .collect()
    };
    let mut bus_rules: BTreeMap<&str, Vec<(String, &Value)>> = BTreeMap::new();
    let mut topic_policies: BTreeMap<&str, Vec<(String, &Value, FilterPolicyScope)>> =
        BTreeMap::new();
    for consumer in &topology.consumers {
        for sub in &consumer.subscriptions {
            match sub {
                Subscription::Bus(b) => {
                    let location = format!(
                        "consumer {}, rule {} on bus {}",
                        consumer.name, b.rule, b.bus
                    );
                    let types = routed_to(Some(&b.bus), None);
                    check_one(
                        &location,
                        &b.pattern,
                        Dialect::EventBridge,
                        &types,
                        &mut problems,
                    );
                    bus_rules
                        .entry(&b.bus)
                        .or_default()
                        .push((location, &b.pattern));
                }
                Subscription::Topic(t) => {
                    let location = format!(
                        "consumer {}, subscription to topic {}",
                        consumer.name, t.topic
                    );
                    let types = routed_to(None, Some(&t.topic));
                    let dialect = match t.filter_policy_scope {
                        FilterPolicyScope::MessageAttributes => Dialect::SnsAttributes,
                        FilterPolicyScope::MessageBody => Dialect::SnsBody,
                    };
                    check_one(&location, &t.filter_policy, dialect, &types, &mut problems);
                    topic_policies.entry(&t.topic).or_default().push((
                        location,
                        &t.filter_policy,
                        t.filter_policy_scope,
                    ));
                }
            }
        }
    }
    // Each bus and topic compiles into one matcher; this is what the runtime builds.
    if problems.is_empty() {
        for (bus, rules) in &bus_rules {
            if let Err(e) = BusMatcher::compile(rules.iter().map(|(l, p)| (l.clone(), *p))) {
                problems.push(Problem {
                    location: format!("bus {bus}"),
                    message: e.to_string(),
                });
            }
        }
        for (topic, policies) in &topic_policies {
            if let Err(e) =
                TopicMatcher::compile(policies.iter().map(|(l, p, s)| (l.clone(), *p, *s)))
            {
                problems.push(Problem {
                    location: format!("topic {topic}"),
                    message: e.to_string(),
                });
            }
        }
    }
    problems
}

/// Checks one pattern against the events that can reach it.
pub fn check_one(
    location: &str,
    pattern: &Value,
    dialect: Dialect,
    types: &[&str],
    problems: &mut Vec<Problem>,
) {
    let mut report = |message: String| {
        problems.push(Problem {
            location: location.to_owned(),
            message,
        })
    };
    let parsed = match Pattern::parse(pattern, dialect) {
        Ok(p) => p,
        Err(e) => return report(e.to_string()),
    };
    if types.is_empty() {
        return report(
            "no event type is routed here, so this subscription never receives anything".to_owned(),
        );
    }
    let known: Fields = match dialect {
        Dialect::SnsAttributes => attribute_names(types)
            .into_iter()
            .map(|n| {
                (
                    n,
                    FieldKind {
                        leaf: true,
                        object: false,
                    },
                )
            })
            .collect(),
        _ => event_fields(types),
    };
    let what = if dialect == Dialect::SnsAttributes {
        "message attribute"
    } else {
        "field"
    };
    let mut seen = BTreeSet::new();
    for leaf in parsed.branches.iter().flatten() {
        let path = display_path(&leaf.path);
        if !seen.insert(path.clone()) {
            continue;
        }
        match known.get(&path) {
            Some(kind) if kind.leaf => {}
            Some(_) => report(format!(
                "{path} is an object in every event routed here; patterns match leaf values only, so name a field inside it"
            )),
            None => {
                let hint = closest(&path, known.iter().filter(|(_, k)| k.leaf).map(|(p, _)| p.as_str()))
                    .map(|c| format!(" (did you mean {c}?)"))
                    .unwrap_or_default();
                report(format!("no event routed here ({}) has the {what} {path}{hint}", types.join(", ")));
            }
        }
        let names_types = matches!(path.as_str(), "detail-type" | "event_type");
        if names_types {
            for cond in &leaf.conds {
                if let Cond::Lit(Lit::Str(t)) = cond {
                    if !types.contains(&t.as_str()) {
                        let hint = closest(t, types.iter().copied())
                            .map(|c| format!(" (did you mean {c}?)"))
                            .unwrap_or_default();
                        report(format!(
                            "{path} {t:?} is not an event type routed here{hint}"
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_fields_include_nested_arrays_and_options() {
        let f = event_fields(&["OrderPlaced", "OrderStatusChanged"]);
        assert!(f["detail.items.sku"].leaf);
        assert!(f["detail.from"].leaf && f["detail-type"].leaf);
        assert!(f["detail"].object && !f["detail"].leaf);
        assert!(!f.contains_key("detail.image_id"));
    }

    #[test]
    fn attributes_come_from_the_shared_function() {
        let names = attribute_names(&["ImageUploaded"]);
        assert!(
            names.contains("size_bytes") && names.contains("event_type"),
            "{names:?}"
        );
    }

    #[test]
    fn misspelt_fields_get_a_suggestion() {
        let mut problems = Vec::new();
        let p = json!({"detail": {"total_cent": [{"numeric": [">", 1]}]}});
        check_one(
            "here",
            &p,
            Dialect::EventBridge,
            &["OrderPlaced"],
            &mut problems,
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .message
                .contains("did you mean detail.total_cents?"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn builtin_topology_is_clean() {
        assert_eq!(check_topology(&Topology::builtin()), vec![]);
    }
}
