//! `switchyard demo`: the whole flow on a fresh embedded data dir. It places
//! orders, uploads images (some of them bad on purpose), pays, ships and
//! cancels, waits until the system is quiet, then accounts for every event.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use router_rules::Topology;
use switchyard_shared::config::DataDir;
use switchyard_shared::events::{
    EventType, ImageUploaded, LineItem, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped,
    OrderStatus,
};
use switchyard_shared::items::{
    applied_event_key, image_key, item_type, ImageRecord, ImageStatus, TableRecord,
};
use switchyard_shared::{BlobKey, Envelope};
use uuid::Uuid;

use crate::embedded::EmbeddedSystem;
use crate::runtime::RuntimeOptions;
use crate::state::StateSnapshot;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub orders: usize,
    pub data_dir: DataDir,
    pub quiet_timeout: Duration,
}

/// What the demo expects of one order once everything settles.
struct Plan {
    order_id: String,
    total: u64,
    pay: bool,
    ship: bool,
    cancel: bool,
}

/// The bad uploads, each with the rejection code it must earn.
const BAD_IMAGES: &[(&str, &str)] = &[
    ("corrupt", "corrupt"),
    ("too-large", "too_large"),
    ("too-many-pixels", "too_many_pixels"),
    ("not-an-image", "unsupported_type"),
    ("empty", "empty"),
];

fn plans(count: usize) -> Vec<Plan> {
    (0..count)
        .map(|i| {
            let pay = i % 4 != 3; // 3 in 4 are paid
            let cancel = i % 10 == 3 || i % 10 == 5; // some unpaid, some paid
            Plan {
                order_id: format!("demo-{i:04}"),
                total: 1000 + (i as u64 * 37) % 9000,
                pay,
                ship: pay && !cancel && i % 3 != 0,
                cancel,
            }
        })
        .collect()
}

fn expected_status(p: &Plan) -> OrderStatus {
    match (p.cancel, p.ship, p.pay) {
        (true, _, _) => OrderStatus::Cancelled,
        (false, true, _) => OrderStatus::Shipped,
        (false, false, true) => OrderStatus::Paid,
        _ => OrderStatus::Placed,
    }
}

