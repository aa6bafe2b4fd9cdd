//! Routing for Switchyard: the topology, and the engine that matches events
//! against EventBridge event patterns and SNS filter policies.

mod automaton;
#[cfg(feature = "bench")]
pub mod bench;
pub mod check;
pub mod eval;
pub mod flat;
pub mod matcher;
pub mod pattern;
pub mod reference;
pub mod topology;

pub use matcher::{
    parse_sns_attributes, AttributeError, BusMatcher, PatternError, TopicMatcher, Verdict,
};
pub use pattern::{Dialect, Pattern};
pub use topology::{Topology, TopologyError};
