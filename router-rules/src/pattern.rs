//! Parsing and validation of EventBridge event patterns and SNS filter
//! policies into one small syntax tree, rejecting what AWS rejects.
//!
//! A pattern becomes a disjunction (after `$or` is expanded) of conjunctions
//! of [`Leaf`]s: one field path and the conditions of its array, any of which
//! may match.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::complexity::{complexity, EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY};

/// Which part of an SNS message a topic subscription's filter policy reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FilterPolicyScope {
    #[default]
    MessageAttributes,
    MessageBody,
}

impl FilterPolicyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            FilterPolicyScope::MessageAttributes => "MessageAttributes",
            FilterPolicyScope::MessageBody => "MessageBody",
        }
    }
}

/// Which service's rules a pattern follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    EventBridge,
    /// SNS, `FilterPolicyScope: MessageAttributes` (flat, typed attributes).
    SnsAttributes,
    /// SNS, `FilterPolicyScope: MessageBody` (nested JSON body).
    SnsBody,
}

impl Dialect {
    pub fn is_sns(self) -> bool {
        self != Dialect::EventBridge
    }
}

/// PutRule's `EventPattern` is at most 4096 characters.
pub const EVENTBRIDGE_MAX_PATTERN_CHARS: usize = 4096;
/// An SNS filter policy is at most 256 KB.
pub const SNS_MAX_POLICY_BYTES: usize = 256 * 1024;
/// SNS: at most 5 keys per filter policy.
pub const SNS_MAX_KEYS: usize = 5;
/// SNS: the product of the value counts (summed over `$or` branches) is at most 150.
pub const SNS_MAX_COMBINATIONS: usize = 150;
/// SNS compares numbers within ±1e9 ...
pub const SNS_MAX_NUMBER: f64 = 1e9;
/// ... with five digits after the decimal point.
pub const SNS_DECIMALS: i32 = 5;
/// How many conjunctions `$or` may expand to before we refuse the pattern
/// (EventBridge rejects overly complex rules too; this bounds compile time).
pub const MAX_EXPANDED_BRANCHES: usize = 1024;

/// Why a pattern was rejected: where, which operator, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid pattern at {path}: {}{message}", operator.as_deref().map(|o| format!("`{o}`: ")).unwrap_or_default())]
pub struct PatternError {
    /// Dotted field path, `$` for the pattern itself.
    pub path: String,
    /// The operator at fault (`numeric`, `anything-but`, `$or`, ...), if any.
    pub operator: Option<String>,
    pub message: String,
}

impl PatternError {
    fn new(path: &[String], operator: Option<&str>, message: impl Into<String>) -> Self {
        PatternError {
            path: display_path(path),
            operator: operator.map(str::to_owned),
            message: message.into(),
        }
    }
}

pub fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        "$".to_owned()
    } else {
        path.join(".")
    }
}

/// A literal value in a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    /// Compared by value: 35, 35.0 and 3.5e1 are the same number.
    Num(f64),
    Bool(bool),
    Null,
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Str(s) => write!(f, "{s:?}"),
            Lit::Num(n) => write!(f, "{n}"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Null => f.write_str("null"),
        }
    }
}

/// One bound of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// A numeric range; open ends are infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lo: Bound,
    pub hi: Bound,
}

impl Range {
    pub const ALL: Range = Range {
        lo: Bound {
            value: f64::NEG_INFINITY,
            inclusive: true,
        },
        hi: Bound {
            value: f64::INFINITY,
            inclusive: true,
        },
    };

    pub fn contains(&self, x: f64) -> bool {
        let lo_ok = if self.lo.inclusive {
            x >= self.lo.value
        } else {
            x > self.lo.value
        };
        let hi_ok = if self.hi.inclusive {
            x <= self.hi.value
        } else {
            x < self.hi.value
        };
        lo_ok && hi_ok
    }
}

/// An inclusive range of IP addresses from a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub v6: bool,
    pub lo: u128,
    pub hi: u128,
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, x) = ip_key(ip);
        v6 == self.v6 && self.lo <= x && x <= self.hi
    }
}

/// An IP address as (is IPv6, number).
pub fn ip_key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// A `wildcard` pattern: literal pieces separated by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pub source: String,
    /// The literal runs between stars (`a*b*` is `["a", "b", ""]`).
    pub pieces: Vec<String>,
}

