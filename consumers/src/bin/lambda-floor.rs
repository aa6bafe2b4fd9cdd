//! The floor `switchyard bench lambda` measures beside the consumers: a
//! hello-world `lambda_runtime` function, built by the same command with the
//! same profile. Never deployed.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
