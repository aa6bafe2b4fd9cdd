//! The audit log as a Lambda function on its SQS queue. It registers only its
//! own handler, so it links none of the built-in consumers' code.

use switchyard_consumers::registry::Registry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let registry = switchyard_custom_consumer::register(Registry::new());
    switchyard_consumers::lambda::run_sqs(switchyard_custom_consumer::NAME, registry).await
}