/// A photo-like test image: smooth gradients plus deterministic texture.
pub(crate) fn sample_jpeg(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let n = (x.wrapping_mul(73_856_093)
            ^ y.wrapping_mul(19_349_663)
            ^ seed.wrapping_mul(83_492_791))
            % 32;
        image::Rgb([
            ((x * 255 / width) as u8).wrapping_add(n as u8),
            ((y * 255 / height) as u8),
            ((seed * 40) % 255) as u8,
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .expect("encoding a generated JPEG");
    out
}

/// A small PNG whose header claims `width`x`height` (IHDR rewritten, CRC fixed).
pub(crate) fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::DynamicImage::ImageLuma8(image::GrayImage::new(8, 8))
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a generated PNG");
    // Signature (8) + length (4) + "IHDR" (4), then width and height.
    out[16..20].copy_from_slice(&width.to_be_bytes());
    out[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |mut crc, &byte| {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
        crc
    })
}

pub(crate) fn bad_image(kind: &str) -> (Vec<u8>, &'static str) {
    match kind {
        // JPEG magic, then garbage where the headers should be.
        "corrupt" => {
            let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
            jpeg.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
            (jpeg, "image/jpeg")
        }
        // 26 MB: over the 25 MB limit, refused before it is fetched.
        "too-large" => {
            let mut big = sample_jpeg(64, 64, 1);
            big.resize(26 * 1024 * 1024, 0);
            (big, "image/jpeg")
        }
        // Claims 8000x7000 = 56 MP, over the 50 MP limit: a decompression bomb in
        // miniature, which must be refused from its header alone.
        "too-many-pixels" => (png_claiming(8000, 7000), "image/png"),
        "not-an-image" => (
            b"this is a text file pretending to be a PNG".to_vec(),
            "image/png",
        ),
        _ => (Vec::new(), "image/jpeg"),
    }
}

pub struct DemoOutcome {
    pub summary: String,
    pub unaccounted: Vec<String>,
}

pub async fn run(options: DemoOptions) -> anyhow::Result<DemoOutcome> {
    let topology = Arc::new(Topology::builtin());
    let mut system = EmbeddedSystem::open(&options.data_dir, topology)?;
    let runtime = RuntimeOptions::default();
    system.start(&runtime).await?;
    let outcome = run_on(&system, &options).await?;
    system.shutdown().await;
    Ok(outcome)
}

/// The demo on a started system (left running: `switchyard demo --console`
/// keeps serving the console on it).
pub async fn run_on(system: &EmbeddedSystem, options: &DemoOptions) -> anyhow::Result<DemoOutcome> {
    let started = Instant::now();
    let plans = plans(options.orders);
    let mut published: Vec<Envelope> = Vec::new();
    let mut uploads: Vec<(ImageUploaded, Option<&'static str>)> = Vec::new();

    let progress = |phase: &str| eprintln!("[{:>5.1}s] {phase}", started.elapsed().as_secs_f64());
    progress(&format!("data dir {}", options.data_dir.root.display()));

    progress(&format!(
        "placing {} orders and uploading images",
        plans.len()
    ));
    let mut phase: Vec<Envelope> = plans
        .iter()
        .map(|p| {
            OrderPlaced {
                order_id: p.order_id.clone(),
                customer_id: format!("customer-{}", p.total % 17),
                items: vec![LineItem {
                    sku: "SKU-1".into(),
                    quantity: 1,
                    unit_price_cents: p.total,
                }],
                total_cents: p.total,
                currency: "EUR".into(),
            }
            .into_envelope()
        })
        .collect();
    // Every fifth order gets a photo; a few get a bad file.
    let mut image_jobs: Vec<(usize, Vec<u8>, &str, Option<&'static str>)> = Vec::new();
    for (i, _) in plans.iter().enumerate().step_by(5) {
        let bytes = if i % 2 == 0 {
            sample_jpeg(1600, 1200, i as u32)
        } else {
            sample_jpeg(900, 1400, i as u32)
        };
        image_jobs.push((i, bytes, "image/jpeg", None));
    }
    for (n, (kind, code)) in BAD_IMAGES.iter().enumerate() {
        let (bytes, content_type) = bad_image(kind);
        image_jobs.push((
            (n * 7 + 1) % plans.len().max(1),
            bytes,
            content_type,
            Some(*code),
        ));
    }
    for (i, bytes, content_type, expect_rejection) in image_jobs {
        let order_id = &plans[i].order_id;
        let image_id = Uuid::now_v7().to_string();
        let key = BlobKey::new(format!("uploads/{order_id}/{image_id}"))?;
        let size = bytes.len() as u64;
        system
            .blobs
            .put(&key, Bytes::from(bytes), content_type)
            .await?;
        let upload = ImageUploaded {
            image_id,
            order_id: order_id.clone(),
            key: key.to_string(),
            content_type: content_type.to_owned(),
            size_bytes: size,
        };
        phase.push(upload.clone().into_envelope());
        uploads.push((upload, expect_rejection));
    }
    // Payments go out with the placements: a payment that overtakes its
    // placement is retried until the order exists.
    phase.extend(plans.iter().filter(|p| p.pay).map(|p| {
        OrderPaid {
            order_id: p.order_id.clone(),
            payment_id: format!("pay-{}", p.order_id),
            amount_cents: p.total,
        }
        .into_envelope()
    }));
    publish_all(system, &phase).await?;
    published.extend(phase);
    system
        .wait_quiet(options.quiet_timeout)
        .await
        .context("after placing and paying")?;

    progress("shipping and cancelling");
    let mut phase: Vec<Envelope> = Vec::new();
    for p in &plans {
        if p.ship {
            phase.push(
                OrderShipped {
                    order_id: p.order_id.clone(),
                    carrier: "DHL".into(),
                    tracking_number: format!("TRK{}", p.total),
                }
                .into_envelope(),
            );
        }
        if p.cancel {
            phase.push(
                OrderCancelled {
                    order_id: p.order_id.clone(),
                    reason: "customer changed their mind".into(),
                }
                .into_envelope(),
            );
        }
    }
    publish_all(system, &phase).await?;
    published.extend(phase);
    system
        .wait_quiet(options.quiet_timeout)
        .await
        .context("after shipping and cancelling")?;

    // Commands the state machine must refuse: they end in the DLQ with a reason.
    progress("sending commands that must be refused (they go to the DLQ)");
    let mut phase: Vec<Envelope> = Vec::new();
    if let Some(p) = plans.iter().find(|p| p.cancel) {
        phase.push(
            OrderShipped {
                order_id: p.order_id.clone(),
                carrier: "UPS".into(),
                tracking_number: "LATE".into(),
            }
            .into_envelope(),
        );
    }
    if let Some(p) = plans.iter().find(|p| p.ship) {
        phase.push(
            OrderCancelled {
                order_id: p.order_id.clone(),
                reason: "too late".into(),
            }
            .into_envelope(),
        );
    }
    let refused: BTreeSet<Uuid> = phase.iter().map(|e| e.id).collect();
    publish_all(system, &phase).await?;
    published.extend(phase);
    system
        .wait_quiet(options.quiet_timeout)
        .await
        .context("after the refused commands")?;

    progress("accounting for every event");
    let outcome = account(system, &plans, &published, &uploads, &refused).await?;
    progress("done");
    Ok(outcome)
}

async fn publish_all(system: &EmbeddedSystem, events: &[Envelope]) -> anyhow::Result<()> {
    for chunk in events.chunks(100) {
        system.publisher.publish(chunk).await?.into_result()?;
    }
    Ok(())
}

/// Checks every event: applied by its consumer, or in a DLQ with a reason.
async fn account(
    system: &EmbeddedSystem,
    plans: &[Plan],
    published: &[Envelope],
    uploads: &[(ImageUploaded, Option<&'static str>)],
    refused: &BTreeSet<Uuid>,
) -> anyhow::Result<DemoOutcome> {
    let mut unaccounted = Vec::new();
    let mut dead: BTreeMap<Uuid, (String, String)> = BTreeMap::new();
    let mut dlq_lines = Vec::new();
    for dlq in system.dead_letter_queues() {
        for m in system.store.list_messages(&dlq, 10_000)? {
            let reason = m
                .last_failure
                .clone()
                .unwrap_or_else(|| "(no reason recorded)".into());
            match Envelope::from_json(&m.body) {
                Ok(e) => {
                    dlq_lines.push(format!(
                        "  {dlq}: {} {} for {} — {reason}",
                        e.detail_type,
                        e.id,
                        e.detail["order_id"].as_str().unwrap_or("?")
                    ));
                    dead.insert(e.id, (dlq.clone(), reason));
                }
                Err(_) => dlq_lines.push(format!(
                    "  {dlq}: unreadable message {} — {reason}",
                    m.message_id
                )),
            }
        }
    }
    for e in published
        .iter()
        .filter(|e| e.detail_type.starts_with("Order"))
    {
        let applied = system
            .table
            .get(&applied_event_key(e.id, "order-processor"))
            .await?
            .is_some();
        let in_dlq = dead.contains_key(&e.id);
        let should_refuse = refused.contains(&e.id);
        if should_refuse && !in_dlq {
            unaccounted.push(format!(
                "{} {} should have been refused into the DLQ",
                e.detail_type, e.id
            ));
        } else if !should_refuse && !applied {
            let where_ = if in_dlq { "dead-lettered" } else { "lost" };
            unaccounted.push(format!(
                "{} {} for {} was {where_}",
                e.detail_type, e.id, e.detail["order_id"]
            ));
        }
    }
    let snapshot = StateSnapshot::of(&*system.table).await?;
    for p in plans {
        let want = expected_status(p);
        match snapshot.orders.get(&p.order_id).and_then(|o| o.status) {
            Some(got) if got == want => {}
            got => unaccounted.push(format!(
                "order {}: expected {}, found {:?}",
                p.order_id,
                want.as_str(),
                got
            )),
        }
    }
    let mut thumbnails = 0usize;
    let mut images: BTreeMap<String, usize> = BTreeMap::new();
    for (upload, expect) in uploads {
        let item = system
            .table
            .get(&image_key(&upload.order_id, &upload.image_id))
            .await?;
        let record = item
            .filter(|i| item_type(i) == Some(ImageRecord::TYPE))
            .map(|i| ImageRecord::from_item(&i))
            .transpose()?;
        match (record, expect) {
            (Some(r), None) if r.status == ImageStatus::Ready => {
                *images.entry("READY".into()).or_default() += 1;
                for v in &r.variants {
                    let key = switchyard_shared::BlobKey::new(v.key.clone())?;
                    thumbnails += usize::from(system.blobs.size(&key).await?.is_some());
                }
            }
            (Some(r), Some(code))
                if r.status == ImageStatus::Rejected && r.reject_code.as_deref() == Some(*code) =>
            {
                *images.entry(format!("REJECTED ({code})")).or_default() += 1;
            }
            (r, expect) => unaccounted.push(format!(
                "image {} of {}: expected {}, found {:?}",
                upload.image_id,
                upload.order_id,
                expect.map_or("READY".to_owned(), |c| format!("REJECTED ({c})")),
                r.map(|r| (r.status, r.reject_code))
            )),
        }
    }
    let mut s = String::new();
    s.push_str("\nSwitchyard demo summary\n=======================\n");
    s.push_str(&format!(
        "events published: {}\n\norders by status:\n",
        published.len()
    ));
    for (status, n) in snapshot.status_counts() {
        s.push_str(&format!("  {status:<10} {n:>5}\n"));
    }
    s.push_str("\nimages by status:\n");
    for (status, n) in &images {
        s.push_str(&format!("  {status:<28} {n:>5}\n"));
    }
    let place = system
        .blob_root
        .as_ref()
        .map_or("memory".to_owned(), |root| {
            root.join("thumbnails").display().to_string()
        });
    s.push_str(&format!(
        "\nthumbnails written: {thumbnails} files under {place}\n"
    ));
    // One line per (queue, reason), with how many messages gave it.
    let mut reasons: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (queue, reason) in dead.values() {
        *reasons.entry((queue.clone(), reason.clone())).or_default() += 1;
    }
    s.push_str(&format!(
        "\ndead-letter queues ({} messages):\n",
        dlq_lines.len()
    ));
    for ((queue, reason), n) in &reasons {
        s.push_str(&format!("  {queue}: {n} × {reason}\n"));
    }
    let unreadable = dlq_lines.len() - dead.len().min(dlq_lines.len());
    if unreadable > 0 {
        s.push_str(&format!("  {unreadable} unreadable message(s)\n"));
    }
    s.push_str(&format!(
        "\naccounted for: {} of {} events{}\n",
        published.len() - unaccounted.len().min(published.len()),
        published.len(),
        if unaccounted.is_empty() {
            " — every order and image accounted for".to_owned()
        } else {
            format!(" — {} problems", unaccounted.len())
        }
    ));
    if dlq_lines.len() != refused.len() {
        unaccounted.push(format!(
            "expected exactly {} DLQ messages, found {}",
            refused.len(),
            dlq_lines.len()
        ));
    }
    Ok(DemoOutcome {
        summary: s,
        unaccounted,
    })
}

/// Refuses an existing non-empty data dir: the demo wants a fresh one.
pub fn fresh_data_dir(arg: Option<std::path::PathBuf>) -> anyhow::Result<DataDir> {
    let root = match arg {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("switchyard-demo-{}", Uuid::now_v7())),
    };
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        bail!(
            "{} is not empty; the demo needs a fresh data dir",
            root.display()
        );
    }
    Ok(DataDir::new(root))
}