impl Wildcard {
    pub fn matches(&self, s: &str) -> bool {
        let (first, rest) = self
            .pieces
            .split_first()
            .expect("a wildcard has at least one piece");
        let Some(mut s) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return s.is_empty();
        };
        for piece in middle {
            match s.find(piece.as_str()) {
                Some(i) => s = &s[i + piece.len()..],
                None => return false,
            }
        }
        s.len() >= last.len() && s.ends_with(last.as_str())
    }
}

/// The negated part of `anything-but`.
#[derive(Debug, Clone, PartialEq)]
pub enum Negated {
    /// Strings or numbers (never mixed, never empty).
    Values(Vec<Lit>),
    /// Any of these prefixes (one or more).
    Prefix(Vec<String>),
    /// Any of these suffixes (one or more).
    Suffix(Vec<String>),
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

/// One element of a leaf's array: a literal or an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Lit(Lit),
    Prefix { text: String, ignore_case: bool },
    Suffix { text: String, ignore_case: bool },
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(Negated),
    Numeric(Range),
    Exists(bool),
    Cidr(IpRange),
}

impl Cond {
    /// The operator's name as it is written in patterns.
    pub fn operator(&self) -> &'static str {
        match self {
            Cond::Lit(_) => "equals",
            Cond::Prefix { .. } => "prefix",
            Cond::Suffix { .. } => "suffix",
            Cond::EqualsIgnoreCase(_) => "equals-ignore-case",
            Cond::Wildcard(_) => "wildcard",
            Cond::AnythingBut(_) => "anything-but",
            Cond::Numeric(_) => "numeric",
            Cond::Exists(_) => "exists",
            Cond::Cidr(_) => "cidr",
        }
    }
}

/// One field of a conjunction: its path and the alternatives of its array.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub path: Vec<String>,
    pub conds: Vec<Cond>,
    /// The leaf as written, for messages.
    pub source: Value,
}

impl Leaf {
    /// `exists: false` is about the absence of the field: it never reads a value.
    pub fn is_absence(&self) -> bool {
        self.conds.iter().all(|c| matches!(c, Cond::Exists(false)))
    }
}

/// A parsed, validated pattern: any conjunction may match.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub dialect: Dialect,
    pub branches: Vec<Vec<Leaf>>,
}

impl Pattern {
    pub fn parse(pattern: &Value, dialect: Dialect) -> Result<Pattern, PatternError> {
        let text_len = serde_json::to_string(pattern)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        match dialect {
            Dialect::EventBridge if text_len > EVENTBRIDGE_MAX_PATTERN_CHARS => {
                return Err(PatternError::new(&[], None, format!(
                    "the pattern is {text_len} characters, over EventBridge's limit of {EVENTBRIDGE_MAX_PATTERN_CHARS}"
                )));
            }
            Dialect::SnsAttributes | Dialect::SnsBody if text_len > SNS_MAX_POLICY_BYTES => {
                return Err(PatternError::new(&[], None, format!(
                    "the filter policy is {text_len} characters, over SNS's limit of {SNS_MAX_POLICY_BYTES}"
                )));
            }
            _ => {}
        }
        let object = pattern
            .as_object()
            .ok_or_else(|| PatternError::new(&[], None, "a pattern must be a JSON object"))?;
        if object.is_empty() && dialect.is_sns() {
            return Err(PatternError::new(
                &[],
                None,
                "a filter policy needs at least one key",
            ));
        }
        let parser = Parser { dialect };
        let branches = parser.object(object, &mut Vec::new())?;
        if dialect.is_sns() {
            parser.check_sns_limits(pattern)?;
        } else if let Some((path, c)) = worst_field(&branches) {
            let max = EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY;
            if c > max {
                return Err(PatternError::new(path, Some("wildcard"), format!(
                    "the rule is too complex: one value can match {c} wildcard prefixes on this field at once, over EventBridge's limit of {max}; use fewer wildcard characters or fewer repeating character sequences after a wildcard"
                )));
            }
        }
        Ok(Pattern { dialect, branches })
    }

