//! The SDK's JSON bodies under generated input (the property of the `sdk_json_body` fuzz
//! target, `fuzz/src/body.rs`, on stable): any bytes under any content type, sent to a
//! `Valid<T>` or `Json<T>` route, answer 2xx with a body that keeps the rules and reads back
//! as itself, or a 400/415/422 problem+json with the request id — a 422 naming each field.

use crate::alloc_prelude::*;
use crate::bindings::valhalla::pack::types as wit;
use crate::prelude::*;
use proptest::prelude::*;

#[derive(Debug, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct Item {
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
    #[serde(default, deserialize_with = "crate::present")]
    #[validate(length(max = 8))]
    note: Option<Option<String>>,
}

fn pack() -> Pack {
    Pack::new("props", "0", "properties")
        .post("/valid", Access::Public, "validated", |Valid(item): Valid<Item>| Ok(Created(item)))
        .post("/json", Access::Public, "typed", |Json(item): Json<Item>| Ok(Json(item)))
}

const FIELDS: &[&str] = &["key", "tags", "weight", "level", "at", "note", "x"];

fn value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-200i64..200).prop_map(|n| json!(n)),
        (-1.0e3f64..1.0e3).prop_map(|f| json!(f)),
        "[a-z0-9:._ -]{0,20}".prop_map(Value::String),
        Just(json!("2026-11-23T08:00:00Z")),
        Just(json!("low")),
        prop::collection::vec("[a-z]{0,4}", 0..5).prop_map(|v| json!(v)),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec((prop::sample::select(FIELDS), value()), 0..8).prop_map(|fields| {
            let map: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            serde_json::Value::Object(map).to_string().into_bytes()
        }),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        Some("application/json"),
        None,
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        Some(""),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_body_is_accepted_whole_or_refused_by_name(
        validated in any::<bool>(),
        ct in content_type(),
        body in body(),
    ) {
        let route = if validated { "/valid" } else { "/json" };
        let request = wit::Request {
            method: Method::Post,
            path: route.into(),
            route: route.into(),
            params: Vec::new(),
            query: Vec::new(),
            headers: ct.map(|c| vec![("content-type".into(), c.into())]).unwrap_or_default(),
            body: body.clone(),
            request_id: "rid".into(),
            principal: None,
            client_ip: "127.0.0.1".into(),
        };
        let response = pack().handle(request);
        let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        match response.status {
            200 | 201 => {
                let item: Item = serde_json::from_value(answer.clone()).unwrap();
                if validated {
                    prop_assert!(Validator::of(&item).is_ok());
                }
                prop_assert_eq!(serde_json::to_value(&item).unwrap(), answer);
            }
            400 | 415 | 422 => {
                prop_assert_eq!(&answer["status"], response.status);
                prop_assert_eq!(&answer["request_id"], "rid");
                let ct = response.headers.iter().find(|(n, _)| n == "content-type");
                prop_assert_eq!(ct.map(|(_, v)| v.as_str()), Some("application/problem+json"));
                if response.status == 422 {
                    let errors = answer["errors"].as_array().unwrap();
                    prop_assert!(!errors.is_empty());
                    for e in errors {
                        prop_assert!(e["field"].as_str().is_some_and(|f| !f.is_empty()));
                        prop_assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
                    }
                }
            }
            other => prop_assert!(false, "status {} for {:?}", other, String::from_utf8_lossy(&body)),
        }
    }
}
