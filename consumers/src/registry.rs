//! Handlers by name, as the topology's `handler:` fields name them. The
//! built-in consumers register here the same way a user's crate registers
//! its own:
//!
//! ```
//! use std::sync::Arc;
//! use switchyard_consumers::registry::Registry;
//! use switchyard_consumers::{Delivery, HandlerError, MessageHandler};
//!
//! struct Audit;
//!
//! #[async_trait::async_trait]
//! impl MessageHandler for Audit {
//!     async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
//!         println!("{}", delivery.envelope.detail_type);
//!         Ok(())
//!     }
//! }
//!
//! let registry = Registry::builtin().sqs("audit-log", |_deps| Ok(Audit));
//! assert!(registry.sqs_names().any(|n| n == "audit-log"));
//! ```
//!
//! Each builder asks [`Deps`] for only the ports it uses, so a Lambda
//! function configures (and a binary registering one handler links) only
//! those.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use router_rules::Topology;
use switchyard_shared::ports::Table;

use crate::layers::{message_service, MessageHandler, SqsBatchHandler};
use crate::stream_handler::StreamHandler;
use crate::stream_reactor::StreamReactor;
use crate::{image_processor, notifier, order_processor, stream_reactor};

pub use crate::deps::{Adapters, Deps, DepsError, ImageSettings, Ports};

/// A handler's logic, and the table of its idempotency markers when the
/// marker layer must wrap it (handlers whose writes are not idempotent alone).
pub struct SqsLogic {
    pub logic: Arc<dyn MessageHandler>,
    pub idempotency: Option<Arc<dyn Table>>,
}

impl SqsLogic {
    /// Wrapped in the standard layers, as consumer `consumer` (the name spans
    /// and idempotency markers carry).
    pub fn into_batch_handler(self, consumer: &str) -> SqsBatchHandler {
        SqsBatchHandler::new(message_service(consumer, self.logic, self.idempotency))
    }
}

type BuildSqs = Arc<dyn Fn(&Deps) -> Result<SqsLogic, DepsError> + Send + Sync>;
type BuildStream = Arc<dyn Fn(&Deps) -> Result<Arc<dyn StreamHandler>, DepsError> + Send + Sync>;

/// Why the registry cannot give the handler a topology entry names.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{kind} {entry}: no handler named {handler:?} is registered (registered: {registered})"
    )]
    Unknown {
        kind: &'static str,
        entry: String,
        handler: String,
        registered: String,
    },
    #[error("{kind} {entry}: building handler {handler:?}: {source}")]
    Build {
        kind: &'static str,
        entry: String,
        handler: String,
        source: DepsError,
    },
}

/// Handlers by name: SQS handlers (a consumer's queue) and stream handlers
/// (the table's change stream). A name is registered once: registering it
/// again panics, as a clash is a bug in the program, not in its input.
#[derive(Clone, Default)]
pub struct Registry {
    sqs: BTreeMap<String, BuildSqs>,
    stream: BTreeMap<String, BuildStream>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sqs", &self.sqs.keys().collect::<Vec<_>>())
            .field("stream", &self.stream.keys().collect::<Vec<_>>())
            .finish()
    }
}

const SQS: &str = "consumer";
const STREAM: &str = "stream consumer";

impl Registry {
    /// No handlers.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Switchyard's own handlers: the order processor, the image processor,
    /// the notifier and the stream reactor.
    pub fn builtin() -> Self {
        Registry::new()
            .with_order_processor()
            .with_image_processor()
            .with_notifier()
            .with_stream_reactor()
    }

    /// The order processor: its transaction carries its own marker, atomically with the write.
    pub fn with_order_processor(self) -> Self {
        self.sqs_self_idempotent(order_processor::NAME, |deps| {
            Ok(order_processor::OrderProcessor::new(deps.table()?))
        })
    }

    /// The image processor, behind the marker layer.
    pub fn with_image_processor(self) -> Self {
        self.sqs(image_processor::NAME, |deps| {
            let images = deps.images().clone();
            Ok(image_processor::ImageProcessor::new(
                deps.table()?,
                deps.blobs()?,
                deps.publisher()?,
                images.variants,
                images.limits,
            ))
        })
    }

    /// The notifier: its write is keyed on the event id already.
    pub fn with_notifier(self) -> Self {
        self.sqs_self_idempotent(notifier::NAME, |deps| {
            Ok(notifier::Notifier::new(deps.table()?))
        })
    }

    /// The stream reactor.
    pub fn with_stream_reactor(self) -> Self {
        self.stream(stream_reactor::NAME, |deps| {
            Ok(StreamReactor::new(deps.publisher()?))
        })
    }

    /// Registers SQS handler `name`, behind the idempotency-marker layer: a
    /// redelivered message whose event was handled already is acknowledged
    /// without running the handler again. The markers live in the table.
    pub fn sqs<H: MessageHandler>(
        self,
        name: &str,
        build: impl Fn(&Deps) -> Result<H, DepsError> + Send + Sync + 'static,
    ) -> Self {
        self.insert_sqs(name, build, true)
    }

