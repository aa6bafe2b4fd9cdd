//! What the consumer Lambda binaries share: logs, the topology, the SDK
//! configuration, the consumer's name, and the Lambda runtime loop around a
//! handler. Each binary builds only the adapters its handler calls (so it
//! links only those AWS clients, and only the image processor links the
//! image stack), then hands the handler to [`Function::run_sqs`] or
//! [`Function::run_stream`].

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use router_rules::Topology;
use switchyard_imaging::{Limits, DEFAULT_DECODE_MEMORY};
use switchyard_shared::aws::lambda::{
    blobs_from_env, init_json_logs, publisher_from_env, restore_sqs_event, table_from_env,
};
use switchyard_shared::aws::sdk::config::SdkConfig;
use switchyard_shared::ports::{BlobStore, EventPublisher, Table};
use tower::{Layer, ServiceExt};

use crate::decode_budget;
use crate::emf::{EmfLayer, EmfSink};
use crate::registry::SqsLogic;
use crate::stream_reactor::StreamReactor;

/// One consumer's Lambda function, before its runtime loop starts.
pub struct Function {
    handler: String,
    consumer: String,
    topology: Topology,
    config: SdkConfig,
}

impl Function {
    /// Logs, the topology (built in, or the JSON file `SWITCHYARD_TOPOLOGY`
    /// names, as `switchyard topology export` writes it: a Lambda function
    /// links no YAML parser) and the SDK configuration, for the function
    /// running `handler`.
    pub async fn start(handler: &str) -> Result<Self, Error> {
        init_json_logs();
        let topology = match std::env::var_os("SWITCHYARD_TOPOLOGY") {
            Some(path) => Topology::load_json(path.as_ref())?,
            None => Topology::builtin(),
        };
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
        let config = switchyard_shared::aws::lambda_sdk_config();
        Ok(Function {
            handler: handler.to_owned(),
            consumer,
            topology,
            config,
        })
    }

    /// The table (`SWITCHYARD_TABLE`).
    pub fn table(&self) -> Result<Arc<dyn Table>, Error> {
        Ok(Arc::new(table_from_env(&self.config)?))
    }

    /// The blob bucket (`SWITCHYARD_BUCKET`).
    pub fn blobs(&self) -> Result<Arc<dyn BlobStore>, Error> {
        Ok(Arc::new(blobs_from_env(&self.config)?))
    }

    /// The publisher, routing each event type as the topology does.
    pub fn publisher(&self) -> Arc<dyn EventPublisher> {
        let routes: BTreeMap<_, _> = self
            .topology
            .routes
            .iter()
            .filter_map(|(t, r)| Some((t.clone(), r.destination()?)))
            .collect();
        Arc::new(publisher_from_env(&self.config, routes))
    }

    /// The image processor's limits, its decode budget sized from the
    /// function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub fn image_limits(&self) -> Limits {
        Limits {
            max_decode_memory: decode_budget::budget_from_env(DEFAULT_DECODE_MEMORY),
            ..Limits::default()
        }
    }

    /// Runs an SQS-triggered handler; the response is the partial batch response.
    /// Each invocation's metrics are written as EMF lines on stdout.
    pub async fn run_sqs(self, logic: SqsLogic) -> Result<(), Error> {
        let max_receive_count = self
            .topology
            .consumers
            .iter()
            .find(|c| c.name == self.consumer)
            .map(|c| c.queue.max_receive_count);
        let emf = EmfLayer::new(
            Arc::new(EmfSink::lambda(&self.consumer)?),
            &self.consumer,
            max_receive_count,
        );
        let batch = emf.layer(logic.into_batch_handler(&self.consumer));
        tracing::info!(handler = %self.handler, consumer = %self.consumer, "ready");
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
            let batch = batch.clone();
            async move {
                let mut payload = event.payload;
                restore_sqs_event(&mut payload);
                let Ok(outcome) = batch.oneshot(payload).await;
                for (id, (reason, permanent)) in &outcome.failures {
                    tracing::warn!(message_id = %id, %reason, permanent, "message failed");
                }
                Ok::<_, Error>(outcome.response)
            }
        }))
        .await
    }

    /// Runs a DynamoDB-stream-triggered handler.
    pub async fn run_stream(self, reactor: StreamReactor) -> Result<(), Error> {
        let reactor = Arc::new(reactor);
        tracing::info!(handler = %self.handler, "ready");
        lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| {
            let reactor = reactor.clone();
            async move { Ok::<_, Error>(reactor.handle(event.payload).await) }
        }))
        .await
    }
}
