//! A consumer as a Lambda function: logs, the topology, the SDK
//! configuration and the runtime loop around the handler a [`Registry`]
//! builds. A user's Lambda binary is one call:
//!
//! ```no_run
//! # use switchyard_consumers::registry::Registry;
//! # async fn audit_log() -> Result<(), lambda_runtime::Error> {
//! # let registry = Registry::new();
//! switchyard_consumers::lambda::run_sqs("audit-log", registry).await
//! # }
//! ```
//!
//! Ports are built from the environment (`SWITCHYARD_TABLE`,
//! `SWITCHYARD_BUCKET`, the bus and topic variables) when the handler's
//! builder asks for them, so a function configures only the clients its
//! handler uses, and a binary registering one handler links only its code
//! (only the image processor links the image stack).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use router_rules::Topology;
use switchyard_imaging::{Limits, DEFAULT_DECODE_MEMORY};
use switchyard_shared::aws::lambda::{init_json_logs, restore_sqs_event};
use switchyard_shared::aws::sdk::config::SdkConfig;
use tower::{Layer, ServiceExt};

use crate::decode_budget;
use crate::deps::lambda_env::LambdaEnv;
use crate::deps::{Deps, ImageSettings};
use crate::emf::{EmfLayer, EmfSink};
use crate::registry::Registry;
use crate::stream_handler::changes;

/// Runs SQS handler `handler` of `registry` as this Lambda function.
pub async fn run_sqs(handler: &str, registry: Registry) -> Result<(), Error> {
    Function::start(handler).await?.run_sqs(&registry).await
}

/// Runs stream handler `handler` of `registry` as this Lambda function.
pub async fn run_stream(handler: &str, registry: Registry) -> Result<(), Error> {
    Function::start(handler).await?.run_stream(&registry).await
}

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

    /// What the handler is built from: ports made from the environment on
    /// first ask; the image limits' decode budget sized from the function's
    /// memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    fn deps(&self) -> Deps {
        let routes: BTreeMap<_, _> = self
            .topology
            .routes
            .iter()
            .filter_map(|(t, r)| Some((t.clone(), r.destination()?)))
            .collect();
        let images = ImageSettings {
            limits: Limits {
                max_decode_memory: decode_budget::budget_from_env(DEFAULT_DECODE_MEMORY),
                ..Limits::default()
            },
            ..ImageSettings::default()
        };
        let env = LambdaEnv {
            config: self.config.clone(),
            routes,
        };
        Deps::from_lambda_env(env, images)
    }

    /// Runs an SQS-triggered handler; the response is the partial batch response.
    /// Each invocation's metrics are written as EMF lines on stdout.
    pub async fn run_sqs(self, registry: &Registry) -> Result<(), Error> {
        let logic = registry.sqs_logic(&self.handler, &self.consumer, &self.deps())?;
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
    pub async fn run_stream(self, registry: &Registry) -> Result<(), Error> {
        let reactor = registry.stream_handler(&self.handler, &self.consumer, &self.deps())?;
        tracing::info!(handler = %self.handler, "ready");
        lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| {
            let reactor = reactor.clone();
            async move {
                let records = changes(&event.payload.records);
                Ok::<_, Error>(reactor.handle_records(&records).await)
            }
        }))
        .await
    }
}
