//! Peak RSS of the image processor on one batch of small PNGs with huge pixel
//! counts (the issue's repro: five ~381 KB files), with a given decode
//! memory budget. Prints the process's VmHWM at the end.
//!
//! ```sh
//! cargo run --release -p switchyard-consumers --example hostile_batch -- BUDGET_MB [COUNT] [SIDE]
//! ```
//! BUDGET_MB 768 is a 1024 MB Lambda's budget; a budget larger than the
//! batch's needs runs every decode at once, as main did. The files are made
//! by a child process, so making them does not count in the peak.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use switchyard_consumers::image_processor::ImageProcessor;
use switchyard_consumers::layers::message_service;
use switchyard_consumers::SqsBatchHandler;
use switchyard_imaging::{fixtures, measure, peak_memory, Limits, Rgb, VariantSpec};
use switchyard_shared::embedded::{EmbeddedStore, FolderBlobStore};
use switchyard_shared::events::{EventType, ImageUploaded};
use switchyard_shared::ports::{BlobStore, EventPublisher, PublishError, PublishReport};
use switchyard_shared::{BlobKey, Envelope};

struct Discard;

#[async_trait]
impl EventPublisher for Discard {
    async fn publish(&self, events: &[Envelope]) -> Result<PublishReport, PublishError> {
        Ok(PublishReport {
            published: events.iter().map(|e| e.id).collect(),
            ..Default::default()
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("generate") {
        return generate(&args[1], args[2].parse()?, args[3].parse()?);
    }
    let budget_mb: u64 = args.first().map_or(Ok(768), |a| a.parse())?;
    let count: usize = args.get(1).map_or(Ok(5), |a| a.parse())?;
    let side: u32 = args.get(2).map_or(Ok(7000), |a| a.parse())?;

    let inputs = std::env::temp_dir().join(format!("switchyard-hostile-in-{}", std::process::id()));
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("generate")
        .arg(&inputs)
        .args([count.to_string(), side.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "generating the inputs: {status}");
    let dir = std::env::temp_dir().join(format!("switchyard-hostile-{}", std::process::id()));
    let store = EmbeddedStore::in_memory()?;
    let blobs = Arc::new(FolderBlobStore::new(&dir)?);
    let limits = Limits {
        max_decode_memory: budget_mb << 20,
        ..Limits::default()
    };
    let processor = Arc::new(ImageProcessor::new(
        Arc::new(store.table()),
        blobs.clone(),
        Arc::new(Discard),
        VariantSpec::defaults(),
        limits.clone(),
    ));
    let batch = SqsBatchHandler::new(message_service("images", processor.clone(), None));

    let mut event = SqsEvent::default();
    for i in 0..count {
        let png = std::fs::read(inputs.join(format!("{i}.png")))?;
        let need = peak_memory(&png, &VariantSpec::defaults(), &limits)?;
        eprintln!(
            "image {i}: {side}x{side}, {} KB, estimated peak {} MB",
            png.len() >> 10,
            need >> 20
        );
        let key = format!("uploads/o{i}/i{i}");
        blobs
            .put(
                &BlobKey::new(key.clone())?,
                Bytes::from(png.clone()),
                "image/png",
            )
            .await?;
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m{i}"));
        message.body = Some(
            ImageUploaded {
                image_id: format!("i{i}"),
                order_id: format!("o{i}"),
                key,
                content_type: "image/png".into(),
                size_bytes: png.len() as u64,
            }
            .into_envelope()
            .to_json(),
        );
        event.records.push(message);
    }
    let rss_before = measure::own_peak_rss()?;
    let started = std::time::Instant::now();
    let outcome = batch.handle_batch(event).await;
    let elapsed = started.elapsed();
    std::fs::remove_dir_all(&dir)?;
    std::fs::remove_dir_all(&inputs)?;
    println!(
        "budget {budget_mb} MB: {count} images of {side}x{side}, failures {}, peak reserved {} MB, \
         peak RSS before the batch {} MB, after {} MB, {:.1} s",
        outcome.failures.len(),
        processor.budget().peak_reserved() >> 20,
        rss_before >> 20,
        measure::own_peak_rss()? >> 20,
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// Writes COUNT flat-colour PNGs of SIDE × SIDE: a few hundred KB at most each.
fn generate(dir: &str, count: usize, side: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..count {
        let png = fixtures::png(&Rgb {
            width: side,
            height: side,
            data: [(i * 50) as u8, 90, 200].repeat(side as usize * side as usize),
        });
        std::fs::write(std::path::Path::new(dir).join(format!("{i}.png")), png)?;
    }
    Ok(())
}
