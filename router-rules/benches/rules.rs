//! Criterion benchmark: this engine and the quamina crate side by side on
//! the same ~1 KB order and image events and the same rules
//! (`cargo bench -p router-rules --features bench`). `switchyard bench
//! rules` runs the same workload and prints the summary ratios.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use router_rules::bench::{engines, events, quamina_matches, quietly, rules};

fn matching(c: &mut Criterion) {
    let events = events(256, 42);
    let mut group = c.benchmark_group("match");
    group.throughput(Throughput::Elements(events.len() as u64));
    for n in [10usize, 1000, 10_000] {
        let rules = rules(n, 42 ^ n as u64);
        let (ours, quamina) =
            engines(&rules).expect("the benchmark rules are valid for both engines");
        group.bench_with_input(BenchmarkId::new("switchyard", n), &events, |b, events| {
            b.iter(|| events.iter().map(|e| ours.matches(e).len()).sum::<usize>())
        });
        // quamina 0.7 panics freezing some large automata (10,000 of these rules).
        if let Err(why) = quietly(|| quamina_matches(&quamina, &events[0])) {
            eprintln!("quamina cannot run {n} rules: {why}");
            continue;
        }
        group.bench_with_input(BenchmarkId::new("quamina", n), &events, |b, events| {
            b.iter(|| {
                events
                    .iter()
                    .map(|e| {
                        quamina
                            .matches_for_event(e.as_bytes())
                            .map(|m| m.len())
                            .unwrap_or(0)
                    })
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
