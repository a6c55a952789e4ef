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
