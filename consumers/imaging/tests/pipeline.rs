//! The image pipeline end to end, through its public interface, on real
//! encoded files: correctness (orientation, crop, colour, metadata,
//! determinism) and hostile inputs (bombs, truncation, corruption, mutation).

use std::time::Duration;

use proptest::prelude::*;
use switchyard_imaging::{
    fixtures, peak_memory, process, quality, render, sniff, InputFormat, Limits, Rgb, VariantSpec,
};

fn spec(s: &str) -> VariantSpec {
    s.parse().unwrap()
}

fn jpeg_of(rgb: &Rgb, q: u8) -> Vec<u8> {
    fixtures::jpeg(rgb, q)
}

/// Inserts a marker segment right after SOI.
fn with_segment(jpeg: &[u8], marker: u8, body: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn exif_orientation_body(orientation: u16) -> Vec<u8> {
    let mut b = b"Exif\0\0II\x2a\x00\x08\x00\x00\x00\x01\x00".to_vec();
    b.extend_from_slice(&0x0112u16.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&orientation.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    b
}

/// Left half red, right half blue.
fn two_halves(w: u32, h: u32) -> Rgb {
    let data = (0..w * h)
        .flat_map(|i| {
            if i % w < w / 2 {
                [220, 20, 20]
            } else {
                [20, 20, 220]
            }
        })
        .collect();
    Rgb {
        width: w,
        height: h,
        data,
    }
}

fn pixel(img: &Rgb, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * img.width + x) * 3) as usize;
    [img.data[i], img.data[i + 1], img.data[i + 2]]
}

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 150 && p[2] < 90
}

fn is_blue(p: [u8; 3]) -> bool {
    p[2] > 150 && p[0] < 90
}

/// The JPEG marker codes before the first scan.
fn markers(jpeg: &[u8]) -> Vec<u8> {
    let mut found = Vec::new();
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
        let marker = jpeg[pos + 1];
        found.push(marker);
        if marker == 0xDA {
            break;
        }
        pos += 2 + u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
    }
    found
}

#[test]
fn exif_orientation_is_applied() {
    // Stored landscape 200×100, red on the left. Orientation 6 ("rotate 90°
    // clockwise to display") shows a 100×200 portrait with red on top; 8
    // (rotate 270°) shows red at the bottom.
    for (orientation, red_on_top) in [(6, true), (8, false)] {
        let stored = jpeg_of(&two_halves(200, 100), 95);
        let jpeg = with_segment(&stored, 0xE1, &exif_orientation_body(orientation));
        let variants = [spec("c=50x100:contain:jpeg:90")];
        let out = render(&jpeg, &variants, &Limits::default())
            .unwrap()
            .remove(0);
        assert_eq!((out.width, out.height), (50, 100));
        let (top, bottom) = (pixel(&out, 25, 10), pixel(&out, 25, 90));
        let (want_top, want_bottom) = if red_on_top {
            (top, bottom)
        } else {
            (bottom, top)
        };
        assert!(
            is_red(want_top) && is_blue(want_bottom),
            "orientation {orientation}: top {top:?}, bottom {bottom:?}"
        );
    }
}

#[test]
fn cover_crop_is_centred() {
    // 300×100: a 100-px green band in the middle between black side bands.
    // A 64×64 cover keeps exactly the centred 100×100 square: all green.
    let (w, h) = (300u32, 100u32);
    let data = (0..w * h)
        .flat_map(|i| {
            if (100..200).contains(&(i % w)) {
                [30, 200, 30]
            } else {
                [0, 0, 0]
            }
        })
        .collect();
    let img = Rgb {
        width: w,
        height: h,
        data,
    };
    for input in [jpeg_of(&img, 95), png_of(&img)] {
        let out = render(&input, &[spec("s=64x64:cover:jpeg:90")], &Limits::default())
            .unwrap()
            .remove(0);
        assert_eq!((out.width, out.height), (64, 64));
        for x in [2, 32, 61] {
            let p = pixel(&out, x, 32);
            assert!(
                p[1] > 150 && p[0] < 80,
                "column {x} is {p:?}: the crop is off centre"
            );
        }
    }
}

fn png_of(img: &Rgb) -> Vec<u8> {
    fixtures::png(img)
}

