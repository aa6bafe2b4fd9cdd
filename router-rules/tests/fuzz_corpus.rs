//! Replays every input the fuzzers kept (`router-rules/fuzz/corpus/<target>/`
//! and any crash in `fuzz/artifacts/<target>/`) through the targets' bodies,
//! so a finding stays fixed on stable `cargo test`.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable corpus dir").path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("readable corpus file");
                let outcome = std::panic::catch_unwind(|| body(&data));
                assert!(outcome.is_ok(), "{target} fails on {}", path.display());
                n += 1;
            }
        }
    }
    n
}

#[test]
fn parse_pattern_corpus_replays() {
    let n = replay("parse_pattern", router_rules::fuzzing::parse_pattern);
    assert!(n >= 10, "the parse_pattern corpus holds {n} inputs");
}

#[test]
fn match_event_corpus_replays() {
    let n = replay("match_event", router_rules::fuzzing::match_event);
    assert!(n >= 10, "the match_event corpus holds {n} inputs");
}
