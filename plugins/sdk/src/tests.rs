//! Unit tests of the typed surface as a pack meets it: extractors, handlers and their
//! schemas, derived validation, rows decoded by serde.

use crate::alloc_prelude::*;
use crate::bindings::valhalla::pack::types as wit;
use crate::db::{self, Value};
use crate::prelude::*;

fn request(
    route: &str,
    params: &[(&str, &str)],
    query: &[(&str, &str)],
    body: &str,
) -> wit::Request {
    let pairs = |items: &[(&str, &str)]| {
        items.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())).collect()
    };
    wit::Request {
        method: Method::Post,
        path: "/items".into(),
        route: route.into(),
        params: pairs(params),
        query: pairs(query),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
        request_id: "rid".into(),
        principal: None,
        client_ip: "127.0.0.1".into(),
    }
}

fn body_of(resp: &wit::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.body).unwrap()
}

#[derive(Debug, Deserialize, Serialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
struct NewItem {
    #[validate(identifier(max = 16))]
    key: String,
    #[validate(length(min = 1, max = 3))]
    tags: Vec<String>,
    #[serde(default)]
    #[validate(range(min = 0, max = 100))]
    weight: Option<i64>,
    #[serde(default)]
    #[validate(custom(function = not_shouting))]
    note: Option<String>,
}

