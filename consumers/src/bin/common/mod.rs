//! Start-up shared by the consumer Lambda binaries: adapters from the
//! environment (see `switchyard_shared::aws::lambda`), JSON logs, and the
//! Lambda runtime loop around the registry's handler.

// Each binary uses the half of this module that fits its event source.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use router_rules::Topology;
use switchyard_consumers::decode_budget;
use switchyard_consumers::registry::{self, Deps};
use switchyard_imaging::{Limits, VariantSpec, DEFAULT_DECODE_MEMORY};
use switchyard_shared::aws::lambda::{init_json_logs, restore_sqs_event, LambdaAdapters};

/// The topology the function was built with, or the file `SWITCHYARD_TOPOLOGY` names.
fn topology() -> Result<Topology, Error> {
    Ok(match std::env::var_os("SWITCHYARD_TOPOLOGY") {
        Some(path) => Topology::load(path.as_ref())?,
        None => Topology::builtin(),
    })
}

/// Logs, topology and adapters; `needs_bucket` makes `SWITCHYARD_BUCKET` required.
async fn setup(needs_bucket: bool) -> Result<(Topology, Deps), Error> {
    init_json_logs();
    let topology = topology()?;
    let routes: BTreeMap<_, _> = topology
        .routes
        .iter()
        .filter_map(|(t, r)| Some((t.clone(), r.destination()?)))
        .collect();
    let adapters = LambdaAdapters::from_env(routes, needs_bucket).await?;
    let deps = Deps {
        table: adapters.table,
        blobs: adapters.blobs,
        publisher: adapters.publisher,
        variants: VariantSpec::defaults(),
        // Sized from the function's memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
        limits: Limits {
            max_decode_memory: decode_budget::budget_from_env(DEFAULT_DECODE_MEMORY),
            ..Limits::default()
        },
    };
    Ok((topology, deps))
}

/// Runs an SQS-triggered handler; the response is the partial batch response.
pub async fn run_sqs(handler: &str, needs_bucket: bool) -> Result<(), Error> {
    let (topology, deps) = setup(needs_bucket).await?;
    // The consumer's name (spans, idempotency markers): the one infra/ sets, else
    // the topology's consumer that runs this handler, as in the embedded runtime.
    let consumer = std::env::var("SWITCHYARD_CONSUMER")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            topology
                .consumers
                .iter()
                .find(|c| c.handler == handler)
                .map(|c| c.name.clone())
        })
        .unwrap_or_else(|| handler.to_owned());
    let batch = registry::sqs_handler(handler, &consumer, &deps)
        .ok_or_else(|| format!("no SQS handler named {handler:?}"))?;
    tracing::info!(%handler, %consumer, "ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let batch = batch.clone();
        async move {
            let mut payload = event.payload;
            restore_sqs_event(&mut payload);
            let outcome = batch.handle_batch(payload).await;
            for (id, (reason, permanent)) in &outcome.failures {
                tracing::warn!(message_id = %id, %reason, permanent, "message failed");
            }
            Ok::<_, Error>(outcome.response)
        }
    }))
    .await
}

/// Runs a DynamoDB-stream-triggered handler.
pub async fn run_stream(handler: &str) -> Result<(), Error> {
    let (_, deps) = setup(false).await?;
    let reactor = Arc::new(
        registry::stream_handler(handler, &deps)
            .ok_or_else(|| format!("no stream handler named {handler:?}"))?,
    );
    tracing::info!(%handler, "ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| {
        let reactor = reactor.clone();
        async move { Ok::<_, Error>(reactor.handle(event.payload).await) }
    }))
    .await
}
