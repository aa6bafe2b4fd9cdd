//! Output quality measurement: SSIM (Wang et al. 2004: 11×11 Gaussian window,
//! σ = 1.5, K1 = 0.01, K2 = 0.03) on BT.601 luma, and the reference it is
//! measured against: a Lanczos3 resize of the full-resolution decode.

use crate::planes::{Orientation, Rgb};
use crate::VariantSpec;

/// Mean SSIM of two RGB images of equal size, computed on luma.
pub fn ssim(a: &Rgb, b: &Rgb) -> Result<f64, String> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(format!(
            "sizes differ: {}x{} vs {}x{}",
            a.width, a.height, b.width, b.height
        ));
    }
    let (w, h) = (a.width as usize, a.height as usize);
    let x = luma(a);
    let y = luma(b);
    let product = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| u * v).collect::<Vec<_>>();
    let mx = blur(&x, w, h);
    let my = blur(&y, w, h);
    let sxx = blur(&product(&x, &x), w, h);
    let syy = blur(&product(&y, &y), w, h);
    let sxy = blur(&product(&x, &y), w, h);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let total: f64 = (0..w * h)
        .map(|i| {
            let (mx, my) = (mx[i], my[i]);
            let (vx, vy, cov) = (sxx[i] - mx * mx, syy[i] - my * my, sxy[i] - mx * my);
            ((2.0 * mx * my + c1) * (2.0 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        })
        .sum();
    Ok(total / (w * h) as f64)
}

fn luma(rgb: &Rgb) -> Vec<f64> {
    rgb.data
        .chunks_exact(3)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect()
}

/// Separable Gaussian blur (σ = 1.5, radius 5), edges clamped.
fn blur(src: &[f64], w: usize, h: usize) -> Vec<f64> {
    let rows = blur_1d(src, w, h, |line, i| line * w + i);
    blur_1d(&rows, h, w, |line, i| i * w + line)
}

/// One blur pass along `count` lines of `len` samples; `at(line, i)` is the
/// index of sample `i` of `line`.
fn blur_1d(src: &[f64], len: usize, count: usize, at: impl Fn(usize, usize) -> usize) -> Vec<f64> {
    let kernel: Vec<f64> = (-5i32..=5)
        .map(|i| (-(i * i) as f64 / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let norm: f64 = kernel.iter().sum();
    let mut out = vec![0.0; src.len()];
    for line in 0..count {
        for i in 0..len {
            let sum: f64 = kernel
                .iter()
                .enumerate()
                .map(|(k, c)| c * src[at(line, (i + k).saturating_sub(5).min(len - 1))])
                .sum();
            out[at(line, i)] = sum / norm;
        }
    }
    out
}

/// Decodes any supported image fully, at full resolution, to RGB (no
/// scaling, no orientation): the input of the quality reference.
pub fn decode_full(bytes: &[u8]) -> Result<Rgb, String> {
    match crate::sniff(bytes) {
        Some(crate::InputFormat::Jpeg) => {
            let image = turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB)
                .map_err(|e| e.to_string())?;
            Ok(Rgb {
                width: image.width as u32,
                height: image.height as u32,
                data: image.pixels,
            })
        }
        Some(_) => {
            let image = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
            Ok(Rgb {
                width: image.width(),
                height: image.height(),
                data: image.into_rgb8().into_raw(),
            })
        }
        None => Err("not an image".into()),
    }
}

/// A Lanczos3 resize of the full-resolution pixels with the same centred
/// cover crop (or contain fit) the pipeline uses.
pub fn reference(full: &Rgb, spec: &VariantSpec) -> Result<Rgb, String> {
    let (crop, out_w, out_h) = crate::geometry(full.width, full.height, Orientation::Normal, spec);
    // The library's own Lanczos3, independent of the pipeline's.
    full.resize_with(
        fast_image_resize::FilterType::Lanczos3,
        crop,
        out_w,
        out_h,
        &mut fast_image_resize::Resizer::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: u32, h: u32, seed: u64) -> Rgb {
        crate::fixtures::photo(w, h, seed)
    }

    #[test]
    fn ssim_is_one_for_identical_images_and_drops_with_distortion() {
        let a = noise(64, 48, 1);
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        let mut noisy = a.clone();
        for (i, v) in noisy.data.iter_mut().enumerate() {
            *v = v.saturating_add((i * 7919 % 23) as u8);
        }
        let s = ssim(&a, &noisy).unwrap();
        assert!(s < 0.99 && s > 0.0, "distorted image scored {s}");
        assert!(
            ssim(&a, &noise(64, 48, 2)).unwrap() < s,
            "an unrelated image scores lower still"
        );
        assert!(ssim(&a, &noise(32, 48, 1)).is_err());
    }
}
