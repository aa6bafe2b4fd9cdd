//! Runs the pipeline on one file in a loop and prints CPU ms per run, for
//! profiling (`perf record`) and quick A/B checks without linking the CLI.
//!   usage: loop FILE [ITERATIONS] [VARIANT...]
use switchyard_imaging::{measure, process, Limits, VariantSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .ok_or("usage: loop FILE [ITERATIONS] [VARIANT...]")?;
    let iterations: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let variants: Vec<VariantSpec> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    let variants = if variants.is_empty() {
        vec!["512=512x512:cover:jpeg:80".parse()?]
    } else {
        variants
    };
    let bytes = std::fs::read(&file)?;
    process(&bytes, &variants, &Limits::default())?;
    let mut runs = Vec::new();
    for _ in 0..iterations {
        let t0 = measure::process_cpu_time();
        std::hint::black_box(process(&bytes, &variants, &Limits::default())?);
        runs.push((measure::process_cpu_time() - t0).as_secs_f64() * 1e3);
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "{file}: min {:.2} median {:.2} ms/run over {iterations}",
        runs[0],
        runs[runs.len() / 2]
    );
    Ok(())
}
