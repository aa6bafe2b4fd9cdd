//! The AWS adapters: the ports on SNS, EventBridge, SQS, DynamoDB (+ Streams)
//! and S3, through the official SDK crates.
//!
//! The same adapters run against real AWS and against a local emulator (moto
//! server): [`load_sdk_config`] uses the standard credential and region chain,
//! so `AWS_ENDPOINT_URL`, `AWS_REGION` and profiles work, and an explicit
//! endpoint (`--endpoint URL`) wins over them.
//!
//! # How an envelope crosses EventBridge
//!
//! `PutEvents` only lets a sender set `Source`, `DetailType`, `Detail`,
//! `Time` and `Resources`; EventBridge assigns its own `id`, and `Time` has
//! second precision. Switchyard's `id`, `time`, `schema-version`,
//! `correlation-id`, `causation-id` and `traceparent` therefore travel inside `detail`,
//! under the reserved key [`transport::RESERVED_DETAIL_KEY`]
//! (`"switchyard"`). Rules still match on `detail` fields as written (an
//! extra key never stops a pattern from matching, and no event type has a
//! field of that name). On the way out of SQS, [`transport::restore_body`]
//! lifts the key back out and rebuilds the original [`crate::Envelope`], so a
//! handler sees the same envelope on every backend. The SQS adapter and the
//! Lambda binaries both call it. An event put on the bus by another tool
//! (the aws CLI, boto3) has no reserved key; it is read as the current
//! schema version of its detail-type, with EventBridge's id as its own
//! correlation. On SNS the message body is the envelope itself (raw
//! delivery), so nothing needs restoring there.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

pub mod blobs;
pub mod lambda;
pub mod publish;
pub mod queue;
pub mod stream;
pub mod table;
pub mod transport;

mod retry;

pub use blobs::S3Blobs;
pub use publish::{AwsPublisher, PublishTargets};
pub use queue::SqsQueue;
pub use stream::DynamoStream;
pub use table::DynamoTable;

/// The SDK crates, for code (provisioning, tests) that talks to AWS directly
/// without depending on the SDK itself.
pub mod sdk {
    pub use aws_config as config;
    pub use aws_sdk_dynamodb as dynamodb;
    pub use aws_sdk_dynamodbstreams as dynamodbstreams;
    pub use aws_sdk_eventbridge as eventbridge;
    pub use aws_sdk_s3 as s3;
    pub use aws_sdk_sns as sns;
    pub use aws_sdk_sqs as sqs;
}

/// What the AWS adapters can do, for the conformance suites. SQS keeps no
/// failure reason beside a message, and redriving a DLQ (SQS
/// `StartMessageMoveTask`, which moto lacks) is not offered through the port.
pub const CAPABILITIES: crate::ports::Capabilities = crate::ports::Capabilities {
    fifo_queues: true,
    dlq_redrive: false,
    dlq_reasons: false,
    transactions: true,
    old_item_on_condition_failure: true,
};

/// The region used when neither the environment nor a profile names one.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Loads the SDK configuration from the standard chain. With an `endpoint`
/// (an emulator), every client talks to it, and dummy credentials stand in
/// when none are configured, because emulators accept any.
pub async fn load_sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if let Some(url) = endpoint {
        // An emulator is not on EC2: asking IMDS for a region only waits and warns.
        let region = aws_config::meta::region::RegionProviderChain::first_try(
            aws_config::environment::EnvironmentVariableRegionProvider::new(),
        )
        .or_else(aws_config::profile::ProfileFileRegionProvider::new())
        .or_else(Region::new(FALLBACK_REGION));
        loader = loader.endpoint_url(url).region(region);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "switchyard-emulator",
            ));
        }
    }
    // The loader's own region chain (env, profile, IMDS) uses the HTTP client above;
    // only when it finds nothing does the fallback apply.
    let config = loader.load().await;
    if config.region().is_some() {
        return config;
    }
    config
        .into_builder()
        .region(Region::new(FALLBACK_REGION))
        .build()
}

/// The HTTPS client every SDK client uses: rustls on ring keeps the build
/// free of aws-lc's C toolchain.
fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The SDK configuration inside a Lambda function, read straight from what
/// Lambda sets: `AWS_REGION`, the execution role's `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and `AWS_ENDPOINT_URL`
/// where one is set (tests against moto). Not [`load_sdk_config`]'s default
/// chain: its profile files, STS (web identity, assume role), ECS and IMDS
/// providers never answer on Lambda, and linking them costs every bootstrap
/// size and start-up time (BENCHMARKS.md "Lambda").
pub fn lambda_sdk_config() -> SdkConfig {
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| FALLBACK_REGION.to_owned());
    let credentials = aws_sdk_sqs::config::SharedCredentialsProvider::new(
        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .http_client(https_client());
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        if !url.is_empty() {
            builder = builder.endpoint_url(url);
        }
    }
    builder.build()
}

/// The S3 client for `config`. An emulator on 127.0.0.1 has no per-bucket
/// host names: path-style URLs there.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

/// One client per service, built from one [`SdkConfig`].
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub config: SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        AwsClients {
            config: config.clone(),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            eventbridge: aws_sdk_eventbridge::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            streams: aws_sdk_dynamodbstreams::Client::new(config),
            s3: s3_client(config),
        }
    }

    /// Loads the configuration (see [`load_sdk_config`]) and builds every client.
    pub async fn connect(endpoint: Option<&str>) -> Self {
        AwsClients::new(&load_sdk_config(endpoint).await)
    }

    /// The configured region.
    pub fn region(&self) -> &str {
        self.config
            .region()
            .map(Region::as_ref)
            .unwrap_or(FALLBACK_REGION)
    }
}

/// An SDK error with its whole chain of causes, for error messages.
pub(crate) fn describe<E: std::error::Error>(err: &E) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(err).to_string()
}

/// Whether an SDK error is worth retrying: no response at all, a timeout, a
/// throttle, or a 5xx.
pub(crate) fn is_transient<E, R>(err: &aws_sdk_sqs::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata,
{
    use aws_sdk_sqs::error::SdkError;
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or_default();
            code.contains("Throttl")
                || matches!(
                    code,
                    "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                        | "SlowDown"
                )
        }
        _ => false,
    }
}

/// SQS's long-poll ceiling.
pub(crate) const MAX_LONG_POLL: Duration = Duration::from_secs(20);
