//! Switchyard's consumers, and how a consumer is made. Each handler takes
//! the `aws_lambda_events` batch Lambda would hand it and returns the
//! partial-batch response, so the same code runs under the embedded
//! runtime, the moto pollers and real Lambda.
//!
//! - A consumer's logic is a [`MessageHandler`] (one event of an SQS batch)
//!   or a [`StreamHandler`] (a batch of DynamoDB Streams changes).
//! - [`layers`] wrap it, tower style, in what every consumer needs: tracing,
//!   metrics, idempotency markers, panics turned into failed items, the
//!   partial-batch response.
//! - The [`Registry`] names handlers as the topology's `handler:` fields
//!   name them; the built-in ones ([`order_processor`], [`image_processor`],
//!   [`notifier`], [`stream_reactor`]) register the same way a user's do.
//! - `lambda` (feature `lambda`) runs one named handler as a Lambda function.
//!
//! A new consumer from a crate of one's own (the whole of it, with its
//! topology, a scenario test with faults and a Lambda binary, is
//! `examples/custom-consumer/` in the repository):
//!
//! ```
//! use router_rules::Topology;
//! use switchyard_consumers::{Delivery, HandlerError, MessageHandler, Registry};
//!
//! struct CountPaid;
//!
//! #[async_trait::async_trait]
//! impl MessageHandler for CountPaid {
//!     async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
//!         if delivery.envelope.detail_type != "OrderPaid" {
//!             return Err(HandlerError::permanent("only OrderPaid is routed here"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let registry = Registry::builtin().sqs("count-paid", |_deps| Ok(CountPaid));
//! // Every handler the built-in topology names is registered...
//! registry.check(&Topology::builtin()).unwrap();
//! // ...and a topology naming one that is not fails at load, saying which.
//! let typo = Registry::new().with_order_processor();
//! let error = typo.check(&Topology::builtin()).unwrap_err().to_string();
//! assert!(error.contains("is registered"), "{error}");
//! ```

pub mod decode_budget;
pub mod deps;
pub mod emf;
pub mod image_processor;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod layers;
pub mod notifier;
pub mod order_processor;
pub mod registry;
pub mod stream_handler;
pub mod stream_reactor;

pub use deps::{Deps, DepsError};
pub use layers::{BatchOutcome, Delivery, HandlerError, MessageHandler, SqsBatchHandler};
pub use registry::Registry;
pub use stream_handler::StreamHandler;
