//! A deliberately simple interpreter of parsed patterns over a fully parsed
//! event: the yardstick the compiled automaton is tested against, and the
//! engine behind `explain`, which wants to say why a rule did not match.

use std::collections::BTreeMap;

use serde_json::Value;
use switchyard_shared::events::SnsAttribute;

use crate::eval::cond_matches;
use crate::flat::{ArrayPos, Val};
use crate::pattern::{display_path, sns_round, Cond, Dialect, Leaf, Pattern};

#[derive(Debug, Clone, PartialEq)]
pub enum OwnedVal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl OwnedVal {
    pub fn as_val(&self) -> Val<'_> {
        match self {
            OwnedVal::Str(s) => Val::Str(s),
            OwnedVal::Num(n) => Val::Num(*n),
            OwnedVal::Bool(b) => Val::Bool(*b),
            OwnedVal::Null => Val::Null,
        }
    }
}

/// One leaf of an event with its path and array positions.
#[derive(Debug, Clone, PartialEq)]
pub struct RefField {
    pub path: Vec<String>,
    pub val: OwnedVal,
    pub trail: Vec<ArrayPos>,
}

/// Every leaf of a JSON document. Arrays are numbered in document order.
pub fn flatten_json(v: &Value) -> Vec<RefField> {
    let mut out = Vec::new();
    let mut arrays = 0;
    walk(v, &mut Vec::new(), &mut Vec::new(), &mut arrays, &mut out);
    out
}

fn walk(
    v: &Value,
    path: &mut Vec<String>,
    trail: &mut Vec<ArrayPos>,
    arrays: &mut u32,
    out: &mut Vec<RefField>,
) {
    let leaf = |val| RefField {
        path: path.clone(),
        val,
        trail: trail.clone(),
    };
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                // A dotted key is the nested path it spells (EventBridge, SNS bodies).
                let depth = path.len();
                path.extend(k.split('.').map(str::to_owned));
                walk(child, path, trail, arrays, out);
                path.truncate(depth);
            }
        }
        Value::Array(items) => {
            *arrays += 1;
            let id = *arrays;
            for (i, item) in items.iter().enumerate() {
                trail.push((id, i as u32));
                walk(item, path, trail, arrays, out);
                trail.pop();
            }
        }
        Value::String(s) => out.push(leaf(OwnedVal::Str(s.clone()))),
        Value::Number(n) => out.push(leaf(OwnedVal::Num(n.as_f64().unwrap_or(f64::NAN)))),
        Value::Bool(b) => out.push(leaf(OwnedVal::Bool(*b))),
        Value::Null => out.push(leaf(OwnedVal::Null)),
    }
}

/// SNS message attributes as leaves: String and Number are one value each,
/// String.Array each of its elements.
pub fn flatten_attributes(attributes: &BTreeMap<String, SnsAttribute>) -> Vec<RefField> {
    let mut out = Vec::new();
    for (name, attr) in attributes {
        let path = vec![name.clone()];
        match attr {
            SnsAttribute::String(s) => out.push(RefField {
                path,
                val: OwnedVal::Str(s.clone()),
                trail: vec![],
            }),
            SnsAttribute::Number(n) => {
                if let Ok(x) = n.trim().parse::<f64>() {
                    out.push(RefField {
                        path,
                        val: OwnedVal::Num(x),
                        trail: vec![],
                    });
                }
            }
            SnsAttribute::StringArray(items) => {
                for item in items {
                    out.push(RefField {
                        path: path.clone(),
                        val: OwnedVal::Str(item.clone()),
                        trail: vec![],
                    });
                }
            }
        }
    }
    out
}

fn normalise(v: &OwnedVal, dialect: Dialect) -> Val<'_> {
    match v {
        OwnedVal::Num(x) if dialect.is_sns() => Val::Num(sns_round(*x)),
        other => other.as_val(),
    }
}

fn leaf_accepts(leaf: &Leaf, v: Val) -> bool {
    leaf.conds.iter().any(|c| cond_matches(c, &v))
}

fn consistent(constraint: &[ArrayPos], trail: &[ArrayPos]) -> bool {
    trail
        .iter()
        .all(|(a, i)| constraint.iter().all(|(b, j)| a != b || i == j))
}

/// Does the pattern match these leaves?
pub fn matches(pattern: &Pattern, fields: &[RefField]) -> bool {
    pattern
        .branches
        .iter()
        .any(|b| branch_matches(b, fields, pattern.dialect, &[]))
}

fn branch_matches(
    leaves: &[Leaf],
    fields: &[RefField],
    dialect: Dialect,
    constraint: &[ArrayPos],
) -> bool {
    let Some((leaf, rest)) = leaves.split_first() else {
        return true;
    };
    let mut values = fields.iter().filter(|f| f.path == leaf.path).peekable();
    let absent = values.peek().is_none();
    if absent
        && leaf.conds.contains(&Cond::Exists(false))
        && branch_matches(rest, fields, dialect, constraint)
    {
        return true;
    }
    values.any(|f| {
        if !leaf_accepts(leaf, normalise(&f.val, dialect)) || !consistent(constraint, &f.trail) {
            return false;
        }
        let mut next = constraint.to_vec();
        next.extend(
            f.trail
                .iter()
                .filter(|(a, _)| !constraint.iter().any(|(b, _)| a == b)),
        );
        branch_matches(rest, fields, dialect, &next)
    })
}

/// Why a pattern does not match, or `None` when it does.
pub fn why_not(pattern: &Pattern, fields: &[RefField]) -> Option<String> {
    if matches(pattern, fields) {
        return None;
    }
    let mut reasons = Vec::new();
    for branch in &pattern.branches {
        let failed = branch.iter().find(|leaf| {
            let values: Vec<&RefField> = fields.iter().filter(|f| f.path == leaf.path).collect();
            let absent_ok = values.is_empty() && leaf.conds.contains(&Cond::Exists(false));
            !absent_ok
                && !values
                    .iter()
                    .any(|f| leaf_accepts(leaf, normalise(&f.val, pattern.dialect)))
        });
        reasons.push(match failed {
            Some(leaf) => {
                let values: Vec<String> = fields
                    .iter()
                    .filter(|f| f.path == leaf.path)
                    .map(|f| describe(&f.val))
                    .collect();
                let seen = if values.is_empty() {
                    "the event has no such field".to_owned()
                } else {
                    format!("the event has {}", values.join(", "))
                };
                format!(
                    "{} {} failed: {seen}",
                    display_path(&leaf.path),
                    leaf.source
                )
            }
            None => format!(
                "fields {} match only in different elements of the same array",
                branch
                    .iter()
                    .map(|l| display_path(&l.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Some(if reasons.len() == 1 {
        reasons.remove(0)
    } else {
        format!("no `$or` branch matched: {}", reasons.join("; "))
    })
}

fn describe(v: &OwnedVal) -> String {
    match v {
        OwnedVal::Str(s) => format!("{s:?}"),
        OwnedVal::Num(n) => n.to_string(),
        OwnedVal::Bool(b) => b.to_string(),
        OwnedVal::Null => "null".to_owned(),
    }
}
