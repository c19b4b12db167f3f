//! The machinery shared by every tagged union of the protocol (events, items, content parts,
//! tools): serde with a lossless catch-all, a fast path that reads the tag without building
//! a JSON tree, and a JSON Schema that validates each variant by its tag.

use std::borrow::Cow;

use schemars::{Schema, SchemaGenerator};
use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Reads the `type` of a JSON object without parsing the rest into a tree.
///
/// The servers (OpenAI's and ours) write `type` first, so the common case is a prefix scan;
/// otherwise serde walks the object once, skipping every other value.
pub(crate) fn peek_type(json: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    if let Some(tag) = leading_type(json) {
        return Ok(Cow::Borrowed(tag));
    }
    #[derive(Deserialize)]
    struct Tag<'a> {
        #[serde(borrow, rename = "type")]
        tag: Cow<'a, str>,
    }
    serde_json::from_str::<Tag<'_>>(json).map(|t| t.tag)
}

/// `{ "type" : "<tag>"` at the very start of `json`, for tags with no escapes.
fn leading_type(json: &str) -> Option<&str> {
    let rest = json.trim_start().strip_prefix('{')?;
    let rest = rest.trim_start().strip_prefix("\"type\"")?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// Parses a variant's struct from the text of its tagged object, without the tag: the
/// object's own `type` is the enum's, and every other `type` (in nested plain objects) is
/// data the variant keeps. A second top-level `type` is refused.
pub(crate) fn from_str_untagged<'de, T: Deserialize<'de>>(
    json: &'de str,
) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = T::deserialize(Untagged(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// A deserializer whose top-level object hides its `type` key (nested objects keep theirs).
struct Untagged<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Untagged<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(UntaggedVisitor(visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(UntaggedVisitor(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, UntaggedVisitor(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct enum identifier
        ignored_any
    }
}

/// Hands the visitor a map without the `type` entry; everything else is refused by the
/// visitor as it would be (variants are objects).
struct UntaggedVisitor<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for UntaggedVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(UntaggedMap {
            map,
            seen_tag: false,
        })
    }
}

struct UntaggedMap<A> {
    map: A,
    seen_tag: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for UntaggedMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            if key.as_str() == "type" {
                // `from_json` chose the variant by the first tag; a second one would make
                // the text say two things at once.
                if self.seen_tag {
                    return Err(serde::de::Error::duplicate_field("type"));
                }
                self.seen_tag = true;
                self.map.next_value::<IgnoredAny>()?;
                continue;
            }
            return match key {
                Key::Borrowed(key) => seed
                    .deserialize(BorrowedStrDeserializer::<A::Error>::new(key))
                    .map(Some),
                Key::Owned(key) => seed
                    .deserialize(StringDeserializer::<A::Error>::new(key))
                    .map(Some),
            };
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// An object key, borrowed from the text when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(key) => key,
            Key::Owned(key) => key,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(key))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key.to_owned()))
            }
            fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Splits the tag off a JSON object for the slow (tree) path.
pub(crate) fn take_tag(map: &mut Map<String, Value>) -> Result<String, String> {
    match map.remove("type") {
        Some(Value::String(tag)) => Ok(tag),
        Some(other) => {
            let kind = json_kind(&other);
            map.insert("type".to_owned(), other);
            Err(format!("`type` must be a string, found {kind}"))
        }
        None => Err("missing field `type`".to_owned()),
    }
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `response.output_audio.delta` → `ResponseOutputAudioDelta`.
pub(crate) fn camel_case(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for word in tag
        .split(['.', '_', '/', '-', ' '])
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The schema of a tagged union: the object must carry a known `type`, and each tag selects
/// the schema of its variant (`if`/`then`, so a validator reports errors against the one
/// variant the tag names rather than "matched none of N schemas").
pub(crate) fn union_schema(
    generator: &mut SchemaGenerator,
    union: &str,
    variants: Vec<(&'static str, Schema)>,
) -> Schema {
    let tags: Vec<&str> = variants.iter().map(|(tag, _)| *tag).collect();
    let mut branches = Vec::with_capacity(variants.len());
    for (tag, schema) in variants {
        let name = format!("{union}{}", camel_case(tag));
        let mut schema = schema.to_value();
        if let Value::Object(object) = &mut schema {
            let properties = object
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(properties) = properties {
                let mut with_tag = Map::new();
                with_tag.insert("type".into(), serde_json::json!({ "const": tag }));
                with_tag.extend(std::mem::take(properties));
                *properties = with_tag;
            }
            let required = object
                .entry("required")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(required) = required {
                required.insert(0, Value::String("type".into()));
            }
            object.insert("type".into(), Value::String("object".into()));
        }
        generator.definitions_mut().insert(name.clone(), schema);
        branches.push(serde_json::json!({
            "if": { "properties": { "type": { "const": tag } }, "required": ["type"] },
            "then": { "$ref": format!("#/$defs/{name}") },
        }));
    }
    let schema = serde_json::json!({
        "type": "object",
        "required": ["type"],
        "properties": { "type": { "type": "string", "enum": tags } },
        "allOf": branches,
    });
    Schema::try_from(schema).expect("a JSON object is a schema")
}

/// Defines a tagged union: an enum with one variant per known tag and a lossless
/// `Unknown` catch-all, with serde, a fast `from_json` and JSON Schema.
///
/// A union may name fast paths for its hot events, before its doc comment:
/// `fast_from_json: PATH;` (`fn(&str) -> Option<Self>`, tried before the general parse:
/// `None` means "not the shape it reads") and `fast_to_json: PATH;` (`fn(&Self) ->
/// Option<String>`). Each must give exactly what the general path gives whenever it answers.
macro_rules! tagged_union {
    (
        $(fast_from_json: $fast_from:path;)?
        $(fast_to_json: $fast_to:path;)?
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $tag:literal => $variant:ident($ty:ty),
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        // Session and response variants are a few hundred bytes; boxing them would make
        // every user match through a `Box` to save memcpy on rare events.
        #[allow(clippy::large_enum_variant)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )*
            /// A `type` this version of the library does not know, kept whole as received.
            Unknown($crate::Unknown),
        }

        impl $name {
            /// Every `type` this enum knows, in declaration order.
            pub const TYPES: &'static [&'static str] = &[$($tag),*];

            /// The wire `type` of this value.
            pub fn type_name(&self) -> &str {
                match self {
                    $( Self::$variant(_) => $tag, )*
                    Self::Unknown(unknown) => unknown.type_name(),
                }
            }

            /// Whether this is the catch-all for an unknown `type`.
            pub fn is_unknown(&self) -> bool {
                matches!(self, Self::Unknown(_))
            }

            /// Parses from JSON text. Faster than going through `serde_json::Value`: the tag
            /// is read first, then the variant is parsed straight from the text.
            ///
            /// # Errors
            /// When the text is not a JSON object with a string `type`, or when a known
            /// type's fields do not have their documented shape.
            pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
                $( if let Some(event) = $fast_from(json) { return Ok(event); } )?
                let tag = $crate::tagged::peek_type(json)?;
                Ok(match &*tag {
                    $( $tag => Self::$variant($crate::tagged::from_str_untagged::<$ty>(json)?), )*
                    _ => {
                        let unknown: $crate::Unknown = serde_json::from_str(json)?;
                        // The tag was read from the first `type`, the object keeps the
                        // last: two different ones are refused, as for a known type.
                        if unknown.type_name() != &*tag {
                            use serde::de::Error as _;
                            return Err(serde_json::Error::duplicate_field("type"));
                        }
                        Self::Unknown(unknown)
                    }
                })
            }

            /// Parses from a JSON object already in memory.
            ///
            /// # Errors
            /// As [`Self::from_json`].
            pub fn from_map(mut map: serde_json::Map<String, serde_json::Value>) -> Result<Self, serde_json::Error> {
                use serde::de::Error as _;
                let tag = $crate::tagged::take_tag(&mut map).map_err(serde_json::Error::custom)?;
                Ok(match tag.as_str() {
                    $( $tag => Self::$variant(serde_json::from_value::<$ty>(serde_json::Value::Object(map))?), )*
                    _ => {
                        map.insert("type".to_owned(), serde_json::Value::String(tag));
                        Self::Unknown($crate::Unknown(map))
                    }
                })
            }

            /// Parses from a JSON value.
            ///
            /// # Errors
            /// As [`Self::from_json`], and when the value is not an object.
            pub fn from_value(value: serde_json::Value) -> Result<Self, serde_json::Error> {
                use serde::de::Error as _;
                match value {
                    serde_json::Value::Object(map) => Self::from_map(map),
                    other => Err(serde_json::Error::custom(format!(
                        "expected a JSON object, found {}", $crate::tagged::json_kind(&other)
                    ))),
                }
            }

            /// Serialises to a JSON value.
            pub fn to_value(&self) -> serde_json::Value {
                serde_json::to_value(self).expect("events serialise to JSON")
            }

            /// Serialises to JSON text.
            pub fn to_json(&self) -> String {
                $( if let Some(text) = $fast_to(self) { return text; } )?
                serde_json::to_string(self).expect("events serialise to JSON")
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[derive(serde::Serialize)]
                struct Tagged<'a, T> {
                    #[serde(rename = "type")]
                    tag: &'static str,
                    #[serde(flatten)]
                    inner: &'a T,
                }
                match self {
                    $( Self::$variant(inner) => Tagged { tag: $tag, inner }.serialize(serializer), )*
                    Self::Unknown(unknown) => unknown.serialize(serializer),
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
                Self::from_map(map).map_err(D::Error::custom)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let variants = vec![
                    $( ($tag, <$ty as schemars::JsonSchema>::json_schema(generator)), )*
                ];
                $crate::tagged::union_schema(generator, stringify!($name), variants)
            }
        }
    };
}

pub(crate) use tagged_union;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_type_reads_the_common_shapes() {
        assert_eq!(leading_type(r#"{"type":"a.b","x":1}"#), Some("a.b"));
        assert_eq!(leading_type(r#" { "type" : "a.b" }"#), Some("a.b"));
        assert_eq!(leading_type(r#"{"event_id":"e","type":"a"}"#), None);
        assert_eq!(leading_type(r#"{"type":"a\"b"}"#), None);
        assert_eq!(leading_type(r#"{"type":7}"#), None);
    }

    #[test]
    fn peek_type_falls_back_to_a_full_scan() {
        assert_eq!(
            peek_type(r#"{"event_id":"e","type":"a.b"}"#).unwrap(),
            "a.b"
        );
        assert_eq!(peek_type(r#"{"type":"a\"b"}"#).unwrap(), "a\"b");
        assert!(peek_type(r#"{"event_id":"e"}"#).is_err());
        assert!(peek_type("not json").is_err());
    }

    #[test]
    fn camel_case_joins_words() {
        assert_eq!(
            camel_case("response.output_audio.delta"),
            "ResponseOutputAudioDelta"
        );
        assert_eq!(camel_case("audio/pcm"), "AudioPcm");
    }
}
