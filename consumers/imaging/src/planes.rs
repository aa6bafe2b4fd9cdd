//! Pixel buffers the pipeline works on: Y/Cb/Cr planes (what a JPEG decodes
//! to without colour conversion) or packed RGB (everything else), plus the
//! geometric operations a variant needs: centred crop + Lanczos3 resize, and
//! EXIF orientation.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{U8x3, U8x4, U8};
use fast_image_resize::{Filter, FilterType, PixelTrait, ResizeAlg, ResizeOptions, Resizer};

/// Packed 8-bit pixels with `C` channels, rows without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raster<const C: usize> {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// One channel: a Y, Cb or Cr plane.
pub type Plane = Raster<1>;
/// Packed RGB.
pub type Rgb = Raster<3>;

impl<const C: usize> Raster<C> {
    /// A zeroed raster; its memory may come from (and should go back to) the scratch pool.
    pub fn new(width: u32, height: u32) -> Self {
        let data = crate::scratch::zeroed(width as usize * height as usize * C);
        Raster {
            width,
            height,
            data,
        }
    }

    fn filled(width: u32, height: u32, value: u8) -> Self {
        let data = vec![value; width as usize * height as usize * C];
        Raster {
            width,
            height,
            data,
        }
    }

    /// Lanczos3 resize of the region `crop` to `out_w × out_h`.
    pub fn resize(
        &self,
        crop: Crop,
        out_w: u32,
        out_h: u32,
        resizer: &mut Resizer,
    ) -> Result<Self, String> {
        self.resize_with(lanczos3(), crop, out_w, out_h, resizer)
    }

    /// Resize of the region `crop` to `out_w × out_h` with `filter`.
    pub fn resize_with(
        &self,
        filter: FilterType,
        crop: Crop,
        out_w: u32,
        out_h: u32,
        resizer: &mut Resizer,
    ) -> Result<Self, String> {
        // From the scratch pool: a fresh buffer per variant would be faulted in every time.
        let mut data = crate::scratch::zeroed(out_w as usize * out_h as usize * C);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(filter))
            .crop(crop.x, crop.y, crop.w, crop.h);
        // The typed entry point for the three pixel types used: the untyped
        // one dispatches over all thirteen, and links each one's kernels
        // (2.2 MiB of the image processor's Lambda bootstrap).
        let (w, h) = (self.width, self.height);
        match C {
            1 => resize_typed::<U8>(&self.data, w, h, &mut data, out_w, out_h, &options, resizer),
            3 => resize_typed::<U8x3>(&self.data, w, h, &mut data, out_w, out_h, &options, resizer),
            _ => resize_typed::<U8x4>(&self.data, w, h, &mut data, out_w, out_h, &options, resizer),
        }?;
        Ok(Raster {
            width: out_w,
            height: out_h,
            data,
        })
    }

    pub fn orient(self, orientation: Orientation) -> Self {
        let (width, height, data) = orient_raw(self.width, self.height, C, self.data, orientation);
        Raster {
            width,
            height,
            data,
        }
    }
}

/// Resizes packed pixels of type `P` from `src` into `dst`.
#[allow(clippy::too_many_arguments)]
fn resize_typed<P: PixelTrait>(
    src: &[u8],
    width: u32,
    height: u32,
    dst: &mut [u8],
    out_w: u32,
    out_h: u32,
    options: &ResizeOptions,
    resizer: &mut Resizer,
) -> Result<(), String> {
    let src = TypedImageRef::<P>::from_buffer(width, height, src).map_err(|e| e.to_string())?;
    let mut dst = TypedImage::<P>::from_buffer(out_w, out_h, dst).map_err(|e| e.to_string())?;
    resizer
        .resize_typed(&src, &mut dst, options)
        .map_err(|e| e.to_string())
}

/// Lanczos3 as the resize filter (the taps are recomputed for every plane and
/// variant).
fn lanczos3() -> FilterType {
    FilterType::Custom(Filter::new("Lanczos3", lanczos3_tap, 3.0).expect("finite positive support"))
}

/// The same function as `FilterType::Lanczos3`, with one `sin` per tap
/// instead of two: sin(πx) = 3s − 4s³ where s = sin(πx/3). libm's `sin` was
/// ~1% of a 12 MP → 512 thumbnail.
fn lanczos3_tap(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    if !(-3.0..3.0).contains(&x) {
        return 0.0;
    }
    let t = std::f64::consts::PI * x / 3.0;
    let s = t.sin();
    // sinc(x) · sinc(x/3) = sin(3t) · sin(t) / (3t · t)
    (3.0 * s - 4.0 * s * s * s) * s / (3.0 * t * t)
}

/// A Y/Cb/Cr image. Chroma planes may be subsampled by `(fx, fy)` relative to
/// luma; JPEG chroma samples are centred (JFIF), so chroma pixel `i` covers
/// luma `[i·f, (i+1)·f)` and a crop maps to chroma by dividing by `f`.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub width: u32,
    pub height: u32,
    y: Plane,
    chroma: Option<Chroma>,
}

