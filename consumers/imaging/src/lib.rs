//! The image pipeline behind the image processor: sniff the real type, check
//! limits from the header before decoding any pixel, decode once, and make
//! every requested variant from that one decode.

use std::io::Cursor;
use std::str::FromStr;
use std::time::Duration;

use image::{imageops::FilterType, DynamicImage, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

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

/// Limits checked before (and while) decoding, so hostile files are cheap to refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    pub max_decode_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 25 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_decode_time: Duration::from_secs(10),
        }
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
        }
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

/// Makes every variant from one decode of `input`.
pub fn process(
    input: &[u8],
    variants: &[VariantSpec],
    limits: &Limits,
) -> Result<Vec<Output>, Rejection> {
    if input.is_empty() {
        return Err(Rejection::Empty);
    }
    if input.len() as u64 > limits.max_bytes {
        return Err(Rejection::TooLarge {
            size: input.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let format = match sniff(input).ok_or(Rejection::UnsupportedType)? {
        InputFormat::Jpeg => ImageFormat::Jpeg,
        InputFormat::Png => ImageFormat::Png,
        InputFormat::Webp => ImageFormat::WebP,
        InputFormat::Gif => ImageFormat::Gif,
    };
    let reader = ImageReader::with_format(Cursor::new(input), format);
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| Rejection::Corrupt(e.to_string()))?;
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(Rejection::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(input), format);
    reader.no_limits();
    let decoded = reader
        .decode()
        .map_err(|e| Rejection::Corrupt(e.to_string()))?;
    variants.iter().map(|v| make_variant(&decoded, v)).collect()
}

fn make_variant(source: &DynamicImage, spec: &VariantSpec) -> Result<Output, Rejection> {
    let resized = match spec.fit {
        Fit::Cover => source.resize_to_fill(spec.width, spec.height, FilterType::Lanczos3),
        Fit::Contain => source.resize(spec.width, spec.height, FilterType::Lanczos3),
    };
    let rgb = DynamicImage::ImageRgb8(resized.to_rgb8());
    let mut bytes = Vec::new();
    match spec.format {
        OutputFormat::Jpeg => {
            let encoder =
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, spec.quality);
            rgb.write_with_encoder(encoder)
        }
        OutputFormat::Webp => {
            let encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut bytes);
            rgb.write_with_encoder(encoder)
        }
    }
    .map_err(|e| Rejection::Corrupt(format!("encoding {}: {e}", spec.name)))?;
    Ok(Output {
        name: spec.name.clone(),
        width: rgb.width(),
        height: rgb.height(),
        format: spec.format,
        bytes,
    })
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
    fn parses_variant_specs() {
        let v: VariantSpec = "thumb=64x32:contain:webp:90".parse().unwrap();
        assert_eq!(
            (v.width, v.height, v.fit, v.format, v.quality),
            (64, 32, Fit::Contain, OutputFormat::Webp, 90)
        );
        assert!("x=0x5:cover:jpeg:80".parse::<VariantSpec>().is_err());
    }
}
