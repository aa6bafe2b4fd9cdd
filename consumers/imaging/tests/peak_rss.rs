//! Peak memory of the whole process on a 12 MP JPEG: this test re-runs its
//! own binary as a child that only processes the file and reports its own
//! kernel-accounted peak RSS (VmHWM), so nothing else in the test run counts.

use std::process::Command;

use switchyard_imaging::{measure, process, Limits, VariantSpec};

const CHILD_ENV: &str = "SWITCHYARD_IMAGING_RSS_CHILD";
const LIMIT_BYTES: u64 = 64 << 20;

#[test]
fn a_12mp_jpeg_is_processed_within_64_mb_peak_rss() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let bytes = std::fs::read(path).unwrap();
        let outputs = process(&bytes, &VariantSpec::defaults(), &Limits::default()).unwrap();
        assert_eq!((outputs[0].width, outputs[1].width), (512, 128));
        println!("child-peak-rss={}", measure::own_peak_rss().unwrap());
        return;
    }
    let (w, h) = (4000u32, 3000u32);
    // Dense, cheap-to-make content: a gradient plus per-pixel noise, so the
    // file is as heavy as a detailed photo (and larger than most).
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state >> 58) as u32;
            pixels.extend([
                ((x / 16 + n) % 256) as u8,
                ((y / 12 + n) % 256) as u8,
                ((x + y) / 28 % 256) as u8,
            ]);
        }
    }
    let rgb = switchyard_imaging::Rgb {
        width: w,
        height: h,
        data: pixels,
    };
    let jpeg = switchyard_imaging::fixtures::jpeg(&rgb, 90);
    drop(rgb);
    let path = std::env::temp_dir().join(format!("switchyard-rss-{}.jpg", std::process::id()));
    std::fs::write(&path, &jpeg).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_12mp_jpeg_is_processed_within_64_mb_peak_rss",
            "--test-threads",
            "1",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    let peak: u64 = stdout
        .lines()
        // The harness prints "test NAME ... " on the same line first.
        .find_map(|l| l.split_once("child-peak-rss=").map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("child did not report its peak RSS: {stdout}"))
        .parse()
        .unwrap();
    let status = child.status;
    std::fs::remove_file(&path).unwrap();
    assert!(status.success(), "child failed: {status}");
    println!(
        "12 MP JPEG ({} bytes): peak RSS {:.1} MB",
        jpeg.len(),
        peak as f64 / 1048576.0
    );
    assert!(peak <= LIMIT_BYTES, "peak RSS {peak} bytes is over 64 MB");
    // The measurement is real: the child at least held the input file.
    assert!(peak > jpeg.len() as u64);
}
