//! The order-processor consumer as a Lambda function on its SQS queue.

use switchyard_consumers::registry::Registry;
use switchyard_consumers::{lambda, order_processor};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Only this handler: the binary links only the code it runs.
    lambda::run_sqs(
        order_processor::NAME,
        Registry::new().with_order_processor(),
    )
    .await
}
