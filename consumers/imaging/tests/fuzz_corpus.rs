//! Replays every input the fuzzer kept (`fuzz/corpus/decode/` and any crash
//! in `fuzz/artifacts/decode/`) through the target's body, so a finding
//! stays fixed on stable `cargo test`.

use std::path::{Path, PathBuf};

use switchyard_imaging::fixtures;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn decode_corpus_replays() {
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join("decode")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable corpus dir").path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("readable corpus file");
                let outcome =
                    std::panic::catch_unwind(|| switchyard_imaging::fuzzing::decode(&data));
                assert!(outcome.is_ok(), "decode fails on {}", path.display());
                n += 1;
            }
        }
    }
    assert!(n >= 4, "the decode corpus holds {n} inputs");
}

/// Writes the seed inputs (small JPEG and PNG images, and a truncated one);
/// run once with `--ignored` when the corpus is empty.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = fuzz_dir().join("corpus").join("decode");
    std::fs::create_dir_all(&dir).unwrap();
    let small = fixtures::photo(24, 16, 1);
    let tall = fixtures::photo(9, 31, 2);
    let jpeg = fixtures::jpeg(&small, 80);
    let seeds = [
        ("seed-jpeg", jpeg.clone()),
        ("seed-jpeg-tall", fixtures::jpeg(&tall, 60)),
        ("seed-png", fixtures::png(&small)),
        ("seed-png-tall", fixtures::png(&tall)),
        ("seed-jpeg-truncated", jpeg[..jpeg.len() / 2].to_vec()),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
