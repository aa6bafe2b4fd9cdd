//! One automaton for all the rules of a bus or topic.
//!
//! Every `$or` branch of every rule is a sequence of steps (field path +
//! conditions), sorted the same way for all rules, and inserted into one trie
//! so that rules sharing steps share states. Each state compiles the steps
//! leaving it, per field path, into a [`ValueMatcher`]: hash maps for exact,
//! case-folded, prefix and suffix values, interval trees for numeric and
//! CIDR ranges. Matching an event walks only the states its values reach, so
//! its cost follows the event and the rules it matches, not the rule count.

use std::collections::HashMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::eval::{fold, negated_matches};
use crate::flat::{ArrayPos, Field, FieldTree, Flat, ScanError, Val};
use crate::pattern::{sns_round, Cond, Leaf, Lit, Negated, Pattern, Wildcard};

/// A `[start, end)` run of targets (next states) in a matcher's pool.
type Targets = (u32, u32);
const NONE: Targets = (0, 0);

#[derive(Debug, Default)]
pub struct Automaton {
    states: Vec<State>,
    tree: FieldTree,
    paths: FxHashMap<Vec<String>, u32>,
    /// SNS compares numbers at five decimals.
    sns_numbers: bool,
}

#[derive(Debug, Default)]
struct State {
    accepts: Vec<u32>,
    /// `exists: false` steps: taken when the event has no value at the path.
    absent: Vec<(u32, u32)>,
    transitions: Vec<(u32, ValueMatcher)>,
}

impl Automaton {
    /// Compiles `(rule index, pattern)` pairs.
    pub fn build<'p>(
        rules: impl IntoIterator<Item = (u32, &'p Pattern)>,
        sns_numbers: bool,
    ) -> Automaton {
        let mut paths: FxHashMap<Vec<String>, u32> = FxHashMap::default();
        let mut trie: Vec<TrieNode> = vec![TrieNode::default()];
        for (rule, pattern) in rules {
            for branch in &pattern.branches {
                let mut steps: Vec<(u8, u32, String, &Leaf)> = branch
                    .iter()
                    .map(|leaf| {
                        let next = paths.len() as u32;
                        let id = *paths.entry(leaf.path.clone()).or_insert(next);
                        (selectivity(leaf), id, leaf.source.to_string(), leaf)
                    })
                    .collect();
                // One order for all rules, so that they share states; the most
                // selective steps first, so that a walk dies early.
                steps.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
                steps.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
                let mut node = 0usize;
                for (_, path, key, leaf) in steps {
                    let len = trie.len();
                    let next = *trie[node].edges.entry((path, key)).or_insert(len);
                    if next == len {
                        trie.push(TrieNode::default());
                        trie[node].order.push((path, leaf.clone(), next));
                    }
                    node = next;
                }
                trie[node].accepts.push(rule);
            }
        }
        let mut tree = FieldTree::new();
        for (path, id) in &paths {
            tree.insert(path, *id);
        }
        let states = trie
            .into_iter()
            .map(|node| {
                let mut accepts = node.accepts;
                accepts.sort_unstable();
                accepts.dedup();
                let mut absent = Vec::new();
                let mut by_path: HashMap<u32, MatcherBuilder> = HashMap::new();
                for (path, leaf, next) in node.order {
                    for cond in &leaf.conds {
                        match cond {
                            Cond::Exists(false) => absent.push((path, next as u32)),
                            c => by_path
                                .entry(path)
                                .or_default()
                                .add(c, next as u32, sns_numbers),
                        }
                    }
                }
                absent.sort_unstable();
                absent.dedup();
                let mut transitions: Vec<(u32, ValueMatcher)> =
                    by_path.into_iter().map(|(p, b)| (p, b.build())).collect();
                transitions.sort_by_key(|(p, _)| *p);
                State {
                    accepts,
                    absent,
                    transitions,
                }
            })
            .collect();
        Automaton {
            states,
            tree,
            paths,
            sns_numbers,
        }
    }

    /// The id of a path the rules name, if any.
    pub fn path_id(&self, path: &[String]) -> Option<u32> {
        self.paths.get(path).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.states.len() <= 1 && self.states.first().is_none_or(|s| s.accepts.is_empty())
    }

