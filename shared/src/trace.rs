//! One trace across every hop: the W3C trace context
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>) an event
//! carries from the hop that published it to every hop it causes.
//!
//! ```text
//! traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//!              ^  ^ trace id (16 bytes)            ^ span id (8)    ^ flags
//! ```
//!
//! Span ids are derived, not drawn at random: a hop's span id is a hash of
//! its parent's span id, the hop's name and the event (or change) it
//! handles. A retry of the same delivery is the same span, and a replay
//! under a seed writes the same trace ids byte for byte. A trace that starts
//! here takes the first event's id (a UUID, 16 bytes) as its trace id.
//!
//! This is a small hand-written type rather than the OpenTelemetry SDK: the
//! format is 55 characters, and the SDK with its exporters would add its
//! runtime to every Lambda bootstrap, which has a size budget (issue 19).
//!
//! X-Ray's `AWSTraceHeader` (`Root=1-5759e988-bd862e3fe1be46a994272793;
//! Parent=53995c3f42cd8ad8;Sampled=1`) holds the same three facts; it is
//! read and written by [`TraceContext::from_xray`] and [`TraceContext::to_xray`].

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Where one hop sits in a trace: the trace it belongs to and its own span.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParseError {
    #[error("traceparent {0:?} is not version-traceid-parentid-flags in lowercase hex")]
    Shape(String),
    #[error("traceparent {0:?} has version ff, which the spec forbids")]
    ForbiddenVersion(String),
    #[error("traceparent {0:?} has an all-zero trace id or parent id")]
    ZeroId(String),
}

impl TraceContext {
    /// A new trace rooted at the event `id`: trace id = the id's 16 bytes.
    pub fn root(id: Uuid) -> Self {
        let trace_id = *id.as_bytes();
        TraceContext {
            trace_id,
            span_id: span_hash(&[&trace_id, b"root"]),
            sampled: true,
        }
    }

    /// The span of hop `name` handling `subject` (an event id, a change's
    /// key) as a child of this one: same trace, a span id derived from the
    /// three, so the same delivery is the same span every time.
    pub fn child(&self, name: &str, subject: &[u8]) -> Self {
        TraceContext {
            trace_id: self.trace_id,
            span_id: span_hash(&[&self.span_id, name.as_bytes(), subject]),
            sampled: self.sampled,
        }
    }

    /// Parses a `traceparent` header. Versions other than `00` are read as
    /// the spec asks (the first four fields, anything after ignored) except
    /// `ff`, which is refused.
    pub fn parse(text: &str) -> Result<Self, TraceParseError> {
        let shape = || TraceParseError::Shape(text.to_owned());
        let text_trimmed = text.trim();
        let b = text_trimmed.as_bytes();
        if b.len() < 55 || (b.len() > 55 && b[55] != b'-') || b[2] != b'-' {
            return Err(shape());
        }
        let version = hex_bytes::<1>(&text_trimmed[0..2]).ok_or_else(shape)?[0];
        if version == 0xff {
            return Err(TraceParseError::ForbiddenVersion(text.to_owned()));
        }
        if version == 0 && b.len() != 55 {
            return Err(shape());
        }
        if b[35] != b'-' || b[52] != b'-' {
            return Err(shape());
        }
        let trace_id = hex_bytes::<16>(&text_trimmed[3..35]).ok_or_else(shape)?;
        let span_id = hex_bytes::<8>(&text_trimmed[36..52]).ok_or_else(shape)?;
        let flags = hex_bytes::<1>(&text_trimmed[53..55]).ok_or_else(shape)?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(TraceParseError::ZeroId(text.to_owned()));
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        self.traceparent_text().as_str().to_owned()
    }

