//! A queue's configuration and SQS's rules for it, apart from the queue so
//! that the state it lives in needs nothing of the queue port.

use crate::ports::QueueError;

/// SQS limits.
const MAX_NAME_CHARS: usize = 80;

/// A queue and its redrive policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// SQS rules: 1-80 of `[A-Za-z0-9_-]`; FIFO names end in `.fifo`.
    pub name: String,
    pub fifo: bool,
    /// Receives before a message moves to the DLQ (ignored without a DLQ).
    pub max_receive_count: u32,
    pub dead_letter_queue: Option<String>,
}

impl QueueConfig {
    /// A queue without a DLQ; FIFO if the name ends in `.fifo`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        QueueConfig {
            fifo: name.ends_with(".fifo"),
            name,
            max_receive_count: 0,
            dead_letter_queue: None,
        }
    }

    /// Sends messages received more than `max_receive_count` times to `dlq`.
    pub fn with_dlq(mut self, dlq: impl Into<String>, max_receive_count: u32) -> Self {
        self.dead_letter_queue = Some(dlq.into());
        self.max_receive_count = max_receive_count;
        self
    }

    /// Checks the config against SQS's rules (the DLQ's existence is checked on create).
    pub fn validate(&self) -> Result<(), QueueError> {
        validate_name(&self.name, self.fifo)?;
        if let Some(dlq) = &self.dead_letter_queue {
            if dlq == &self.name {
                return Err(QueueError::Invalid(format!(
                    "queue {:?} cannot be its own dead-letter queue",
                    self.name
                )));
            }
            if dlq.ends_with(".fifo") != self.fifo {
                return Err(QueueError::Invalid(format!(
                    "queue {:?} and its dead-letter queue {dlq:?} must both be FIFO or both standard",
                    self.name
                )));
            }
            if !(1..=1000).contains(&self.max_receive_count) {
                return Err(QueueError::Invalid(format!(
                    "queue {:?}: max_receive_count must be 1..=1000 with a dead-letter queue, got {}",
                    self.name, self.max_receive_count
                )));
            }
        }
        Ok(())
    }
}

fn validate_name(name: &str, fifo: bool) -> Result<(), QueueError> {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(QueueError::Invalid(format!(
            "queue name {name:?}: use 1-{MAX_NAME_CHARS} characters of A-Z a-z 0-9 - _ (plus `.fifo` for FIFO queues)"
        )));
    }
    if fifo != name.ends_with(".fifo") {
        return Err(QueueError::Invalid(format!(
            "queue name {name:?}: FIFO queue names end in `.fifo`, and only theirs do (fifo = {fifo})"
        )));
    }
    Ok(())
}
