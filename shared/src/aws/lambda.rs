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
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(MissingEnv { name, purpose })
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

/// The adapters a Lambda function works with, addressed from the environment.
pub struct LambdaAdapters {
    pub table: std::sync::Arc<super::DynamoTable>,
    pub blobs: std::sync::Arc<super::S3Blobs>,
    pub publisher: std::sync::Arc<super::AwsPublisher>,
}

impl LambdaAdapters {
    /// Reads `SWITCHYARD_TABLE` (required), `SWITCHYARD_BUCKET` (required if
    /// `needs_bucket`) and the bus/topic variables for `routes`
    /// (detail-type -> destination, from the topology).
    pub async fn from_env(
        routes: std::collections::BTreeMap<String, crate::ports::Destination>,
        needs_bucket: bool,
    ) -> Result<Self, MissingEnv> {
        let table = required_env("SWITCHYARD_TABLE", "the DynamoDB table this function uses")?;
        let bucket = if needs_bucket {
            required_env(
                "SWITCHYARD_BUCKET",
                "the S3 bucket this function reads and writes",
            )?
        } else {
            std::env::var("SWITCHYARD_BUCKET").unwrap_or_default()
        };
        let clients = super::AwsClients::connect(None).await;
        Ok(LambdaAdapters {
            table: std::sync::Arc::new(super::DynamoTable::new(&clients.dynamodb, &table)),
            blobs: std::sync::Arc::new(super::S3Blobs::new(&clients.s3, &bucket)),
            publisher: std::sync::Arc::new(super::AwsPublisher::new(
                &clients,
                super::PublishTargets::from_env(routes),
            )),
        })
    }
}
