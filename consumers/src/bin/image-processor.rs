//! The image-processor consumer as a Lambda function on its SQS queue.

use switchyard_consumers::lambda::Function;
use switchyard_consumers::{image_processor, registry};
use switchyard_imaging::VariantSpec;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let function = Function::start(image_processor::NAME).await?;
    let logic = registry::image_processor_logic(
        function.table()?,
        function.blobs()?,
        function.publisher(),
        VariantSpec::defaults(),
        function.image_limits(),
    );
    function.run_sqs(logic).await
}
