//! How much memory [`crate::process`] will hold at its peak for one input,
//! worked out from the header alone, so that a caller running several
//! decodes at once can reserve it before any pixel is decoded.
//!
//! Small files can have huge pixel counts (a 381 KB PNG of 49 MP inflates to
//! ~150 MB of RGB, and more on the way there), so the bound follows the pixel
//! count and the pixel layout the header declares, never the file size. Each
//! term below is an upper bound of a buffer the pipeline allocates; the
//! `memory_estimate` integration test checks the sum against the real peak
//! heap of the Rust side on every decode path.

use std::io::Cursor;

use image::{ImageDecoder, ImageFormat, ImageReader};

use crate::limits::{check_pixels, Limits, Rejection};
use crate::planes::Orientation;
use crate::{
    checked_format, dct_scale, geometry, jpeg, meta, InputFormat, VariantSpec,
    MAX_DECODER_MEMORY_MB, MAX_SCANS,
};

/// Decoder handles, Huffman and quantisation tables, colour transforms, the
/// resize filter's coefficients: small, fixed-size state.
const FIXED_BYTES: u64 = 4 << 20;

/// Per output pixel of one variant, at once: the resized pixels (3 bytes),
/// the oriented copy (3), RGB from planes (3), the sRGB-converted copy (3),
/// the 4:2:0 copy an encoder is fed (3), the encoder's worst-case buffer
/// (TurboJPEG: up to 6; libwebp's picture and output: less) and the encoded
/// output (up to 6). Rounded up.
const VARIANT_BYTES_PER_PIXEL: u64 = 32;
/// Per output pixel of every variant made so far: its encoded bytes, kept
/// until the call returns (at most TurboJPEG's worst-case buffer size).
const OUTPUT_BYTES_PER_PIXEL: u64 = 6;

/// What a decode holds: while decoding (`decode_peak`, the finished source
/// included) and afterwards (`source`, the decoded pixels the variants read).
struct DecodeShape {
    /// Width and height of the decoded source (after JPEG DCT scaling).
    width: u64,
    height: u64,
    decode_peak: u64,
    source: u64,
}

/// An upper bound, in bytes, of the memory [`crate::process`] holds at its
/// peak for `input` (the input itself included), read from the header only.
///
/// Refuses what `process` would refuse from the header alone (empty, too
/// large, unsupported type, over the pixel limit, unreadable header), with
/// the same rejections.
pub fn peak_memory(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
) -> Result<u64, Rejection> {
    let format = checked_format(input, limits)?;
    // Header parsers see hostile bytes too: a panic is a corrupt file, as in `process`.
    let shape = std::panic::catch_unwind(|| match format {
        InputFormat::Jpeg => jpeg_shape(input, variants, limits),
        other => image_shape(input, other, limits),
    })
    .unwrap_or_else(|_| Err(Rejection::Corrupt("header parser failed".into())))?;
    let mut working = 0u64;
    let mut outputs = 0u64;
    for spec in variants {
        let (_, out_w, out_h) = geometry(
            shape.width as u32,
            shape.height as u32,
            Orientation::Normal,
            spec,
        );
        let out_pixels = out_w as u64 * out_h as u64;
        // The resizer's intermediate image: one pass over the whole source
        // extent in one direction, at the output size in the other, for up to
        // three channels (whichever order it takes, and either orientation).
        let long_out = out_w.max(out_h) as u64;
        let long_src = shape.width.max(shape.height);
        let intermediate = long_out * long_src * 3;
        working = working.max(intermediate + out_pixels * VARIANT_BYTES_PER_PIXEL + outputs);
        outputs += out_pixels * OUTPUT_BYTES_PER_PIXEL;
    }
    let peak = shape.decode_peak.max(shape.source + working);
    Ok(FIXED_BYTES + input.len() as u64 + peak)
}

fn jpeg_shape(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
) -> Result<DecodeShape, Rejection> {
    let jpeg_limits = jpeg::DecodeLimits {
        max_pixels: limits.max_pixels,
        max_scans: MAX_SCANS,
        max_memory_mb: MAX_DECODER_MEMORY_MB,
    };
    let header = jpeg::Decoder::new(input, jpeg_limits)
        .map_err(Rejection::Corrupt)?
        .header();
    check_pixels(header.width, header.height, limits)?;
    let orientation = Orientation::from_exif(meta::jpeg_meta(input).orientation.unwrap_or(1));
    let num = dct_scale(header.width, header.height, orientation, variants);
    let (width, height) = (
        jpeg::scaled(header.width, num) as u64,
        jpeg::scaled(header.height, num) as u64,
    );
    let half_samples = header.half_samples_per_pixel();
    // Planes are padded to whole MCUs (at most 32 samples each way at scale).
    let planes = half_samples * (width + 32) * (height + 32) / 2;
    let source = if header.is_cmyk() {
        // Decoded to CMYK (4 bytes a pixel), then converted to RGB (3).
        3 * width * height
    } else {
        planes
    };
    let decoded = if header.is_cmyk() {
        7 * width * height
    } else {
        planes
    };
    // libjpeg's row buffers and one MCU row of coefficients, full width.
    let rows = 1024 * (header.width as u64 + 32);
    // A multi-scan JPEG (progressive, or sequential with a scan per
    // component) keeps every coefficient of the image until the last scan: 2
    // bytes a sample at full size, capped by the limit libjpeg is given.
    // Counting SOS markers overcounts (an EXIF thumbnail has its own), which
    // only errs on the safe side.
    let multi_scan = header.progressive
        || input
            .windows(2)
            .filter(|w| *w == [0xFF, 0xDA])
            .nth(1)
            .is_some();
    let coefficients = if multi_scan {
        let full = (header.width as u64 + 32) * (header.height as u64 + 32);
        (half_samples * full).min(MAX_DECODER_MEMORY_MB as u64 * (1 << 20))
    } else {
        0
    };
    Ok(DecodeShape {
        width,
        height,
        decode_peak: decoded + rows + coefficients,
        source,
    })
}

fn image_shape(
    input: &[u8],
    format: InputFormat,
    limits: &Limits,
) -> Result<DecodeShape, Rejection> {
    let image_format = match format {
        InputFormat::Png => ImageFormat::Png,
        InputFormat::Webp => ImageFormat::WebP,
        InputFormat::Gif => ImageFormat::Gif,
        InputFormat::Jpeg => unreachable!("JPEG headers are read by libjpeg-turbo"),
    };
    let corrupt = |e: image::ImageError| Rejection::Corrupt(e.to_string());
    let decoder = ImageReader::with_format(Cursor::new(input), image_format)
        .into_decoder()
        .map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let pixels = width as u64 * height as u64;
    let native = decoder.color_type().bytes_per_pixel() as u64;
    // The image crate's decode: its native buffer, the decoder's own buffer
    // of the same size (GIF frames, WebP's YUV, PNG de-interlacing), then
    // RGBA (4) and RGB (3). PNG's fast path holds less: the compressed data
    // (at most the input), the inflated and unfiltered rows (2 × up to 4
    // bytes a pixel) and RGB (3).
    let mut decode_peak = (2 * native + 7) * pixels;
    if format == InputFormat::Png {
        decode_peak = decode_peak.max(11 * pixels + 2 * height as u64) + input.len() as u64;
    }
    if format == InputFormat::Gif {
        // The palette indices of a frame, and the canvas it is drawn onto.
        decode_peak += 5 * pixels;
    }
    Ok(DecodeShape {
        width: width as u64,
        height: height as u64,
        decode_peak,
        source: 3 * pixels,
    })
}
