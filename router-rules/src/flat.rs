//! Lazy flattening of an event's JSON text into the leaf fields rules name.
//!
//! The scanner walks the bytes once, guided by a [`FieldTree`] of the keys
//! that any rule mentions: a key no rule names has its value skipped without
//! being parsed (strings by `memchr`, objects and arrays by counting only
//! their own brackets), and an object is left as soon as every key the tree
//! wants from it has been seen. Nothing is allocated per field except the
//! rare unescaped string.
//!
//! A key given twice in one object keeps its last value, as a parsed event
//! (`serde_json::Value`, and so every consumer) has it: the fields read for
//! the earlier one are dropped, and an object is only left early when no
//! wanted key can follow.

use std::net::IpAddr;

use memchr::{memchr2, memchr3};

/// A leaf value of an event, as the matcher sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

impl Val<'_> {
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Val::Str(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// Where a field sits in arrays: (array id, element index) pairs, outermost first.
pub type ArrayPos = (u32, u32);

#[derive(Debug, Clone, Copy)]
pub enum FieldVal {
    /// A string: `[start, end)` of the event text, or of the scratch buffer when it had escapes.
    Str {
        start: u32,
        end: u32,
        scratch: bool,
    },
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub path: u32,
    pub val: FieldVal,
    /// `[start, end)` of [`Flat::trails`].
    pub trail: (u32, u32),
}

/// The flattened fields of one event; reused across events.
#[derive(Debug, Default)]
pub struct Flat {
    pub fields: Vec<Field>,
    pub trails: Vec<ArrayPos>,
    pub scratch: String,
    cur_trail: Vec<ArrayPos>,
    next_array: u32,
    key_buf: Vec<u8>,
    /// The fields each wanted key of the open objects produced, innermost
    /// object last: what a later duplicate of that key replaces.
    occurrences: Vec<Occurrence>,
}

/// The `[start, end)` of [`Flat::fields`] that one wanted key's value produced.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    key: KeyId,
    start: u32,
    end: u32,
}

/// A wanted key: its tree node and position there.
type KeyId = (u32, u32);

impl Flat {
    pub fn clear(&mut self) {
        self.fields.clear();
        self.trails.clear();
        self.scratch.clear();
        self.cur_trail.clear();
        self.next_array = 0;
        self.occurrences.clear();
    }

    /// Drops the fields an earlier value of `key` in the object whose
    /// occurrences start at `base` produced (the key is given again).
    #[cold]
    fn forget(&mut self, base: usize, key: KeyId) {
        let Some(i) = self.occurrences[base..].iter().position(|o| o.key == key) else {
            return;
        };
        let gone = self.occurrences.remove(base + i);
        self.fields.drain(gone.start as usize..gone.end as usize);
        let n = gone.end - gone.start;
        // Later occurrences of this object read their fields after it.
        for later in &mut self.occurrences[base + i..] {
            later.start -= n;
            later.end -= n;
        }
    }

    /// Records the fields `key`'s value produced since `start`, if any.
    fn remember(&mut self, key: KeyId, start: usize) {
        if self.fields.len() > start {
            self.occurrences.push(Occurrence {
                key,
                start: start as u32,
                end: self.fields.len() as u32,
            });
        }
    }

    pub fn value<'a>(&'a self, event: &'a str, f: &Field) -> Val<'a> {
        match f.val {
            FieldVal::Str {
                start,
                end,
                scratch,
            } => {
                let s = if scratch {
                    &self.scratch[start as usize..end as usize]
                } else {
                    // The scanner cuts at ASCII quotes, always char boundaries of a `str`.
                    event.get(start as usize..end as usize).unwrap_or("")
                };
                Val::Str(s)
            }
            FieldVal::Num(n) => Val::Num(n),
            FieldVal::Bool(b) => Val::Bool(b),
            FieldVal::Null => Val::Null,
        }
    }

    pub fn trail(&self, f: &Field) -> &[ArrayPos] {
        &self.trails[f.trail.0 as usize..f.trail.1 as usize]
    }