    /// Registers SQS handler `name`, whose writes are idempotent alone
    /// (conditional on the event id, say): no marker layer.
    pub fn sqs_self_idempotent<H: MessageHandler>(
        self,
        name: &str,
        build: impl Fn(&Deps) -> Result<H, DepsError> + Send + Sync + 'static,
    ) -> Self {
        self.insert_sqs(name, build, false)
    }

    /// Registers stream handler `name`.
    pub fn stream<H: StreamHandler>(
        mut self,
        name: &str,
        build: impl Fn(&Deps) -> Result<H, DepsError> + Send + Sync + 'static,
    ) -> Self {
        self.assert_free(name);
        let build: BuildStream = Arc::new(move |deps| Ok(Arc::new(build(deps)?)));
        self.stream.insert(name.to_owned(), build);
        self
    }

    fn insert_sqs<H: MessageHandler>(
        mut self,
        name: &str,
        build: impl Fn(&Deps) -> Result<H, DepsError> + Send + Sync + 'static,
        markers: bool,
    ) -> Self {
        self.assert_free(name);
        let build: BuildSqs = Arc::new(move |deps| {
            Ok(SqsLogic {
                logic: Arc::new(build(deps)?),
                idempotency: if markers { Some(deps.table()?) } else { None },
            })
        });
        self.sqs.insert(name.to_owned(), build);
        self
    }

    fn assert_free(&self, name: &str) {
        assert!(
            !self.sqs.contains_key(name) && !self.stream.contains_key(name),
            "handler {name:?} is registered twice"
        );
    }

    /// The registered SQS handlers' names, sorted.
    pub fn sqs_names(&self) -> impl Iterator<Item = &str> {
        self.sqs.keys().map(String::as_str)
    }

    /// The registered stream handlers' names, sorted.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.stream.keys().map(String::as_str)
    }

    /// Every consumer of `topology` names a registered handler of its kind.
    pub fn check(&self, topology: &Topology) -> Result<(), RegistryError> {
        for c in &topology.consumers {
            self.sqs_build(&c.name, &c.handler)?;
        }
        for s in &topology.stream_consumers {
            self.stream_build(&s.name, &s.handler)?;
        }
        Ok(())
    }

    fn sqs_build(&self, entry: &str, handler: &str) -> Result<&BuildSqs, RegistryError> {
        self.sqs
            .get(handler)
            .ok_or_else(|| unknown(SQS, entry, handler, self.sqs_names()))
    }

    fn stream_build(&self, entry: &str, handler: &str) -> Result<&BuildStream, RegistryError> {
        self.stream
            .get(handler)
            .ok_or_else(|| unknown(STREAM, entry, handler, self.stream_names()))
    }

    /// The SQS handler `handler` for consumer `consumer` (the name spans and
    /// idempotency markers carry), wrapped in the standard layers.
    pub fn sqs_logic(
        &self,
        handler: &str,
        consumer: &str,
        deps: &Deps,
    ) -> Result<SqsLogic, RegistryError> {
        self.sqs_build(consumer, handler)?(deps).map_err(|source| RegistryError::Build {
            kind: SQS,
            entry: consumer.to_owned(),
            handler: handler.to_owned(),
            source,
        })
    }

    /// [`Registry::sqs_logic`] in the standard layers.
    pub fn sqs_handler(
        &self,
        handler: &str,
        consumer: &str,
        deps: &Deps,
    ) -> Result<SqsBatchHandler, RegistryError> {
        Ok(self
            .sqs_logic(handler, consumer, deps)?
            .into_batch_handler(consumer))
    }

    /// The stream handler `handler` for stream consumer `consumer`.
    pub fn stream_handler(
        &self,
        handler: &str,
        consumer: &str,
        deps: &Deps,
    ) -> Result<Arc<dyn StreamHandler>, RegistryError> {
        self.stream_build(consumer, handler)?(deps).map_err(|source| RegistryError::Build {
            kind: STREAM,
            entry: consumer.to_owned(),
            handler: handler.to_owned(),
            source,
        })
    }
}

fn unknown<'a>(
    kind: &'static str,
    entry: &str,
    handler: &str,
    names: impl Iterator<Item = &'a str>,
) -> RegistryError {
    let names: Vec<&str> = names.collect();
    RegistryError::Unknown {
        kind,
        entry: entry.to_owned(),
        handler: handler.to_owned(),
        registered: if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_registry_runs_the_builtin_topology() {
        Registry::builtin().check(&Topology::builtin()).unwrap();
    }

    #[test]
    fn an_unknown_handler_names_the_entry_and_the_registered_names() {
        let mut topology = Topology::builtin();
        topology.consumers[0].handler = "audit-lg".into();
        let name = topology.consumers[0].name.clone();
        let err = Registry::builtin()
            .check(&topology)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("consumer {name}")), "{err}");
        assert!(err.contains("\"audit-lg\""), "{err}");
        assert!(
            err.contains("image-processor, notifier, order-processor"),
            "{err}"
        );

        let mut topology = Topology::builtin();
        topology.stream_consumers[0].handler = "order-processor".into();
        let err = Registry::builtin()
            .check(&topology)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stream consumer"), "{err}");
        assert!(err.contains("(registered: stream-reactor)"), "{err}");
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registers_once() {
        let _ = Registry::builtin().with_notifier();
    }
}
