//! The SDK's JSON bodies: `Valid<T>` (serde, then the `#[validate]` rules) and `Json<T>` on
//! a pack declared with the SDK, called as the host calls it (`Pack::handle`).

use arbitrary::Arbitrary;
use serde::{Deserialize, Serialize};
use valhalla_sdk::bindings::valhalla::pack::types as wit;
use valhalla_sdk::prelude::*;

#[derive(Debug, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Item {
    #[validate(identifier(max = 16))]
    key: String,
    #[validate(length(min = 1, max = 3))]
    tags: Vec<String>,
    #[serde(default)]
    #[validate(range(min = 0, max = 100))]
    weight: Option<i64>,
    #[serde(default)]
    #[validate(one_of = ["low", "high"])]
    level: Option<String>,
    #[serde(default)]
    #[validate(rfc3339)]
    at: Option<String>,
    #[serde(default, deserialize_with = "valhalla_sdk::present")]
    #[validate(length(max = 8))]
    note: Option<Option<String>>,
    #[serde(default)]
    #[validate(nested)]
    inner: Inner,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct Inner {
    #[validate(bytes(max = 4))]
    name: String,
}

fn pack() -> Pack {
    Pack::new("fuzz", "0", "fuzz target")
        .post(
            "/valid",
            Access::Public,
            "validated",
            |Valid(item): Valid<Item>| Ok(Created(item)),
        )
        .post(
            "/json",
            Access::Public,
            "typed",
            |Json(item): Json<Item>| Ok(Json(item)),
        )
}

/// A body as bytes, or as JSON made of the body's own field names so serde gets far.
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub validated: bool,
    pub content_type: u8,
    pub body: Body,
}

#[derive(Debug, Arbitrary)]
pub enum Body {
    Bytes(Vec<u8>),
    Fields(Vec<(u8, Json5)>),
}

/// A JSON value of a few shapes.
#[derive(Debug, Arbitrary)]
pub enum Json5 {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<String>),
    Object(Vec<(u8, String)>),
}

const FIELDS: &[&str] = &[
    "key", "tags", "weight", "level", "at", "note", "inner", "name", "x",
];
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    None,
    Some("application/json; charset=utf-8"),
    Some("application/merge-patch+json"),
    Some("text/plain"),
    Some("APPLICATION/JSON"),
    Some(""),
];

impl Json5 {
    fn value(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        match self {
            Json5::Null => Value::Null,
            Json5::Bool(b) => json!(b),
            Json5::Int(n) => json!(n),
            Json5::Float(f) => json!(f),
            Json5::Str(s) => json!(s),
            Json5::List(l) => json!(l),
            Json5::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (FIELDS[*k as usize % FIELDS.len()].to_string(), json!(v)))
                    .collect(),
            ),
        }
    }
}

impl Input {
    pub fn body(&self) -> Vec<u8> {
        match &self.body {
            Body::Bytes(b) => b.clone(),
            Body::Fields(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (FIELDS[*k as usize % FIELDS.len()].to_string(), v.value()))
                    .collect(),
            )
            .to_string()
            .into_bytes(),
        }
    }
}

/// Send `body` labelled `content_type` to the validated (or the typed) route.
pub fn check(validated: bool, content_type: Option<&str>, body: Vec<u8>) {
    let route = if validated { "/valid" } else { "/json" };
    let headers = content_type
        .map(|ct| vec![("content-type".to_string(), ct.to_string())])
        .unwrap_or_default();
    let request = wit::Request {
        method: Method::Post,
        path: route.into(),
        route: route.into(),
        params: Vec::new(),
        query: Vec::new(),
        headers,
        body: body.clone(),
        request_id: "fuzz".into(),
        principal: None,
        client_ip: "127.0.0.1".into(),
    };
    let response = pack().handle(request);
    let answer: serde_json::Value =
        serde_json::from_slice(&response.body).expect("every answer is JSON");
    match response.status {
        200 | 201 => {
            // what was accepted keeps the rules, and reads back as itself
            let item: Item = serde_json::from_value(answer.clone()).expect("reads back");
            if validated {
                Validator::of(&item).expect("an accepted body keeps its rules");
            }
            assert_eq!(serde_json::to_value(&item).expect("writes"), answer);
        }
        400 | 415 | 422 => {
            assert_eq!(answer["status"], response.status, "{answer}");
            assert_eq!(answer["request_id"], "fuzz", "{answer}");
            let problem_type = response
                .headers
                .iter()
                .find(|(n, _)| n == "content-type")
                .map(|(_, v)| v.as_str());
            assert_eq!(problem_type, Some("application/problem+json"));
            if response.status == 422 {
                let errors = answer["errors"].as_array().expect("field errors");
                assert!(!errors.is_empty(), "{answer}");
                for e in errors {
                    assert!(
                        e["field"].as_str().is_some_and(|f| !f.is_empty()),
                        "{answer}"
                    );
                    assert!(
                        e["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "{answer}"
                    );
                }
            }
        }
        other => panic!(
            "status {other} for {:?}: {answer}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// The content type `i` picks.
pub fn content_type(i: u8) -> Option<&'static str> {
    CONTENT_TYPES[i as usize % CONTENT_TYPES.len()]
}