    /// Adds a field with the current array trail.
    pub fn push(&mut self, path: u32, val: FieldVal) {
        let trail = if self.cur_trail.is_empty() {
            (0, 0)
        } else {
            let start = self.trails.len() as u32;
            self.trails.extend_from_slice(&self.cur_trail);
            (start, self.trails.len() as u32)
        };
        self.fields.push(Field { path, val, trail });
    }

    /// Adds a string value held outside the event text.
    pub fn push_owned_str(&mut self, path: u32, s: &str) {
        let start = self.scratch.len() as u32;
        self.scratch.push_str(s);
        self.push(
            path,
            FieldVal::Str {
                start,
                end: self.scratch.len() as u32,
                scratch: true,
            },
        );
    }

    pub fn enter_array(&mut self) -> u32 {
        self.next_array += 1;
        self.next_array
    }
    pub fn set_element(&mut self, array: u32, index: u32, depth: usize) {
        self.cur_trail.truncate(depth);
        self.cur_trail.push((array, index));
    }
    pub fn trail_depth(&self) -> usize {
        self.cur_trail.len()
    }
    pub fn truncate_trail(&mut self, depth: usize) {
        self.cur_trail.truncate(depth);
    }
}

/// The keys rules mention, as a tree of objects.
#[derive(Debug, Clone, Default)]
pub struct FieldTree {
    nodes: Vec<TreeNode>,
}

#[derive(Debug, Clone, Default)]
struct TreeNode {
    keys: Vec<TreeKey>,
    /// Whether any wanted key here is an object: only then can a dotted key
    /// (`"a.b"`, the same as `a` → `b`) name a wanted path.
    nested: bool,
    /// `"name` for each wanted key: how a repeat of it, or a dotted key
    /// naming a wanted path below it, starts; looked for in the rest of an
    /// object before it is abandoned.
    key_starts: Vec<memchr::memmem::Finder<'static>>,
}

impl TreeNode {
    /// Might `rest` (the unread part of an object at this node) give a
    /// wanted key again, or a dotted key naming a wanted path? Any escape
    /// could spell one, so it counts too.
    fn may_hold_wanted_key(&self, rest: &[u8]) -> bool {
        memchr::memchr(b'\\', rest).is_some()
            || self.key_starts.iter().any(|f| f.find(rest).is_some())
    }
}

impl TreeNode {
    /// The wanted key equal to `name`: a cheap signature first, bytes after.
    #[inline]
    fn find(&self, name: &[u8]) -> Option<usize> {
        let sig = signature(name);
        self.keys
            .iter()
            .position(|k| k.sig == sig && *k.name == *name)
    }
}

/// Length and first bytes of a key in one word, to reject most keys with one compare.
#[inline]
fn signature(name: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let n = name.len().min(7);
    head[..n].copy_from_slice(&name[..n]);
    head[7] = name.len().min(255) as u8;
    u64::from_le_bytes(head)
}

#[derive(Debug, Clone)]
struct TreeKey {
    name: Box<[u8]>,
    sig: u64,
    /// The path id when the value is a leaf (or an array of leaves).
    leaf: Option<u32>,
    /// The child node when the value is an object.
    child: Option<u32>,
}

impl FieldTree {
    pub fn new() -> Self {
        FieldTree {
            nodes: vec![TreeNode::default()],
        }
    }

