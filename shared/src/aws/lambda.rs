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

/// The logs of a Lambda function: JSON with the request id on every line
/// (see [`crate::logging::LogConfig::lambda`]).
pub fn init_json_logs() {
    crate::logging::init(crate::logging::LogConfig::lambda());
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

/// The table `SWITCHYARD_TABLE` names.
pub fn table_from_env(config: &aws_config::SdkConfig) -> Result<super::DynamoTable, MissingEnv> {
    let table = required_env("SWITCHYARD_TABLE", "the DynamoDB table this function uses")?;
    Ok(super::DynamoTable::new(
        &aws_sdk_dynamodb::Client::new(config),
        &table,
    ))
}

/// The bucket `SWITCHYARD_BUCKET` names.
pub fn blobs_from_env(config: &aws_config::SdkConfig) -> Result<super::S3Blobs, MissingEnv> {
    let bucket = required_env(
        "SWITCHYARD_BUCKET",
        "the S3 bucket this function reads and writes",
    )?;
    Ok(super::S3Blobs::new(&super::s3_client(config), &bucket))
}

/// The publisher for `routes` (detail-type -> destination, from the
/// topology), its buses and topics from the environment.
pub fn publisher_from_env(
    config: &aws_config::SdkConfig,
    routes: std::collections::BTreeMap<String, crate::ports::Destination>,
) -> super::AwsPublisher {
    super::AwsPublisher::from_clients(
        aws_sdk_eventbridge::Client::new(config),
        aws_sdk_sns::Client::new(config),
        super::PublishTargets::from_env(routes),
    )
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
        let config = super::lambda_sdk_config();
        let table = table_from_env(&config)?;
        let blobs = if needs_bucket {
            blobs_from_env(&config)?
        } else {
            let bucket = std::env::var("SWITCHYARD_BUCKET").unwrap_or_default();
            super::S3Blobs::new(&super::s3_client(&config), &bucket)
        };
        Ok(LambdaAdapters {
            table: std::sync::Arc::new(table),
            blobs: std::sync::Arc::new(blobs),
            publisher: std::sync::Arc::new(publisher_from_env(&config, routes)),
        })
    }
}
