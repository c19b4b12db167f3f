//! What keeps parsed events lossless: unknown fields ([`Extra`]), unknown tagged objects
//! ([`Unknown`]) and fields that distinguish "absent" from `null` ([`nullable`]).

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields this version of the library does not model, kept as received so that
/// re-serialising an event gives back what the server sent.
///
/// Every struct in this crate flattens one of these. A `type` is kept here like any other
/// unknown field, except in the struct of a tagged union's variant, where `type` is the
/// discriminator the enum owns: the enum's parsers (`from_json`, `from_value`, serde) take
/// it off before the variant is read, and its serialiser writes it. (So do not put `type`
/// in a variant's `extra`, nor parse a variant's struct on its own from a tagged object:
/// the enum would write `type` twice.)
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Extra(pub Map<String, Value>);

impl Extra {
    /// Whether no unknown field was kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of an unknown field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Sets an extra field (for servers that accept fields this crate does not model).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.0.insert(key.into(), value)
    }

    /// Removes an extra field.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }
}

impl<'de> Deserialize<'de> for Extra {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExtraVisitor;
        impl<'de> Visitor<'de> for ExtraVisitor {
            type Value = Extra;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Extra, A::Error> {
                let mut map = Map::new();
                let mut seen_type = false;
                while let Some(key) = access.next_key::<String>()? {
                    if key == "type" {
                        // A second `type` would make the text say two things at once (a
                        // tree keeps the last, a reader that stops early the first):
                        // refuse it, as the tagged unions do for their tag.
                        if seen_type {
                            return Err(serde::de::Error::duplicate_field("type"));
                        }
                        seen_type = true;
                    }
                    map.insert(key, access.next_value()?);
                }
                Ok(Extra(map))
            }
        }
        deserializer.deserialize_map(ExtraVisitor)
    }
}

impl JsonSchema for Extra {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Extra".into()
    }
    // Flattened into every struct; contributes no properties. The schema generator later
    // closes every object (`additionalProperties: false`) so that unknown fields are
    // reported, as errors for client events and as drift for server events.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object" })
    }
    fn inline_schema() -> bool {
        true
    }
}

/// A tagged object (event, item, content part, tool …) whose `type` this version of the
/// library does not know, kept whole — `type` included — as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unknown(pub Map<String, Value>);

impl Unknown {
    /// The object's `type`.
    pub fn type_name(&self) -> &str {
        self.0
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The whole object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// Serde glue for `Option<Option<T>>` fields, which keep the difference between a field
/// that is absent (`None`), explicitly `null` (`Some(None)`) and set (`Some(Some(v))`).
///
/// The difference matters on the wire: `"turn_detection": null` in a `session.update`
/// turns VAD off, while leaving the field out keeps the current setting; servers also send
/// explicit `null`s that a faithful round trip must keep.
///
/// Use with `#[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]`.
pub(crate) mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Deserialises an `Option<serde_json::Value>` field so that a present `null` is
/// `Some(Value::Null)`, not `None`: for free-form fields, absent and `null` differ too.
pub(crate) fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Schema stand-in for `Option<Option<T>>` fields: `T` or `null`.
///
/// The generator leaves `null` out of plain `Option<T>` fields (absent is fine, `null` is
/// not what the API sends there), so the fields that do take `null` say so with this.
pub(crate) struct Nullable<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for Nullable<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Nullable_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // `if null then ok else T` rather than `anyOf`, so that a validator reports the
        // error inside `T` (and its drift, e.g. an unknown field) instead of "matched none".
        let inner = generator.subschema_for::<T>();
        json_schema!({
            "if": { "type": "null" },
            "then": true,
            "else": inner,
            "$comment": crate::schemas::NULLABLE_MARK,
        })
    }
    fn inline_schema() -> bool {
        true
    }
}