    /// Registers a path (its segments) under an id.
    pub fn insert(&mut self, path: &[String], id: u32) {
        let mut node = 0usize;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let pos = match self.nodes[node].find(seg.as_bytes()) {
                Some(p) => p,
                None => {
                    let here = &mut self.nodes[node];
                    here.keys.push(TreeKey {
                        name: seg.as_bytes().into(),
                        sig: signature(seg.as_bytes()),
                        leaf: None,
                        child: None,
                    });
                    let start = [b"\"", seg.as_bytes()].concat();
                    here.key_starts
                        .push(memchr::memmem::Finder::new(&start).into_owned());
                    here.keys.len() - 1
                }
            };
            if last {
                self.nodes[node].keys[pos].leaf = Some(id);
            } else {
                let child = match self.nodes[node].keys[pos].child {
                    Some(c) => c,
                    None => {
                        self.nodes.push(TreeNode::default());
                        let c = (self.nodes.len() - 1) as u32;
                        let parent = &mut self.nodes[node];
                        parent.keys[pos].child = Some(c);
                        parent.nested = true;
                        c
                    }
                };
                node = child as usize;
            }
        }
    }

    /// The wanted key a dotted event key spells from `node` down (`"a.b"` is
    /// `a` → `b`), as EventBridge reads field names with dots.
    fn find_dotted(&self, mut node: usize, key: &[u8]) -> Option<(KeyId, &TreeKey)> {
        if !self.nodes[node].nested || !key.contains(&b'.') {
            return None;
        }
        let mut segments = key.split(|b| *b == b'.').peekable();
        loop {
            let here = &self.nodes[node];
            let pos = here.find(segments.next()?)?;
            let wanted = &here.keys[pos];
            if segments.peek().is_none() {
                return Some(((node as u32, pos as u32), wanted));
            }
            node = wanted.child? as usize;
        }
    }

    /// Flattens `event` into `out` (cleared first).
    pub fn scan(&self, event: &[u8], out: &mut Flat) -> Result<(), ScanError> {
        out.clear();
        let mut s = Scanner {
            b: event,
            i: 0,
            arrays: 0,
        };
        s.ws();
        if s.peek() != Some(b'{') {
            return Err(s.err("an event must be a JSON object"));
        }
        s.i += 1;
        s.object(self, 0, out, true)
    }
}

/// What an event's key is to the rules.
enum Found {
    /// The wanted key at this position of the object's node.
    Here(usize),
    /// Perhaps a wanted key further down, named by a dotted key.
    MaybeDotted,
    No,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid event JSON at byte {offset}: {message}")]
pub struct ScanError {
    pub offset: usize,
    pub message: &'static str,
}

/// Arrays nested deeper than this in a wanted field are refused rather than
/// recursed into (serde_json stops at 128 too).
const MAX_ARRAY_NESTING: usize = 128;

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    arrays: usize,
}

impl<'a> Scanner<'a> {
    fn err(&self, message: &'static str) -> ScanError {
        ScanError {
            offset: self.i,
            message,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8, message: &'static str) -> Result<(), ScanError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(message))
        }
    }

