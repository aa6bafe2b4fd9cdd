//! `peak_memory` is what the image processor reserves before a decode, so it
//! must be an upper bound of what `process` really holds. This binary counts
//! every heap allocation of the Rust side (libjpeg-turbo's and libwebp's own
//! mallocs are not seen: JPEG cases check the Rust-side buffers only) and
//! compares the real peak of each decode with the estimate.
//!
//! One test only: the counter is global, so nothing else may run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{DynamicImage, ImageFormat};
use switchyard_imaging::{fixtures, peak_memory, process, Limits, VariantSpec};

struct Counting;

static CURRENT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now =
                CURRENT.fetch_add(layout.size() as u64, Ordering::SeqCst) + layout.size() as u64;
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size() as u64, Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn gradient(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    })
}

/// The real peak heap of one `process` call (in a fresh thread, so no kept
/// scratch buffer of an earlier case is reused) above what was live before.
fn measured_peak(input: &[u8], variants: &[VariantSpec]) -> u64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            let before = CURRENT.load(Ordering::SeqCst);
            PEAK.store(before, Ordering::SeqCst);
            let outputs = process(input, variants, &Limits::default()).unwrap();
            assert_eq!(outputs.len(), variants.len());
            drop(outputs);
            PEAK.load(Ordering::SeqCst) - before
        })
        .join()
        .unwrap()
    })
}

#[test]
fn the_estimate_bounds_the_real_peak_on_every_decode_path() {
    let (w, h) = (1200, 900);
    let rgb = gradient(w, h);
    let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(rgb.clone()).into_rgba8());
    let photo = fixtures::photo(w, h, 11);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "PNG RGB (fast path)",
            encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
        ),
        (
            "PNG RGBA (fast path)",
            encode(rgba.clone(), ImageFormat::Png),
        ),
        (
            "PNG grey (fast path)",
            encode(
                DynamicImage::ImageRgb8(rgb.clone()).grayscale(),
                ImageFormat::Png,
            ),
        ),
        (
            "PNG RGBA 16-bit (image crate)",
            encode(
                DynamicImage::ImageRgba16(rgba.to_rgba16()),
                ImageFormat::Png,
            ),
        ),
        ("GIF", encode(rgba.clone(), ImageFormat::Gif)),
        ("WebP lossless", encode(rgba, ImageFormat::WebP)),
        ("JPEG (Rust-side buffers)", fixtures::jpeg(&photo, 90)),
    ];
    let variant_sets = [
        VariantSpec::defaults(),
        [
            "big=1600x1200:contain:webp:80",
            "tall=300x900:cover:jpeg:85",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect(),
    ];
    for (name, input) in &cases {
        for variants in &variant_sets {
            let estimate = peak_memory(input, variants, &Limits::default()).unwrap();
            let real = measured_peak(input, variants);
            let mb = |b: u64| b as f64 / 1048576.0;
            println!(
                "{name}, {} variants: real peak {:.1} MB, estimate {:.1} MB",
                variants.len(),
                mb(real),
                mb(estimate)
            );
            assert!(
                real <= estimate,
                "{name}: real peak {real} bytes over the estimate {estimate}"
            );
        }
    }
}
