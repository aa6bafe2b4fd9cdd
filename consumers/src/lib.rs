//! Switchyard's consumers. Each handler takes the `aws_lambda_events` batch
//! Lambda would hand it and returns the partial-batch response, so the same
//! code runs under the embedded runtime, the moto pollers and real Lambda.

pub mod decode_budget;
pub mod emf;
pub mod image_processor;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod layers;
pub mod notifier;
pub mod order_processor;
pub mod registry;
pub mod stream_reactor;

pub use layers::{BatchOutcome, Delivery, HandlerError, MessageHandler, SqsBatchHandler};
