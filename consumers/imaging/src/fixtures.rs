//! Deterministic test and benchmark images: photo-like content with dense
//! detail (many octaves of value noise down to 2-pixel features, plus hard
//! edges), so JPEG files are as heavy to entropy-decode as a sharp photo.
//! The same seed gives the same bytes on every machine.

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::ImageEncoder;

use crate::planes::Rgb;

/// The seed used by `scripts/bench-images` and the benchmark.
pub const SEED: u64 = 0x5EED_1A6E;

/// Photo-like RGB pixels of `width × height` for `seed`.
pub fn photo(width: u32, height: u32, seed: u64) -> Rgb {
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    // Feature size relative to a 4000-pixel-wide frame, so smaller fixtures
    // look like downscaled versions rather than crops.
    let base = 4000.0 / width.max(1) as f64;
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f64 * base, y as f64 * base);
            let luma = fbm(fx, fy, seed, 11, 0.62);
            // Hard edges: object boundaries where a second field crosses a threshold.
            let edge = if fbm(fx, fy, seed ^ 0xED6E, 5, 0.5) > 0.52 {
                38.0
            } else {
                -10.0
            };
            // Chroma varies slowly, as in photographs.
            let cb = (fbm(fx * 0.25, fy * 0.25, seed ^ 0xCB, 4, 0.5) - 0.5) * 150.0;
            let cr = (fbm(fx * 0.25, fy * 0.25, seed ^ 0xC7, 4, 0.5) - 0.5) * 150.0;
            // Fine grain, like sensor noise: what makes q90 files heavy.
            let grain = (hash(x as i64, y as i64, seed ^ 0x6A) - 0.5) * 14.0;
            let l = 30.0 + luma * 190.0 + edge + grain;
            data.push(clamp(l + 1.402 * cr));
            data.push(clamp(l - 0.344 * cb - 0.714 * cr));
            data.push(clamp(l + 1.772 * cb));
        }
    }
    Rgb {
        width,
        height,
        data,
    }
}

/// Baseline JPEG, 4:2:0, at `quality` (libjpeg-turbo, deterministic).
pub fn jpeg(rgb: &Rgb, quality: u8) -> Vec<u8> {
    let image = turbojpeg::Image {
        pixels: rgb.data.as_slice(),
        width: rgb.width as usize,
        pitch: rgb.width as usize * 3,
        height: rgb.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, quality as i32, turbojpeg::Subsamp::Sub2x2)
        .expect("encoding a fixture JPEG")
        .to_vec()
}

/// PNG, 8-bit RGB, default compression with adaptive filtering.
pub fn png(rgb: &Rgb) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, PngFilter::Adaptive)
        .write_image(
            &rgb.data,
            rgb.width,
            rgb.height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding a fixture PNG");
    out
}

/// The benchmark's inputs: a dense 12 MP JPEG (4000×3000, q90), a 2 MP JPEG
/// (1920×1080, q90) and a 2 MP PNG, as `(file name, bytes)`.
pub fn bench_set(seed: u64) -> Vec<(&'static str, Vec<u8>)> {
    let big = photo(4000, 3000, seed);
    let jpeg_12mp = jpeg(&big, 90);
    drop(big);
    let small = photo(1920, 1080, seed);
    vec![
        ("photo-12mp.jpg", jpeg_12mp),
        ("photo-2mp.jpg", jpeg(&small, 90)),
        ("photo-2mp.png", png(&small)),
    ]
}

fn clamp(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Fractal value noise in [0, 1): `octaves` layers, each half the feature
/// size of the previous and `gain` times its amplitude; the finest is ~2 px.
fn fbm(x: f64, y: f64, seed: u64, octaves: u32, gain: f64) -> f64 {
    let (mut sum, mut amp, mut norm) = (0.0, 1.0, 0.0);
    let mut period = 2f64.powi(octaves as i32);
    for o in 0..octaves {
        sum += amp * value_noise(x / period, y / period, seed.wrapping_add(o as u64 * 0x9E37));
        norm += amp;
        amp *= gain;
        period /= 2.0;
    }
    sum / norm
}

fn value_noise(x: f64, y: f64, seed: u64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (tx, ty) = (smooth(x - x0), smooth(y - y0));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let top = lerp(hash(ix, iy, seed), hash(ix + 1, iy, seed), tx);
    let bottom = lerp(hash(ix, iy + 1, seed), hash(ix + 1, iy + 1, seed), tx);
    lerp(top, bottom, ty)
}

fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

/// SplitMix64 of the lattice point: uniform in [0, 1), same on every platform.
fn hash(x: i64, y: i64, seed: u64) -> f64 {
    let mut z = seed
        ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
