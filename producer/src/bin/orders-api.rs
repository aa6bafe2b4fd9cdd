//! The orders/images HTTP API as a Lambda function behind API Gateway
//! (lambda_http), on the same axum router `switchyard up` serves locally.

use std::collections::BTreeMap;

use lambda_http::Error;
use router_rules::Topology;
use switchyard_producer::api::{router, ApiState};
use switchyard_shared::aws::lambda::{init_json_logs, LambdaAdapters};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_json_logs();
    // A topology file is JSON here (`switchyard topology export`): no YAML parser linked.
    let topology = match std::env::var_os("SWITCHYARD_TOPOLOGY") {
        Some(path) => Topology::load_json(path.as_ref())?,
        None => Topology::builtin(),
    };
    let routes: BTreeMap<_, _> = topology
        .routes
        .iter()
        .filter_map(|(t, r)| Some((t.clone(), r.destination()?)))
        .collect();
    let adapters = LambdaAdapters::from_env(routes, true).await?;
    // The upload limit is the image processor's default, as its function uses.
    let app = router(ApiState::new(
        adapters.table,
        adapters.blobs,
        adapters.publisher,
    ));
    tracing::info!("ready");
    lambda_http::run(app).await
}
