//! The topology: buses, topics, consumers with their queues and
//! subscriptions, the stream consumers and the API, read from one YAML file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_shared::events::EVENT_TYPES;
use switchyard_shared::ports::Destination;

pub use crate::pattern::FilterPolicyScope;
use crate::stream_filter::StreamFilter;

/// The topology shipped with Switchyard (`router-rules/topology.yaml`).
pub const DEFAULT_TOPOLOGY_YAML: &str = include_str!("../topology.yaml");

/// The same topology as JSON, converted by `build.rs`: what
/// [`Topology::builtin`] parses, so that a binary reading no topology file
/// (a Lambda function) links no YAML parser.
const DEFAULT_TOPOLOGY_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/topology.json"));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub table: TableSpec,
    pub bucket: BucketSpec,
    pub buses: Vec<Named>,
    pub topics: Vec<Named>,
    /// Where each detail-type is published.
    pub routes: BTreeMap<String, RouteSpec>,
    pub consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    pub stream_consumers: Vec<StreamConsumerSpec>,
    pub api: ApiSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    pub name: String,
    pub uploads_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

impl RouteSpec {
    pub fn destination(&self) -> Option<Destination> {
        match (&self.bus, &self.topic) {
            (Some(b), None) => Some(Destination::Bus(b.clone())),
            (None, Some(t)) => Some(Destination::Topic(t.clone())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub name: String,
    /// Which handler runs this consumer (a name the consumers crate registers).
    pub handler: String,
    pub queue: QueueSpec,
    pub function: FunctionSpec,
    #[serde(default)]
    pub permissions: Permissions,
    pub subscriptions: Vec<Subscription>,
}

impl ConsumerSpec {
    pub fn queue_name(&self) -> String {
        format!(
            "{}{}",
            self.name,
            if self.queue.fifo { ".fifo" } else { "" }
        )
    }
    pub fn dlq_name(&self) -> String {
        format!(
            "{}-dlq{}",
            self.name,
            if self.queue.fifo { ".fifo" } else { "" }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo: bool,
    pub visibility_timeout_s: u32,
    pub max_receive_count: u32,
    pub batch_size: u32,
    pub batching_window_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub timeout_s: u32,
    pub memory_mb: u32,
    /// The Cargo package (its folder, from the repository root) whose binary
    /// infra/ deploys as this function; `consumers` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// That package's binary; the handler's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// What a function may touch; infra/ turns this into its IAM policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobAccess>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<RouteSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableAccess {
    Read,
    ReadWrite,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobAccess {
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
}

/// A consumer's subscription: an EventBridge rule on a bus, or an SNS
/// subscription (raw delivery) on a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Subscription {
    Bus(BusSubscription),
    Topic(TopicSubscription),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSubscription {
    pub bus: String,
    pub rule: String,
    pub pattern: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSubscription {
    pub topic: String,
    #[serde(default)]
    pub filter_policy_scope: FilterPolicyScope,
    pub filter_policy: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConsumerSpec {
    pub name: String,
    pub handler: String,
    pub batch_size: u32,
    pub retry_attempts: u32,
    pub bisect_batch_on_error: bool,
    pub function: FunctionSpec,
    #[serde(default)]
    pub permissions: Permissions,
    /// Lambda event filtering: EventBridge patterns over the stream record
    /// as Lambda sees it (typed images). A record reaches the handler when
    /// any pattern matches; the rest count as processed. Empty: every record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_criteria: Vec<Value>,
}

impl StreamConsumerSpec {
    /// The queue that receives records the consumer gave up on.
    pub fn on_failure_queue(&self) -> String {
        format!("{}-failures", self.name)
    }

    /// The compiled `filter_criteria` (`None` when there are none).
    pub fn filter(&self) -> Result<Option<StreamFilter>, TopologyError> {
        StreamFilter::compile(&self.filter_criteria)
            .map_err(|e| TopologyError::Invalid(format!("stream consumer {}: {e}", self.name)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    pub name: String,
    pub function: FunctionSpec,
    #[serde(default)]
    pub permissions: Permissions,
}

/// A topology file that adds consumers to another.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extension {
    extends: String,
    #[serde(default)]
    consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    stream_consumers: Vec<StreamConsumerSpec>,
}

impl Extension {
    fn apply(self) -> Result<Topology, TopologyError> {
        if self.extends != "builtin" {
            return Err(TopologyError::Invalid(format!(
                "extends: {:?}: only `builtin` (Switchyard's own topology) can be extended",
                self.extends
            )));
        }
        let mut topology = Topology::builtin();
        topology.consumers.extend(self.consumers);
        topology.stream_consumers.extend(self.stream_consumers);
        Ok(topology)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid topology YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("invalid topology JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("topology: {0}")]
    Invalid(String),
}

fn read(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Topology {
    /// The topology that ships with Switchyard.
    pub fn builtin() -> Topology {
        Topology::from_json(DEFAULT_TOPOLOGY_JSON).expect("the built-in topology is valid")
    }

    /// A topology in YAML: a whole one, or one that adds consumers to the
    /// built-in topology (`extends: builtin`, then `consumers` and
    /// `stream_consumers`), as a user's crate adds its own.
    pub fn from_yaml(text: &str) -> Result<Topology, TopologyError> {
        let document: serde_yaml::Value = serde_yaml::from_str(text)?;
        let topology = if document.get("extends").is_some() {
            // Parsed from the text again, not the value: errors keep their line.
            serde_yaml::from_str::<Extension>(text)?.apply()?
        } else {
            serde_yaml::from_str(text)?
        };
        topology.validate()?;
        Ok(topology)
    }

    /// A topology as [`Topology::export_json`] writes it: the deployed form,
    /// which the Lambda functions read. Its structure is checked; its stream
    /// filters are not compiled here (no function applies them: the event
    /// source mapping does, and `switchyard` and infra/ compile them when they
    /// load the topology), so a function links no pattern compiler.
    pub fn from_json(text: &str) -> Result<Topology, TopologyError> {
        let topology: Topology = serde_json::from_str(text)?;
        topology.validate_structure()?;
        Ok(topology)
    }

    /// A topology file in YAML (JSON is YAML too).
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        Topology::from_yaml(&read(path)?)
    }

    /// A topology file in JSON only (`switchyard topology export`), for the
    /// Lambda functions, which link no YAML parser.
    pub fn load_json(path: &Path) -> Result<Topology, TopologyError> {
        Topology::from_json(&read(path)?)
    }

    /// The topology as JSON, for `switchyard topology export` and infra/.
    pub fn export_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a topology always serialises")
    }

    /// Structural checks and stream filters valid. (Rule pattern validity is
    /// the rule engine's job.)
    pub fn validate(&self) -> Result<(), TopologyError> {
        self.validate_structure()?;
        for s in &self.stream_consumers {
            s.filter()?;
        }
        Ok(())
    }

    /// Names unique, every reference resolves, every known detail-type routed.
    pub fn validate_structure(&self) -> Result<(), TopologyError> {
        let invalid = |m: String| Err(TopologyError::Invalid(m));
        let buses: BTreeSet<&str> = self.buses.iter().map(|b| b.name.as_str()).collect();
        let topics: BTreeSet<&str> = self.topics.iter().map(|t| t.name.as_str()).collect();
        let check_route = |r: &RouteSpec, what: &str| -> Result<(), TopologyError> {
            match (&r.bus, &r.topic) {
                (Some(b), None) if buses.contains(b.as_str()) => Ok(()),
                (None, Some(t)) if topics.contains(t.as_str()) => Ok(()),
                (Some(b), None) => invalid(format!("{what}: no bus named {b:?}")),
                (None, Some(t)) => invalid(format!("{what}: no topic named {t:?}")),
                _ => invalid(format!("{what}: give exactly one of `bus` or `topic`")),
            }
        };
        for (detail_type, route) in &self.routes {
            if !EVENT_TYPES.iter().any(|(t, _, _)| t == detail_type) {
                return invalid(format!("routes: unknown detail-type {detail_type:?}"));
            }
            check_route(route, &format!("routes.{detail_type}"))?;
        }
        for (detail_type, _, _) in EVENT_TYPES {
            if !self.routes.contains_key(*detail_type) {
                return invalid(format!("routes: detail-type {detail_type:?} has no route"));
            }
        }
        let mut names = BTreeSet::new();
        let mut rules = BTreeSet::new();
        let stream_names = self.stream_consumers.iter().map(|s| &s.name);
        for name in self.consumers.iter().map(|c| &c.name).chain(stream_names) {
            if !names.insert(name.as_str()) {
                return invalid(format!("consumer {name:?} is declared twice"));
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return invalid(format!(
                    "consumer name {name:?}: use letters, digits and `-`"
                ));
            }
        }
        let functions = self.consumers.iter().map(|c| (&c.name, &c.function));
        let stream_functions = self.stream_consumers.iter().map(|s| (&s.name, &s.function));
        for (name, function) in functions.chain(stream_functions) {
            if let Some(package) = &function.package {
                if package.starts_with('/') || package.split('/').any(|p| p.is_empty() || p == "..")
                {
                    return invalid(format!(
                        "consumer {name}: function.package {package:?}: give a folder relative to the repository root, without `..`"
                    ));
                }
            }
        }
        for c in &self.consumers {
            let q = &c.queue;
            if q.max_receive_count == 0 || q.batch_size == 0 || q.batch_size > 10_000 {
                return invalid(format!(
                    "consumer {}: max_receive_count and batch_size (1..=10000) must be set",
                    c.name
                ));
            }
            if q.fifo && q.batch_size > 10 {
                return invalid(format!(
                    "consumer {}: FIFO queues take batches of at most 10",
                    c.name
                ));
            }
            if c.subscriptions.is_empty() {
                return invalid(format!("consumer {} has no subscription", c.name));
            }
            for s in &c.subscriptions {
                match s {
                    Subscription::Bus(b) => {
                        if !buses.contains(b.bus.as_str()) {
                            return invalid(format!(
                                "consumer {}: no bus named {:?}",
                                c.name, b.bus
                            ));
                        }
                        if !rules.insert((b.bus.clone(), b.rule.clone())) {
                            return invalid(format!(
                                "rule {:?} is declared twice on bus {:?}",
                                b.rule, b.bus
                            ));
                        }
                    }
                    Subscription::Topic(t) if !topics.contains(t.topic.as_str()) => {
                        return invalid(format!(
                            "consumer {}: no topic named {:?}",
                            c.name, t.topic
                        ));
                    }
                    Subscription::Topic(_) => {}
                }
            }
            for r in &c.permissions.publish {
                check_route(r, &format!("consumer {} permissions.publish", c.name))?;
            }
        }
        Ok(())
    }

    pub fn consumer(&self, name: &str) -> Option<&ConsumerSpec> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// Where events of this detail-type are published.
    pub fn destination_of(&self, detail_type: &str) -> Option<Destination> {
        self.routes
            .get(detail_type)
            .and_then(RouteSpec::destination)
    }

    /// Every subscription on a destination, with its consumer.
    pub fn subscriptions_on<'a>(
        &'a self,
        destination: &'a Destination,
    ) -> impl Iterator<Item = (&'a ConsumerSpec, &'a Subscription)> + 'a {
        self.consumers.iter().flat_map(move |c| {
            c.subscriptions.iter().filter_map(move |s| {
                let on = match (s, destination) {
                    (Subscription::Bus(b), Destination::Bus(n)) => &b.bus == n,
                    (Subscription::Topic(t), Destination::Topic(n)) => &t.topic == n,
                    _ => false,
                };
                on.then_some((c, s))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIT: &str = "
  - name: audit
    handler: audit
    queue: { visibility_timeout_s: 30, max_receive_count: 3, batch_size: 10, batching_window_ms: 0 }
    function: { timeout_s: 5, memory_mb: 128, package: examples/audit, binary: audit-fn }
    permissions: { table: read-write }
    subscriptions:
      - bus: orders
        rule: audit
        pattern: { source: [switchyard.orders] }
";

    #[test]
    fn a_topology_extending_the_builtin_one_adds_its_consumers() {
        let t = Topology::from_yaml(&format!("extends: builtin\nconsumers:{AUDIT}")).unwrap();
        let builtin = Topology::builtin();
        assert_eq!(t.consumers.len(), builtin.consumers.len() + 1);
        assert_eq!(
            t.consumers[..builtin.consumers.len()],
            builtin.consumers[..]
        );
        let audit = t.consumers.last().unwrap();
        assert_eq!(audit.function.package.as_deref(), Some("examples/audit"));
        // What infra/ reads carries where the function is built from.
        let exported = Topology::from_json(&t.export_json()).unwrap();
        assert_eq!(exported, t);
        assert!(t.export_json().contains("\"binary\": \"audit-fn\""));
    }

    #[test]
    fn an_extension_extends_the_builtin_topology_and_adds_consumers_only() {
        let other = Topology::from_yaml(&format!("extends: mine.yaml\nconsumers:{AUDIT}"));
        assert!(other.unwrap_err().to_string().contains("only `builtin`"));
        let buses = Topology::from_yaml("extends: builtin\nbuses: [{ name: more }]\n");
        assert!(buses
            .unwrap_err()
            .to_string()
            .contains("unknown field `buses`"));
        let twice = Topology::from_yaml(&format!(
            "extends: builtin\nconsumers:{}",
            AUDIT.replace("name: audit", "name: order-processor")
        ));
        assert!(twice.unwrap_err().to_string().contains("declared twice"));
        let escape = Topology::from_yaml(&format!(
            "extends: builtin\nconsumers:{}",
            AUDIT.replace("examples/audit", "../elsewhere")
        ));
        assert!(escape.unwrap_err().to_string().contains("without `..`"));
    }

    #[test]
    fn builtin_topology_loads_and_routes_every_type() {
        let t = Topology::builtin();
        // The JSON build.rs converts is the YAML file, field for field, and
        // passes every check (from_json leaves the stream filters out).
        assert_eq!(t, Topology::from_yaml(DEFAULT_TOPOLOGY_YAML).unwrap());
        t.validate().unwrap();
        assert_eq!(
            t.destination_of("OrderPlaced"),
            Some(Destination::Bus("orders".into()))
        );
        assert_eq!(
            t.destination_of("ImageUploaded"),
            Some(Destination::Topic("images".into()))
        );
        let orders = Destination::Bus("orders".into());
        let on_bus: Vec<_> = t
            .subscriptions_on(&orders)
            .map(|(c, _)| c.name.as_str())
            .collect();
        assert!(on_bus.contains(&"order-processor"));
    }

    #[test]
    fn export_round_trips() {
        let t = Topology::builtin();
        let back: Topology = serde_json::from_str(&t.export_json()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn rejects_dangling_references() {
        let yaml = DEFAULT_TOPOLOGY_YAML.replace("- topic: images", "- topic: imagez");
        let err = Topology::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains("imagez"), "{err}");
    }
}