#[test]
fn outputs_are_deterministic_stripped_and_sniffed_as_what_they_claim() {
    let mut jpeg = jpeg_of(&fixtures::photo(640, 480, 11), 90);
    jpeg = with_segment(&jpeg, 0xE1, &exif_orientation_body(1));
    jpeg = with_segment(&jpeg, 0xED, b"Photoshop 3.0\0secret caption");
    let variants = [
        spec("a=512x512:cover:jpeg:80"),
        spec("b=128x128:cover:webp:75"),
    ];
    let first = process(&jpeg, &variants, &Limits::default()).unwrap();
    let second = process(&jpeg, &variants, &Limits::default()).unwrap();
    assert_eq!(
        first, second,
        "same input and settings must give the same bytes"
    );
    assert_eq!(sniff(&first[0].bytes), Some(InputFormat::Jpeg));
    assert_eq!(first[0].format.content_type(), "image/jpeg");
    assert_eq!(sniff(&first[1].bytes), Some(InputFormat::Webp));
    assert_eq!(first[1].format.content_type(), "image/webp");
    // Only JFIF (APP0), tables, frame and scan markers: no EXIF, ICC or Photoshop data.
    let found = markers(&first[0].bytes);
    assert!(
        found.iter().all(|m| !(0xE1..=0xEF).contains(m)),
        "metadata markers in output: {found:x?}"
    );
    assert!(!first[0].bytes.windows(6).any(|w| w == b"secret"));
    // WebP: a plain lossy VP8 stream, no VP8X extended header (which metadata would need).
    assert_eq!(&first[1].bytes[12..16], b"VP8 ");
}

#[test]
fn a_wide_gamut_profile_is_converted_to_srgb() {
    // The same pixel values mean a more saturated red in Display P3 than in
    // sRGB, so the converted thumbnail must be redder than the untagged one.
    let red = Rgb {
        width: 64,
        height: 64,
        data: [200u8, 60, 60].repeat(64 * 64),
    };
    let plain = jpeg_of(&red, 95);
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let mut body = b"ICC_PROFILE\0\x01\x01".to_vec();
    body.extend_from_slice(&p3);
    let tagged = with_segment(&plain, 0xE2, &body);
    let v = [spec("t=32x32:cover:jpeg:95")];
    let a = render(&plain, &v, &Limits::default()).unwrap().remove(0);
    let b = render(&tagged, &v, &Limits::default()).unwrap().remove(0);
    let (pa, pb) = (pixel(&a, 16, 16), pixel(&b, 16, 16));
    assert!(
        pb[0] > pa[0] + 5 && pb[1] + 5 < pa[1],
        "untagged {pa:?}, P3-tagged {pb:?}"
    );
}

#[test]
fn resize_quality_is_close_to_a_full_resolution_lanczos3() {
    // The DCT-scaled decode must not cost visible quality: SSIM of the
    // pipeline's pixels against Lanczos3 of the full decode.
    let jpeg = jpeg_of(&fixtures::photo(1600, 1200, 5), 90);
    let full = quality::decode_full(&jpeg).unwrap();
    for v in ["a=200x200:cover:jpeg:80", "b=100x60:contain:jpeg:80"] {
        let v = spec(v);
        let ours = render(&jpeg, std::slice::from_ref(&v), &Limits::default())
            .unwrap()
            .remove(0);
        let reference = quality::reference(&full, &v).unwrap();
        let s = quality::ssim(&reference, &ours).unwrap();
        assert!(s > 0.99, "{}: SSIM {s}", v.name);
    }
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let limits = Limits {
        max_pixels: 1_000_000,
        ..Limits::default()
    };
    // A real 1200×1000 JPEG is over a 1 MP limit: refused before decoding.
    let jpeg = jpeg_of(&fixtures::photo(1200, 1000, 1), 50);
    assert_eq!(
        process(&jpeg, &VariantSpec::defaults(), &limits)
            .unwrap_err()
            .code(),
        "too_many_pixels"
    );
    // A tiny JPEG whose frame header claims 60000×60000: refused, nothing allocated.
    let mut bomb = jpeg_of(&fixtures::photo(16, 16, 1), 50);
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let err = process(&bomb, &VariantSpec::defaults(), &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "too_many_pixels", "{err}");
    // The same for a PNG whose IHDR claims 100000×100000 (CRC left stale on purpose).
    let mut png = png_of(&fixtures::photo(16, 16, 1));
    png[16..24].copy_from_slice(&[0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0]);
    assert_eq!(
        process(&png, &VariantSpec::defaults(), &Limits::default())
            .unwrap_err()
            .code(),
        "too_many_pixels"
    );
}

