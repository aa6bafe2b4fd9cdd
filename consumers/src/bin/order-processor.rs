//! The order-processor consumer as a Lambda function on its SQS queue.

use switchyard_consumers::lambda::Function;
use switchyard_consumers::{order_processor, registry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let function = Function::start(order_processor::NAME).await?;
    let logic = registry::order_processor_logic(function.table()?);
    function.run_sqs(logic).await
}
