//! Lambda's event filtering for stream consumers (`filter_criteria`): a
//! record reaches the handler when any pattern matches it; the others are
//! dropped and count as processed.
//!
//! Patterns use EventBridge syntax and see the record as Lambda does: its
//! JSON, with `eventName` and `dynamodb.Keys/NewImage/OldImage` in typed form
//! (`{"type": {"S": "order"}}`). Matching that means building the record and
//! printing it, for every record, most of which are then dropped. So patterns
//! whose fields are all `eventName` or string attributes (`...{"S": [...]}`)
//! are also compiled for a plain path: it reads those strings straight from
//! the item's JSON (the mapping is one to one: a JSON string is exactly an
//! `S`), and the stream adapter asks it before building anything.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use switchyard_shared::ports::{RecordFilter, RecordParts, StreamRecord};

use crate::flat::Val;
use crate::matcher::BusMatcher;
use crate::pattern::{display_path, Cond, Dialect, Leaf, Pattern};

/// Lambda accepts at most this many filters per event source mapping (its default quota).
pub const MAX_FILTERS: usize = 5;

/// The fields of a DynamoDB stream record, as Lambda's filter sees them.
const RECORD_FIELDS: &[&str] = &[
    "awsRegion",
    "dynamodb",
    "eventID",
    "eventName",
    "eventSource",
    "eventSourceARN",
    "eventVersion",
    "userIdentity",
];
const CHANGE_FIELDS: &[&str] = &[
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
];
const SCALAR_TYPES: &[&str] = &["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"];
/// The table's key attributes (both strings).
const KEY_ATTRIBUTES: &[&str] = &["pk", "sk"];

/// Why a `filter_criteria` entry was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("at most {MAX_FILTERS} filters per stream consumer (Lambda's limit), got {0}")]
    TooMany(usize),
    #[error("filter_criteria[{index}]: {message}")]
    Pattern { index: usize, message: String },
}

/// A consumer's compiled `filter_criteria`.
#[derive(Debug)]
pub struct StreamFilter {
    /// Every pattern, over the built record's JSON.
    general: BusMatcher<usize>,
    /// Per pattern, its plain form when it has one.
    plain: Vec<Option<PlainPattern>>,
    /// The top-level attributes the plain patterns read, per image.
    new_attrs: Vec<String>,
    old_attrs: Vec<String>,
}

#[derive(Debug)]
struct PlainPattern {
    branches: Vec<Vec<PlainLeaf>>,
}

#[derive(Debug)]
struct PlainLeaf {
    source: Source,
    conds: Vec<Cond>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    EventName,
    Pk,
    Sk,
    /// Index into `new_attrs` / `old_attrs`.
    New(usize),
    Old(usize),
}