    /// The `traceparent` text on the stack: every envelope written carries
    /// one, so it is formatted from a table, not with `write!` per byte.
    fn traceparent_text(&self) -> TraceparentText {
        let mut b = [0u8; TRACEPARENT_LEN];
        b[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut b[3..35]);
        b[35] = b'-';
        hex_into(&self.span_id, &mut b[36..52]);
        b[52] = b'-';
        hex_into(&[u8::from(self.sampled)], &mut b[53..]);
        TraceparentText(b)
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// Reads X-Ray's trace header (`AWSTraceHeader` on SQS, `X-Amzn-Trace-Id`
    /// on HTTP). X-Ray's root `1-{8 hex time}-{24 hex}` is the W3C trace id
    /// written in two parts. `None` when there is no root or no parent
    /// (a header that starts a trace names no parent span to continue).
    pub fn from_xray(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, true);
        for part in header.split(';') {
            let (key, value) = part.trim().split_once('=')?;
            match key {
                "Root" => root = Some(value),
                "Parent" => parent = Some(value),
                "Sampled" => sampled = value != "0",
                _ => {}
            }
        }
        let root = root?.strip_prefix("1-")?;
        let (time, random) = root.split_once('-')?;
        if time.len() != 8 || random.len() != 24 {
            return None;
        }
        let trace_id = hex_bytes::<16>(&format!("{time}{random}"))?;
        let span_id = hex_bytes::<8>(parent?)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// This context as X-Ray's trace header.
    pub fn to_xray(&self) -> String {
        let id = self.trace_id_hex();
        format!(
            "Root=1-{}-{};Parent={};Sampled={}",
            &id[..8],
            &id[8..],
            self.span_id_hex(),
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// `00-` + 32 + `-` + 16 + `-` + 2 hex digits.
const TRACEPARENT_LEN: usize = 55;

struct TraceparentText([u8; TRACEPARENT_LEN]);

impl TraceparentText {
    fn as_str(&self) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.traceparent_text().as_str())
    }
}

impl FromStr for TraceContext {
    type Err = TraceParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceContext::parse(s)
    }
}

impl serde::Serialize for TraceContext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.traceparent_text().as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TraceContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TraceContext::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// FNV-1a over the parts (each followed by a separator), never zero.
fn span_hash(parts: &[&[u8]]) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    // An all-zero span id is invalid; FNV can reach zero only by chance.
    (if h == 0 { 1 } else { h }).to_be_bytes()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex digits of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// `N` bytes from exactly `2N` lowercase hex digits (the spec forbids uppercase).
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the W3C recommendation, section 3.2.
    const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_the_spec_example() {
        let t = TraceContext::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id_hex(), "00f067aa0ba902b7");
        assert!(t.sampled);
        assert_eq!(t.traceparent(), SPEC_EXAMPLE);
        let unsampled = TraceContext::parse(&SPEC_EXAMPLE.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                matches!(TraceContext::parse(bad), Err(TraceParseError::Shape(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            TraceContext::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Err(TraceParseError::ForbiddenVersion(_))
        ));
        assert!(matches!(
            TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(TraceParseError::ZeroId(_))
        ));
        assert!(matches!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Err(TraceParseError::ZeroId(_))
        ));
    }

    #[test]
    fn a_future_version_is_read_by_its_first_four_fields() {
        let t = TraceContext::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
            .unwrap();
        assert_eq!(t.traceparent(), SPEC_EXAMPLE);
    }

    #[test]
    fn children_keep_the_trace_and_are_stable() {
        let parent = TraceContext::parse(SPEC_EXAMPLE).unwrap();
        let a = parent.child("order-processor", b"event-1");
        assert_eq!(a.trace_id, parent.trace_id);
        assert_ne!(a.span_id, parent.span_id);
        assert_eq!(a, parent.child("order-processor", b"event-1"));
        assert_ne!(a, parent.child("notifier", b"event-1"));
        assert_ne!(a, parent.child("order-processor", b"event-2"));
    }

    #[test]
    fn a_root_takes_the_event_id_as_trace_id() {
        let id = Uuid::now_v7();
        let root = TraceContext::root(id);
        assert_eq!(root.trace_id, *id.as_bytes());
        assert_eq!(root, TraceContext::root(id));
        assert_eq!(TraceContext::parse(&root.traceparent()).unwrap(), root);
    }

    #[test]
    fn xray_headers_convert_both_ways() {
        // The example of the X-Ray developer guide ("Tracing header").
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let t = TraceContext::from_xray(header).unwrap();
        assert_eq!(t.trace_id_hex(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(t.span_id_hex(), "53995c3f42cd8ad8");
        assert_eq!(t.to_xray(), header);
        assert!(
            !TraceContext::from_xray(&header.replace("Sampled=1", "Sampled=0"))
                .unwrap()
                .sampled
        );
        // A root alone starts a trace: no parent to continue.
        assert_eq!(
            TraceContext::from_xray("Root=1-5759e988-bd862e3fe1be46a994272793"),
            None
        );
        assert_eq!(
            TraceContext::from_xray("Root=2-5759e988-bd86;Parent=53995c3f42cd8ad8"),
            None
        );
    }

    #[test]
    fn serialises_as_the_header_text() {
        let t = TraceContext::parse(SPEC_EXAMPLE).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{SPEC_EXAMPLE}\""));
        assert_eq!(serde_json::from_str::<TraceContext>(&json).unwrap(), t);
        assert!(serde_json::from_str::<TraceContext>("\"nope\"").is_err());
    }
}