#[derive(Debug, Clone, PartialEq)]
struct Chroma {
    cb: Plane,
    cr: Plane,
    fx: f64,
    fy: f64,
}

impl Planes {
    /// Wraps planes decoded by libjpeg-turbo; the subsampling factors follow from
    /// the plane sizes (rounded, since odd sizes round chroma up).
    pub fn from_jpeg(width: u32, height: u32, mut planes: Vec<Plane>) -> Planes {
        let y = planes.remove(0);
        let chroma = (planes.len() == 2).then(|| {
            let cr = planes.pop().expect("two chroma planes");
            let cb = planes.pop().expect("two chroma planes");
            let fx = (width as f64 / cb.width as f64).round().max(1.0);
            let fy = (height as f64 / cb.height as f64).round().max(1.0);
            Chroma { cb, cr, fx, fy }
        });
        Planes {
            width,
            height,
            y,
            chroma,
        }
    }

    pub fn is_gray(&self) -> bool {
        self.chroma.is_none()
    }

    /// Returns the pixel memory to the scratch pool.
    pub fn recycle(self) {
        crate::scratch::recycle(self.y.data);
        if let Some(c) = self.chroma {
            crate::scratch::recycle(c.cb.data);
            crate::scratch::recycle(c.cr.data);
        }
    }

    /// The planes in Y, Cb, Cr order (Y only for grey).
    pub fn planes(&self) -> Vec<&Plane> {
        match &self.chroma {
            Some(c) => vec![&self.y, &c.cb, &c.cr],
            None => vec![&self.y],
        }
    }

    /// Y, Cb, Cr planes even for grey images (neutral chroma), for encoders
    /// that always want colour.
    pub fn to_420_color(&self) -> [Plane; 3] {
        let (cw, ch) = (self.width.div_ceil(2), self.height.div_ceil(2));
        match &self.chroma {
            Some(c) => [self.y.clone(), c.cb.clone(), c.cr.clone()],
            None => [
                self.y.clone(),
                Plane::filled(cw, ch, 128),
                Plane::filled(cw, ch, 128),
            ],
        }
    }

    /// Packed RGB (BT.601 full range, as JFIF defines YCbCr).
    pub fn to_rgb(&self) -> Rgb {
        let mut data = Vec::with_capacity(self.width as usize * self.height as usize * 3);
        for row in 0..self.height {
            for col in 0..self.width {
                let y = self.y.data[(row * self.y.width + col) as usize] as f32;
                let (cb, cr) = match &self.chroma {
                    Some(c) => {
                        let cx = ((col as f64 / c.fx) as u32).min(c.cb.width - 1);
                        let cy = ((row as f64 / c.fy) as u32).min(c.cb.height - 1);
                        let i = (cy * c.cb.width + cx) as usize;
                        (c.cb.data[i] as f32 - 128.0, c.cr.data[i] as f32 - 128.0)
                    }
                    None => (0.0, 0.0),
                };
                data.push(clamp_u8(y + 1.402 * cr));
                data.push(clamp_u8(y - 0.344_136 * cb - 0.714_136 * cr));
                data.push(clamp_u8(y + 1.772 * cb));
            }
        }
        Rgb {
            width: self.width,
            height: self.height,
            data,
        }
    }

    /// Crops the centred region `crop` (in luma pixels) and resizes it to
    /// `out_w × out_h`, producing 4:2:0 chroma (the output JPEG's layout).
    pub fn resize(
        &self,
        crop: Crop,
        out_w: u32,
        out_h: u32,
        resizer: &mut Resizer,
    ) -> Result<Planes, String> {
        let y = self.y.resize(crop, out_w, out_h, resizer)?;
        let chroma = match &self.chroma {
            Some(c) => {
                let ccrop = Crop {
                    x: crop.x / c.fx,
                    y: crop.y / c.fy,
                    w: crop.w / c.fx,
                    h: crop.h / c.fy,
                };
                let (cw, ch) = (out_w.div_ceil(2), out_h.div_ceil(2));
                let cb = c.cb.resize(ccrop, cw, ch, resizer)?;
                let cr = c.cr.resize(ccrop, cw, ch, resizer)?;
                Some(Chroma {
                    cb,
                    cr,
                    fx: 2.0,
                    fy: 2.0,
                })
            }
            None => None,
        };
        Ok(Planes {
            width: out_w,
            height: out_h,
            y,
            chroma,
        })
    }

