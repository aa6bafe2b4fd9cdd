//! The image pipeline behind the image processor: sniff the real type, check
//! limits from the header before decoding any pixel, decode once, and make
//! every requested variant from that one decode.

mod color;
pub mod fixtures;
#[doc(hidden)]
pub mod fuzzing;
mod jpeg;
mod limits;
pub mod measure;
mod memory;
mod meta;
mod planes;
mod png;
pub mod quality;
mod scratch;
mod webp;

use limits::{check_deadline, check_pixels};
pub use limits::{Limits, Rejection, DEFAULT_DECODE_MEMORY};
pub use memory::peak_memory;
pub use planes::{Raster, Rgb};

use std::io::Cursor;
use std::str::FromStr;
use std::time::Instant;

use fast_image_resize::Resizer;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

use color::ToSrgb;
use planes::{Crop, Orientation, Planes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box exactly, cropping the centre.
    Cover,
    /// Fit inside the box, keeping the aspect ratio.
    Contain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Webp,
}

impl OutputFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Webp => "image/webp",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Webp => "webp",
        }
    }
}

/// One output to make: `NAME=WxH:fit:format:quality` on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub format: OutputFormat,
    pub quality: u8,
}

impl VariantSpec {
    /// The default set: a 512×512 cover and a 128×128 cover, JPEG q80.
    pub fn defaults() -> Vec<VariantSpec> {
        ["512=512x512:cover:jpeg:80", "128=128x128:cover:jpeg:80"]
            .iter()
            .map(|s| s.parse().expect("default variants parse"))
            .collect()
    }
}

impl FromStr for VariantSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("variant {s:?}: expected NAME=WxH:cover|contain:jpeg|webp:QUALITY");
        let (name, rest) = s.split_once('=').ok_or_else(usage)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [size, fit, format, quality] = parts[..] else {
            return Err(usage());
        };
        let (w, h) = size.split_once('x').ok_or_else(usage)?;
        let width: u32 = w.parse().map_err(|_| usage())?;
        let height: u32 = h.parse().map_err(|_| usage())?;
        if name.is_empty() || width == 0 || height == 0 || width > 8192 || height > 8192 {
            return Err(format!(
                "variant {s:?}: name must be non-empty and sizes within 1..=8192"
            ));
        }
        let fit = match fit {
            "cover" => Fit::Cover,
            "contain" => Fit::Contain,
            _ => return Err(usage()),
        };
        let format = match format {
            "jpeg" | "jpg" => OutputFormat::Jpeg,
            "webp" => OutputFormat::Webp,
            _ => return Err(usage()),
        };
        let quality: u8 = quality
            .parse()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(usage)?;
        Ok(VariantSpec {
            name: name.to_owned(),
            width,
            height,
            fit,
            format,
            quality,
        })
    }
}

/// The input types accepted, sniffed from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
}

/// Sniffs the input type from its magic bytes; the declared type is not trusted.
pub fn sniff(bytes: &[u8]) -> Option<InputFormat> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some(InputFormat::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(InputFormat::Png),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(InputFormat::Webp),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(InputFormat::Gif),
        _ => None,
    }
}

/// One finished variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub bytes: Vec<u8>,
}

/// Progressive JPEGs may legitimately have a dozen scans; thousands are an
/// attack on decode time (libjpeg-turbo's own recommendation is 500).
const MAX_SCANS: i32 = 500;
/// Ceiling for libjpeg-turbo's working memory (progressive coefficient buffers).
const MAX_DECODER_MEMORY_MB: i32 = 512;

/// Makes every variant from one decode of `input`.
///
/// The checks run cheapest first: size, sniffed type, then the pixel count
/// from the header before any pixel is decoded. Decoder panics are caught and
/// reported as corrupt input. The decode-time limit is checked after the
/// decode and after each variant; a single decode cannot be interrupted, but
/// its cost is bounded by the byte, pixel and scan limits.
pub fn process(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
) -> Result<Vec<Output>, Rejection> {
    run(input, variants, limits, |spec, pixels| {
        let encoded = match (spec.format, &pixels) {
            (OutputFormat::Jpeg, Pixels::Planes(p)) => jpeg::encode_planes(p, spec.quality),
            (OutputFormat::Jpeg, Pixels::Rgb(r)) => jpeg::encode_rgb(r, spec.quality),
            (OutputFormat::Webp, Pixels::Planes(p)) => webp::encode_planes(p, spec.quality),
            (OutputFormat::Webp, Pixels::Rgb(r)) => webp::encode_rgb(r, spec.quality),
        }
        .map_err(|e| Rejection::Corrupt(format!("encoding {}: {e}", spec.name)));
        let (width, height) = pixels.dimensions();
        pixels.recycle();
        let bytes = encoded?;
        Ok(Output {
            name: spec.name.clone(),
            width,
            height,
            format: spec.format,
            bytes,
        })
    })
}

