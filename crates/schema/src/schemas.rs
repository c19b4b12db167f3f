//! JSON Schemas generated from the Rust types: the files `cargo xtask regenerate-schemas`
//! writes into `schemas/`, and what [`crate::validate`] checks against.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::{ClientEvent, ServerEvent, SessionConfig};

/// A generated schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFile {
    /// The file name inside `schemas/`.
    pub name: &'static str,
    /// Pretty-printed JSON, ending in a newline.
    pub contents: String,
}

/// The schema files, generated deterministically from the Rust types.
pub fn schema_files() -> Vec<SchemaFile> {
    [
        ("client_events.json", client_events()),
        ("server_events.json", server_events()),
        ("session.json", schema_for::<SessionConfig>("SessionConfig")),
    ]
    .into_iter()
    .map(|(name, schema)| {
        let mut contents = serde_json::to_string_pretty(&schema).expect("schemas serialise");
        contents.push('\n');
        SchemaFile { name, contents }
    })
    .collect()
}

/// The schema every client event must match.
pub(crate) fn client_events() -> Value {
    schema_for::<ClientEvent>("ClientEvent")
}

/// The schema of server events.
pub(crate) fn server_events() -> Value {
    schema_for::<ServerEvent>("ServerEvent")
}

fn schema_for<T: JsonSchema>(title: &str) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    close_objects(&mut schema);
    strip_implicit_null(&mut schema);
    if let Value::Object(root) = &mut schema {
        root.insert("title".into(), Value::String(title.into()));
        root.insert(
            "description".into(),
            Value::String(format!(
                "OpenAI Realtime API (GA) {title}, generated from the reelthyme-schema Rust types by \
                 `cargo xtask regenerate-schemas`. Do not edit."
            )),
        );
    }
    schema
}

/// Marks the schema of a field that may be `null` (see `extra::Nullable`).
pub(crate) const NULLABLE_MARK: &str = "may be null";

/// schemars lets every `Option<T>` field be `null`; in this crate `Option<T>` means "may be
/// absent" and only fields marked by `extra::Nullable` take `null`, as on the wire.
fn strip_implicit_null(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for property in properties.values_mut() {
                    let Value::Object(property) = property else {
                        continue;
                    };
                    if property.get("$comment").and_then(Value::as_str) == Some(NULLABLE_MARK) {
                        continue;
                    }
                    if let Some(Value::Array(types)) = property.get_mut("type") {
                        types.retain(|t| t != "null");
                        if types.len() == 1 {
                            let only = types.remove(0);
                            property.insert("type".into(), only);
                        }
                    }
                    if let Some(Value::Array(branches)) = property.get_mut("anyOf") {
                        branches.retain(|b| b.get("type").and_then(Value::as_str) != Some("null"));
                        // A lone branch is inlined, so that validators report the error
                        // inside it rather than "matched none of anyOf".
                        if let [Value::Object(only)] = branches.as_mut_slice() {
                            let only = std::mem::take(only);
                            property.remove("anyOf");
                            property.extend(only);
                        }
                    }
                }
            }
            map.values_mut().for_each(strip_implicit_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_implicit_null),
        _ => {}
    }
}

/// Sets `additionalProperties: false` on every plain object schema (one with `properties`
/// and no composition), so that a field the types do not know is reported: an error for a
/// client event, drift for a server event. The types themselves still keep such fields.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let plain_object = map.get("type").and_then(Value::as_str) == Some("object")
                && map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !["allOf", "anyOf", "oneOf", "if"]
                    .iter()
                    .any(|k| map.contains_key(*k));
            if plain_object {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}