    /// After the opening quote: the raw string's end (index of the closing quote)
    /// and whether it holds escapes.
    #[inline]
    fn string_end(&mut self) -> Result<(usize, bool), ScanError> {
        let mut escaped = false;
        loop {
            match memchr2(b'"', b'\\', &self.b[self.i..]) {
                Some(off) => {
                    let at = self.i + off;
                    if self.b[at] == b'"' {
                        self.i = at + 1;
                        return Ok((at, escaped));
                    }
                    escaped = true;
                    self.i = at + 2;
                    if self.i > self.b.len() {
                        return Err(self.err("unterminated string"));
                    }
                }
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// The body of the object whose `{` was just read. `top` objects may be
    /// abandoned once every wanted key was seen, as nothing follows them.
    fn object(
        &mut self,
        tree: &FieldTree,
        node: usize,
        out: &mut Flat,
        top: bool,
    ) -> Result<(), ScanError> {
        let base = out.occurrences.len();
        let result = self.object_keys(tree, node, out, top, base);
        out.occurrences.truncate(base);
        result
    }

    /// The keys of [`Self::object`]; `base` is where its occurrences start.
    fn object_keys(
        &mut self,
        tree: &FieldTree,
        node: usize,
        out: &mut Flat,
        top: bool,
        base: usize,
    ) -> Result<(), ScanError> {
        let keys = &tree.nodes[node].keys;
        let wanted = keys.len();
        // Keys at positions 64 and up have no bit: each counts as a possible repeat.
        let mut seen: u64 = 0;
        let mut can_stop_early = wanted <= 64;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.expect(b'"', "expected a key")?;
            let start = self.i;
            let (end, escaped) = self.string_end()?;
            let found = if escaped {
                let mut buf = std::mem::take(&mut out.key_buf);
                buf.clear();
                unescape(&self.b[start..end], &mut buf).map_err(|m| self.err(m))?;
                let found = tree.nodes[node].find(&buf);
                out.key_buf = buf;
                found
            } else {
                tree.nodes[node].find(&self.b[start..end])
            };
            let found = match found {
                Some(pos) => Found::Here(pos),
                // An escaped key is unescaped first: its dots may be escapes too.
                None if tree.nodes[node].nested
                    && (escaped || self.b[start..end].contains(&b'.')) =>
                {
                    Found::MaybeDotted
                }
                None => Found::No,
            };
            self.expect(b':', "expected `:` after a key")?;
            self.ws();
            match found {
                Found::MaybeDotted => {
                    self.dotted_value(tree, node, (start, end), escaped, out, base)?
                }
                Found::Here(pos) => {
                    let bit = 1u64.checked_shl(pos as u32).unwrap_or(0);
                    let repeat = bit == 0 || seen & bit != 0;
                    seen |= bit;
                    let key = ((node as u32, pos as u32), &keys[pos]);
                    self.keyed_value(tree, key, repeat, out, base)?;
                    // Past the last wanted key of the event, only a repeat
                    // of one or a dotted key can still change the fields:
                    // read on only if one may follow. (An inner object is
                    // read to its end anyway, to find where it ends.)
                    if top && can_stop_early && seen.count_ones() as usize == wanted {
                        if !tree.nodes[node].may_hold_wanted_key(&self.b[self.i..]) {
                            return Ok(());
                        }
                        can_stop_early = false;
                    }
                }
                Found::No => self.skip_value()?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    /// The value of a key with a dot (or an escape) that is no wanted key of
    /// its object: read if the key spells a wanted path, skipped if not.
    #[cold]
    #[inline(never)]
    fn dotted_value(
        &mut self,
        tree: &FieldTree,
        node: usize,
        (start, end): (usize, usize),
        escaped: bool,
        out: &mut Flat,
        base: usize,
    ) -> Result<(), ScanError> {
        let mut buf = std::mem::take(&mut out.key_buf);
        buf.clear();
        if escaped {
            unescape(&self.b[start..end], &mut buf).map_err(|m| self.err(m))?;
        } else {
            buf.extend_from_slice(&self.b[start..end]);
        }
        let wanted = tree.find_dotted(node, &buf);
        out.key_buf = buf;
        match wanted {
            Some(key) => self.keyed_value(tree, key, true, out, base),
            None => self.skip_value(),
        }
    }

    /// The value of the wanted key `id` of the object whose occurrences
    /// start at `base`. `repeat`: the key may have been given before in this
    /// object, and the fields its earlier value produced are dropped.
    fn keyed_value(
        &mut self,
        tree: &FieldTree,
        (id, key): (KeyId, &TreeKey),
        repeat: bool,
        out: &mut Flat,
        base: usize,
    ) -> Result<(), ScanError> {
        if repeat {
            out.forget(base, id);
        }
        let first_field = out.fields.len();
        self.value(tree, key, out)?;
        out.remember(id, first_field);
        Ok(())
    }

    /// A value whose key is wanted as a leaf, an object, or both.
    fn value(&mut self, tree: &FieldTree, key: &TreeKey, out: &mut Flat) -> Result<(), ScanError> {
        let (leaf, child) = (key.leaf, key.child);
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                match child {
                    Some(c) => self.object(tree, c as usize, out, false),
                    None => self.skip_rest_of_object(),
                }
            }
            Some(b'[') => {
                self.i += 1;
                if self.arrays == MAX_ARRAY_NESTING {
                    return Err(self.err("arrays nested too deeply"));
                }
                self.arrays += 1;
                let result = self.array(tree, key, out);
                self.arrays -= 1;
                result
            }
            Some(b'"') => {
                self.i += 1;
                let start = self.i;
                let (end, escaped) = self.string_end()?;
                if let Some(path) = leaf {
                    if escaped {
                        let mut buf = std::mem::take(&mut out.key_buf);
                        buf.clear();
                        unescape(&self.b[start..end], &mut buf).map_err(|m| self.err(m))?;
                        let text = std::str::from_utf8(&buf)
                            .map_err(|_| self.err("invalid UTF-8 in a string"))?;
                        out.push_owned_str(path, text);
                        out.key_buf = buf;
                    } else {
                        out.push(
                            path,
                            FieldVal::Str {
                                start: start as u32,
                                end: end as u32,
                                scratch: false,
                            },
                        );
                    }
                }
                Ok(())
            }
            Some(b't') => self.literal(b"true", leaf.map(|p| (p, FieldVal::Bool(true))), out),
            Some(b'f') => self.literal(b"false", leaf.map(|p| (p, FieldVal::Bool(false))), out),
            Some(b'n') => self.literal(b"null", leaf.map(|p| (p, FieldVal::Null)), out),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.skip_number();
                if let Some(path) = leaf {
                    // Only ASCII digits, signs, dots and exponents were consumed.
                    let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
                    let n: f64 = text.parse().map_err(|_| self.err("invalid number"))?;
                    out.push(path, FieldVal::Num(n));
                }
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }

    /// The elements of the array whose `[` was just read.
    fn array(&mut self, tree: &FieldTree, key: &TreeKey, out: &mut Flat) -> Result<(), ScanError> {
        let array = out.enter_array();
        let depth = out.trail_depth();
        let mut index = 0u32;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            out.set_element(array, index, depth);
            self.value(tree, key, out)?;
            index += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    out.truncate_trail(depth);
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }

    fn literal(
        &mut self,
        word: &'static [u8],
        field: Option<(u32, FieldVal)>,
        out: &mut Flat,
    ) -> Result<(), ScanError> {
        self.skip_literal(word)?;
        if let Some((path, val)) = field {
            out.push(path, val);
        }
        Ok(())
    }

    fn skip_literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if !self.b[self.i..].starts_with(word) {
            return Err(self.err("invalid literal"));
        }
        self.i += word.len();
        Ok(())
    }

    #[inline]
    fn skip_number(&mut self) {
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.string_end().map(|_| ())
            }
            Some(b'{') => {
                self.i += 1;
                self.skip_rest_of_object()
            }
            Some(b'[') => {
                self.i += 1;
                self.skip_nested(b'[', b']')
            }
            Some(b't') => self.skip_literal(b"true"),
            Some(b'f') => self.skip_literal(b"false"),
            Some(b'n') => self.skip_literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                self.skip_number();
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn skip_rest_of_object(&mut self) -> Result<(), ScanError> {
        self.skip_nested(b'{', b'}')
    }

    /// Skips to just past the bracket closing the one already read. Inside a
    /// balanced container only its own kind of bracket needs counting, once
    /// strings are stepped over.
    fn skip_nested(&mut self, open: u8, close: u8) -> Result<(), ScanError> {
        let mut depth = 1usize;
        loop {
            let Some(off) = memchr3(b'"', open, close, &self.b[self.i..]) else {
                return Err(self.err("unterminated object or array"));
            };
            let at = self.i + off;
            self.i = at + 1;
            match self.b[at] {
                b'"' => {
                    self.string_end()?;
                }
                c if c == open => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Decodes JSON string escapes.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or("dangling escape")?;
        i += 2;
        let simple = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4).ok_or("short \\u escape")?)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    let lo = match raw.get(i..i + 6) {
                        Some([b'\\', b'u', rest @ ..]) => hex4(rest)?,
                        _ => return Err("unpaired surrogate"),
                    };
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("unpaired surrogate");
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                let ch = char::from_u32(code).ok_or("invalid \\u escape")?;
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                continue;
            }
            _ => return Err("invalid escape"),
        };
        out.push(simple);
    }
    Ok(())
}

fn hex4(b: &[u8]) -> Result<u32, &'static str> {
    let s = std::str::from_utf8(b).map_err(|_| "invalid \\u escape")?;
    u32::from_str_radix(s, 16).map_err(|_| "invalid \\u escape")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(paths: &[&[&str]], event: &str) -> Vec<(u32, String, Vec<ArrayPos>)> {
        let mut tree = FieldTree::new();
        for (i, p) in paths.iter().enumerate() {
            tree.insert(
                &p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                i as u32,
            );
        }
        let mut flat = Flat::default();
        tree.scan(event.as_bytes(), &mut flat).unwrap();
        flat.fields
            .iter()
            .map(|f| {
                (
                    f.path,
                    format!("{:?}", flat.value(event, f)),
                    flat.trail(f).to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn skips_unwanted_and_reads_wanted() {
        let ev = r#"{"skip": {"a": "}", "b": [1, {"c": "]"}]}, "x": {"y": "v\"w", "z": 2.5e1}, "t": [true, null]}"#;
        let got = flatten(&[&["x", "y"], &["x", "z"], &["t"]], ev);
        assert_eq!(got[0], (0, r#"Str("v\"w")"#.to_owned(), vec![]));
        assert_eq!(got[1], (1, "Num(25.0)".to_owned(), vec![]));
        assert_eq!(got[2].2, vec![(1, 0)]);
        assert_eq!(got[3], (2, "Null".to_owned(), vec![(1, 1)]));
    }

    #[test]
    fn arrays_of_objects_carry_their_element() {
        let ev = r#"{"items": [{"a": 1, "b": 2}, {"a": 3}]}"#;
        let got = flatten(&[&["items", "a"], &["items", "b"]], ev);
        let trails: Vec<_> = got.iter().map(|g| (g.0, g.2.clone())).collect();
        assert_eq!(
            trails,
            vec![(0, vec![(1, 0)]), (1, vec![(1, 0)]), (0, vec![(1, 1)])]
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let vals = |paths: &[&[&str]], ev| {
            flatten(paths, ev)
                .into_iter()
                .map(|(p, v, _)| (p, v))
                .collect::<Vec<_>>()
        };
        // Past the last wanted key, a repeat still replaces it.
        assert_eq!(
            vals(&[&["a"], &["b"]], r#"{"a": 1, "b": 2, "a": "x"}"#),
            vec![(1, "Num(2.0)".to_owned()), (0, r#"Str("x")"#.to_owned())]
        );
        // An object given again drops every field of the first one, deep ones too.
        assert_eq!(
            vals(
                &[&["d", "x"], &["d", "x", "y"], &["d", "z"]],
                r#"{"d": {"x": {"y": [1, 2]}, "z": 0, "x": "s"}}"#
            ),
            vec![(2, "Num(0.0)".to_owned()), (0, r#"Str("s")"#.to_owned())]
        );
        // A dotted key is a key of its own: repeats of it replace each other,
        // not the nested path it spells.
        assert_eq!(
            vals(&[&["a", "b"]], r#"{"a": {"b": 1}, "a.b": 2, "a.b": 3}"#),
            vec![(0, "Num(1.0)".to_owned()), (0, "Num(3.0)".to_owned())]
        );
        // Inside an array each element object is its own scope.
        assert_eq!(
            vals(&[&["i", "k"]], r#"{"i": [{"k": 1, "k": 2}, {"k": 3}]}"#),
            vec![(0, "Num(2.0)".to_owned()), (0, "Num(3.0)".to_owned())]
        );
    }

    #[test]
    fn deep_arrays_are_refused_not_recursed() {
        let mut tree = FieldTree::new();
        tree.insert(&["a".to_owned()], 0);
        let mut flat = Flat::default();
        let deep = format!(
            r#"{{"a": {}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = tree.scan(deep.as_bytes(), &mut flat).unwrap_err();
        assert_eq!(err.message, "arrays nested too deeply");
        let fine = format!(r#"{{"a": {}1{}}}"#, "[".repeat(100), "]".repeat(100));
        tree.scan(fine.as_bytes(), &mut flat).unwrap();
        assert_eq!(flat.trail(&flat.fields[0]).len(), 100);
        // Unwanted values are skipped without recursion at any depth.
        let skipped = format!(
            r#"{{"b": {}{}, "a": 2}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        tree.scan(skipped.as_bytes(), &mut flat).unwrap();
        assert_eq!(flat.fields.len(), 1);
    }

    #[test]
    fn rejects_broken_json() {
        let mut tree = FieldTree::new();
        tree.insert(&["a".to_owned()], 0);
        let mut flat = Flat::default();
        for bad in [
            r#"{"a": }"#,
            r#"{"a" 1}"#,
            r#"["a"]"#,
            r#"{"a": "x"#,
            r#"{"b": [1, 2}"#,
        ] {
            assert!(tree.scan(bad.as_bytes(), &mut flat).is_err(), "{bad}");
        }
    }
}