    /// Every field path the pattern names.
    pub fn paths(&self) -> impl Iterator<Item = &[String]> {
        self.branches.iter().flatten().map(|l| l.path.as_slice())
    }
}

struct Parser {
    dialect: Dialect,
}

type Branches = Vec<Vec<Leaf>>;

impl Parser {
    /// A pattern object: the AND of its fields, each a leaf, a nested object or `$or`.
    fn object(
        &self,
        object: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Branches, PatternError> {
        if object.is_empty() && !path.is_empty() {
            return Err(PatternError::new(
                path,
                None,
                "an empty object matches nothing; remove it or give it fields",
            ));
        }
        let mut branches: Branches = vec![Vec::new()];
        for (key, value) in object {
            let part = if key == "$or" {
                self.or(value, path)?
            } else {
                let depth = path.len();
                self.push_key(path, key);
                let part = match value {
                    Value::Object(nested) => {
                        if self.dialect == Dialect::SnsAttributes {
                            return Err(PatternError::new(
                                path,
                                None,
                                "message attributes are flat: nested keys need FilterPolicyScope MessageBody",
                            ));
                        }
                        self.object(nested, path)
                    }
                    Value::Array(items) => {
                        self.leaf(items, value, path).map(|leaf| vec![vec![leaf]])
                    }
                    other if EB_OPERATORS.contains(&key.as_str()) => {
                        // `{"x": {"exists": true}}`: the operator lands where a field name goes.
                        let parent = display_path(&path[..path.len() - 1]);
                        Err(PatternError::new(
                            path,
                            Some(key),
                            format!("operators go inside the field's array: \"{parent}\": [{{\"{key}\": {other}}}]"),
                        ))
                    }
                    other => Err(PatternError::new(
                        path,
                        None,
                        format!(
                            "a field's value must be an array of matches or an object, not {}",
                            kind(other)
                        ),
                    )),
                };
                path.truncate(depth);
                part?
            };
            branches = product(branches, part, path)?;
        }
        if path.is_empty() {
            // A dotted key and the nested path it names can both appear: as in
            // EventBridge (event-ruler compiles with overriding), the later one wins.
            for branch in &mut branches {
                dedupe_paths(branch);
            }
        }
        Ok(branches)
    }

    /// A key is a path step; EventBridge and SNS message bodies read a dotted
    /// key as the nested path it spells (message attributes are flat names).
    fn push_key(&self, path: &mut Vec<String>, key: &str) {
        if self.dialect == Dialect::SnsAttributes || !key.contains('.') {
            path.push(key.to_owned());
        } else {
            path.extend(key.split('.').map(str::to_owned));
        }
    }

    fn or(&self, value: &Value, path: &mut Vec<String>) -> Result<Branches, PatternError> {
        let op = Some("$or");
        let items = value
            .as_array()
            .ok_or_else(|| PatternError::new(path, op, "must be an array of pattern objects"))?;
        if items.len() < 2 {
            return Err(PatternError::new(
                path,
                op,
                format!("needs at least two branches, has {}", items.len()),
            ));
        }
        let mut out = Vec::new();
        for item in items {
            let object = item.as_object().ok_or_else(|| {
                PatternError::new(
                    path,
                    op,
                    format!("each branch must be an object, not {}", kind(item)),
                )
            })?;
            if object.is_empty() {
                return Err(PatternError::new(path, op, "a branch is an empty object"));
            }
            out.extend(self.object(object, path)?);
            if out.len() > MAX_EXPANDED_BRANCHES {
                return Err(PatternError::new(
                    path,
                    op,
                    format!("expands to over {MAX_EXPANDED_BRANCHES} branches"),
                ));
            }
        }
        Ok(out)
    }

    fn leaf(&self, items: &[Value], source: &Value, path: &[String]) -> Result<Leaf, PatternError> {
        if items.is_empty() {
            return Err(PatternError::new(
                path,
                None,
                "an empty array matches nothing; give at least one value",
            ));
        }
        let conds = items
            .iter()
            .map(|item| self.cond(item, path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Leaf {
            path: path.to_vec(),
            conds,
            source: source.clone(),
        })
    }

    fn cond(&self, item: &Value, path: &[String]) -> Result<Cond, PatternError> {
        match item {
            Value::Object(op) => self.operator(op, path),
            Value::Array(_) => Err(PatternError::new(
                path,
                None,
                "arrays inside a match array are not allowed",
            )),
            literal => self.literal(literal, path, None).map(Cond::Lit),
        }
    }

    fn literal(&self, v: &Value, path: &[String], op: Option<&str>) -> Result<Lit, PatternError> {
        Ok(match v {
            Value::String(s) => Lit::Str(s.clone()),
            Value::Number(_) => Lit::Num(self.number(v, path, op.or(Some("equals")))?),
            Value::Bool(b) => Lit::Bool(*b),
            Value::Null => Lit::Null,
            other => {
                return Err(PatternError::new(
                    path,
                    op,
                    format!("expected a value, found {}", kind(other)),
                ))
            }
        })
    }

    fn number(&self, v: &Value, path: &[String], op: Option<&str>) -> Result<f64, PatternError> {
        let x = v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            PatternError::new(path, op, format!("expected a number, found {}", kind(v)))
        })?;
        if self.dialect.is_sns() {
            if x.abs() > SNS_MAX_NUMBER {
                return Err(PatternError::new(
                    path,
                    op,
                    format!("{x} is outside SNS's range of -1e9..=1e9"),
                ));
            }
            if sns_round(x) != x && (sns_round(x) - x).abs() > x.abs() * 1e-15 {
                return Err(PatternError::new(
                    path,
                    op,
                    format!("{x} has more than {SNS_DECIMALS} decimal places"),
                ));
            }
        }
        Ok(x)
    }