    /// Rule indices (sorted, unique) that a JSON event matches.
    pub fn match_json(&self, event: &str, work: &mut Work) -> Result<(), ScanError> {
        work.out.clear();
        if self.is_empty() {
            return Ok(());
        }
        self.tree.scan(event.as_bytes(), &mut work.flat)?;
        self.run(event, work);
        Ok(())
    }

    /// Runs over a flattened event that the caller filled in `work.flat`.
    pub fn match_flat(&self, event: &str, work: &mut Work) {
        work.out.clear();
        if !self.is_empty() {
            self.run(event, work);
        }
    }

    fn run(&self, event: &str, work: &mut Work) {
        let Work {
            flat,
            slots,
            touched,
            stack,
            constraint,
            out,
            visited,
            generation,
            ..
        } = work;
        flat.fields.sort_unstable_by_key(|f| f.path);
        if slots.len() < self.paths.len() {
            slots.resize(self.paths.len(), NONE);
        }
        touched.clear();
        let mut i = 0;
        while i < flat.fields.len() {
            let path = flat.fields[i].path;
            let start = i;
            while i < flat.fields.len() && flat.fields[i].path == path {
                i += 1;
            }
            slots[path as usize] = (start as u32, i as u32);
            touched.push(path);
        }
        if visited.len() < self.states.len() {
            visited.resize(self.states.len(), 0);
        }
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            visited.iter_mut().for_each(|v| *v = 0);
            *generation = 1;
        }
        let ctx = Ctx {
            event,
            flat,
            slots,
            sns_numbers: self.sns_numbers,
        };
        let mut walk = Walk {
            stack,
            constraint,
            out,
            visited,
            generation: *generation,
        };
        self.visit(0, &ctx, &mut walk);
        for p in touched.iter() {
            slots[*p as usize] = NONE;
        }
        out.sort_unstable();
        out.dedup();
    }

    fn visit(&self, state: u32, ctx: &Ctx, walk: &mut Walk) {
        if walk.visited[state as usize] == walk.generation {
            return;
        }
        if walk.constraint.is_empty() {
            // Everything reachable from here without array constraints is a
            // superset of what any constrained visit could reach.
            walk.visited[state as usize] = walk.generation;
        }
        let s = &self.states[state as usize];
        walk.out.extend_from_slice(&s.accepts);
        for &(path, next) in &s.absent {
            if ctx.slots[path as usize] == NONE {
                self.visit(next, ctx, walk);
            }
        }
        for (path, vm) in &s.transitions {
            let (start, end) = ctx.slots[*path as usize];
            for field in &ctx.flat.fields[start as usize..end as usize] {
                let trail = ctx.flat.trail(field);
                if !trail.is_empty() && !consistent(walk.constraint, trail) {
                    continue;
                }
                let base = walk.stack.len();
                vm.eval(ctx.value(field), walk.stack);
                let end_targets = walk.stack.len();
                if end_targets == base {
                    continue;
                }
                walk.stack[base..].sort_unstable();
                let mut last = u32::MAX;
                for k in base..end_targets {
                    let next = walk.stack[k];
                    if next == last {
                        continue;
                    }
                    last = next;
                    let Some(added) = extend_constraint(walk.constraint, trail) else {
                        continue;
                    };
                    self.visit(next, ctx, walk);
                    let keep = walk.constraint.len() - added;
                    walk.constraint.truncate(keep);
                }
                walk.stack.truncate(base);
            }
        }
    }
}

/// How few values a step lets through, roughly: exact values first,
/// absence last (it can only be checked once the event is flat anyway).
fn selectivity(leaf: &Leaf) -> u8 {
    leaf.conds
        .iter()
        .map(|c| match c {
            Cond::Lit(_) | Cond::EqualsIgnoreCase(_) => 0,
            Cond::Prefix { .. } | Cond::Suffix { .. } | Cond::Cidr(_) | Cond::Wildcard(_) => 1,
            Cond::Numeric(_) => 2,
            Cond::AnythingBut(_) | Cond::Exists(true) => 3,
            Cond::Exists(false) => 4,
        })
        .max()
        .unwrap_or(0)
}

