//! The stream reactor as a Lambda function on the table's DynamoDB stream.

use switchyard_consumers::lambda::Function;
use switchyard_consumers::stream_reactor::{self, StreamReactor};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let function = Function::start(stream_reactor::NAME).await?;
    let reactor = StreamReactor::new(function.publisher());
    function.run_stream(reactor).await
}