/// The same pipeline as [`process`], stopping before the encoder: each
/// variant's pixels as RGB. Used to measure resize quality apart from the
/// (lossy) output encoding.
pub fn render(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
) -> Result<Vec<Rgb>, Rejection> {
    run(input, variants, limits, |_, pixels| {
        Ok(match pixels {
            Pixels::Planes(p) => {
                let rgb = p.to_rgb();
                p.recycle();
                rgb
            }
            Pixels::Rgb(r) => r,
        })
    })
}

fn run<T>(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
    finish: impl Fn(&VariantSpec, Pixels) -> Result<T, Rejection>,
) -> Result<Vec<T>, Rejection> {
    let format = checked_format(input, limits)?;
    let pipeline = std::panic::AssertUnwindSafe(|| {
        let started = Instant::now();
        let decoded = match format {
            InputFormat::Jpeg => decode_jpeg(input, variants, limits)?,
            other => decode_with_image(input, other, limits)?,
        };
        check_deadline(started, limits)?;
        let mut outputs = Vec::with_capacity(variants.len());
        let mut made = Ok(());
        for spec in variants {
            made = scratch::with_resizer(|resizer| render_variant(&decoded, spec, resizer))
                .and_then(|pixels| finish(spec, pixels))
                .map(|output| outputs.push(output))
                .and_then(|_| check_deadline(started, limits));
            if made.is_err() {
                break;
            }
        }
        decoded.source.recycle();
        made.map(|_| outputs)
    });
    std::panic::catch_unwind(pipeline).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::warn!(panic = %what, "image decoder panicked");
        Err(Rejection::Corrupt(format!("decoder failed: {what}")))
    })
}

/// The checks that need no header: size, then the sniffed type.
fn checked_format(input: &[u8], limits: &Limits) -> Result<InputFormat, Rejection> {
    if input.is_empty() {
        return Err(Rejection::Empty);
    }
    if input.len() as u64 > limits.max_bytes {
        return Err(Rejection::TooLarge {
            size: input.len() as u64,
            limit: limits.max_bytes,
        });
    }
    sniff(input).ok_or(Rejection::UnsupportedType)
}

/// Pixels the pipeline holds: a decoded source (stored orientation) or a
/// finished variant before encoding.
enum Pixels {
    Planes(Planes),
    Rgb(Rgb),
}

impl Pixels {
    /// Returns the pixel memory to the scratch pool.
    fn recycle(self) {
        match self {
            Pixels::Planes(p) => p.recycle(),
            Pixels::Rgb(r) => scratch::recycle(r.data),
        }
    }

    fn dimensions(&self) -> (u32, u32) {
        match self {
            Pixels::Planes(p) => (p.width, p.height),
            Pixels::Rgb(r) => (r.width, r.height),
        }
    }
}

struct Decoded {
    source: Pixels,
    orientation: Orientation,
    to_srgb: Option<ToSrgb>,
}

fn decode_jpeg(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
) -> Result<Decoded, Rejection> {
    let jpeg_limits = jpeg::DecodeLimits {
        max_pixels: limits.max_pixels,
        max_scans: MAX_SCANS,
        max_memory_mb: MAX_DECODER_MEMORY_MB,
    };
    let mut decoder = jpeg::Decoder::new(input, jpeg_limits).map_err(Rejection::Corrupt)?;
    let header = decoder.header();
    check_pixels(header.width, header.height, limits)?;
    let meta = meta::jpeg_meta(input);
    let orientation = Orientation::from_exif(meta.orientation.unwrap_or(1));
    let num = dct_scale(header.width, header.height, orientation, variants);
    tracing::debug!(
        width = header.width,
        height = header.height,
        scale = num,
        "decoding JPEG at {num}/8"
    );
    let source = if header.is_cmyk() {
        let (width, height, data) = decoder.decode_rgb(input, num).map_err(Rejection::Corrupt)?;
        Pixels::Rgb(Rgb {
            width,
            height,
            data,
        })
    } else {
        let keep = keep_columns(
            jpeg::scaled(header.width, num),
            jpeg::scaled(header.height, num),
            orientation,
            variants,
        );
        Pixels::Planes(
            decoder
                .decode_planes(input, num, keep)
                .map_err(Rejection::Corrupt)?,
        )
    };
    Ok(Decoded {
        source,
        orientation,
        to_srgb: ToSrgb::from_icc(meta.icc.as_deref()),
    })
}