/// Adds a field's array positions to the walk's; `None` when they disagree
/// (the field is from another element of an array already pinned).
fn extend_constraint(constraint: &mut Vec<ArrayPos>, trail: &[ArrayPos]) -> Option<usize> {
    let before = constraint.len();
    for &(array, index) in trail {
        match constraint[..before].iter().find(|(a, _)| *a == array) {
            Some((_, i)) if *i != index => {
                constraint.truncate(before);
                return None;
            }
            Some(_) => {}
            None => constraint.push((array, index)),
        }
    }
    Some(constraint.len() - before)
}

/// Could a field with this trail join the walk's array positions?
#[inline]
fn consistent(constraint: &[ArrayPos], trail: &[ArrayPos]) -> bool {
    trail
        .iter()
        .all(|(a, i)| constraint.iter().all(|(b, j)| a != b || i == j))
}

struct Ctx<'a> {
    event: &'a str,
    flat: &'a Flat,
    slots: &'a [Targets],
    sns_numbers: bool,
}

impl Ctx<'_> {
    #[inline]
    fn value(&self, f: &Field) -> Val<'_> {
        match self.flat.value(self.event, f) {
            Val::Num(x) if self.sns_numbers => Val::Num(sns_round(x)),
            v => v,
        }
    }
}

struct Walk<'a> {
    stack: &'a mut Vec<u32>,
    constraint: &'a mut Vec<ArrayPos>,
    out: &'a mut Vec<u32>,
    visited: &'a mut Vec<u32>,
    generation: u32,
}

/// Per-thread buffers reused across matches.
#[derive(Debug, Default)]
pub struct Work {
    pub flat: Flat,
    /// The matched rule indices of the last call, sorted and unique.
    pub out: Vec<u32>,
    slots: Vec<Targets>,
    touched: Vec<u32>,
    stack: Vec<u32>,
    constraint: Vec<ArrayPos>,
    visited: Vec<u32>,
    generation: u32,
}

#[derive(Debug, Default)]
struct TrieNode {
    edges: FxHashMap<(u32, String), usize>,
    /// Edges in insertion order, with their leaf.
    order: Vec<(u32, Leaf, usize)>,
    accepts: Vec<u32>,
}

