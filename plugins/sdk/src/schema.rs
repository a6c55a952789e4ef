//! JSON Schemas of request and response bodies, generated from the pack's Rust types with
//! `schemars` (draft 2020-12, the dialect of OpenAPI 3.1). They are built only when the host
//! reads the manifest, once at startup, never per request.

use crate::alloc_prelude::*;

pub use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

/// A JSON Schema document as JSON text.
pub type Schema = String;

/// The schema of `T` as a request body: what the pack accepts (defaults may be left out,
/// aliases are allowed).
pub fn of<T: JsonSchema>() -> Schema {
    render(
        SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator()
            .into_root_schema_for::<T>(),
    )
}

/// The schema of a [`Valid`](crate::Valid) body `T`: [`of`], with the rules of `T`'s
/// [`Validate`](crate::Validate) that `schemars` cannot read stated in it too.
pub fn of_valid<T: JsonSchema + crate::Validate>() -> Schema {
    let mut schema = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    T::refine_schema(&mut Refine { schema: &mut schema });
    serde_json::to_string(&schema).unwrap_or_else(|_| "true".into())
}

/// A body schema being told a type's own rules (called by `#[derive(Validate)]`); a field
/// the schema does not list as a property is left as it is.
pub struct Refine<'a> {
    schema: &'a mut serde_json::Value,
}

impl Refine<'_> {
    fn property(&mut self, field: &str) -> Option<&mut serde_json::Map<String, serde_json::Value>> {
        self.schema.get_mut("properties")?.get_mut(field)?.as_object_mut()
    }

    /// `identifier(max = n)`: 1..=`n` of `A-Z a-z 0-9 _ - . :`, starting alphanumeric.
    pub fn identifier(&mut self, field: &str, max: usize) {
        if let Some(p) = self.property(field) {
            p.insert("minLength".into(), 1.into());
            p.insert("maxLength".into(), max.into());
            p.insert("pattern".into(), "^[A-Za-z0-9][A-Za-z0-9_.:-]*$".into());
        }
    }

    /// `one_of = LIST`: the text is one of `allowed` (or null, for an optional field).
    pub fn one_of(&mut self, field: &str, allowed: &[&str], optional: bool) {
        if let Some(p) = self.property(field) {
            let mut values: Vec<serde_json::Value> = allowed.iter().map(|&a| a.into()).collect();
            if optional {
                values.push(serde_json::Value::Null);
            }
            p.insert("enum".into(), serde_json::Value::Array(values));
        }
    }

    /// `rfc3339`: an RFC 3339 timestamp.
    pub fn rfc3339(&mut self, field: &str) {
        if let Some(p) = self.property(field) {
            p.insert("format".into(), "date-time".into());
        }
    }
}

/// The schema of `T` as a response body: what the pack sends.
pub fn of_response<T: JsonSchema>() -> Schema {
    render(
        SchemaSettings::draft2020_12().for_serialize().into_generator().into_root_schema_for::<T>(),
    )
}

fn render(schema: schemars::Schema) -> Schema {
    serde_json::to_string(&schema).unwrap_or_else(|_| "true".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Item {
        #[schemars(length(max = 8))]
        key: String,
        note: Option<String>,
    }

    #[test]
    fn a_type_becomes_its_schema() {
        let s: serde_json::Value = serde_json::from_str(&of::<Item>()).unwrap();
        assert_eq!(s["type"], "object");
        assert_eq!(s["title"], "Item");
        assert_eq!(s["properties"]["key"]["maxLength"], 8);
        assert_eq!(s["required"], serde_json::json!(["key"]));
    }
}
