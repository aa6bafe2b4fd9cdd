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

/// The SQS batch handler for `handler`, wrapped in the standard layers, as
/// consumer `consumer` (the name spans and idempotency markers carry).
pub fn sqs_handler(handler: &str, consumer: &str, deps: &Deps) -> Option<SqsBatchHandler> {
    let (logic, idempotency): (Arc<dyn MessageHandler>, bool) = match handler {
        // Its transaction carries its own marker, atomically with the write.
        order_processor::NAME => (
            Arc::new(order_processor::OrderProcessor::new(deps.table.clone())),
            false,
        ),
        image_processor::NAME => (
            Arc::new(image_processor::ImageProcessor::new(
                deps.table.clone(),
                deps.blobs.clone(),
                deps.publisher.clone(),
                deps.variants.clone(),
                deps.limits.clone(),
            )),
            true,
        ),
        // Its write is keyed on the event id already.
        notifier::NAME => (Arc::new(notifier::Notifier::new(deps.table.clone())), false),
        _ => return None,
    };
    let table = idempotency.then(|| deps.table.clone());
    Some(SqsBatchHandler::new(message_service(
        consumer, logic, table,
    )))
}

/// The stream handler for `handler`.
pub fn stream_handler(handler: &str, deps: &Deps) -> Option<StreamReactor> {
    match handler {
        stream_reactor::NAME => Some(StreamReactor::new(deps.publisher.clone())),
        _ => None,
    }
}