    fn string<'v>(&self, v: &'v Value, path: &[String], op: &str) -> Result<&'v str, PatternError> {
        v.as_str().ok_or_else(|| {
            PatternError::new(
                path,
                Some(op),
                format!("expects a string, found {}", kind(v)),
            )
        })
    }

    fn operator(&self, op: &Map<String, Value>, path: &[String]) -> Result<Cond, PatternError> {
        let mut entries = op.iter();
        let (Some((name, arg)), None) = (entries.next(), entries.next()) else {
            let names: Vec<&str> = op.keys().map(String::as_str).collect();
            return Err(PatternError::new(
                path,
                None,
                format!("a match object holds exactly one operator, found {names:?}"),
            ));
        };
        let name = name.as_str();
        let sns = self.dialect.is_sns();
        let unsupported = |what: &str| {
            Err(PatternError::new(
                path,
                Some(name),
                format!("{what} is not supported by Amazon SNS filter policies"),
            ))
        };
        match name {
            "prefix" | "suffix" => {
                let (text, ignore_case) = match arg {
                    Value::Object(inner) => {
                        if sns {
                            return unsupported(&format!("`{name}` with `equals-ignore-case`"));
                        }
                        match single(inner) {
                            Some(("equals-ignore-case", Value::String(s))) => (s.clone(), true),
                            _ => {
                                return Err(PatternError::new(
                                    path,
                                    Some(name),
                                    "takes a string or {\"equals-ignore-case\": string}",
                                ))
                            }
                        }
                    }
                    other => (self.string(other, path, name)?.to_owned(), false),
                };
                Ok(if name == "prefix" {
                    Cond::Prefix { text, ignore_case }
                } else {
                    Cond::Suffix { text, ignore_case }
                })
            }
            "equals-ignore-case" => Ok(Cond::EqualsIgnoreCase(
                self.string(arg, path, name)?.to_owned(),
            )),
            "wildcard" => {
                if sns {
                    return unsupported("`wildcard`");
                }
                Ok(Cond::Wildcard(parse_wildcard(
                    self.string(arg, path, name)?,
                    path,
                )?))
            }
            "anything-but" => self.anything_but(arg, path).map(Cond::AnythingBut),
            "numeric" => self.numeric(arg, path).map(Cond::Numeric),
            "exists" => match arg {
                Value::Bool(b) => Ok(Cond::Exists(*b)),
                other => Err(PatternError::new(
                    path,
                    Some(name),
                    format!("takes true or false, found {}", kind(other)),
                )),
            },
            "cidr" => parse_cidr(self.string(arg, path, name)?)
                .map(Cond::Cidr)
                .map_err(|m| PatternError::new(path, Some(name), m)),
            other => Err(PatternError::new(
                path,
                Some(other),
                format!("unknown operator{}", suggest_operator(other, self.dialect)),
            )),
        }
    }

    fn anything_but(&self, arg: &Value, path: &[String]) -> Result<Negated, PatternError> {
        let op = "anything-but";
        let sns = self.dialect.is_sns();
        match arg {
            Value::String(_) | Value::Number(_) => {
                Ok(Negated::Values(vec![self.literal(arg, path, Some(op))?]))
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(PatternError::new(
                        path,
                        Some(op),
                        "the list of values is empty",
                    ));
                }
                let all_strings = items.iter().all(Value::is_string);
                let all_numbers = items.iter().all(Value::is_number);
                if !all_strings && !all_numbers {
                    return Err(PatternError::new(
                        path,
                        Some(op),
                        "takes a list of only strings or only numbers",
                    ));
                }
                items
                    .iter()
                    .map(|v| self.literal(v, path, Some(op)))
                    .collect::<Result<_, _>>()
                    .map(Negated::Values)
            }
            Value::Object(inner) => {
                let Some((name, value)) = single(inner) else {
                    return Err(PatternError::new(
                        path,
                        Some(op),
                        "a nested operator object holds exactly one operator",
                    ));
                };
                let inner_op = format!("anything-but/{name}");
                let nested_unsupported = |what: &str| {
                    Err(PatternError::new(
                        path,
                        Some(&inner_op),
                        format!("{what} inside `anything-but` is not supported by Amazon SNS filter policies"),
                    ))
                };
                let strings = |v: &Value| -> Result<Vec<String>, PatternError> {
                    match v {
                        Value::String(s) => Ok(vec![s.clone()]),
                        Value::Array(items) if !items.is_empty() => items
                            .iter()
                            .map(|i| self.string(i, path, &inner_op).map(str::to_owned))
                            .collect(),
                        _ => Err(PatternError::new(
                            path,
                            Some(&inner_op),
                            "takes a string or a non-empty list of strings",
                        )),
                    }
                };
                match name {
                    "prefix" | "suffix" => {
                        if sns && name == "suffix" {
                            return nested_unsupported("`suffix`");
                        }
                        // EventBridge takes one text or a list of them; SNS one text.
                        let texts = if sns {
                            vec![self.string(value, path, &inner_op)?.to_owned()]
                        } else {
                            strings(value)?
                        };
                        if texts.iter().any(String::is_empty) {
                            return Err(PatternError::new(path, Some(&inner_op), "the text must not be empty"));
                        }
                        Ok(if name == "prefix" { Negated::Prefix(texts) } else { Negated::Suffix(texts) })
                    }
                    "equals-ignore-case" => {
                        if sns {
                            return nested_unsupported("`equals-ignore-case`");
                        }
                        strings(value).map(Negated::IgnoreCase)
                    }
                    "wildcard" => {
                        if sns {
                            return nested_unsupported("`wildcard`");
                        }
                        strings(value)?.iter().map(|w| parse_wildcard(w, path)).collect::<Result<_, _>>().map(Negated::Wildcard)
                    }
                    other => Err(PatternError::new(
                        path,
                        Some(op),
                        format!("cannot wrap `{other}`: use a value, a list, prefix, suffix, equals-ignore-case or wildcard"),
                    )),
                }
            }
            other => Err(PatternError::new(
                path,
                Some(op),
                format!(
                    "takes a string, a number, a list or an operator object, not {}",
                    kind(other)
                ),
            )),
        }
    }

    /// `numeric` takes `["=", n]`, one bound, or a lower bound then an upper
    /// bound, as event-ruler's JsonRuleCompiler and SNS parse it (the messages
    /// follow theirs): `["<", 5, ">", 1]` is refused, not reordered.
    fn numeric(&self, arg: &Value, path: &[String]) -> Result<Range, PatternError> {
        let op = Some("numeric");
        let fail = |m: String| Err(PatternError::new(path, op, m));
        let items = arg.as_array().ok_or_else(|| {
            PatternError::new(path, op, "takes an array like [\">\", 0, \"<=\", 5]")
        })?;
        let mut it = items.iter();
        let first = match it.next() {
            None => return fail("invalid member in numeric match: ] (the array is empty)".into()),
            Some(Value::String(c)) => c.as_str(),
            Some(other) => return fail(format!("invalid member in numeric match: {other}")),
        };
        let number = |cmp: &str, v: Option<&Value>| -> Result<f64, PatternError> {
            let name = if cmp == "=" { "equals" } else { cmp };
            match v {
                Some(v) if v.is_number() => self.number(v, path, op),
                _ => Err(PatternError::new(
                    path,
                    op,
                    format!("value of {name} must be numeric"),
                )),
            }
        };
        let bound = |value, inclusive| Bound { value, inclusive };
        let lo = match first {
            "=" | "<" | "<=" => {
                let value = number(first, it.next())?;
                if it.next().is_some() {
                    return fail(format!("too many elements in numeric expression: `{first}` takes one number and no second bound (a lower bound comes first)"));
                }
                return Ok(match first {
                    "=" => Range {
                        lo: bound(value, true),
                        hi: bound(value, true),
                    },
                    _ => Range {
                        lo: Range::ALL.lo,
                        hi: bound(value, first == "<="),
                    },
                });
            }
            ">" | ">=" => bound(number(first, it.next())?, first == ">="),
            other => return fail(format!("unrecognized numeric range operator: {other:?}")),
        };
        let Some(second) = it.next() else {
            return Ok(Range {
                lo,
                hi: Range::ALL.hi,
            });
        };
        let second = match second {
            Value::String(c) if c == "<" || c == "<=" => c.as_str(),
            Value::String(c) => {
                return fail(format!(
                    "bad numeric range operator: {c:?} (an upper bound is < or <=)"
                ))
            }
            other => return fail(format!("bad value in numeric range: {other}")),
        };
        let hi = bound(number(second, it.next())?, second == "<=");
        if it.next().is_some() {
            return fail("too many terms in numeric range expression".into());
        }
        if lo.value >= hi.value {
            return fail(format!(
                "bottom must be less than top: the lower bound {} must be below the upper bound {}",
                lo.value, hi.value
            ));
        }
        Ok(Range { lo, hi })
    }

    fn check_sns_limits(&self, policy: &Value) -> Result<(), PatternError> {
        // Attribute scope counts every key; body scope counts the top-level keys.
        let mut keys = std::collections::BTreeSet::new();
        collect_keys(policy, &mut keys, self.dialect == Dialect::SnsBody);
        if keys.len() > SNS_MAX_KEYS {
            return Err(PatternError::new(
                &[],
                None,
                format!(
                    "the filter policy has {} keys ({}); SNS allows at most {SNS_MAX_KEYS}",
                    keys.len(),
                    keys.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let combinations = sns_combinations(policy, 1, 1);
        if combinations > SNS_MAX_COMBINATIONS as u128 {
            return Err(PatternError::new(&[], None, format!(
                "the filter policy is too complex: {combinations} combinations of values (each array's length times its key's nesting depth, multiplied; `$or` branches added); SNS allows at most {SNS_MAX_COMBINATIONS}"
            )));
        }
        Ok(())
    }
}

/// SNS's count of a policy's combinations ("Filter policy constraints"): the
/// product over its arrays of (values x the nesting depth of the array's key,
/// 1 at the top), `$or` branches summed. Depth is the nesting of the policy's
/// JSON objects as written; a flat policy is the plain product.
fn sns_combinations(policy: &Value, depth: u128, carried: u128) -> u128 {
    let Value::Object(map) = policy else {
        return carried;
    };
    let mut acc = carried;
    for (key, value) in map {
        acc = match value {
            Value::Object(_) => sns_combinations(value, depth + 1, acc),
            Value::Array(branches) if key == "$or" => branches
                .iter()
                .map(|b| sns_combinations(b, depth, acc))
                .fold(0u128, u128::saturating_add),
            Value::Array(values) => acc.saturating_mul(values.len() as u128 * depth),
            _ => acc,
        };
    }
    acc
}

fn collect_keys(v: &Value, keys: &mut std::collections::BTreeSet<String>, top_level_only: bool) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            if k == "$or" {
                for branch in child.as_array().into_iter().flatten() {
                    collect_keys(branch, keys, top_level_only);
                }
            } else {
                keys.insert(k.clone());
                if !top_level_only {
                    collect_keys(child, keys, top_level_only);
                }
            }
        }
    }
}

