//! Publishing events to a bus (EventBridge) or a topic (SNS).

use async_trait::async_trait;
use uuid::Uuid;

use crate::envelope::{Envelope, EnvelopeError};

/// Where an event goes, by name (the topology maps names to ARNs on AWS).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Bus(String),
    Topic(String),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Bus(n) => write!(f, "bus {n}"),
            Destination::Topic(n) => write!(f, "topic {n}"),
        }
    }
}

/// One event that could not be published, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishFailure {
    pub event_id: Uuid,
    pub reason: String,
}

/// The outcome of a publish: events that went out, and those that did not.
/// A publisher never drops an event silently: it is in one list or the other.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReport {
    pub published: Vec<Uuid>,
    pub failed: Vec<PublishFailure>,
}

impl PublishReport {
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
    /// Turns any failed entry into an error (for callers that need all-or-nothing).
    pub fn into_result(self) -> Result<Vec<Uuid>, PublishError> {
        if self.failed.is_empty() {
            Ok(self.published)
        } else {
            Err(PublishError::Partial(self.failed))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(#[from] EnvelopeError),
    #[error("no route for detail-type {0:?} in the topology")]
    NoRoute(String),
    #[error("{} event(s) failed to publish: {}", .0.len(), .0.iter().map(|f| format!("{}: {}", f.event_id, f.reason)).collect::<Vec<_>>().join("; "))]
    Partial(Vec<PublishFailure>),
    #[error("backend error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Validates and publishes the events to where the topology routes each
    /// detail-type. Invalid events fail the call before anything is sent.
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError>;
}
