//! The notifier consumer as a Lambda function on its SQS queue.

use switchyard_consumers::lambda::Function;
use switchyard_consumers::{notifier, registry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let function = Function::start(notifier::NAME).await?;
    let logic = registry::notifier_logic(function.table()?);
    function.run_sqs(logic).await
}
