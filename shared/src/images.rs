//! Stream images between JSON items and DynamoDB attribute values, by hand:
//! the embedded stream builds an image per record and the stream reactor
//! reads one back, and going through serde_dynamo's serializers (plus a
//! clone of the whole image on the way back) was a sixth of the pipeline.
//!
//! The mapping is serde_dynamo's: strings `S`, numbers `N` (their JSON
//! text), booleans `BOOL`, null `NULL`, arrays `L`, objects `M`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::value::{
    BorrowedStrDeserializer, MapAccessDeserializer, MapDeserializer, SeqDeserializer,
};
use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_dynamo::AttributeValue;
use serde_json::{Map, Number, Value};

/// A JSON object as a stream image.
pub fn image_from_json(item: Map<String, Value>) -> serde_dynamo::Item {
    let map: HashMap<String, AttributeValue> = item
        .into_iter()
        .map(|(k, v)| (k, attribute_from_json(v)))
        .collect();
    serde_dynamo::Item::from(map)
}

fn attribute_from_json(v: Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(match n.as_f64() {
            Some(f) if n.is_f64() => float_text(f),
            _ => n.to_string(),
        }),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(a) => AttributeValue::L(a.into_iter().map(attribute_from_json).collect()),
        Value::Object(o) => AttributeValue::M(
            o.into_iter()
                .map(|(k, v)| (k, attribute_from_json(v)))
                .collect(),
        ),
    }
}

/// Floats as Rust prints them (1.0 is "1"), as serde_dynamo does.
fn float_text(f: f64) -> String {
    f.to_string()
}

/// A JSON object's text as a stream image, parsed straight into attribute
/// values: the same image as [`image_from_json`] of the parsed object,
/// without building the `serde_json::Value` tree first.
pub fn image_from_json_str(body: &str) -> Result<serde_dynamo::Item, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    // Sized for an order item up front: growing the map rehashes every key.
    let map = de.deserialize_map(ObjectVisitor(ITEM_ATTRIBUTES))?;
    de.end()?;
    Ok(serde_dynamo::Item::from(map))
}

/// One JSON value read as an attribute value.
struct JsonAttribute(AttributeValue);

impl<'de> Deserialize<'de> for JsonAttribute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AttributeVisitor).map(JsonAttribute)
    }
}

struct AttributeVisitor;