impl StreamFilter {
    /// Compiles Lambda filter patterns; `None` for an empty list (no filter).
    pub fn compile(patterns: &[Value]) -> Result<Option<StreamFilter>, FilterError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        if patterns.len() > MAX_FILTERS {
            return Err(FilterError::TooMany(patterns.len()));
        }
        let parsed = patterns
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let err = |message: String| FilterError::Pattern { index, message };
                if p.as_object().is_some_and(|o| o.is_empty()) {
                    return Err(err(
                        "an empty pattern passes every record; leave filter_criteria out instead"
                            .into(),
                    ));
                }
                let pattern =
                    Pattern::parse(p, Dialect::EventBridge).map_err(|e| err(e.to_string()))?;
                for path in pattern.paths() {
                    check_path(path).map_err(|m| {
                        err(format!("invalid pattern at {}: {m}", display_path(path)))
                    })?;
                }
                Ok(pattern)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let general = BusMatcher::compile(patterns.iter().enumerate())
            .expect("each pattern parsed on its own above");
        let mut filter = StreamFilter {
            general,
            plain: Vec::new(),
            new_attrs: Vec::new(),
            old_attrs: Vec::new(),
        };
        filter.plain = parsed.iter().map(|p| filter.plain_form(p)).collect();
        Ok(Some(filter))
    }

    /// The pattern over plain items, if every leaf reads a string the plain
    /// parts hold; registers the attributes it reads.
    fn plain_form(&mut self, pattern: &Pattern) -> Option<PlainPattern> {
        let mut sources = Vec::new();
        for leaf in pattern.branches.iter().flatten() {
            sources.push(plain_source(leaf)?);
        }
        let mut sources = sources.into_iter();
        let branches = pattern
            .branches
            .iter()
            .map(|branch| {
                branch
                    .iter()
                    .map(|leaf| {
                        let source = match sources.next().expect("one source per leaf") {
                            PathSource::EventName => Source::EventName,
                            PathSource::Key("pk") => Source::Pk,
                            PathSource::Key(_) => Source::Sk,
                            PathSource::New(a) => Source::New(intern(&mut self.new_attrs, a)),
                            PathSource::Old(a) => Source::Old(intern(&mut self.old_attrs, a)),
                        };
                        PlainLeaf {
                            source,
                            conds: leaf.conds.clone(),
                        }
                    })
                    .collect()
            })
            .collect();
        Some(PlainPattern { branches })
    }

    /// Whether the built record passes: its JSON against every pattern.
    pub fn matches_record(&self, record: &StreamRecord) -> bool {
        match serde_json::to_string(record) {
            Ok(json) => !self.general.matches(&json).is_empty(),
            Err(e) => {
                // Never dropped silently: the handler sees it and decides.
                tracing::warn!(error = %e, "stream record does not print as JSON; delivering it unfiltered");
                true
            }
        }
    }

    /// Whether the record passes, from its parts; `None` when a pattern
    /// needs the built record (or an image is not readable JSON).
    pub fn decide_parts(&self, parts: &RecordParts<'_>) -> Option<bool> {
        let new = pick_strings(parts.new_image, &self.new_attrs)?;
        let old = pick_strings(parts.old_image, &self.old_attrs)?;
        let value = |s: Source| -> Option<&str> {
            match s {
                Source::EventName => Some(parts.event_name),
                Source::Pk => Some(parts.pk),
                Source::Sk => Some(parts.sk),
                Source::New(i) => new[i].as_deref(),
                Source::Old(i) => old[i].as_deref(),
            }
        };
        let mut undecided = false;
        for p in &self.plain {
            match p {
                Some(p)
                    if p.branches.iter().any(|b| {
                        b.iter()
                            .all(|leaf| leaf_accepts(&leaf.conds, value(leaf.source)))
                    }) =>
                {
                    return Some(true)
                }
                Some(_) => {}
                None => undecided = true,
            }
        }
        (!undecided).then_some(false)
    }

    /// How many patterns have the plain form (for tests and logs).
    pub fn plain_patterns(&self) -> usize {
        self.plain.iter().flatten().count()
    }
}

impl RecordFilter for StreamFilter {
    fn decide(&self, parts: &RecordParts<'_>) -> Option<bool> {
        self.decide_parts(parts)
    }

    fn matches(&self, record: &StreamRecord) -> bool {
        self.matches_record(record)
    }
}

/// One leaf on one value, as the reference matcher reads a field that has at
/// most one value: absent, only `exists: false` holds.
fn leaf_accepts(conds: &[Cond], value: Option<&str>) -> bool {
    match value {
        None => conds.contains(&Cond::Exists(false)),
        Some(s) => conds
            .iter()
            .any(|c| crate::eval::cond_matches(c, &Val::Str(s))),
    }
}

fn intern(names: &mut Vec<String>, name: &str) -> usize {
    names.iter().position(|n| n == name).unwrap_or_else(|| {
        names.push(name.to_owned());
        names.len() - 1
    })
}