/// Number keys: by value, with -0 and 0 the same.
fn num_key(x: f64) -> u64 {
    if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// What leaves one state on one field path.
#[derive(Debug, Default)]
struct ValueMatcher {
    pool: Vec<u32>,
    exact_str: FxHashMap<Box<str>, Targets>,
    exact_num: FxHashMap<u64, Targets>,
    on_true: Targets,
    on_false: Targets,
    on_null: Targets,
    /// `exists: true`: any value.
    any: Targets,
    prefix: Affixes,
    suffix: Affixes,
    folded_exact: FxHashMap<Box<str>, Targets>,
    folded_prefix: Affixes,
    folded_suffix: Affixes,
    /// Wildcards, found through their literal head (or tail), so that only
    /// plausible ones are run; `wild_pool` holds indices into `wildcards`.
    wildcards: Vec<(Wildcard, u32)>,
    wild_pool: Vec<u32>,
    wild_by_head: Affixes,
    wild_by_tail: Affixes,
    wild_other: Vec<u32>,
    numeric: IntervalTree<f64>,
    cidr_v4: IntervalTree<u128>,
    cidr_v6: IntervalTree<u128>,
    /// `anything-but` a list of values: the target of each such condition;
    /// a value reaches all of them except the conditions (indices into this
    /// list, not targets: two conditions may share a target) that list it.
    but_all: Vec<u32>,
    but_str: FxHashMap<Box<str>, Vec<u32>>,
    but_num: FxHashMap<u64, Vec<u32>>,
    /// `anything-but` prefix, suffix, equals-ignore-case or wildcard.
    but_other: Vec<(Negated, u32)>,
    /// Which parts are in use (the flags below).
    kinds: u16,
}

const ANY: u16 = 1;
const EXACT_STR: u16 = 1 << 1;
const EXACT_NUM: u16 = 1 << 2;
const PREFIX: u16 = 1 << 3;
const SUFFIX: u16 = 1 << 4;
const FOLDED: u16 = 1 << 5;
const WILDCARD: u16 = 1 << 6;
const NUMERIC: u16 = 1 << 7;
const CIDR: u16 = 1 << 8;
const BUT_VALUES: u16 = 1 << 9;
const BUT_OTHER: u16 = 1 << 10;

/// Prefixes (or suffixes) by their text, with the lengths to try.
#[derive(Debug, Default)]
struct Affixes {
    by_text: FxHashMap<Box<str>, Targets>,
    lengths: Vec<usize>,
}

impl Affixes {
    #[inline]
    fn eval(&self, s: &str, suffix: bool, pool: &[u32], out: &mut Vec<u32>) {
        self.hits(s, suffix, |t| {
            out.extend_from_slice(&pool[t.0 as usize..t.1 as usize])
        });
    }

    /// Calls `f` with the targets of every prefix (or suffix) of `s` in the map.
    #[inline]
    fn hits(&self, s: &str, suffix: bool, mut f: impl FnMut(Targets)) {
        for &len in &self.lengths {
            if len > s.len() {
                break;
            }
            let cut = if suffix { s.len() - len } else { len };
            if !s.is_char_boundary(cut) {
                continue;
            }
            let part = if suffix { &s[cut..] } else { &s[..cut] };
            if let Some(t) = self.by_text.get(part) {
                f(*t);
            }
        }
    }
}

impl ValueMatcher {
    #[inline]
    fn push(&self, t: Targets, out: &mut Vec<u32>) {
        out.extend_from_slice(&self.pool[t.0 as usize..t.1 as usize]);
    }

    fn eval(&self, v: Val, out: &mut Vec<u32>) {
        // Test the flags before touching a part: a matcher spans many cache
        // lines, and most states use one or two kinds of condition.
        let k = self.kinds;
        if k & ANY != 0 {
            self.push(self.any, out);
        }
        match v {
            Val::Str(s) => {
                if k & EXACT_STR != 0 {
                    if let Some(t) = self.exact_str.get(s) {
                        self.push(*t, out);
                    }
                }
                if k & PREFIX != 0 {
                    self.prefix.eval(s, false, &self.pool, out);
                }
                if k & SUFFIX != 0 {
                    self.suffix.eval(s, true, &self.pool, out);
                }
                if k & FOLDED != 0 {
                    let f = fold(s);
                    if let Some(t) = self.folded_exact.get(f.as_str()) {
                        self.push(*t, out);
                    }
                    self.folded_prefix.eval(&f, false, &self.pool, out);
                    self.folded_suffix.eval(&f, true, &self.pool, out);
                }
                if k & WILDCARD != 0 {
                    let mut run = |ids: &[u32]| {
                        for &i in ids {
                            let (w, t) = &self.wildcards[i as usize];
                            if w.matches(s) {
                                out.push(*t);
                            }
                        }
                    };
                    let pool = &self.wild_pool;
                    self.wild_by_head
                        .hits(s, false, |r| run(&pool[r.0 as usize..r.1 as usize]));
                    self.wild_by_tail
                        .hits(s, true, |r| run(&pool[r.0 as usize..r.1 as usize]));
                    run(&self.wild_other);
                }
                if k & CIDR != 0 {
                    match s.parse::<std::net::IpAddr>() {
                        Ok(std::net::IpAddr::V4(a)) => {
                            self.cidr_v4.query(u32::from(a) as u128, out)
                        }
                        Ok(std::net::IpAddr::V6(a)) => self.cidr_v6.query(u128::from(a), out),
                        Err(_) => {}
                    }
                }
                if k & BUT_VALUES != 0 {
                    self.anything_but(self.but_str.get(s), out);
                }
            }
            Val::Num(x) => {
                if k & EXACT_NUM != 0 {
                    if let Some(t) = self.exact_num.get(&num_key(x)) {
                        self.push(*t, out);
                    }
                }
                if k & NUMERIC != 0 {
                    self.numeric.query(x, out);
                }
                if k & BUT_VALUES != 0 {
                    self.anything_but(self.but_num.get(&num_key(x)), out);
                }
            }
            Val::Bool(b) => {
                self.push(if b { self.on_true } else { self.on_false }, out);
                if k & BUT_VALUES != 0 {
                    self.anything_but(None, out);
                }
            }
            Val::Null => {
                self.push(self.on_null, out);
                if k & BUT_VALUES != 0 {
                    self.anything_but(None, out);
                }
            }
        }
        if k & BUT_OTHER != 0 {
            for (neg, t) in &self.but_other {
                if !negated_matches(neg, &v) {
                    out.push(*t);
                }
            }
        }
    }

    #[inline]
    fn anything_but(&self, excluded: Option<&Vec<u32>>, out: &mut Vec<u32>) {
        match excluded {
            None => out.extend_from_slice(&self.but_all),
            Some(ex) => out.extend(
                self.but_all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !ex.contains(&(*i as u32)))
                    .map(|(_, t)| *t),
            ),
        }
    }
}

