//! What an input may cost before it is refused, and why it was.

use std::time::{Duration, Instant};

/// Limits checked before (and while) decoding, so hostile files are cheap to refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    pub max_decode_time: Duration,
    /// What all of one image processor's concurrent decodes may hold at once,
    /// by [`peak_memory`](crate::peak_memory); an image needing more on its own is refused. The
    /// processor enforces it (`process` itself handles one image).
    pub max_decode_memory: u64,
}

/// The decode memory budget when nothing sets one (a local `switchyard up`).
pub const DEFAULT_DECODE_MEMORY: u64 = 1 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 25 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_decode_time: Duration::from_secs(10),
            max_decode_memory: DEFAULT_DECODE_MEMORY,
        }
    }
}

/// Why an input was refused. Never retried: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("file is empty")]
    Empty,
    #[error("file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("image is {width}x{height} ({} pixels), over the {limit}-pixel limit", *width as u64 * *height as u64)]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("not a supported image type (JPEG, PNG, WebP, GIF)")]
    UnsupportedType,
    #[error("image is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("decoding took longer than {0:?}")]
    DecodeTimeout(Duration),
    #[error("decoding needs about {} MiB, over the {} MiB this processor may use for all its decodes at once", need.div_ceil(1 << 20), budget >> 20)]
    OverMemoryBudget { need: u64, budget: u64 },
}

impl Rejection {
    /// Stable machine-readable code, carried by `ImageRejected.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::TooManyPixels { .. } => "too_many_pixels",
            Rejection::UnsupportedType => "unsupported_type",
            Rejection::Corrupt(_) => "corrupt",
            Rejection::DecodeTimeout(_) => "decode_timeout",
            Rejection::OverMemoryBudget { .. } => "over_memory_budget",
        }
    }
}

pub(crate) fn check_deadline(started: Instant, limits: &Limits) -> Result<(), Rejection> {
    if started.elapsed() > limits.max_decode_time {
        return Err(Rejection::DecodeTimeout(limits.max_decode_time));
    }
    Ok(())
}

pub(crate) fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), Rejection> {
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(Rejection::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}
