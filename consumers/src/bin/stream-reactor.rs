//! The stream reactor as a Lambda function on the table's DynamoDB stream.

use switchyard_consumers::registry::Registry;
use switchyard_consumers::{lambda, stream_reactor};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Only this handler: the binary links only the code it runs.
    lambda::run_stream(stream_reactor::NAME, Registry::new().with_stream_reactor()).await
}