/// Given the text inside the `Option`, only when there is one.
fn not_shouting(note: &str) -> Result<(), &'static str> {
    if note.chars().any(|c| c.is_lowercase()) || note.is_empty() {
        Ok(())
    } else {
        Err("must not be all capitals")
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Filter {
    active: Option<bool>,
}

fn items() -> Pack {
    Pack::new("items", "0.0.0", "Items")
        .post("/items", Access::Write, "Create", |Valid(item): Valid<NewItem>| Ok(Created(item)))
        .get("/items/{id}", Access::Read, "Get", |Path(id): Path<i64>, Query(f): Query<Filter>| {
            Ok(Json(serde_json::json!({ "id": id, "active": f.active })))
        })
        .delete("/items/{id}", Access::Write, "Delete", |_: Path<String>| Ok(NoContent))
        .post("/raw", Access::Write, "Free-form", |Json(v): Json<serde_json::Value>| Ok(Json(v)))
}

fn call(route: &str, params: &[(&str, &str)], query: &[(&str, &str)], body: &str) -> wit::Response {
    let mut req = request(route, params, query, body);
    if route.starts_with("/items/") {
        req.method = if body == "delete" { Method::Delete } else { Method::Get };
    }
    items().handle(req)
}

#[test]
fn a_valid_body_reaches_the_handler_and_created_is_201() {
    let resp = call("/items", &[], &[], r#"{"key":"a.b","tags":["x"],"weight":5}"#);
    assert_eq!(resp.status, 201);
    assert_eq!(body_of(&resp)["key"], "a.b");
}

#[test]
fn a_body_that_is_not_json_is_400() {
    let resp = call("/items", &[], &[], r#"{"key":"#);
    assert_eq!(resp.status, 400);
    assert_eq!(body_of(&resp)["type"], "urn:valhalla:problem:malformed-json");
}

#[test]
fn another_content_type_is_415() {
    let mut req = request("/items", &[], &[], "key=a");
    req.headers = vec![("content-type".into(), "application/x-www-form-urlencoded".into())];
    assert_eq!(items().handle(req).status, 415);
}

#[test]
fn every_broken_rule_is_one_field_error_of_a_422() {
    let resp = call("/items", &[], &[], r#"{"key":"-x","tags":[],"weight":101,"note":"NO"}"#);
    assert_eq!(resp.status, 422);
    let body = body_of(&resp);
    let fields: Vec<_> =
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
    assert_eq!(fields, ["key", "tags", "weight", "note"]);
    assert_eq!(body["errors"][3]["message"], "must not be all capitals");
}

#[test]
fn a_wrong_type_is_a_422_naming_the_field() {
    let resp = call("/items", &[], &[], r#"{"key":"k","tags":"x"}"#);
    assert_eq!(resp.status, 422);
    assert_eq!(body_of(&resp)["errors"][0]["field"], "tags");
}

#[test]
fn path_and_query_parse_into_their_types() {
    let resp = call("/items/{id}", &[("id", "7")], &[("active", "false")], "");
    assert_eq!(resp.status, 200);
    assert_eq!(body_of(&resp), serde_json::json!({ "id": 7, "active": false }));
    let bad = call("/items/{id}", &[("id", "7")], &[("active", "maybe")], "");
    assert_eq!(bad.status, 422);
    assert_eq!(body_of(&bad)["errors"][0]["field"], "active");
    let bad = call("/items/{id}", &[("id", "x")], &[], "");
    assert_eq!(body_of(&bad)["errors"][0]["field"], "id");
}

#[test]
fn no_content_is_204_without_a_body() {
    let resp = call("/items/{id}", &[("id", "x")], &[], "delete");
    assert_eq!((resp.status, resp.body.len()), (204, 0));
}

#[test]
fn a_routes_schemas_come_from_its_handler_types() {
    let manifest = items().manifest();
    let create = &manifest.routes[0];
    let request: serde_json::Value =
        serde_json::from_str(create.request_schema.as_deref().unwrap()).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&crate::schema::of_valid::<NewItem>()).unwrap();
    assert_eq!(request, expected);
    assert_eq!(request["properties"]["tags"]["maxItems"], 3, "validate rules reach the schema");
    assert_eq!(request["properties"]["weight"]["maximum"], 100);
    // the rules schemars does not read are stated by the derive
    let key = &request["properties"]["key"];
    assert_eq!((key["minLength"].as_u64(), key["maxLength"].as_u64()), (Some(1), Some(16)));
    assert_eq!(key["pattern"], "^[A-Za-z0-9][A-Za-z0-9_.:-]*$");
    assert!(create.response_schema.is_some());
    let delete = &manifest.routes[2];
    assert_eq!((delete.request_schema.as_deref(), delete.response_schema.as_deref()), (None, None));
    let get = &manifest.routes[1];
    assert!(get.request_schema.is_none(), "path and query extractors read no body");
}

#[test]
fn nested_rules_name_the_inner_field() {
    #[derive(Validate)]
    struct Outer {
        #[validate(nested)]
        inner: Inner,
    }
    #[derive(Validate)]
    struct Inner {
        #[validate(length(max = 2))]
        name: String,
    }
    let mut v = Validator::default();
    Outer { inner: Inner { name: "long".into() } }.validate(&mut v);
    assert_eq!(v.finish().unwrap_err().errors[0].field, "inner.name");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Client {
    id: String,
    active: bool,
    weight: Option<i64>,
    ratio: f64,
    #[serde(deserialize_with = "db::comma_list")]
    roles: Vec<String>,
}

fn row(columns: &[&str], values: Vec<Value>) -> db::Row {
    db::Row::from_parts(columns.iter().map(|c| (*c).to_string()).collect(), values)
}

#[test]
fn rows_decode_by_column_name_with_either_engines_types() {
    let sqlite = row(
        &["roles", "id", "active", "weight", "ratio", "extra"],
        vec![
            Value::Text(Some("read,write".into())),
            Value::Text(Some("c1".into())),
            Value::Int(Some(1)),
            Value::Int(None),
            Value::Int(Some(2)),
            Value::Blob(None),
        ],
    );
    let expected = Client {
        id: "c1".into(),
        active: true,
        weight: None,
        ratio: 2.0,
        roles: vec!["read".into(), "write".into()],
    };
    assert_eq!(sqlite.decode::<Client>().unwrap(), expected);
    let postgres = row(
        &["id", "active", "weight", "ratio", "roles"],
        vec![
            Value::Text(Some("c1".into())),
            Value::Boolean(Some(true)),
            Value::Text(None),
            Value::Float(Some(2.0)),
            Value::Text(Some("read,write".into())),
        ],
    );
    assert_eq!(postgres.decode::<Client>().unwrap(), expected);
}

#[test]
fn a_missing_column_or_a_null_in_a_required_field_is_named() {
    let missing = row(&["id"], vec![Value::Text(Some("c1".into()))]);
    let err = missing.decode::<Client>().unwrap_err();
    assert_eq!(err.status, 500);
    assert_eq!(err.detail, "query has no column `active`");
    let null = row(&["active"], vec![Value::Boolean(None)]);
    assert_eq!(
        null.get::<bool>("active").unwrap_err().detail,
        "column `active` is not a non-null boolean"
    );
    assert_eq!(null.get::<Option<bool>>("active").unwrap(), None);
    let text = row(&["n"], vec![Value::Text(Some("x".into()))]);
    assert_eq!(text.get::<i64>("n").unwrap_err().detail, "column `n` is not an integer");
}

#[test]
fn columns_come_from_the_struct() {
    assert_eq!(db::columns::<Client>(), "id, active, weight, ratio, roles");
}

#[derive(Debug, Deserialize, Validate)]
struct Search {
    #[validate(one_of = ["open", "done"])]
    status: Option<String>,
    #[validate(rfc3339)]
    since: Option<String>,
    #[validate(range(min = 1, max = 10))]
    limit: Option<i64>,
}

#[derive(Debug, Deserialize, Validate)]
struct ModeParam {
    #[validate(one_of = ["on", "off"])]
    mode: String,
}

fn searches() -> Pack {
    Pack::new("search", "0.0.0", "Search")
        .post("/search", Access::Read, "Search", |ValidQuery(q): ValidQuery<Search>| {
            Ok(Json(serde_json::json!({ "status": q.status, "limit": q.limit })))
        })
        .post("/mode/{mode}", Access::Write, "Switch", |ValidPath(p): ValidPath<ModeParam>| {
            Ok(Json(serde_json::json!({ "mode": p.mode })))
        })
}

#[test]
fn valid_query_runs_the_rules_naming_each_parameter() {
    let ok = searches().handle(request("/search", &[], &[("status", "open"), ("limit", "3")], ""));
    assert_eq!(body_of(&ok), serde_json::json!({ "status": "open", "limit": 3 }));
    let query = [("status", "lost"), ("since", "today"), ("limit", "11")];
    let bad = searches().handle(request("/search", &[], &query, ""));
    assert_eq!(bad.status, 422);
    let body = body_of(&bad);
    assert_eq!(body["errors"][0]["field"], "status");
    assert_eq!(body["errors"][0]["message"], "must be one of `open`, `done`");
    assert_eq!(body["errors"][1]["field"], "since");
    assert_eq!(body["errors"][2]["field"], "limit");
    let unparsed = searches().handle(request("/search", &[], &[("limit", "ten")], ""));
    assert_eq!(body_of(&unparsed)["errors"][0]["field"], "limit");
}

#[test]
fn valid_path_runs_the_rules_naming_the_parameter() {
    let mut req = request("/mode/{mode}", &[("mode", "on")], &[], "");
    assert_eq!(body_of(&searches().handle(req.clone()))["mode"], "on");
    req.params = vec![("mode".into(), "sideways".into())];
    let bad = searches().handle(req);
    assert_eq!((bad.status, body_of(&bad)["errors"][0]["field"].clone()), (422, "mode".into()));
}

#[test]
fn json_or_text_reads_json_or_keeps_the_text() {
    #[derive(Deserialize)]
    struct Logged {
        #[serde(deserialize_with = "db::json_or_text")]
        context: serde_json::Value,
    }
    let json = row(&["context"], vec![Value::Text(Some(r#"{"a":1}"#.into()))]);
    assert_eq!(json.decode::<Logged>().unwrap().context, serde_json::json!({ "a": 1 }));
    let text = row(&["context"], vec![Value::Text(Some("plain words".into()))]);
    assert_eq!(text.decode::<Logged>().unwrap().context, "plain words");
}

#[test]
fn a_guard_refusal_is_the_problem_with_the_headers_in_order() {
    let req = crate::request::Request::new(request("/x", &[], &[], ""));
    let headers = [("retry-after", "5".to_string()), ("x-a", "b".to_string())];
    let guard::Decision::Respond(r) = guard::refuse(&req, Problem::unavailable("later"), headers)
    else {
        panic!("a refusal responds");
    };
    assert_eq!(r.status, 503);
    let names: Vec<_> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["content-type", "retry-after", "x-a"]);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (body["request_id"].as_str(), body["instance"].as_str()),
        (Some("rid"), Some("/items"))
    );
}

#[test]
fn a_problem_reads_as_its_detail_and_its_fields() {
    use crate::packs::problem_text;
    use serde_json::json;
    let one = json!({"detail": "no client `x`", "status": 404});
    assert_eq!(problem_text(&one).as_deref(), Some("no client `x`"));
    let many = json!({"detail": "2 invalid fields", "errors": [
        {"field": "value", "message": "bad"}, {"field": "severity", "message": "worse"}]});
    assert_eq!(
        problem_text(&many).as_deref(),
        Some("2 invalid fields (value: bad; severity: worse)")
    );
    assert_eq!(problem_text(&serde_json::Value::Null), None);
}

#[test]
fn durations_read_like_crowdsec_decisions() {
    use crate::clock::parse_duration;
    for (text, seconds) in
        [("90s", 90), ("4h", 14_400), ("1h30m", 5_400), ("2d", 172_800), ("1w", 604_800)]
    {
        assert_eq!(parse_duration(text), Ok(seconds), "{text}");
    }
    for bad in ["", "4", "h", "4x", "-4h", "0s", "1h30", "99999999999999999999h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn one_of_and_timestamps_reach_the_schema() {
    #[derive(Deserialize, JsonSchema, Validate)]
    #[allow(dead_code)]
    struct Window {
        #[validate(one_of = ["on", "off"])]
        mode: String,
        #[serde(default)]
        #[validate(one_of = ["a", "b"])]
        kind: Option<String>,
        #[validate(rfc3339)]
        starts_at: String,
    }
    let s: serde_json::Value = serde_json::from_str(&crate::schema::of_valid::<Window>()).unwrap();
    assert_eq!(s["properties"]["mode"]["enum"], serde_json::json!(["on", "off"]));
    assert_eq!(s["properties"]["kind"]["enum"], serde_json::json!(["a", "b", null]));
    assert_eq!(s["properties"]["starts_at"]["format"], "date-time");
}