/// Keeps the last leaf of each path in a conjunction, in the order written.
fn dedupe_paths(branch: &mut Vec<Leaf>) {
    let mut i = 0;
    while i < branch.len() {
        if branch[i + 1..].iter().any(|l| l.path == branch[i].path) {
            branch.remove(i);
        } else {
            i += 1;
        }
    }
}

/// The AND of two sets of branches: every pair, concatenated.
fn product(left: Branches, right: Branches, path: &[String]) -> Result<Branches, PatternError> {
    if left.len() * right.len() > MAX_EXPANDED_BRANCHES {
        return Err(PatternError::new(
            path,
            Some("$or"),
            format!("expands to over {MAX_EXPANDED_BRANCHES} branches"),
        ));
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in &left {
        for r in &right {
            out.push(l.iter().chain(r).cloned().collect());
        }
    }
    Ok(out)
}

fn single(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut it = map.iter();
    match (it.next(), it.next()) {
        (Some((k, v)), None) => Some((k.as_str(), v)),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// SNS keeps five decimal places.
pub fn sns_round(x: f64) -> f64 {
    let scale = 10f64.powi(SNS_DECIMALS);
    (x * scale).round() / scale
}

/// `*` is any run of characters, `\*` a star and `\\` a backslash; `**` is rejected.
pub fn parse_wildcard(text: &str, path: &[String]) -> Result<Wildcard, PatternError> {
    let err = |m: &str| PatternError::new(path, Some("wildcard"), format!("{m} in {text:?}"));
    let mut pieces = vec![String::new()];
    let mut chars = text.chars();
    let mut last_star = false;
    while let Some(c) = chars.next() {
        match c {
            '*' if last_star => return Err(err("consecutive `*` are not allowed")),
            '*' => {
                pieces.push(String::new());
                last_star = true;
                continue;
            }
            '\\' => match chars.next() {
                Some(e @ ('*' | '\\')) => pieces.last_mut().expect("never empty").push(e),
                _ => return Err(err("`\\` must escape `*` or `\\`")),
            },
            c => pieces.last_mut().expect("never empty").push(c),
        }
        last_star = false;
    }
    Ok(Wildcard {
        source: text.to_owned(),
        pieces,
    })
}

pub fn parse_cidr(text: &str) -> Result<IpRange, String> {
    let (addr, bits) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not in CIDR notation (address/bits)"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let (v6, x) = ip_key(ip);
    let width = if v6 { 128 } else { 32 };
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| *b <= width && !bits.starts_with('+'))
        .ok_or_else(|| format!("prefix length {bits:?} must be 0..={width}"))?;
    let host_bits = width - bits;
    let mask: u128 = if host_bits == 0 {
        0
    } else if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    Ok(IpRange {
        v6,
        lo: x & !mask,
        hi: x | mask,
    })
}

const EB_OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];
const SNS_OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
];

