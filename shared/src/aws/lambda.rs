//! What every Lambda binary shares: configuration from the environment,
//! JSON logs, and turning EventBridge-shaped SQS bodies back into envelopes.
//!
//! Environment: `SWITCHYARD_TABLE` (table name), `SWITCHYARD_BUCKET` (bucket
//! name, for functions that touch blobs), `SWITCHYARD_BUS_<NAME>` and
//! `SWITCHYARD_TOPIC_<NAME>` (see [`super::PublishTargets::from_env`]), and
//! the SDK's own (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials).

use aws_lambda_events::event::sqs::SqsEvent;

use super::transport;

#[derive(Debug, thiserror::Error)]
#[error("{name} is not set: {purpose}")]
pub struct MissingEnv {
    pub name: &'static str,
    pub purpose: &'static str,
}

/// A required environment variable, or an error that names it.
pub fn required_env(name: &'static str, purpose: &'static str) -> Result<String, MissingEnv> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(MissingEnv { name, purpose })
}

/// One JSON object per log line (CloudWatch parses them), filtered by
/// `RUST_LOG` (default `info`).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        // Lambda adds its own timestamp and request id to every line.
        .without_time()
        .with_target(false)
        .init();
}

/// Rebuilds Switchyard envelopes in bodies that came from EventBridge (see
/// [`transport::restore_body`]); other bodies are left as they are.
pub fn restore_sqs_event(event: &mut SqsEvent) {
    for record in &mut event.records {
        if let Some(restored) = record.body.as_deref().and_then(transport::restore_body) {
            record.body = Some(restored);
        }
    }
}
