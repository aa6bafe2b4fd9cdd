//! What one condition says about one leaf value: the semantics both the
//! compiled automaton and the reference interpreter follow.

use crate::flat::Val;
use crate::pattern::{Cond, Lit, Negated};

/// Lower-cases for `equals-ignore-case` and its relatives.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

pub fn lit_matches(lit: &Lit, v: &Val) -> bool {
    match (lit, v) {
        (Lit::Str(a), Val::Str(b)) => a == b,
        (Lit::Num(a), Val::Num(b)) => a == b,
        (Lit::Bool(a), Val::Bool(b)) => a == b,
        (Lit::Null, Val::Null) => true,
        _ => false,
    }
}

fn affix_matches(s: &str, text: &str, ignore_case: bool, suffix: bool) -> bool {
    let (s, text) = if ignore_case {
        (fold(s), fold(text))
    } else {
        (s.to_owned(), text.to_owned())
    };
    if suffix {
        s.ends_with(&text)
    } else {
        s.starts_with(&text)
    }
}

/// Does `v` satisfy `cond`? `exists: false` never does: it is about absence.
pub fn cond_matches(cond: &Cond, v: &Val) -> bool {
    let s = match v {
        Val::Str(s) => Some(*s),
        _ => None,
    };
    match cond {
        Cond::Lit(lit) => lit_matches(lit, v),
        Cond::Prefix { text, ignore_case } => {
            s.is_some_and(|s| affix_matches(s, text, *ignore_case, false))
        }
        Cond::Suffix { text, ignore_case } => {
            s.is_some_and(|s| affix_matches(s, text, *ignore_case, true))
        }
        Cond::EqualsIgnoreCase(text) => s.is_some_and(|s| fold(s) == fold(text)),
        Cond::Wildcard(w) => s.is_some_and(|s| w.matches(s)),
        Cond::AnythingBut(neg) => !negated_matches(neg, v),
        Cond::Numeric(range) => matches!(v, Val::Num(x) if range.contains(*x)),
        Cond::Exists(present) => *present,
        Cond::Cidr(range) => v.as_ip().is_some_and(|ip| range.contains(ip)),
    }
}

/// Does `v` hit what `anything-but` excludes?
pub fn negated_matches(neg: &Negated, v: &Val) -> bool {
    let s = match v {
        Val::Str(s) => Some(*s),
        _ => None,
    };
    match neg {
        Negated::Values(lits) => lits.iter().any(|l| lit_matches(l, v)),
        Negated::Prefix(list) => s.is_some_and(|s| list.iter().any(|p| s.starts_with(p.as_str()))),
        Negated::Suffix(list) => s.is_some_and(|s| list.iter().any(|p| s.ends_with(p.as_str()))),
        Negated::IgnoreCase(list) => s.is_some_and(|s| {
            let f = fold(s);
            list.iter().any(|x| fold(x) == f)
        }),
        Negated::Wildcard(list) => s.is_some_and(|s| list.iter().any(|w| w.matches(s))),
    }
}
