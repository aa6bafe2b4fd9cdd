//! The benchmark workload is only a fair comparison if both engines answer
//! the same: check that on a few hundred rules, event by event.
#![cfg(feature = "bench")]

use router_rules::bench::{engines, events, ours_matches, quamina_matches, rules};

#[test]
fn both_engines_return_the_same_rules() {
    let events = events(256, 7);
    let rules = rules(500, 7);
    let (ours, quamina) = engines(&rules).expect("valid for both engines");
    let mut matched = 0;
    for e in &events {
        let got = ours_matches(&ours, e);
        assert_eq!(got, quamina_matches(&quamina, e), "event {e}");
        matched += got.len();
    }
    assert!(matched > 0, "the workload must match something to compare");
}