    pub fn orient(self, orientation: Orientation) -> Planes {
        if orientation == Orientation::Normal {
            return self;
        }
        let y = self.y.orient(orientation);
        let chroma = self.chroma.map(|c| Chroma {
            cb: c.cb.orient(orientation),
            cr: c.cr.orient(orientation),
            ..c
        });
        Planes {
            width: y.width,
            height: y.height,
            y,
            chroma,
        }
    }
}

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// A region of the source in (sub)pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Crop {
    pub fn full(width: u32, height: u32) -> Crop {
        Crop {
            x: 0.0,
            y: 0.0,
            w: width as f64,
            h: height as f64,
        }
    }

    /// The largest centred region of `width × height` with the aspect ratio
    /// of `out_w × out_h` (what a cover fit keeps).
    pub fn centred_cover(width: u32, height: u32, out_w: u32, out_h: u32) -> Crop {
        let (w, h) = (width as f64, height as f64);
        let scale = (out_w as f64 / w).max(out_h as f64 / h);
        let cw = (out_w as f64 / scale).min(w);
        let ch = (out_h as f64 / scale).min(h);
        Crop {
            x: (w - cw) / 2.0,
            y: (h - ch) / 2.0,
            w: cw,
            h: ch,
        }
    }
}

/// EXIF orientation (tag 0x0112), values 1–8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Normal,
    FlipH,
    Rotate180,
    FlipV,
    Transpose,
    Rotate90,
    Transverse,
    Rotate270,
}

impl Orientation {
    pub fn from_exif(value: u16) -> Orientation {
        match value {
            2 => Orientation::FlipH,
            3 => Orientation::Rotate180,
            4 => Orientation::FlipV,
            5 => Orientation::Transpose,
            6 => Orientation::Rotate90,
            7 => Orientation::Transverse,
            8 => Orientation::Rotate270,
            // 1 and anything invalid: leave the pixels as stored.
            _ => Orientation::Normal,
        }
    }

    /// Whether applying it swaps width and height.
    pub fn swaps_axes(self) -> bool {
        matches!(
            self,
            Orientation::Transpose
                | Orientation::Rotate90
                | Orientation::Transverse
                | Orientation::Rotate270
        )
    }
}

/// Applies the orientation to a packed image with `bpp` bytes per pixel.
/// Only ever run on finished thumbnails, so a simple per-pixel copy is cheap.
fn orient_raw(
    width: u32,
    height: u32,
    bpp: usize,
    data: Vec<u8>,
    orientation: Orientation,
) -> (u32, u32, Vec<u8>) {
    if orientation == Orientation::Normal {
        return (width, height, data);
    }
    let (w, h) = (width as usize, height as usize);
    let (ow, oh) = if orientation.swaps_axes() {
        (h, w)
    } else {
        (w, h)
    };
    let mut out = vec![0u8; data.len()];
    for y in 0..oh {
        for x in 0..ow {
            // Which source pixel lands at output (x, y).
            let (sx, sy) = match orientation {
                Orientation::Normal => (x, y),
                Orientation::FlipH => (w - 1 - x, y),
                Orientation::Rotate180 => (w - 1 - x, h - 1 - y),
                Orientation::FlipV => (x, h - 1 - y),
                Orientation::Transpose => (y, x),
                Orientation::Rotate90 => (y, h - 1 - x),
                Orientation::Transverse => (w - 1 - y, h - 1 - x),
                Orientation::Rotate270 => (w - 1 - y, x),
            };
            let src = (sy * w + sx) * bpp;
            let dst = (y * ow + x) * bpp;
            out[dst..dst + bpp].copy_from_slice(&data[src..src + bpp]);
        }
    }
    (ow as u32, oh as u32, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×2 image with distinct values, oriented per EXIF, compared with the
    /// result the EXIF spec defines for each tag.
    #[test]
    fn orientations_match_the_exif_definitions() {
        // a b c
        // d e f
        let src = b"abcdef".to_vec();
        let cases: [(u16, u32, &[u8]); 8] = [
            (1, 3, b"abcdef"),
            (2, 3, b"cbafed"),
            (3, 3, b"fedcba"),
            (4, 3, b"defabc"),
            (5, 2, b"adbecf"),
            (6, 2, b"daebfc"),
            (7, 2, b"fcebda"),
            (8, 2, b"cfbead"),
        ];
        for (tag, out_w, expected) in cases {
            let (w, _, out) = orient_raw(3, 2, 1, src.clone(), Orientation::from_exif(tag));
            assert_eq!((w, out.as_slice()), (out_w, expected), "orientation {tag}");
        }
    }

    #[test]
    fn one_sin_lanczos3_matches_the_two_sin_definition() {
        let sinc = |x: f64| {
            let t = std::f64::consts::PI * x;
            if x == 0.0 {
                1.0
            } else {
                t.sin() / t
            }
        };
        for i in -3200..=3200 {
            let x = i as f64 / 1000.0;
            let expected = if x.abs() < 3.0 {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            };
            let got = lanczos3_tap(x);
            assert!((got - expected).abs() < 1e-12, "x={x}: {got} vs {expected}");
        }
    }

    #[test]
    fn cover_crop_is_centred_and_keeps_the_aspect_ratio() {
        let c = Crop::centred_cover(4000, 3000, 512, 512);
        assert_eq!((c.x, c.y, c.w, c.h), (500.0, 0.0, 3000.0, 3000.0));
        let c = Crop::centred_cover(1000, 2000, 200, 100);
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 750.0, 1000.0, 500.0));
    }
}