fn suggest_operator(name: &str, dialect: Dialect) -> String {
    let known = if dialect.is_sns() {
        SNS_OPERATORS
    } else {
        EB_OPERATORS
    };
    match closest(name, known.iter().copied()) {
        Some(best) => format!(" (did you mean `{best}`?)"),
        None => format!("; known operators: {}", known.join(", ")),
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // A near spelling, or a name that is the start of the real one (`size` for `size_bytes`).
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| {
            *d <= (c.len().max(name.len()) / 3).max(2) || (name.len() >= 3 && c.starts_with(name))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The worst complexity of any field of a parsed rule, with that field's path.
fn worst_field(branches: &[Vec<Leaf>]) -> Option<(&[String], usize)> {
    // Identical wildcards on one field share their states (event-ruler's trie).
    let mut fields: HashMap<&[String], Vec<&Wildcard>> = HashMap::new();
    for leaf in branches.iter().flatten() {
        let entry = fields.entry(leaf.path.as_slice()).or_default();
        for cond in &leaf.conds {
            let ws: Vec<&Wildcard> = match cond {
                Cond::Wildcard(w) => vec![w],
                Cond::AnythingBut(Negated::Wildcard(list)) => list.iter().collect(),
                _ => continue,
            };
            for w in ws {
                if !entry.iter().any(|x| x.source == w.source) {
                    entry.push(w);
                }
            }
        }
    }
    fields
        .into_iter()
        .filter(|(_, ws)| !ws.is_empty())
        .map(|(path, ws)| {
            let pieces: Vec<&[String]> = ws.iter().map(|w| w.pieces.as_slice()).collect();
            (path, complexity(&pieces))
        })
        .max_by_key(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(p: Value, d: Dialect) -> PatternError {
        Pattern::parse(&p, d).unwrap_err()
    }

    #[test]
    fn errors_name_operator_and_path() {
        let e = err(
            json!({"detail": {"n": [{"numeric": [">", 5, "<", 3]}]}}),
            Dialect::EventBridge,
        );
        assert_eq!(
            (e.path.as_str(), e.operator.as_deref()),
            ("detail.n", Some("numeric"))
        );
        let e = err(json!({"a": [{"contains": "x"}]}), Dialect::EventBridge);
        assert_eq!(e.operator.as_deref(), Some("contains"));
        let e = err(
            json!({"a": [{"anything-but": {"suffix": "x"}}]}),
            Dialect::SnsAttributes,
        );
        assert_eq!(e.operator.as_deref(), Some("anything-but/suffix"));
        assert!(e.to_string().contains("not supported by Amazon SNS"), "{e}");
    }

    #[test]
    fn complexity_errors_name_the_path_and_the_limit() {
        let w: Vec<Value> = (0..4)
            .map(|i| json!({"wildcard": format!("*:stack/S{i}/*")}))
            .collect();
        let e = err(json!({"detail": {"id": w}}), Dialect::EventBridge);
        assert_eq!(
            (e.path.as_str(), e.operator.as_deref()),
            ("detail.id", Some("wildcard"))
        );
        let max = EVENTBRIDGE_MAX_WILDCARD_COMPLEXITY;
        assert!(e.message.contains(&format!("limit of {max}")), "{e}");
        // 38 values five deep: 190 combinations as SNS counts them, 38 as a flat product.
        let values: Vec<String> = (0..38).map(|i| i.to_string()).collect();
        let e = err(
            json!({"a": {"b": {"c": {"d": {"e": values}}}}}),
            Dialect::SnsBody,
        );
        assert!(
            e.message.contains("190 combinations") && e.message.contains("at most 150"),
            "{e}"
        );
    }

    #[test]
    fn operator_outside_an_array_is_explained() {
        let e = err(json!({"detail": {"exists": true}}), Dialect::EventBridge);
        assert_eq!(e.operator.as_deref(), Some("exists"));
        assert!(e.message.contains(r#""detail": [{"exists": true}]"#), "{e}");
    }

    #[test]
    fn or_expands_into_branches() {
        let p = Pattern::parse(
            &json!({"a": [1], "$or": [{"b": [2]}, {"c": [3], "$or": [{"d": [4]}, {"e": [5]}]}]}),
            Dialect::EventBridge,
        )
        .unwrap();
        assert_eq!(p.branches.len(), 3);
        assert!(p
            .branches
            .iter()
            .all(|b| b.len() >= 2 && b.iter().any(|l| l.path == vec!["a".to_owned()])));
    }

    #[test]
    fn wildcard_pieces_and_matching() {
        let w = parse_wildcard(r"a\*b*c", &[]).unwrap();
        assert_eq!(w.pieces, vec!["a*b".to_owned(), "c".to_owned()]);
        assert!(w.matches("a*bxxc") && w.matches("a*bc") && !w.matches("abxc"));
        assert!(parse_wildcard("a**b", &[]).is_err());
        let w = parse_wildcard("*ab*ab", &[]).unwrap();
        assert!(w.matches("abab") && !w.matches("ab"));
    }

    #[test]
    fn cidr_ranges() {
        let r = parse_cidr("10.0.0.0/24").unwrap();
        assert!(
            r.contains("10.0.0.255".parse().unwrap()) && !r.contains("10.0.1.0".parse().unwrap())
        );
        let r = parse_cidr("2001:db8::/32").unwrap();
        assert!(r.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_err() && parse_cidr("10.0.0.0").is_err());
    }
}
