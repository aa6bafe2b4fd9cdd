//! The stream reactor as a Lambda function on the table's DynamoDB stream.

mod common;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::run_stream(switchyard_consumers::stream_reactor::NAME).await
}