impl<'de> Visitor<'de> for AttributeVisitor {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Null(true))
    }
    fn visit_bool<E>(self, b: bool) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::N(n.to_string()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::N(n.to_string()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<AttributeValue, E> {
        // serde_json's `Value` keeps a non-finite float as null.
        Ok(match f.is_finite() {
            true => AttributeValue::N(float_text(f)),
            false => AttributeValue::Null(true),
        })
    }
    fn visit_str<E>(self, s: &str) -> Result<AttributeValue, E> {
        Ok(AttributeValue::S(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<AttributeValue, E> {
        Ok(AttributeValue::S(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AttributeValue, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(JsonAttribute(v)) = seq.next_element()? {
            list.push(v);
        }
        Ok(AttributeValue::L(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AttributeValue, A::Error> {
        ObjectVisitor(0).visit_map(map).map(AttributeValue::M)
    }
}

/// Attributes of an order item, about: the capacity a top-level image starts with.
const ITEM_ATTRIBUTES: usize = 16;

/// A JSON object as attribute values, in a map of at least this capacity;
/// a repeated key keeps its last value, as `Map` does.
struct ObjectVisitor(usize);

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = HashMap<String, AttributeValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = HashMap::with_capacity(map.size_hint().unwrap_or(0).max(self.0));
        while let Some((k, JsonAttribute(v))) = map.next_entry::<String, JsonAttribute>()? {
            out.insert(k, v);
        }
        Ok(out)
    }
}

/// A stream image as a JSON object; `None` for an empty image (no item).
pub fn image_to_json(image: &serde_dynamo::Item) -> Result<Option<Map<String, Value>>, String> {
    let map: &HashMap<String, AttributeValue> = image.as_ref();
    if map.is_empty() {
        return Ok(None);
    }
    map.iter()
        .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
        .collect::<Result<_, String>>()
        .map(Some)
}

fn number(n: &str) -> Result<Number, String> {
    n.parse::<Number>()
        .map_err(|e| format!("stream image: number {n:?}: {e}"))
}

fn attribute_to_json(v: &AttributeValue) -> Result<Value, String> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => Value::Number(number(n)?),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(l) => {
            Value::Array(l.iter().map(attribute_to_json).collect::<Result<_, _>>()?)
        }
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), attribute_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(
            ns.iter()
                .map(|n| number(n).map(Value::Number))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::B(_) | AttributeValue::Bs(_) => return Err(BINARY.to_owned()),
    })
}

const BINARY: &str = "stream image: binary attributes are not JSON";

/// Reads a typed value straight from a stream image, borrowing its strings:
/// the same result as deserializing [`image_to_json`]'s object with
/// serde_json, without building it. Attributes the type does not name are
/// not looked at.
pub fn from_image<'a, T: Deserialize<'a>>(
    image: &'a serde_dynamo::Item,
) -> Result<T, serde_json::Error> {
    T::deserialize(MapDeserializer::new(image.inner().iter().map(entry)))
}

/// A borrowing deserializer over one attribute value, read as its JSON
/// counterpart would be by `serde_json::Value`'s deserializer.
#[derive(Clone, Copy)]
struct Attribute<'de>(&'de AttributeValue);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Attribute<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Attribute<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::Null(_) => visitor.visit_unit(),
            AttributeValue::Bool(b) => visitor.visit_bool(*b),
            AttributeValue::N(n) => number(n)
                .map_err(de::Error::custom)?
                .deserialize_any(visitor),
            AttributeValue::S(s) => visitor.visit_borrowed_str(s),
            AttributeValue::L(l) => {
                SeqDeserializer::new(l.iter().map(Attribute)).deserialize_any(visitor)
            }
            AttributeValue::M(m) => {
                MapDeserializer::new(m.iter().map(entry)).deserialize_any(visitor)
            }
            // Sets never come from JSON items: read them as their JSON arrays.
            AttributeValue::Ss(_) | AttributeValue::Ns(_) => attribute_to_json(self.0)
                .map_err(de::Error::custom)?
                .deserialize_any(visitor)
                .map_err(de::Error::custom),
            AttributeValue::B(_) | AttributeValue::Bs(_) => Err(de::Error::custom(BINARY)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::Null(_) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// A unit variant is a string; a variant with content an object of one key.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::S(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            AttributeValue::M(m) if m.len() == 1 => visitor.visit_enum(MapAccessDeserializer::new(
                MapDeserializer::new(m.iter().map(entry)),
            )),
            AttributeValue::M(_) => Err(de::Error::invalid_value(
                de::Unexpected::Map,
                &"a map with a single key",
            )),
            _ => Err(self.invalid_type(&"string or map")),
        }
    }

    /// Skipped without looking inside: the attribute is there, which is all it asks.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    // Strings, lists and maps only from their own kind, as `Value` does
    // (a visitor for strings may take a list too: `Uuid` does).
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::S(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::L(_) | AttributeValue::Ss(_) | AttributeValue::Ns(_) => {
                self.deserialize_any(visitor)
            }
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::M(_) => self.deserialize_any(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            AttributeValue::M(_) => self.deserialize_any(visitor),
            _ => self.deserialize_seq(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct tuple tuple_struct
    }
}

impl Attribute<'_> {
    fn invalid_type(self, expected: &dyn de::Expected) -> serde_json::Error {
        de::Error::invalid_type(de::Unexpected::Other(kind(self.0)), expected)
    }
}