#[derive(Default)]
struct MatcherBuilder {
    exact_str: HashMap<Box<str>, Vec<u32>>,
    exact_num: HashMap<u64, Vec<u32>>,
    on_true: Vec<u32>,
    on_false: Vec<u32>,
    on_null: Vec<u32>,
    any: Vec<u32>,
    prefix: HashMap<Box<str>, Vec<u32>>,
    suffix: HashMap<Box<str>, Vec<u32>>,
    folded_exact: HashMap<Box<str>, Vec<u32>>,
    folded_prefix: HashMap<Box<str>, Vec<u32>>,
    folded_suffix: HashMap<Box<str>, Vec<u32>>,
    wildcards: Vec<(Wildcard, u32)>,
    numeric: Vec<Interval<f64>>,
    cidr_v4: Vec<Interval<u128>>,
    cidr_v6: Vec<Interval<u128>>,
    but_all: Vec<u32>,
    but_str: HashMap<Box<str>, Vec<u32>>,
    but_num: HashMap<u64, Vec<u32>>,
    but_other: Vec<(Negated, u32)>,
}

impl MatcherBuilder {
    fn add(&mut self, cond: &Cond, target: u32, sns_numbers: bool) {
        let num = |x: f64| if sns_numbers { sns_round(x) } else { x };
        match cond {
            Cond::Lit(Lit::Str(s)) => self
                .exact_str
                .entry(s.as_str().into())
                .or_default()
                .push(target),
            Cond::Lit(Lit::Num(x)) => self
                .exact_num
                .entry(num_key(num(*x)))
                .or_default()
                .push(target),
            Cond::Lit(Lit::Bool(true)) => self.on_true.push(target),
            Cond::Lit(Lit::Bool(false)) => self.on_false.push(target),
            Cond::Lit(Lit::Null) => self.on_null.push(target),
            Cond::Prefix {
                text,
                ignore_case: false,
            } => self
                .prefix
                .entry(text.as_str().into())
                .or_default()
                .push(target),
            Cond::Prefix {
                text,
                ignore_case: true,
            } => self
                .folded_prefix
                .entry(fold(text).into())
                .or_default()
                .push(target),
            Cond::Suffix {
                text,
                ignore_case: false,
            } => self
                .suffix
                .entry(text.as_str().into())
                .or_default()
                .push(target),
            Cond::Suffix {
                text,
                ignore_case: true,
            } => self
                .folded_suffix
                .entry(fold(text).into())
                .or_default()
                .push(target),
            Cond::EqualsIgnoreCase(text) => self
                .folded_exact
                .entry(fold(text).into())
                .or_default()
                .push(target),
            Cond::Wildcard(w) => self.wildcards.push((w.clone(), target)),
            Cond::AnythingBut(Negated::Values(values)) => {
                let index = self.but_all.len() as u32;
                self.but_all.push(target);
                for v in values {
                    match v {
                        Lit::Str(s) => self
                            .but_str
                            .entry(s.as_str().into())
                            .or_default()
                            .push(index),
                        Lit::Num(x) => self
                            .but_num
                            .entry(num_key(num(*x)))
                            .or_default()
                            .push(index),
                        // The parser only lets strings and numbers through.
                        Lit::Bool(_) | Lit::Null => {}
                    }
                }
            }
            Cond::AnythingBut(other) => self.but_other.push((other.clone(), target)),
            Cond::Numeric(r) => self.numeric.push(Interval {
                lo: num(r.lo.value),
                lo_incl: r.lo.inclusive,
                hi: num(r.hi.value),
                hi_incl: r.hi.inclusive,
                target,
            }),
            Cond::Exists(true) => self.any.push(target),
            Cond::Exists(false) => {}
            Cond::Cidr(r) => {
                let iv = Interval {
                    lo: r.lo,
                    lo_incl: true,
                    hi: r.hi,
                    hi_incl: true,
                    target,
                };
                if r.v6 {
                    self.cidr_v6.push(iv)
                } else {
                    self.cidr_v4.push(iv)
                }
            }
        }
    }

