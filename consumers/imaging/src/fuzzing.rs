//! The body of the `decode` fuzz target (consumers/imaging/fuzz), kept here
//! so the fuzzer (`scripts/fuzz`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run the same checks. It panics on a finding.

use crate::{process, Limits, VariantSpec};

/// The whole decode path (sniff, header limits, libjpeg-turbo, the PNG fast
/// path, the `image` decoders, resize and encode): any input must produce
/// every variant or a rejection, never a crash.
pub fn decode(data: &[u8]) {
    // Small pixel limit: the fuzzer should explore parsing, not spend its time on huge images.
    let limits = Limits {
        max_pixels: 4_000_000,
        ..Limits::default()
    };
    let variants: Vec<VariantSpec> = ["a=64x64:cover:jpeg:80", "b=32x48:contain:webp:70"]
        .iter()
        .map(|s| s.parse().expect("a valid variant spec"))
        .collect();
    if let Ok(outputs) = process(data, &variants, &limits) {
        assert_eq!(outputs.len(), 2);
    }
    // A cover alone leaves columns out of a wide JPEG: the partial decode path.
    if let Ok(outputs) = process(data, &variants[..1], &limits) {
        assert_eq!(outputs.len(), 1);
    }
}
