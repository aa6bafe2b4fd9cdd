//! Routing for Switchyard: the topology, and the engine that matches events
//! against EventBridge event patterns and SNS filter policies.

pub mod matcher;
pub mod topology;

pub use matcher::{BusMatcher, PatternError, TopicMatcher};
pub use topology::{Topology, TopologyError};