    fn build(self) -> ValueMatcher {
        let mut pool = Vec::new();
        let mut run = |v: Vec<u32>| -> Targets {
            let start = pool.len() as u32;
            pool.extend(v);
            (start, pool.len() as u32)
        };
        let exact_str = freeze(self.exact_str, &mut run);
        let exact_num = freeze(self.exact_num, &mut run);
        let folded_exact = freeze(self.folded_exact, &mut run);
        let on_true = run(self.on_true);
        let on_false = run(self.on_false);
        let on_null = run(self.on_null);
        let any = run(self.any);
        let prefix = affixes(self.prefix, &mut run);
        let suffix = affixes(self.suffix, &mut run);
        let folded_prefix = affixes(self.folded_prefix, &mut run);
        let folded_suffix = affixes(self.folded_suffix, &mut run);
        let (mut heads, mut tails, mut wild_other) = (HashMap::new(), HashMap::new(), Vec::new());
        for (i, (w, _)) in self.wildcards.iter().enumerate() {
            let (head, tail) = (&w.pieces[0], w.pieces.last().expect("never empty"));
            if !head.is_empty() {
                heads
                    .entry(head.as_str().into())
                    .or_insert_with(Vec::new)
                    .push(i as u32);
            } else if !tail.is_empty() {
                tails
                    .entry(tail.as_str().into())
                    .or_insert_with(Vec::new)
                    .push(i as u32);
            } else {
                wild_other.push(i as u32);
            }
        }
        let mut wild_pool = Vec::new();
        let mut wild_run = |v: Vec<u32>| -> Targets {
            let start = wild_pool.len() as u32;
            wild_pool.extend(v);
            (start, wild_pool.len() as u32)
        };
        let wild_by_head = affixes(heads, &mut wild_run);
        let wild_by_tail = affixes(tails, &mut wild_run);
        let flags = [
            (any.0 != any.1, ANY),
            (!exact_str.is_empty(), EXACT_STR),
            (!exact_num.is_empty(), EXACT_NUM),
            (!prefix.by_text.is_empty(), PREFIX),
            (!suffix.by_text.is_empty(), SUFFIX),
            (
                !folded_exact.is_empty()
                    || !folded_prefix.by_text.is_empty()
                    || !folded_suffix.by_text.is_empty(),
                FOLDED,
            ),
            (!self.wildcards.is_empty(), WILDCARD),
            (!self.numeric.is_empty(), NUMERIC),
            (!self.cidr_v4.is_empty() || !self.cidr_v6.is_empty(), CIDR),
            (!self.but_all.is_empty(), BUT_VALUES),
            (!self.but_other.is_empty(), BUT_OTHER),
        ];
        let kinds = flags
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |k, (_, f)| k | f);
        ValueMatcher {
            pool,
            exact_str,
            exact_num,
            on_true,
            on_false,
            on_null,
            any,
            prefix,
            suffix,
            folded_exact,
            folded_prefix,
            folded_suffix,
            wildcards: self.wildcards,
            wild_pool,
            wild_by_head,
            wild_by_tail,
            wild_other,
            numeric: IntervalTree::new(self.numeric),
            cidr_v4: IntervalTree::new(self.cidr_v4),
            cidr_v6: IntervalTree::new(self.cidr_v6),
            but_all: self.but_all,
            but_str: self.but_str.into_iter().collect(),
            but_num: self.but_num.into_iter().collect(),
            but_other: self.but_other,
            kinds,
        }
    }
}

fn freeze<K: Hash + Eq>(
    m: HashMap<K, Vec<u32>>,
    run: &mut impl FnMut(Vec<u32>) -> Targets,
) -> FxHashMap<K, Targets> {
    m.into_iter().map(|(k, v)| (k, run(v))).collect()
}

