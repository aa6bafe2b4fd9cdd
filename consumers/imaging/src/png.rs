//! Fast path for the common PNG: 8-bit, non-interlaced, grey / RGB / palette
//! / grey+alpha / RGBA, no colour profile or EXIF. The IDAT stream is inflated
//! in one call by libdeflate (about 1.6× the speed of the streaming inflaters
//! on photographic data, where inflate is most of a PNG decode) and unfiltered
//! in place. Anything else returns `None` and goes through the `image` crate.
//!
//! Every length and offset comes from the file: all reads are bounds-checked.

use crate::limits::{check_pixels, Limits, Rejection};
use crate::planes::Rgb;
use crate::scratch;

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

struct Header {
    width: u32,
    height: u32,
    color_type: u8,
}

impl Header {
    fn channels(&self) -> usize {
        match self.color_type {
            0 | 3 => 1,
            4 => 2,
            2 => 3,
            _ => 4,
        }
    }
}

/// Decodes `bytes` to RGB (alpha composited onto white), or `Ok(None)` when
/// the file needs the general decoder.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Option<Rgb>, Rejection> {
    let corrupt = |what: &str| Rejection::Corrupt(format!("PNG: {what}"));
    let mut chunks = Chunks {
        bytes,
        pos: SIGNATURE.len(),
    };
    let (kind, ihdr) = chunks.next().ok_or_else(|| corrupt("no header"))??;
    if kind != *b"IHDR" || ihdr.len() != 13 {
        return Err(corrupt("first chunk is not a valid IHDR"));
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let header = Header {
        width: be32(&ihdr[0..4]),
        height: be32(&ihdr[4..8]),
        color_type: ihdr[9],
    };
    if header.width == 0 || header.height == 0 {
        return Err(corrupt("zero width or height"));
    }
    check_pixels(header.width, header.height, limits)?;
    let (bit_depth, interlace) = (ihdr[8], ihdr[12]);
    if bit_depth != 8 || interlace != 0 || ![0, 2, 3, 4, 6].contains(&header.color_type) {
        return Ok(None);
    }
    let mut palette: Option<&[u8]> = None;
    let mut alpha: Option<&[u8]> = None;
    let mut idat_parts: Vec<&[u8]> = Vec::new();
    let mut ended = false;
    for chunk in chunks {
        let (kind, data) = chunk?;
        match &kind {
            b"IDAT" => idat_parts.push(data),
            b"PLTE" => palette = Some(data),
            b"tRNS" if header.color_type == 3 => alpha = Some(data),
            // Colour-key transparency, profiles and orientation: the general decoder handles those.
            b"tRNS" | b"iCCP" | b"eXIf" => return Ok(None),
            b"IEND" => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    if !ended {
        return Err(corrupt("file is truncated (no IEND)"));
    }
    let channels = header.channels();
    let stride = header.width as usize * channels;
    let size = (stride + 1)
        .checked_mul(header.height as usize)
        .ok_or_else(|| corrupt("image too large for this machine"))?;
    let mut idat = scratch::zeroed(idat_parts.iter().map(|p| p.len()).sum());
    let mut at = 0;
    for part in idat_parts {
        idat[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let mut raw = scratch::zeroed(size);
    let inflated = libdeflater::Decompressor::new().zlib_decompress(&idat, &mut raw);
    scratch::recycle(idat);
    let inflated = inflated.map_err(|e| corrupt(&format!("image data: {e}")));
    if inflated.as_ref().is_ok_and(|&n| n != size) {
        scratch::recycle(raw);
        return Err(corrupt("image data is truncated"));
    }
    let pixels = inflated.and_then(|_| unfilter(&raw, stride, channels, header.height as usize));
    scratch::recycle(raw);
    let pixels = pixels?;
    let rgb = match header.color_type {
        2 => pixels,
        0 => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
        4 => pixels
            .chunks_exact(2)
            .flat_map(|p| [over_white(p[0], p[1]); 3])
            .collect(),
        6 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                [
                    over_white(p[0], p[3]),
                    over_white(p[1], p[3]),
                    over_white(p[2], p[3]),
                ]
            })
            .collect(),
        _ => {
            let palette = palette.ok_or_else(|| corrupt("palette image without a palette"))?;
            let alpha = alpha.unwrap_or(&[]);
            let mut rgb = Vec::with_capacity(pixels.len() * 3);
            for &i in &pixels {
                let i = i as usize;
                let entry = palette
                    .get(i * 3..i * 3 + 3)
                    .ok_or_else(|| corrupt("palette index out of range"))?;
                let a = alpha.get(i).copied().unwrap_or(255);
                rgb.extend(entry.iter().map(|&c| over_white(c, a)));
            }
            rgb
        }
    };
    Ok(Some(Rgb {
        width: header.width,
        height: header.height,
        data: rgb,
    }))
}

/// Composites one 8-bit channel with straight alpha onto white.
pub fn over_white(c: u8, a: u8) -> u8 {
    let a = a as u32;
    ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8
}

/// Reverses the PNG row filters (spec section 9) and returns the rows packed
/// without their filter-type bytes.
fn unfilter(raw: &[u8], stride: usize, bpp: usize, height: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = scratch::zeroed(stride * height);
    let zero = vec![0u8; stride];
    for y in 0..height {
        let (done, rest) = out.split_at_mut(y * stride);
        let prev = if y == 0 {
            &zero[..]
        } else {
            &done[(y - 1) * stride..]
        };
        let cur = &mut rest[..stride];
        let row = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (filter, src) = (row[0], &row[1..]);
        if filter > 4 {
            return Err(Rejection::Corrupt(format!(
                "PNG: unknown row filter {filter}"
            )));
        }
        // One monomorphised loop per pixel size keeps the left neighbour in registers.
        match bpp {
            1 => unfilter_row::<1>(filter, cur, src, prev),
            2 => unfilter_row::<2>(filter, cur, src, prev),
            3 => unfilter_row::<3>(filter, cur, src, prev),
            _ => unfilter_row::<4>(filter, cur, src, prev),
        }
    }
    Ok(out)
}

fn unfilter_row<const B: usize>(filter: u8, cur: &mut [u8], src: &[u8], prev: &[u8]) {
    let pixels = cur
        .chunks_exact_mut(B)
        .zip(src.chunks_exact(B))
        .zip(prev.chunks_exact(B));
    let (mut left, mut up_left) = ([0u8; B], [0u8; B]);
    match filter {
        0 => cur.copy_from_slice(src),
        1 => {
            for ((c, s), _) in pixels {
                for k in 0..B {
                    left[k] = s[k].wrapping_add(left[k]);
                    c[k] = left[k];
                }
            }
        }
        2 => {
            for ((c, s), p) in cur.iter_mut().zip(src).zip(prev) {
                *c = s.wrapping_add(*p);
            }
        }
        3 => {
            for ((c, s), p) in pixels {
                for k in 0..B {
                    left[k] = s[k].wrapping_add(((left[k] as u16 + p[k] as u16) >> 1) as u8);
                    c[k] = left[k];
                }
            }
        }
        _ => {
            for ((c, s), p) in pixels {
                for k in 0..B {
                    left[k] = s[k].wrapping_add(paeth(left[k], p[k], up_left[k]));
                    c[k] = left[k];
                    up_left[k] = p[k];
                }
            }
        }
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (ia, ib, ic) = (a as i16, b as i16, c as i16);
    let p = ia + ib - ic;
    let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Iterates `(type, data)` over the chunks after the signature; CRCs are not
/// checked (the zlib stream carries its own Adler-32, which libdeflate checks).
struct Chunks<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<([u8; 4], &'a [u8]), Rejection>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let truncated = || Some(Err(Rejection::Corrupt("PNG: truncated chunk".into())));
        let Some(head) = self.bytes.get(self.pos..self.pos + 8) else {
            return truncated();
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = [head[4], head[5], head[6], head[7]];
        let start = self.pos + 8;
        // The data and its 4-byte CRC must both be there.
        let Some(data) = start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
        else {
            return truncated();
        };
        if self.bytes.len() < start + len + 4 {
            return truncated();
        }
        self.pos = start + len + 4;
        Some(Ok((kind, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::{ExtendedColorType, ImageEncoder};

    fn encode(
        pixels: &[u8],
        w: u32,
        h: u32,
        color: ExtendedColorType,
        filter: FilterType,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new_with_quality(&mut out, CompressionType::Default, filter)
            .write_image(pixels, w, h, color)
            .unwrap();
        out
    }

    /// The fast path agrees with the `image` crate, pixel for pixel, for every
    /// row filter and colour type it takes.
    #[test]
    fn matches_the_general_decoder_for_every_filter_and_colour_type() {
        let (w, h) = (37u32, 23u32);
        let rgb = crate::fixtures::photo(w, h, 7).data;
        let rgba: Vec<u8> = rgb
            .chunks(3)
            .enumerate()
            .flat_map(|(i, p)| [p[0], p[1], p[2], (i * 37 % 256) as u8])
            .collect();
        let grey: Vec<u8> = rgb.chunks(3).map(|p| p[1]).collect();
        let grey_alpha: Vec<u8> = grey
            .iter()
            .enumerate()
            .flat_map(|(i, &g)| [g, (i * 11 % 256) as u8])
            .collect();
        let filters = [
            FilterType::NoFilter,
            FilterType::Sub,
            FilterType::Up,
            FilterType::Avg,
            FilterType::Paeth,
            FilterType::Adaptive,
        ];
        for filter in filters {
            for (pixels, color) in [
                (&rgb, ExtendedColorType::Rgb8),
                (&rgba, ExtendedColorType::Rgba8),
                (&grey, ExtendedColorType::L8),
                (&grey_alpha, ExtendedColorType::La8),
            ] {
                let file = encode(pixels, w, h, color, filter);
                let fast = decode(&file, &Limits::default())
                    .unwrap()
                    .expect("fast path taken");
                let general = crate::flatten_to_rgb(image::load_from_memory(&file).unwrap());
                assert_eq!(fast.data, general.data, "{color:?} with {filter:?}");
            }
        }
    }

    #[test]
    fn truncation_anywhere_is_an_error_not_a_panic() {
        let file = encode(
            &crate::fixtures::photo(16, 16, 3).data,
            16,
            16,
            ExtendedColorType::Rgb8,
            FilterType::Paeth,
        );
        for cut in 8..file.len() {
            assert!(
                decode(&file[..cut], &Limits::default()).is_err(),
                "cut at {cut} accepted"
            );
        }
    }
}
