//! The image processor: fetches an uploaded original, makes its thumbnails
//! in one decode, stores them and records the variants on the image item.
//!
//! A bad image is not an error of the consumer: it is recorded as REJECTED,
//! announced with `ImageRejected`, and the message leaves the batch handled.
//!
//! A batch's messages run concurrently, so each decode first reserves the
//! memory its header says it needs from the processor's [`DecodeBudget`]
//! (`Limits::max_decode_memory`): a batch of small files with huge pixel
//! counts decodes one after another instead of all at once, and an image
//! that needs more than the whole budget is rejected (`over_memory_budget`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use switchyard_imaging::{Limits, Rejection, VariantSpec};
use switchyard_shared::events::{EventType, ImageRejected, ImageUploaded, ImageVariant};
use switchyard_shared::items::{ImageRecord, ImageStatus, TableRecord};
use switchyard_shared::ports::{BlobError, BlobStore, Condition, EventPublisher, Table};
use switchyard_shared::{BlobKey, DomainEvent, Envelope};

use crate::decode_budget::DecodeBudget;
use crate::layers::{Delivery, HandlerError, MessageHandler};

pub const NAME: &str = "image-processor";

/// Where thumbnails go: `thumbnails/<image id>/<variant>.<ext>`.
pub fn thumbnail_key(
    image_id: &str,
    variant: &str,
    extension: &str,
) -> Result<BlobKey, HandlerError> {
    BlobKey::new(format!("thumbnails/{image_id}/{variant}.{extension}"))
        .map_err(|e| HandlerError::permanent(format!("thumbnail key: {e}")))
}

pub struct ImageProcessor {
    table: Arc<dyn Table>,
    blobs: Arc<dyn BlobStore>,
    publisher: Arc<dyn EventPublisher>,
    variants: Arc<[VariantSpec]>,
    limits: Limits,
    budget: DecodeBudget,
}

impl ImageProcessor {
    pub fn new(
        table: Arc<dyn Table>,
        blobs: Arc<dyn BlobStore>,
        publisher: Arc<dyn EventPublisher>,
        variants: Vec<VariantSpec>,
        limits: Limits,
    ) -> Self {
        ImageProcessor {
            table,
            blobs,
            publisher,
            variants: variants.into(),
            budget: DecodeBudget::new(limits.max_decode_memory),
            limits,
        }
    }

    /// The memory budget its decodes reserve from.
    pub fn budget(&self) -> &DecodeBudget {
        &self.budget
    }

    async fn thumbnails(
        &self,
        upload: &ImageUploaded,
    ) -> Result<Result<Vec<ImageVariant>, Rejection>, HandlerError> {
        let source = BlobKey::new(upload.key.clone())
            .map_err(|e| HandlerError::permanent(format!("ImageUploaded.key: {e}")))?;
        // Refuse oversized originals before fetching them.
        match self.blobs.size(&source).await {
            Ok(Some(size)) if size > self.limits.max_bytes => {
                return Ok(Err(Rejection::TooLarge {
                    size,
                    limit: self.limits.max_bytes,
                }))
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(HandlerError::retry(format!(
                    "original {source} is not in the blob store (yet)"
                )))
            }
            Err(e) => return Err(blob_error(e)),
        }
        let original = self.blobs.get(&source).await.map_err(blob_error)?;
        let need =
            match switchyard_imaging::peak_memory(&original.bytes, &self.variants, &self.limits) {
                Ok(need) => need,
                Err(rejection) => return Ok(Err(rejection)),
            };
        let reservation = match self.budget.reserve(need).await {
            Ok(reservation) => reservation,
            Err(over) => {
                return Ok(Err(Rejection::OverMemoryBudget {
                    need: over.need,
                    budget: over.budget,
                }))
            }
        };
        let (variants, limits) = (self.variants.clone(), self.limits.clone());
        let outputs = switchyard_shared::ports::clock::run_blocking(move || {
            let outputs = switchyard_imaging::process(&original.bytes, &variants, &limits);
            // Held by the decode itself: if this message's future is dropped
            // (a timeout), the memory stays reserved until the decode ends.
            drop(reservation);
            outputs
        })
        .await
        .map_err(|e| HandlerError::permanent(format!("image pipeline crashed: {e}")))?;
        let outputs = match outputs {
            Ok(outputs) => outputs,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let mut variants = Vec::with_capacity(outputs.len());
        for o in outputs {
            let key = thumbnail_key(&upload.image_id, &o.name, o.format.extension())?;
            let size = o.bytes.len() as u64;
            self.blobs
                .put(&key, Bytes::from(o.bytes), o.format.content_type())
                .await
                .map_err(blob_error)?;
            variants.push(ImageVariant {
                name: o.name,
                key: key.to_string(),
                width: o.width,
                height: o.height,
                format: o.format.extension().to_owned(),
                bytes: size,
            });
        }
        Ok(Ok(variants))
    }
}

fn blob_error(e: BlobError) -> HandlerError {
    HandlerError::retry(format!("blob store: {e}"))
}

#[async_trait]
impl MessageHandler for ImageProcessor {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let DomainEvent::ImageUploaded(upload) = DomainEvent::from_envelope(&d.envelope)
            .map_err(|e| HandlerError::permanent(e.to_string()))?
        else {
            return Err(HandlerError::permanent(format!(
                "the image processor does not handle {}",
                d.envelope.detail_type
            )));
        };
        let outcome = self.thumbnails(&upload).await?;
        let mut record = ImageRecord {
            image_id: upload.image_id.clone(),
            order_id: upload.order_id.clone(),
            status: ImageStatus::Ready,
            source_key: upload.key.clone(),
            variants: Vec::new(),
            reject_code: None,
            reject_reason: None,
            correlation_id: d.envelope.correlation_id,
            last_event_id: d.envelope.id,
            traceparent: Some(d.trace),
        };
        match outcome {
            Ok(variants) => {
                record.variants = variants;
                self.table.put(record.to_item(), Condition::Always).await?;
            }
            Err(rejection) => {
                tracing::info!(code = rejection.code(), reason = %rejection, "image rejected");
                record.status = ImageStatus::Rejected;
                record.reject_code = Some(rejection.code().to_owned());
                record.reject_reason = Some(rejection.to_string());
                self.table.put(record.to_item(), Condition::Always).await?;
                let mut event = ImageRejected {
                    image_id: upload.image_id.clone(),
                    order_id: upload.order_id.clone(),
                    code: rejection.code().to_owned(),
                    reason: rejection.to_string(),
                }
                .into_envelope()
                .caused_by(d.envelope.correlation_id, d.envelope.id)
                .traced(d.trace);
                // Same id on every retry, so a redelivery does not announce the rejection twice.
                event.id =
                    Envelope::derived_id(d.envelope.time, &format!("rejected/{}", d.envelope.id));
                event.time = d.envelope.time;
                self.publisher
                    .publish(&[event])
                    .await
                    .map_err(|e| HandlerError::retry(format!("publishing ImageRejected: {e}")))?
                    .into_result()
                    .map_err(|e| HandlerError::retry(e.to_string()))?;
            }
        }
        Ok(())
    }
}