fn entry<'a>(
    (k, v): (&'a String, &'a AttributeValue),
) -> (
    BorrowedStrDeserializer<'a, serde_json::Error>,
    Attribute<'a>,
) {
    (BorrowedStrDeserializer::new(k), Attribute(v))
}

fn kind(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::Null(_) => "null",
        AttributeValue::Bool(_) => "boolean",
        AttributeValue::N(_) => "number",
        AttributeValue::S(_) => "string",
        AttributeValue::L(_) | AttributeValue::Ss(_) | AttributeValue::Ns(_) => "list",
        AttributeValue::M(_) => "map",
        AttributeValue::B(_) | AttributeValue::Bs(_) => "binary",
    }
}

/// One image of a stream record, in the form the record carries it: typed
/// attributes (a record built as Lambda hands it over) or the item's plain
/// JSON (a record the embedded stream has not built). Readers take either.
#[derive(Debug, Clone, Copy)]
pub enum ImageRef<'a> {
    /// No item: an `INSERT`'s old image, a `REMOVE`'s new one.
    Absent,
    Attributes(&'a serde_dynamo::Item),
    Json(&'a str),
}

/// The `type` attribute, and nothing else, of a JSON image.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

impl<'a> ImageRef<'a> {
    /// An attribute image, [`Absent`](Self::Absent) when it has no attributes
    /// (Lambda's form of a missing image).
    pub fn of_item(item: &'a serde_dynamo::Item) -> Self {
        match item.is_empty() {
            true => ImageRef::Absent,
            false => ImageRef::Attributes(item),
        }
    }

    /// The item's `type` attribute when it is a string.
    pub fn item_type(self) -> Option<Cow<'a, str>> {
        match self {
            ImageRef::Absent => None,
            ImageRef::Attributes(item) => match item.get("type") {
                Some(AttributeValue::S(t)) => Some(Cow::Borrowed(t)),
                _ => None,
            },
            ImageRef::Json(text) => serde_json::from_str::<TypeOnly>(text).ok()?.kind,
        }
    }

    /// The image read as `T`, as [`from_image`] reads it; `None` when absent.
    ///
    /// JSON is read directly. Only if that fails is it built into attribute
    /// values (kept in `spare`, one per image) and read from those, whose
    /// numbers have no integer/float kind (DynamoDB keeps `1.0` as `1`):
    /// the verdict is the attribute image's either way.
    pub fn read<T: Deserialize<'a>>(
        self,
        spare: &'a OnceCell<serde_dynamo::Item>,
    ) -> Result<Option<T>, serde_json::Error> {
        match self {
            ImageRef::Absent => Ok(None),
            ImageRef::Attributes(item) => from_image(item).map(Some),
            ImageRef::Json(text) => match serde_json::from_str(text) {
                Ok(value) => Ok(Some(value)),
                Err(_) => {
                    let built = image_from_json_str(text)?;
                    from_image(spare.get_or_init(|| built)).map(Some)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agrees_with_serde_dynamo_both_ways() {
        let item = json!({
            "pk": "order#1", "sk": "meta", "version": 3, "total": 12.5, "big": 12345678901234u64,
            "neg": -7, "paid": true, "note": null,
            "lines": [{"sku": "a", "qty": 2}, "x", 1.0],
            "nested": {"deep": {"s": "é\"\n"}}
        });
        let Value::Object(map) = item else {
            unreachable!()
        };
        let ours = image_from_json(map.clone());
        let theirs: serde_dynamo::Item = serde_dynamo::to_item(map.clone()).unwrap();
        assert_eq!(ours, theirs);
        let back = image_to_json(&ours).unwrap().unwrap();
        let theirs_back: Map<String, Value> = serde_dynamo::from_item(theirs).unwrap();
        assert_eq!(back, theirs_back);
        assert_eq!(
            image_to_json(&serde_dynamo::Item::from(
                HashMap::<String, AttributeValue>::new()
            ))
            .unwrap(),
            None
        );
    }
}