/// The smallest libjpeg-turbo scale `num/8` at which every variant's resize
/// still shrinks by at least 2× (Lanczos3 then has real pixels to filter,
/// rather than the DCT's box-like reduction doing all the work).
fn dct_scale(width: u32, height: u32, orientation: Orientation, variants: &[VariantSpec]) -> u32 {
    variants
        .iter()
        .map(|spec| {
            let (crop, out_w, out_h) = geometry(width, height, orientation, spec);
            let need = |out: u32, crop: f64| (16.0 * out as f64 / crop).ceil() as u32;
            need(out_w, crop.w).max(need(out_h, crop.h))
        })
        .max()
        .unwrap_or(1)
        .clamp(1, 8)
}

/// The columns of a `width × height` decode (stored orientation) that the
/// variants' resizes read: each cover crop plus the Lanczos3 window around it
/// (3 source pixels per output pixel). The margin is counted for chroma
/// subsampled up to 4× (JPEG's maximum), so chroma is covered too.
fn keep_columns(
    width: u32,
    height: u32,
    orientation: Orientation,
    variants: &[VariantSpec],
) -> Option<jpeg::KeepColumns> {
    const MAX_CHROMA_FACTOR: f64 = 4.0;
    let (mut x0, mut x1) = (width, 0);
    for spec in variants {
        let (crop, out_w, _) = geometry(width, height, orientation, spec);
        let scale = (crop.w / out_w as f64).max(1.0);
        let margin = MAX_CHROMA_FACTOR * ((3.0 * scale).ceil() + 1.0);
        x0 = x0.min((crop.x - margin).floor().max(0.0) as u32);
        x1 = x1.max(((crop.x + crop.w + margin).ceil() as u32).min(width));
    }
    (x0 < x1).then_some(jpeg::KeepColumns { x0, x1 })
}