enum PathSource<'a> {
    EventName,
    Key(&'a str),
    New(&'a str),
    Old(&'a str),
}

/// Where a leaf's value is in the plain parts, if it is a string there.
fn plain_source(leaf: &Leaf) -> Option<PathSource<'_>> {
    let p: Vec<&str> = leaf.path.iter().map(String::as_str).collect();
    match p.as_slice() {
        ["eventName"] => Some(PathSource::EventName),
        ["dynamodb", "Keys", attr, "S"] => Some(PathSource::Key(attr)),
        ["dynamodb", "NewImage", attr, "S"] => Some(PathSource::New(attr)),
        ["dynamodb", "OldImage", attr, "S"] => Some(PathSource::Old(attr)),
        _ => None,
    }
}

/// Rejects paths no stream record has, so a filter cannot silently drop
/// everything (the usual slip: `{"NewImage": {"type": ["order"]}}`, without `S`).
fn check_path(path: &[String]) -> Result<(), String> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let one_of = |what: &str, name: &str, options: &[&str]| {
        format!(
            "{what} {name:?} is not one of {}",
            options
                .iter()
                .map(|o| format!("{o:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match p.as_slice() {
        [] => Err("empty path".into()),
        [top, ..] if !RECORD_FIELDS.contains(top) => {
            Err(one_of("record field", top, RECORD_FIELDS))
        }
        ["dynamodb"] => Err("`dynamodb` is an object; name a field under it".into()),
        ["dynamodb", field, ..] if !CHANGE_FIELDS.contains(field) => {
            Err(one_of("dynamodb field", field, CHANGE_FIELDS))
        }
        ["dynamodb", "Keys", attr, ..] if !KEY_ATTRIBUTES.contains(attr) => {
            Err(one_of("key attribute", attr, KEY_ATTRIBUTES))
        }
        ["dynamodb", "Keys", _, ty] if *ty != "S" => {
            Err(format!("the table's keys are strings: use `S`, not {ty:?}"))
        }
        ["dynamodb", "Keys" | "NewImage" | "OldImage"] => {
            Err("name an attribute and its type, e.g. {\"type\": {\"S\": [\"order\"]}}".into())
        }
        ["dynamodb", "Keys" | "NewImage" | "OldImage", _, typed @ ..] => check_typed(typed),
        _ => Ok(()),
    }
}

/// The path below an attribute: a DynamoDB type, then (for `M` and `L`) what is inside.
fn check_typed(p: &[&str]) -> Result<(), String> {
    let all_types: Vec<&str> = SCALAR_TYPES.iter().copied().chain(["M", "L"]).collect();
    match p {
        [] => Err(
            "give the attribute's DynamoDB type, as the record has it: {\"S\": [...]}, {\"N\": [...]}, ..."
                .into(),
        ),
        ["M"] => Err("under `M`, name a field and its type".into()),
        ["M", _, rest @ ..] => check_typed(rest),
        ["L"] => Err("under `L`, give the elements' type".into()),
        ["L", rest @ ..] => check_typed(rest),
        [ty, ..] if !all_types.contains(ty) => Err(format!(
            "{ty:?} is not a DynamoDB type (one of {})",
            all_types.join(", ")
        )),
        [_] => Ok(()),
        [ty, more, ..] => Err(format!("{ty:?} holds a value, not a field {more:?}")),
    }
}

/// The named top-level attributes of an item's JSON that are strings
/// (`None` for absent or another type). `None` overall if the text is not a
/// JSON object. Borrows the strings unless they hold escapes.
fn pick_strings<'a>(json: Option<&'a str>, names: &[String]) -> Option<Vec<Option<Cow<'a, str>>>> {
    let mut out = vec![None; names.len()];
    let (Some(json), false) = (json, names.is_empty()) else {
        return Some(out);
    };
    let mut de = serde_json::Deserializer::from_str(json);
    Pick {
        names,
        out: &mut out,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(out)
}

struct Pick<'n, 'o, 'a> {
    names: &'n [String],
    out: &'o mut Vec<Option<Cow<'a, str>>>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Pick<'_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Pick<'_, '_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item as a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => self.out[i] = map.next_value::<StrOrOther<'de>>()?.0,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A value that is kept if it is a string and skipped otherwise.
struct StrOrOther<'de>(Option<Cow<'de, str>>);

impl<'de> serde::Deserialize<'de> for StrOrOther<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrOtherVisitor).map(StrOrOther)
    }
}

struct StrOrOtherVisitor;

impl<'de> Visitor<'de> for StrOrOtherVisitor {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}
