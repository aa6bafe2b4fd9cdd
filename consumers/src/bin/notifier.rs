//! The notifier consumer as a Lambda function on its SQS queue.

mod common;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::run_sqs(switchyard_consumers::notifier::NAME, false).await
}
