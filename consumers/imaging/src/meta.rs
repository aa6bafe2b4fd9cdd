//! Reads the two pieces of JPEG metadata the pipeline honours, EXIF
//! orientation and the ICC profile, straight from the marker segments. Every
//! offset comes from an untrusted file, so each read is bounds-checked and a
//! malformed segment means "no metadata", never a panic.

/// Metadata found before the first scan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JpegMeta {
    pub orientation: Option<u16>,
    pub icc: Option<Vec<u8>>,
}

const EXIF_ID: &[u8] = b"Exif\0\0";
const ICC_ID: &[u8] = b"ICC_PROFILE\0";

pub fn jpeg_meta(bytes: &[u8]) -> JpegMeta {
    let mut meta = JpegMeta::default();
    // ICC profiles may span several APP2 segments, numbered from 1.
    let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut pos = 2; // after SOI
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xFF {
            break;
        }
        let marker = bytes[pos + 1];
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        // Markers without a length; SOS and EOI end the header part.
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            pos += 2;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]) as usize;
        let Some(body) = len
            .checked_sub(2)
            .and_then(|n| bytes.get(pos + 4..pos + 4 + n))
        else {
            break;
        };
        match marker {
            0xE1 if meta.orientation.is_none() => {
                if let Some(tiff) = body.strip_prefix(EXIF_ID) {
                    meta.orientation = exif_orientation(tiff);
                }
            }
            0xE2 => {
                if let Some(rest) = body.strip_prefix(ICC_ID) {
                    if rest.len() >= 2 {
                        icc_chunks.push((rest[0], &rest[2..]));
                    }
                }
            }
            _ => {}
        }
        pos += 2 + len;
    }
    if !icc_chunks.is_empty() {
        icc_chunks.sort_by_key(|(seq, _)| *seq);
        meta.icc = Some(
            icc_chunks
                .iter()
                .flat_map(|(_, data)| data.iter().copied())
                .collect(),
        );
    }
    meta
}

/// Finds tag 0x0112 in IFD0 of a TIFF structure (the body of an EXIF segment).
pub fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let le = match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => true,
        [b'M', b'M', 0, 42] => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at.checked_add(2)?)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at.checked_add(4)?)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    (0..count).find_map(|i| {
        let entry = ifd.checked_add(2 + i * 12)?;
        // Tag 0x0112, type SHORT (3): the value sits in the first two bytes of the value field.
        (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3)
            .then(|| u16_at(entry + 8))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exif_segment(orientation: u16, big_endian: bool) -> Vec<u8> {
        let mut tiff = Vec::new();
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        tiff.extend_from_slice(if big_endian { b"MM" } else { b"II" });
        tiff.extend_from_slice(&w16(42));
        tiff.extend_from_slice(&w32(8));
        tiff.extend_from_slice(&w16(1));
        tiff.extend_from_slice(&w16(0x0112));
        tiff.extend_from_slice(&w16(3));
        tiff.extend_from_slice(&w32(1));
        tiff.extend_from_slice(&w16(orientation));
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&w32(0));
        let mut body = EXIF_ID.to_vec();
        body.extend_from_slice(&tiff);
        let mut seg = vec![0xFF, 0xE1];
        seg.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        seg.extend_from_slice(&body);
        seg
    }

    #[test]
    fn reads_orientation_in_both_byte_orders_and_joins_icc_chunks() {
        for be in [false, true] {
            let mut jpeg = vec![0xFF, 0xD8];
            jpeg.extend(exif_segment(6, be));
            for (seq, part) in [(2u8, b"world".as_slice()), (1, b"hello ")] {
                let mut body = ICC_ID.to_vec();
                body.extend_from_slice(&[seq, 2]);
                body.extend_from_slice(part);
                jpeg.extend_from_slice(&[0xFF, 0xE2]);
                jpeg.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
                jpeg.extend_from_slice(&body);
            }
            jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
            let meta = jpeg_meta(&jpeg);
            assert_eq!(meta.orientation, Some(6));
            assert_eq!(meta.icc.as_deref(), Some(b"hello world".as_slice()));
        }
    }

    #[test]
    fn truncated_or_lying_segments_yield_nothing() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(exif_segment(3, false));
        for cut in 0..jpeg.len() {
            let meta = jpeg_meta(&jpeg[..cut]);
            assert!(meta.orientation.is_none() || cut == jpeg.len());
        }
        // An IFD offset pointing far outside the segment.
        assert_eq!(exif_orientation(b"II\x2a\x00\xff\xff\xff\x7f"), None);
    }
}
