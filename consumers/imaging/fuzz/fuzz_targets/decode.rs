//! Fuzzes the whole decode path (sniff, header limits, libjpeg-turbo,
//! the PNG fast path, the `image` decoders, resize and encode): any input
//! must produce outputs or a rejection, never a crash.
//!
//! Run: `cargo +nightly fuzz run decode` in consumers/imaging/fuzz
//! (seed the corpus with small JPEG/PNG/GIF/WebP files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_imaging::{process, Limits, VariantSpec};

fuzz_target!(|data: &[u8]| {
    // Small pixel limit: the fuzzer should explore parsing, not spend its time on huge images.
    let limits = Limits { max_pixels: 4_000_000, ..Limits::default() };
    let variants: Vec<VariantSpec> =
        ["a=64x64:cover:jpeg:80", "b=32x48:contain:webp:70"].iter().map(|s| s.parse().unwrap()).collect();
    if let Ok(outputs) = process(data, &variants, &limits) {
        assert_eq!(outputs.len(), 2);
    }
    // A cover alone leaves columns out of a wide JPEG: the partial decode path.
    if let Ok(outputs) = process(data, &variants[..1], &limits) {
        assert_eq!(outputs.len(), 1);
    }
});
