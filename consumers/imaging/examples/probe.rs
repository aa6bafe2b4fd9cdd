fn main() {
    let (w, h) = (4000u32, 3000u32);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state >> 58) as u32;
            pixels.extend([((x / 16 + n) % 256) as u8, ((y / 12 + n) % 256) as u8, ((x + y) / 28 % 256) as u8]);
        }
    }
    let rgb = switchyard_imaging::Rgb { width: w, height: h, data: pixels };
    std::fs::write("/tmp/noise12.jpg", switchyard_imaging::fixtures::jpeg(&rgb, 90)).unwrap();
}
