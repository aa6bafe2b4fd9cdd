//! A batch of small files with large pixel counts (the shape of the batch
//! that peaked at 2.36 GB in the image processor) runs within the decode
//! memory budget, and an image that needs more than the whole budget is
//! rejected instead of waiting forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use switchyard_consumers::image_processor::ImageProcessor;
use switchyard_consumers::layers::message_service;
use switchyard_consumers::SqsBatchHandler;
use switchyard_imaging::{fixtures, peak_memory, Limits, Rgb, VariantSpec};
use switchyard_shared::embedded::{EmbeddedStore, FolderBlobStore};
use switchyard_shared::events::{EventType, ImageUploaded};
use switchyard_shared::items::{item_type, ImageRecord, ImageStatus, TableRecord};
use switchyard_shared::ports::{BlobStore, EventPublisher, PublishError, PublishReport, Table};
use switchyard_shared::{BlobKey, Envelope};

#[derive(Default)]
struct Recording(Mutex<Vec<Envelope>>);

#[async_trait]
impl EventPublisher for Recording {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(PublishReport {
            published: events.iter().map(|e| e.id).collect(),
            ..Default::default()
        })
    }
}

/// A PNG of `width × height` that compresses to almost nothing: few bytes,
/// many pixels.
fn flat_png(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let pixels = (width * height) as usize;
    fixtures::png(&Rgb {
        width,
        height,
        data: [shade, 90, 200].repeat(pixels),
    })
}

struct Harness {
    processor: Arc<ImageProcessor>,
    batch: SqsBatchHandler,
    table: Arc<dyn Table>,
    blobs: Arc<FolderBlobStore>,
    published: Arc<Recording>,
    dir: std::path::PathBuf,
}

impl Harness {
    fn new(name: &str, limits: Limits) -> Harness {
        let dir =
            std::env::temp_dir().join(format!("switchyard-budget-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = EmbeddedStore::in_memory().unwrap();
        let table: Arc<dyn Table> = Arc::new(store.table());
        let blobs = Arc::new(FolderBlobStore::new(&dir).unwrap());
        let published = Arc::new(Recording::default());
        let processor = Arc::new(ImageProcessor::new(
            table.clone(),
            blobs.clone(),
            published.clone(),
            VariantSpec::defaults(),
            limits,
        ));
        let batch = SqsBatchHandler::new(message_service("images", processor.clone(), None));
        Harness {
            processor,
            batch,
            table,
            blobs,
            published,
            dir,
        }
    }

    /// Stores each image and builds the batch announcing them.
    async fn batch_of(&self, images: &[Vec<u8>]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for (i, bytes) in images.iter().enumerate() {
            let key = format!("uploads/o{i}/i{i}");
            self.blobs
                .put(
                    &BlobKey::new(key.clone()).unwrap(),
                    Bytes::from(bytes.clone()),
                    "image/png",
                )
                .await
                .unwrap();
            let envelope = ImageUploaded {
                image_id: format!("i{i}"),
                order_id: format!("o{i}"),
                key,
                content_type: "image/png".into(),
                size_bytes: bytes.len() as u64,
            }
            .into_envelope();
            let mut message = SqsMessage::default();
            message.message_id = Some(format!("m{i}"));
            message.body = Some(envelope.to_json());
            event.records.push(message);
        }
        event
    }

    async fn images(&self) -> Vec<ImageRecord> {
        let mut images: Vec<ImageRecord> = self
            .table
            .scan()
            .await
            .unwrap()
            .iter()
            .filter(|item| item_type(item) == Some(ImageRecord::TYPE))
            .map(|item| ImageRecord::from_item(item).unwrap())
            .collect();
        images.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        images
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_huge_pixel_counts_stays_within_the_decode_budget() {
    // Five files of a few KB, each decoding to tens of MB.
    let images: Vec<Vec<u8>> = (0..5).map(|i| flat_png(2400, 1800, 40 * i)).collect();
    let needs: Vec<u64> = images
        .iter()
        .map(|png| peak_memory(png, &VariantSpec::defaults(), &Limits::default()).unwrap())
        .collect();
    let largest = *needs.iter().max().unwrap();
    // Room for one decode and a half: two never run at once.
    let budget = largest * 3 / 2;
    assert!(images.iter().all(|png| png.len() < 64 << 10), "small files");
    // What main did, all five decodes at once, would need far more.
    assert!(needs.iter().sum::<u64>() > 3 * budget);

    let h = Harness::new(
        "batch",
        Limits {
            max_decode_memory: budget,
            ..Limits::default()
        },
    );
    let event = h.batch_of(&images).await;
    let outcome = tokio::time::timeout(Duration::from_secs(120), h.batch.handle_batch(event))
        .await
        .expect("the batch finishes");
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let records = h.images().await;
    assert_eq!(records.len(), 5);
    assert!(
        records
            .iter()
            .all(|r| r.status == ImageStatus::Ready && r.variants.len() == 2),
        "{records:?}"
    );
    let budget = h.processor.budget();
    assert!(
        budget.peak_reserved() <= budget.total(),
        "reserved {} of {}",
        budget.peak_reserved(),
        budget.total()
    );
    // The counter saw the decodes (whole KiB, rounded up).
    assert!(
        budget.peak_reserved() >= largest,
        "{}",
        budget.peak_reserved()
    );
    assert_eq!(budget.reserved(), 0, "every reservation released");
}

#[tokio::test]
async fn an_image_needing_more_than_the_whole_budget_is_rejected_not_stuck() {
    let big = flat_png(3000, 3000, 7);
    let small = flat_png(300, 200, 9);
    let need = peak_memory(&big, &VariantSpec::defaults(), &Limits::default()).unwrap();
    let fits = peak_memory(&small, &VariantSpec::defaults(), &Limits::default()).unwrap();
    let budget = (need + fits) / 2;
    assert!(fits < budget && need > budget);
    let h = Harness::new(
        "reject",
        Limits {
            max_decode_memory: budget,
            ..Limits::default()
        },
    );
    let event = h.batch_of(&[big, small]).await;
    let outcome = tokio::time::timeout(Duration::from_secs(60), h.batch.handle_batch(event))
        .await
        .expect("an oversized need is refused at once, not waited on");
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let records = h.images().await;
    assert_eq!(records[0].status, ImageStatus::Rejected);
    assert_eq!(
        records[0].reject_code.as_deref(),
        Some("over_memory_budget")
    );
    let reason = records[0].reject_reason.as_deref().unwrap();
    assert!(reason.contains("MiB"), "{reason}");
    // Its neighbour in the batch is made as usual.
    assert_eq!(records[1].status, ImageStatus::Ready);
    let published = h.published.0.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].detail_type, "ImageRejected");
    assert_eq!(published[0].detail["code"], "over_memory_budget");
}
