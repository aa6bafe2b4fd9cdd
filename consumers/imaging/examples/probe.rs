use std::time::Instant;
use switchyard_imaging::*;
fn main() {
    let dir = std::path::Path::new("/tmp/imgfix");
    std::fs::create_dir_all(dir).unwrap();
    let t = Instant::now();
    let set = fixtures::bench_set(fixtures::SEED);
    eprintln!("gen {:?}", t.elapsed());
    for (name, bytes) in &set {
        std::fs::write(dir.join(name), bytes).unwrap();
        let full = quality::decode_full(bytes).unwrap();
        for vs in [vec!["512=512x512:cover:jpeg:80"], vec!["128=128x128:cover:jpeg:80"], vec!["512=512x512:cover:jpeg:80", "128=128x128:cover:jpeg:80"]] {
            let specs: Vec<VariantSpec> = vs.iter().map(|s| s.parse().unwrap()).collect();
            let n = 20;
            process(bytes, &specs, &Limits::default()).unwrap();
            let c0 = measure::process_cpu_time();
            let mut out = vec![];
            for _ in 0..n { out = process(bytes, &specs, &Limits::default()).unwrap(); }
            let ms = (measure::process_cpu_time() - c0).as_secs_f64() * 1000.0 / n as f64;
            let ssims: Vec<f64> = out.iter().zip(&specs).map(|(o, s)| {
                let r = quality::reference(&full, s).unwrap();
                quality::ssim(&r, &quality::decode_full(&o.bytes).unwrap()).unwrap()
            }).collect();
            println!("{name} {} bytes {:?}: {ms:.2} ms ssim {ssims:?}", bytes.len(), vs);
        }
    }
}
