//! Routing for Switchyard: the topology ([`Topology`]: buses, topics,
//! consumers and their subscriptions, from one YAML file), and the engine
//! that matches events against EventBridge event patterns ([`BusMatcher`])
//! and SNS filter policies ([`TopicMatcher`]).
//!
//! ```
//! use router_rules::{BusMatcher, Topology};
//! use serde_json::json;
//!
//! let pattern = json!({"source": ["switchyard.orders"], "detail": {"total_cents": [{"numeric": [">", 10000]}]}});
//! let bus = BusMatcher::compile([("big-orders", &pattern)]).unwrap();
//! let event = r#"{"source":"switchyard.orders","detail-type":"OrderPlaced","detail":{"total_cents":25000}}"#;
//! assert_eq!(bus.matches(event), vec!["big-orders"]);
//! assert!(bus.matches(r#"{"source":"switchyard.orders","detail":{"total_cents":5}}"#).is_empty());
//!
//! // The built-in topology, or a file that extends it (`extends: builtin`).
//! let topology = Topology::builtin();
//! assert!(topology.consumers.iter().any(|c| c.name == "order-processor"));
//! ```
//!
//! Semantics, as AWS documents them (the conformance suite in
//! `tests/conformance/` cites the page for each case):
//!
//! - A field's array lists alternatives; the fields of a pattern must all
//!   match. An event array matches when any element does, and fields taken
//!   from different elements of one array of objects never combine.
//! - Values are typed: `"35"` is not `35`, `true` is not `1`; numbers compare
//!   by value (`35 == 35.0 == 3.5e1`), over the whole float64 range on
//!   EventBridge and at five decimals within ±1e9 on SNS.
//! - `exists` looks at leaf values only: `null` exists, `[]` and `{}` do not.
//!   `exists: false` holds when the path has no value anywhere in the event.
//! - `anything-but X` holds for a present value that X does not match, so
//!   `anything-but {"prefix": "a"}` accepts numbers.
//! - What AWS rejects is rejected with a [`PatternError`] naming the path and
//!   the operator, including the SNS-only restrictions and limits: `numeric`
//!   takes a lower bound before an upper one (event-ruler's grammar, SNS's
//!   too); SNS counts a nested MessageBody policy's combinations with each
//!   array's key depth as a factor; EventBridge refuses wildcards too complex
//!   by event-ruler's measure ([`complexity`]).
//! - A dotted key, in an EventBridge pattern or event or in an SNS
//!   MessageBody policy or body, is the nested path it spells. A message body
//!   that is not one JSON object matches no MessageBody policy.
//!
//! The matcher reads an event's JSON text once and stops after the last field
//! any rule names; text after that point is not validated.

mod automaton;
#[cfg(feature = "bench")]
pub mod bench;
pub mod check;
pub mod complexity;
pub mod eval;
pub mod flat;
#[doc(hidden)]
pub mod fuzzing;
pub mod matcher;
pub mod pattern;
pub mod reference;
pub mod stream_filter;
pub mod topology;

pub use matcher::{
    parse_sns_attributes, AttributeError, BusMatcher, PatternError, TopicMatcher, Verdict,
};
pub use pattern::{Dialect, Pattern};
pub use stream_filter::{FilterError, StreamFilter};
pub use topology::{Topology, TopologyError};
