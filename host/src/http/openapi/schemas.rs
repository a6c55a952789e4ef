//! The packs' JSON Schemas made fit for one OpenAPI document: each schema's `$defs` (or
//! `definitions`) move to `components/schemas`, named after the pack, and every `$ref` into
//! them (or to the schema's own root) is rewritten to point there.

use std::collections::HashMap;

use serde_json::{Map, Value};

const COMPONENTS: &str = "#/components/schemas/";

/// The document's `components/schemas`, filled as schemas are added.
#[derive(Default)]
pub struct Components {
    pub schemas: Map<String, Value>,
}

impl Components {
    /// `text` (a pack's JSON Schema) as a schema of the document, its definitions hoisted.
    /// Text that is not JSON becomes `{}` (any value), with a warning.
    pub fn add(&mut self, pack: &str, text: &str) -> Value {
        let mut root: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(pack, error = %e, "a route's JSON Schema does not parse; left out");
                return Value::Object(Map::new());
            }
        };
        let Some(object) = root.as_object_mut() else {
            return root; // `true` / `false`
        };
        object.remove("$schema");
        object.remove("$id");
        let mut defs: Vec<(String, Value)> = Vec::new();
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(found)) = object.remove(key) {
                defs.extend(
                    found
                        .into_iter()
                        .map(|(name, v)| (format!("{key}/{name}"), v)),
                );
            }
        }
        // names first, so definitions may refer to each other
        let mut names: HashMap<String, String> = HashMap::new();
        for (pointer, schema) in &defs {
            let local = pointer.split_once('/').map_or(pointer.as_str(), |(_, n)| n);
            names.insert(pointer.clone(), self.free_name(pack, local, schema));
        }
        let root_name = refers_to_root(&root).then(|| {
            let title = root.get("title").and_then(Value::as_str).unwrap_or("Body");
            self.free_name(pack, title, &root)
        });
        let rewrite = |v: &mut Value| rewrite_refs(v, &names, root_name.as_deref());
        for (pointer, mut schema) in defs {
            rewrite(&mut schema);
            if let Some(name) = names.get(&pointer) {
                self.schemas.insert(name.clone(), schema);
            }
        }
        rewrite(&mut root);
        match root_name {
            Some(name) => {
                self.schemas.insert(name.clone(), root);
                serde_json::json!({ "$ref": format!("{COMPONENTS}{name}") })
            }
            None => root,
        }
    }

    /// `pack.name`, or with a number after it when that name holds a different schema
    /// (a type's request and response forms differ).
    fn free_name(&self, pack: &str, local: &str, schema: &Value) -> String {
        let base = format!("{}.{}", clean(pack), clean(local));
        let mut name = base.clone();
        let mut n = 2;
        while let Some(existing) = self.schemas.get(&name) {
            if existing == schema {
                break;
            }
            name = format!("{base}.{n}");
            n += 1;
        }
        name
    }
}

/// Component names allow `[A-Za-z0-9._-]`.
fn clean(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

fn refers_to_root(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "$ref"
                && v.as_str()
                    .is_some_and(|r| r == "#" || r.starts_with("#/") && !is_def(r)))
                || refers_to_root(v)
        }),
        Value::Array(a) => a.iter().any(refers_to_root),
        _ => false,
    }
}

fn is_def(r: &str) -> bool {
    r.starts_with("#/$defs/") || r.starts_with("#/definitions/")
}

/// A JSON Pointer token, unescaped (`~1` is `/`, `~0` is `~`; the fragment may be
/// percent-encoded).
fn unescape(token: &str) -> String {
    let decoded = super::super::routes::percent_decode(token);
    decoded.replace("~1", "/").replace("~0", "~")
}

fn rewrite_refs(v: &mut Value, names: &HashMap<String, String>, root: Option<&str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(new) = rewritten(r, names, root) {
                            *r = new;
                        }
                    }
                    (_, v) => rewrite_refs(v, names, root),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite_refs(v, names, root)),
        _ => {}
    }
}

fn rewritten(r: &str, names: &HashMap<String, String>, root: Option<&str>) -> Option<String> {
    let pointer = r.strip_prefix('#')?;
    if let Some(rest) = pointer.strip_prefix('/')
        && is_def(r)
    {
        let mut parts = rest.splitn(3, '/');
        let (kind, name) = (parts.next()?, parts.next()?);
        let target = names.get(&format!("{kind}/{}", unescape(name)))?;
        return Some(match parts.next() {
            Some(tail) => format!("{COMPONENTS}{target}/{tail}"),
            None => format!("{COMPONENTS}{target}"),
        });
    }
    root.map(|name| format!("{COMPONENTS}{name}{pointer}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defs_are_hoisted_and_refs_rewritten() {
        let mut c = Components::default();
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Page",
            "type": "object",
            "properties": { "items": { "type": "array", "items": { "$ref": "#/$defs/Item" } } },
            "$defs": {
                "Item": { "type": "object", "properties": { "tag": { "$ref": "#/$defs/Tag" } } },
                "Tag": { "type": "string" }
            }
        });
        let out = c.add("notes", &schema.to_string());
        assert_eq!(
            out["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/notes.Item"
        );
        assert!(out.get("$defs").is_none() && out.get("$schema").is_none());
        assert_eq!(
            c.schemas["notes.Item"]["properties"]["tag"]["$ref"],
            "#/components/schemas/notes.Tag"
        );
        // the same name with another shape gets its own component
        let other = json!({ "$defs": { "Tag": { "type": "integer" } }, "$ref": "#/$defs/Tag" });
        let out = c.add("notes", &other.to_string());
        assert_eq!(out["$ref"], "#/components/schemas/notes.Tag.2");
    }

    #[test]
    fn a_recursive_root_becomes_a_component() {
        let mut c = Components::default();
        let schema = json!({
            "title": "Node",
            "type": "object",
            "properties": { "children": { "type": "array", "items": { "$ref": "#" } } }
        });
        let out = c.add("tree pack", &schema.to_string());
        assert_eq!(out["$ref"], "#/components/schemas/tree_pack.Node");
        assert_eq!(
            c.schemas["tree_pack.Node"]["properties"]["children"]["items"]["$ref"],
            "#/components/schemas/tree_pack.Node"
        );
        assert_eq!(c.add("p", "not json"), json!({}));
    }
}
