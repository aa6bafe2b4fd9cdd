//! Handler names, as the topology's `handler:` fields use them, mapped to
//! the code that runs them. A new consumer is one handler plus one line here
//! and one entry in the topology.

use std::sync::Arc;

use switchyard_imaging::{Limits, VariantSpec};
use switchyard_shared::ports::{BlobStore, EventPublisher, Table};

use crate::layers::{message_service, MessageHandler, SqsBatchHandler};
use crate::stream_reactor::StreamReactor;
use crate::{image_processor, notifier, order_processor, stream_reactor};

/// What handlers are built from: the adapters of whichever backend runs them.
#[derive(Clone)]
pub struct Deps {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub publisher: Arc<dyn EventPublisher>,
    pub variants: Vec<VariantSpec>,
    pub limits: Limits,
}

/// Names of the SQS handlers this build has.
pub const SQS_HANDLERS: &[&str] = &[order_processor::NAME, image_processor::NAME, notifier::NAME];
/// Names of the stream handlers this build has.
pub const STREAM_HANDLERS: &[&str] = &[stream_reactor::NAME];

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

/// The order processor: its transaction carries its own marker, atomically with the write.
pub fn order_processor_logic(table: Arc<dyn Table>) -> SqsLogic {
    SqsLogic {
        logic: Arc::new(order_processor::OrderProcessor::new(table)),
        idempotency: None,
    }
}

/// The image processor, behind the marker layer.
pub fn image_processor_logic(
    table: Arc<dyn Table>,
    blobs: Arc<dyn BlobStore>,
    publisher: Arc<dyn EventPublisher>,
    variants: Vec<VariantSpec>,
    limits: Limits,
) -> SqsLogic {
    SqsLogic {
        logic: Arc::new(image_processor::ImageProcessor::new(
            table.clone(),
            blobs,
            publisher,
            variants,
            limits,
        )),
        idempotency: Some(table),
    }
}

/// The notifier: its write is keyed on the event id already.
pub fn notifier_logic(table: Arc<dyn Table>) -> SqsLogic {
    SqsLogic {
        logic: Arc::new(notifier::Notifier::new(table)),
        idempotency: None,
    }
}

/// The SQS batch handler for `handler`, wrapped in the standard layers, as
/// consumer `consumer` (the name spans and idempotency markers carry).
pub fn sqs_handler(handler: &str, consumer: &str, deps: &Deps) -> Option<SqsBatchHandler> {
    let logic = match handler {
        order_processor::NAME => order_processor_logic(deps.table.clone()),
        image_processor::NAME => image_processor_logic(
            deps.table.clone(),
            deps.blobs.clone(),
            deps.publisher.clone(),
            deps.variants.clone(),
            deps.limits.clone(),
        ),
        notifier::NAME => notifier_logic(deps.table.clone()),
        _ => return None,
    };
    Some(logic.into_batch_handler(consumer))
}

/// The stream handler for `handler`.
pub fn stream_handler(handler: &str, deps: &Deps) -> Option<StreamReactor> {
    match handler {
        stream_reactor::NAME => Some(StreamReactor::new(deps.publisher.clone())),
        _ => None,
    }
}
