//! EventBridge's wildcard complexity limit: PutRule refuses a pattern whose
//! wildcards are too non-deterministic ("Rule is too complex - try using fewer
//! wildcard characters or fewer repeating character sequences after a wildcard
//! character"; see "Wildcards and event pattern complexity" on the comparison
//! operators page).
//!
//! The measure is event-ruler's `MachineComplexityEvaluator`: for each field,
//! the most wildcard-pattern prefixes (NFA states) that one input value can
//! hold at once, over every `wildcard` and `anything-but`/`wildcard` on that
//! field in the rule, counted by simulating the patterns' NFA over every input
//! (subset construction). It reproduces the evaluator's own test figures
//! (`*aa` is 3, `a*b*bb` is 5, `*` beside `ab*c` is 3; see the tests below).
//! EventBridge does not publish its threshold: [`EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY`]
//! is set from an observed rejection (see its doc).

use std::collections::{HashSet, VecDeque};

/// The largest complexity accepted. Observed on EventBridge: a field with the
/// three wildcards `*:stack/<name>/*` (complexity 9 here) is accepted and with
/// four (12) it is rejected as too complex.
pub const EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY: usize = 10;

/// Subsets explored before giving up (and accepting): bounds the cost of a
/// pathological pattern at a few milliseconds.
const MAX_SUBSETS: usize = 20_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Char(char),
}

/// A wildcard's tokens from its literal runs between stars (`a*b*` is `["a", "b", ""]`).
fn tokens(pieces: &[String]) -> Vec<Tok> {
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.push(Tok::Star);
        }
        out.extend(piece.chars().map(Tok::Char));
    }
    out
}

/// The most NFA states past the start that one input can hold at once, for
/// these patterns together (capped just above the limit: only the verdict
/// matters). Each pattern is given by its literal runs between stars.
pub fn complexity(patterns: &[&[String]]) -> usize {
    let toks: Vec<Vec<Tok>> = patterns.iter().map(|w| tokens(w)).collect();
    // A state is (pattern, tokens consumed); a star may also match nothing.
    let close = |set: &mut Vec<(u32, u32)>| {
        let mut i = 0;
        while i < set.len() {
            let (p, pos) = set[i];
            if toks[p as usize].get(pos as usize) == Some(&Tok::Star)
                && !set.contains(&(p, pos + 1))
            {
                set.push((p, pos + 1));
            }
            i += 1;
        }
        set.sort_unstable();
        set.dedup();
    };
    let count = |set: &[(u32, u32)]| set.iter().filter(|(_, pos)| *pos > 0).count();
    // Every character the patterns name, and one they do not.
    let mut alphabet: Vec<char> = toks
        .iter()
        .flatten()
        .filter_map(|t| match t {
            Tok::Char(c) => Some(*c),
            Tok::Star => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    alphabet.push('\u{10FFFF}');
    let mut start: Vec<(u32, u32)> = (0..toks.len() as u32).map(|p| (p, 0)).collect();
    close(&mut start);
    let mut worst = count(&start);
    let mut seen: HashSet<Vec<(u32, u32)>> = HashSet::from([start.clone()]);
    let mut queue = VecDeque::from([start]);
    while let Some(set) = queue.pop_front() {
        for &c in &alphabet {
            let mut next = Vec::new();
            for &(p, pos) in &set {
                let t = &toks[p as usize];
                // A star's state loops on any character.
                if pos > 0 && t[pos as usize - 1] == Tok::Star {
                    next.push((p, pos));
                }
                if t.get(pos as usize) == Some(&Tok::Char(c)) {
                    next.push((p, pos + 1));
                }
            }
            close(&mut next);
            if next.is_empty() || seen.contains(&next) {
                continue;
            }
            worst = worst.max(count(&next));
            if worst > EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY || seen.len() >= MAX_SUBSETS {
                return worst;
            }
            seen.insert(next.clone());
            queue.push_back(next);
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test patterns have no escapes: their pieces are the runs between stars.
    fn of(patterns: &[&str]) -> usize {
        let pieces: Vec<Vec<String>> = patterns
            .iter()
            .map(|p| p.split('*').map(str::to_owned).collect())
            .collect();
        complexity(&pieces.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    #[test]
    fn matches_event_rulers_evaluator_figures() {
        // MachineComplexityEvaluatorTest (github.com/aws/event-ruler).
        for (patterns, want) in [
            (&["*"][..], 1),
            (&["*", "ab*c"][..], 3),
            (&["abc"][..], 1),
            (&["*ab"][..], 2),
            (&["*aa"][..], 3),
            (&["a*b"][..], 2),
            (&["aa*"][..], 2),
            (&["a*bc"][..], 2),
            (&["a*bb"][..], 3),
            (&["a*bcb"][..], 3),
            (&["a*bbb"][..], 4),
            (&["*ab*ad"][..], 4),
            (&["*ab*d"][..], 3),
            (&["*aba*"][..], 4),
            (&["a*b*bb"][..], 5),
            (&["a*b*cb"][..], 4),
            (&["a*b*cd"][..], 3),
            (&["a*b*b"][..], 4),
        ] {
            assert_eq!(of(patterns), want, "{patterns:?}");
        }
    }

    #[test]
    fn the_observed_limit() {
        let stacks = |n: usize| {
            (0..n)
                .map(|i| format!("*:stack/Stack{i}/*"))
                .collect::<Vec<_>>()
        };
        let three = stacks(3);
        let four = stacks(4);
        fn refs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        assert!(of(&refs(&three)) <= EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY);
        assert!(of(&refs(&four)) > EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY);
    }
}