#[test]
fn bad_files_get_a_code_not_a_panic() {
    let limits = Limits::default();
    let defaults = VariantSpec::defaults();
    assert_eq!(
        process(&[], &defaults, &limits).unwrap_err().code(),
        "empty"
    );
    assert_eq!(
        process(b"GIF89a\x10\x00", &defaults, &limits)
            .unwrap_err()
            .code(),
        "corrupt"
    );
    assert_eq!(
        process(b"%PDF-1.7\n", &defaults, &limits)
            .unwrap_err()
            .code(),
        "unsupported_type"
    );
    let small = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let jpeg = jpeg_of(&fixtures::photo(64, 64, 2), 90);
    assert_eq!(
        process(&jpeg, &defaults, &small).unwrap_err().code(),
        "too_large"
    );
    // Truncated in the entropy-coded data: libjpeg would pad with grey; we refuse.
    let cut = &jpeg[..jpeg.len() * 2 / 3];
    assert_eq!(
        process(cut, &defaults, &limits).unwrap_err().code(),
        "corrupt"
    );
    let png = png_of(&fixtures::photo(64, 64, 2));
    assert_eq!(
        process(&png[..png.len() / 2], &defaults, &limits)
            .unwrap_err()
            .code(),
        "corrupt"
    );
    let no_time = Limits {
        max_decode_time: Duration::ZERO,
        ..Limits::default()
    };
    assert_eq!(
        process(&jpeg, &defaults, &no_time).unwrap_err().code(),
        "decode_timeout"
    );
}

#[test]
fn every_input_type_makes_every_output_type() {
    let img = fixtures::photo(300, 200, 4);
    let rgba: Vec<u8> = img
        .data
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let mut gif = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut gif)
        .encode(&rgba, 300, 200, image::ExtendedColorType::Rgba8)
        .unwrap();
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(&img.data, 300, 200, image::ExtendedColorType::Rgb8)
        .unwrap();
    let variants = [
        spec("j=64x48:cover:jpeg:80"),
        spec("w=64x64:contain:webp:80"),
    ];
    for input in [jpeg_of(&img, 90), png_of(&img), gif, webp] {
        let out = process(&input, &variants, &Limits::default()).unwrap();
        assert_eq!((out[0].width, out[0].height), (64, 48));
        assert_eq!((out[1].width, out[1].height), (64, 43));
        let decoded = quality::decode_full(&out[0].bytes).unwrap();
        assert_eq!((decoded.width, decoded.height), (64, 48));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random byte flips, truncations and insertions in real JPEG and PNG
    /// files: the pipeline returns outputs or a rejection, never panics or hangs.
    #[test]
    fn mutated_files_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<u32>(), any::<u8>(), 0u8..3), 1..8),
        cut in proptest::option::of(any::<u32>()),
    ) {
        let base = mutation_bases();
        let mut bytes = base[which].clone();
        for (at, value, kind) in edits {
            let at = at as usize % bytes.len();
            match kind {
                0 => bytes[at] = value,
                1 => bytes.insert(at, value),
                _ => { bytes.remove(at); }
            }
        }
        if let Some(cut) = cut {
            let keep = cut as usize % (bytes.len() + 1);
            bytes.truncate(keep);
        }
        let estimate = peak_memory(&bytes, &VariantSpec::defaults(), &Limits::default());
        match process(&bytes, &VariantSpec::defaults(), &Limits::default()) {
            Ok(outputs) => {
                prop_assert_eq!(outputs.len(), 2);
                // What decodes has an estimate: the budget never refuses it as unreadable.
                prop_assert!(estimate.is_ok(), "{:?}", estimate);
            }
            Err(rejection) => prop_assert!(!rejection.code().is_empty()),
        }
    }
}

fn mutation_bases() -> &'static [Vec<u8>; 3] {
    static BASES: std::sync::OnceLock<[Vec<u8>; 3]> = std::sync::OnceLock::new();
    BASES.get_or_init(|| {
        let img = fixtures::photo(96, 64, 9);
        // 3:1, so the square covers leave columns out and the JPEG takes the
        // partial decode (IDCT skipped outside the crop).
        let wide = fixtures::photo(192, 64, 10);
        [jpeg_of(&img, 85), png_of(&img), jpeg_of(&wide, 85)]
    })
}
