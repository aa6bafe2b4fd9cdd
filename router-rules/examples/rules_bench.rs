//! `switchyard bench rules` without the rest of Switchyard: the engine side by
//! side with quamina, built from router-rules alone, so two revisions of the
//! engine can be compared quickly
//! (`cargo run --release -p router-rules --features bench --example rules_bench`).

use router_rules::bench::{run, Config};

fn main() {
    let report = run(&Config::default(), |row| {
        println!(
            "rules={:>6} ours={:>10.0}/s quamina={} disagreements={}",
            row.rules,
            row.ours.events_per_s,
            row.quamina
                .as_ref()
                .map(|q| format!(
                    "{:.0}/s ratio={:.2}",
                    q.events_per_s,
                    row.ours.events_per_s / q.events_per_s
                ))
                .unwrap_or_else(|why| why.clone()),
            row.disagreements
        )
    })
    .expect("the benchmark rules are valid");
    println!("{}", report.summary());
}