fn affixes(m: HashMap<Box<str>, Vec<u32>>, run: &mut impl FnMut(Vec<u32>) -> Targets) -> Affixes {
    let mut lengths: Vec<usize> = m.keys().map(|k| k.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    Affixes {
        by_text: freeze(m, run),
        lengths,
    }
}

#[derive(Debug, Clone, Copy)]
struct Interval<K> {
    lo: K,
    lo_incl: bool,
    hi: K,
    hi_incl: bool,
    target: u32,
}

impl<K: PartialOrd + Copy> Interval<K> {
    #[inline]
    fn contains(&self, x: K) -> bool {
        (if self.lo_incl {
            x >= self.lo
        } else {
            x > self.lo
        }) && (if self.hi_incl {
            x <= self.hi
        } else {
            x < self.hi
        })
    }
}

/// A centred interval tree: a stabbing query costs O(log n + matches).
#[derive(Debug)]
struct IntervalTree<K> {
    nodes: Vec<ITNode<K>>,
}

impl<K> Default for IntervalTree<K> {
    fn default() -> Self {
        IntervalTree { nodes: Vec::new() }
    }
}

#[derive(Debug)]
struct ITNode<K> {
    center: K,
    /// The intervals around `center`, by ascending lower bound ...
    by_lo: Vec<Interval<K>>,
    /// ... and by descending upper bound.
    by_hi: Vec<Interval<K>>,
    left: u32,
    right: u32,
}

const NO_NODE: u32 = u32::MAX;

impl<K: PartialOrd + Copy> IntervalTree<K> {
    fn new(intervals: Vec<Interval<K>>) -> Self {
        let mut tree = IntervalTree { nodes: Vec::new() };
        tree.add(intervals);
        tree
    }

    fn add(&mut self, mut items: Vec<Interval<K>>) -> u32 {
        if items.is_empty() {
            return NO_NODE;
        }
        let cmp = |a: &K, b: &K| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
        items.sort_by(|a, b| cmp(&a.lo, &b.lo));
        // The median interval's lower bound lies within it, so every node keeps one.
        let center = items[items.len() / 2].lo;
        let (mut here, mut left, mut right) = (Vec::new(), Vec::new(), Vec::new());
        for it in items {
            if it.hi < center {
                left.push(it);
            } else if it.lo > center {
                right.push(it);
            } else {
                here.push(it);
            }
        }
        let mut by_hi = here.clone();
        by_hi.sort_by(|a, b| cmp(&b.hi, &a.hi));
        let id = self.nodes.len();
        self.nodes.push(ITNode {
            center,
            by_lo: here,
            by_hi,
            left: NO_NODE,
            right: NO_NODE,
        });
        let l = self.add(left);
        let r = self.add(right);
        self.nodes[id].left = l;
        self.nodes[id].right = r;
        id as u32
    }

    fn query(&self, x: K, out: &mut Vec<u32>) {
        let mut at = if self.nodes.is_empty() { NO_NODE } else { 0 };
        while at != NO_NODE {
            let n = &self.nodes[at as usize];
            if x < n.center {
                for it in n.by_lo.iter().take_while(|it| it.lo <= x) {
                    if it.contains(x) {
                        out.push(it.target);
                    }
                }
                at = n.left;
            } else if x > n.center {
                for it in n.by_hi.iter().take_while(|it| it.hi >= x) {
                    if it.contains(x) {
                        out.push(it.target);
                    }
                }
                at = n.right;
            } else {
                out.extend(
                    n.by_lo
                        .iter()
                        .filter(|it| it.contains(x))
                        .map(|it| it.target),
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_tree_stabs() {
        let ivs: Vec<Interval<f64>> = (0..200)
            .map(|i| {
                let lo = (i * 37 % 101) as f64;
                Interval {
                    lo,
                    lo_incl: i % 2 == 0,
                    hi: lo + (i % 13) as f64 + 0.5,
                    hi_incl: i % 3 == 0,
                    target: i,
                }
            })
            .collect();
        let tree = IntervalTree::new(ivs.clone());
        for k in 0..2300 {
            let x = k as f64 / 20.0 - 5.0;
            let mut got = Vec::new();
            tree.query(x, &mut got);
            got.sort_unstable();
            let want: Vec<u32> = ivs
                .iter()
                .filter(|i| i.contains(x))
                .map(|i| i.target)
                .collect();
            assert_eq!(got, want, "at {x}");
        }
    }
}