/// For a source of `width × height` (stored orientation), the region to keep
/// and the size to resize it to, both in stored orientation, so that after
/// applying `orientation` the result is what `spec` asks for.
pub(crate) fn geometry(
    width: u32,
    height: u32,
    orientation: Orientation,
    spec: &VariantSpec,
) -> (Crop, u32, u32) {
    let (shown_w, shown_h) = if orientation.swaps_axes() {
        (height, width)
    } else {
        (width, height)
    };
    let (out_w, out_h) = match spec.fit {
        Fit::Cover => (spec.width, spec.height),
        Fit::Contain => {
            let scale =
                (spec.width as f64 / shown_w as f64).min(spec.height as f64 / shown_h as f64);
            let fit = |v: u32| ((v as f64 * scale).round() as u32).max(1);
            (fit(shown_w).min(spec.width), fit(shown_h).min(spec.height))
        }
    };
    let (out_w, out_h) = if orientation.swaps_axes() {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    let crop = match spec.fit {
        // A centred crop is symmetric, so it is the same before and after the orientation flip.
        Fit::Cover => Crop::centred_cover(width, height, out_w, out_h),
        Fit::Contain => Crop::full(width, height),
    };
    (crop, out_w, out_h)
}

fn decode_with_image(
    input: &[u8],
    format: InputFormat,
    limits: &Limits,
) -> Result<Decoded, Rejection> {
    let format = match format {
        InputFormat::Png => ImageFormat::Png,
        InputFormat::Webp => ImageFormat::WebP,
        InputFormat::Gif => ImageFormat::Gif,
        InputFormat::Jpeg => unreachable!("JPEG goes through libjpeg-turbo"),
    };
    if format == ImageFormat::Png {
        if let Some(rgb) = png::decode(input, limits)? {
            return Ok(Decoded {
                source: Pixels::Rgb(rgb),
                orientation: Orientation::Normal,
                to_srgb: None,
            });
        }
    }
    let corrupt = |e: image::ImageError| Rejection::Corrupt(e.to_string());
    let mut decoder = ImageReader::with_format(Cursor::new(input), format)
        .into_decoder()
        .map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    // Second line of defence: the decoder itself refuses to allocate past the pixel limit.
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    decoder.set_limits(decoder_limits).map_err(corrupt)?;
    let orientation = match decoder.orientation().map_err(corrupt)? {
        image::metadata::Orientation::NoTransforms => Orientation::Normal,
        image::metadata::Orientation::Rotate90 => Orientation::Rotate90,
        image::metadata::Orientation::Rotate180 => Orientation::Rotate180,
        image::metadata::Orientation::Rotate270 => Orientation::Rotate270,
        image::metadata::Orientation::FlipHorizontal => Orientation::FlipH,
        image::metadata::Orientation::FlipVertical => Orientation::FlipV,
        image::metadata::Orientation::Rotate90FlipH => Orientation::Transpose,
        image::metadata::Orientation::Rotate270FlipH => Orientation::Transverse,
    };
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let rgb = flatten_to_rgb(image);
    Ok(Decoded {
        source: Pixels::Rgb(rgb),
        orientation,
        to_srgb: ToSrgb::from_icc(icc.as_deref()),
    })
}

/// JPEG has no alpha: transparent pixels are composited onto white, which is
/// what a thumbnail shown on a page would look like.
fn flatten_to_rgb(image: DynamicImage) -> Rgb {
    let (width, height) = (image.width(), image.height());
    let data = if image.color().has_alpha() {
        let rgba = image.into_rgba8();
        let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
        for px in rgba.pixels() {
            let a = px[3];
            rgb.extend(px.0[..3].iter().map(|&c| png::over_white(c, a)));
        }
        rgb
    } else {
        image.into_rgb8().into_raw()
    };
    Rgb {
        width,
        height,
        data,
    }
}

fn render_variant(
    decoded: &Decoded,
    spec: &VariantSpec,
    resizer: &mut Resizer,
) -> Result<Pixels, Rejection> {
    let (width, height) = decoded.source.dimensions();
    let (crop, out_w, out_h) = geometry(width, height, decoded.orientation, spec);
    let failed = |e: String| Rejection::Corrupt(format!("making {}: {e}", spec.name));
    let rgb = match &decoded.source {
        Pixels::Planes(p) => {
            let planes = p
                .resize(crop, out_w, out_h, resizer)
                .map_err(failed)?
                .orient(decoded.orientation);
            if decoded.to_srgb.is_none() {
                return Ok(Pixels::Planes(planes));
            }
            planes.to_rgb()
        }
        Pixels::Rgb(r) => r
            .resize(crop, out_w, out_h, resizer)
            .map_err(failed)?
            .orient(decoded.orientation),
    };
    Ok(Pixels::Rgb(match &decoded.to_srgb {
        Some(to_srgb) => to_srgb.apply(&rgb).map_err(failed)?,
        None => rgb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn makes_default_variants_at_exact_sizes() {
        let outputs =
            process(&png(800, 600), &VariantSpec::defaults(), &Limits::default()).unwrap();
        let sizes: Vec<_> = outputs
            .iter()
            .map(|o| (o.name.as_str(), o.width, o.height))
            .collect();
        assert_eq!(sizes, vec![("512", 512, 512), ("128", 128, 128)]);
        assert_eq!(sniff(&outputs[0].bytes), Some(InputFormat::Jpeg));
    }

    #[test]
    fn refuses_hostile_inputs_with_codes() {
        let limits = Limits {
            max_pixels: 10_000,
            ..Limits::default()
        };
        assert_eq!(process(&[], &[], &limits).unwrap_err().code(), "empty");
        assert_eq!(
            process(b"hello", &[], &limits).unwrap_err().code(),
            "unsupported_type"
        );
        assert_eq!(
            process(&png(200, 200), &[], &limits).unwrap_err().code(),
            "too_many_pixels"
        );
        let truncated = &png(50, 50)[..60];
        assert_eq!(
            process(truncated, &VariantSpec::defaults(), &limits)
                .unwrap_err()
                .code(),
            "corrupt"
        );
    }

    #[test]
    fn dct_scale_leaves_the_resize_at_least_2x() {
        let cover = |s: &str| vec![s.parse::<VariantSpec>().unwrap()];
        let normal = Orientation::Normal;
        // 3000 px short side, 512 cover: 3/8 gives 1125 >= 1024; 1/4 (750) would not.
        assert_eq!(
            dct_scale(4000, 3000, normal, &cover("a=512x512:cover:jpeg:80")),
            3
        );
        assert_eq!(
            dct_scale(4000, 3000, normal, &cover("a=128x128:cover:jpeg:80")),
            1
        );
        // 1080 px short side cannot give 1024 below full scale.
        assert_eq!(
            dct_scale(1920, 1080, normal, &cover("a=512x512:cover:jpeg:80")),
            8
        );
        // The most demanding variant decides, and rotation swaps the axes it looks at.
        let both = [
            cover("a=512x512:cover:jpeg:80"),
            cover("b=128x128:cover:jpeg:80"),
        ]
        .concat();
        assert_eq!(dct_scale(4000, 3000, normal, &both), 3);
        let tall = cover("t=300x1000:cover:jpeg:80");
        assert_eq!(dct_scale(4000, 3000, normal, &tall), 6);
        assert_eq!(dct_scale(3000, 4000, Orientation::Rotate90, &tall), 6);
    }

    fn decode(jpeg: &[u8], num: u32, keep: Option<jpeg::KeepColumns>) -> Planes {
        let limits = jpeg::DecodeLimits {
            max_pixels: 50_000_000,
            max_scans: MAX_SCANS,
            max_memory_mb: MAX_DECODER_MEMORY_MB,
        };
        jpeg::Decoder::new(jpeg, limits)
            .unwrap()
            .decode_planes(jpeg, num, keep)
            .unwrap()
    }

    /// The partial decode (IDCT skipped outside the kept columns) must give
    /// the variants exactly what a whole TurboJPEG decode gives them.
    #[test]
    fn skipping_unread_columns_changes_no_output_pixel() {
        // Odd sizes, so MCU padding and plane padding are exercised too.
        let jpeg = fixtures::jpeg(&fixtures::photo(1203, 797, 7), 90);
        for (spec, num) in [
            ("a=200x200:cover:jpeg:80", 3),
            ("b=64x64:cover:jpeg:80", 1),
            ("c=150x300:cover:jpeg:80", 4),
            ("d=100x250:cover:jpeg:80", 3),
        ] {
            let spec: VariantSpec = spec.parse().unwrap();
            let (w, h) = (jpeg::scaled(1203, num), jpeg::scaled(797, num));
            let keep = keep_columns(w, h, Orientation::Normal, std::slice::from_ref(&spec));
            let keep = keep.expect("a cover crop keeps some columns");
            assert!(
                keep.x0 > 0 || keep.x1 < w,
                "{}: crop leaves columns out",
                spec.name
            );
            let whole = decode(&jpeg, num, None);
            let part = decode(&jpeg, num, Some(keep));
            assert_ne!(whole, part, "{}: the partial path ran", spec.name);
            let (crop, out_w, out_h) = geometry(w, h, Orientation::Normal, &spec);
            let resize =
                |p: &Planes| scratch::with_resizer(|r| p.resize(crop, out_w, out_h, r)).unwrap();
            // (assert! rather than assert_eq!: the planes are too big to print)
            assert!(
                resize(&whole) == resize(&part),
                "{}: the variant's pixels differ",
                spec.name
            );
        }
    }

    #[test]
    fn a_truncated_jpeg_is_refused_on_the_partial_path_too() {
        let jpeg = fixtures::jpeg(&fixtures::photo(1200, 800, 3), 90);
        let square: VariantSpec = "s=128x128:cover:jpeg:80".parse().unwrap();
        let limits = Limits::default();
        assert!(process(&jpeg, std::slice::from_ref(&square), &limits).is_ok());
        let cut = &jpeg[..jpeg.len() / 2];
        let err = process(cut, std::slice::from_ref(&square), &limits).unwrap_err();
        assert_eq!(err.code(), "corrupt", "{err}");
    }

    #[test]
    fn parses_variant_specs() {
        let v: VariantSpec = "thumb=64x32:contain:webp:90".parse().unwrap();
        assert_eq!(
            (v.width, v.height, v.fit, v.format, v.quality),
            (64, 32, Fit::Contain, OutputFormat::Webp, 90)
        );
        assert!("x=0x5:cover:jpeg:80".parse::<VariantSpec>().is_err());
    }
}
