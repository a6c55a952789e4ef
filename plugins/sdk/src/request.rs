//! The incoming request as a handler sees it: path params, query, headers and typed JSON bodies.

use crate::alloc_prelude::*;

use alloc::rc::Rc;

use serde::de::DeserializeOwned;

use crate::bindings::valhalla::pack::types as wit;
use crate::problem::{FieldError, Problem};
use crate::validate::{Validate, Validator};

pub use wit::Principal;

/// Default and maximum page sizes for list endpoints.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page a list answers.
pub const MAX_LIMIT: i64 = 1000;

/// A request routed to one of the pack's routes. Cloning it is cheap (the request is shared),
/// so a handler may take it whole as an extractor.
#[derive(Clone)]
pub struct Request {
    inner: Rc<wit::Request>,
}

/// `limit`/`offset` of a list request, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// how many items, 1..=1000
    pub limit: i64,
    /// how many to skip
    pub offset: i64,
}

impl Request {
    pub(crate) fn new(inner: wit::Request) -> Self {
        Self { inner: Rc::new(inner) }
    }

    /// The route's `{name}` parameters, in template order.
    pub fn params(&self) -> &[(String, String)] {
        &self.inner.params
    }

    /// The query string's name/value pairs, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.inner.query
    }

    /// The HTTP method.
    pub fn method(&self) -> wit::Method {
        self.inner.method
    }
    /// The request path, e.g. `/system/config/site.name`.
    pub fn path(&self) -> &str {
        &self.inner.path
    }
    /// The matched route template, e.g. `/system/config/{key}`.
    pub fn route(&self) -> &str {
        &self.inner.route
    }
    /// The request id the host assigned (also in the response's `x-request-id`).
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }
    /// The authenticated principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.inner.principal.as_ref()
    }
    /// The client's address as the host determined it.
    pub fn client_ip(&self) -> &str {
        &self.inner.client_ip
    }
    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// Every request header as `(name, value)`, names lower-case, in order (the host has
    /// taken the credential headers out, except for an authenticating guard).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The credential presented: `X-API-Key`, or `Authorization: Bearer …`.
    pub fn credential(&self) -> Option<&str> {
        if let Some(key) = self.header("x-api-key") {
            return Some(key.trim()).filter(|k| !k.is_empty());
        }
        let (scheme, token) = self.header("authorization")?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
    }

    /// Does the principal have `role`?
    pub fn has_role(&self, role: &str) -> bool {
        self.principal().is_some_and(|p| p.roles.iter().any(|r| r == role))
    }

    /// The acting principal's id, for audit records (`anonymous` without one).
    pub fn actor(&self) -> &str {
        self.principal().map_or("anonymous", |p| p.id.as_str())
    }

    /// The value of the route's `{name}` parameter.
    pub fn param(&self, name: &str) -> Result<&str, Problem> {
        self.inner
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| Problem::internal(format!("route has no parameter `{name}`")))
    }

    /// The first query value named `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.inner.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A query value parsed as `T`; a value that does not parse is a 422 naming the parameter.
    pub fn query_as<T: core::str::FromStr>(&self, name: &str) -> Result<Option<T>, Problem> {
        match self.query(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| Problem::invalid_field(name, format!("`{raw}` is not a valid value"))),
        }
    }

    /// `limit` (1..=1000, default 50) and `offset` (>= 0, default 0).
    pub fn page(&self) -> Result<Page, Problem> {
        let mut errors = Vec::new();
        let limit = self.query_as::<i64>("limit").unwrap_or_else(|p| {
            errors.extend(p.errors);
            None
        });
        let offset = self.query_as::<i64>("offset").unwrap_or_else(|p| {
            errors.extend(p.errors);
            None
        });
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let offset = offset.unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        if offset < 0 {
            errors.push(FieldError::new("offset", "must not be negative"));
        }
        if errors.is_empty() {
            Ok(Page { limit, offset })
        } else {
            Err(Problem::validation(errors))
        }
    }

    /// The body as JSON of type `T`, checked by `T::validate`.
    ///
    /// Not JSON at all is a 400, another content type a 415; a wrong type, a missing or
    /// unknown field, or a failed check is a 422 that names every field it can.
    pub fn json<T: DeserializeOwned + Validate>(&self) -> Result<T, Problem> {
        let value = self.json_unchecked::<T>()?;
        Validator::of(&value)?;
        Ok(value)
    }

    /// The body as JSON of type `T`, a type whose fields say all there is to check.
    pub fn json_unchecked<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        if let Some(ct) = self.header("content-type")
            && !ct.to_ascii_lowercase().contains("json")
        {
            return Err(Problem::unsupported_media_type(format!(
                "expected a JSON body, got content type `{ct}`"
            )));
        }
        parse_json_object::<T>(&self.inner.body)
    }
}

/// Parse `body`, which must be a JSON object, as `T` (serde would also fill a struct from an
/// array, which no client means).
pub fn parse_json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => parse_json(body),
        Some(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => Err(Problem::malformed_json(format!("the body is not valid JSON: {e}"))),
            Ok(_) => Err(Problem::invalid_field("body", "must be a JSON object")),
        },
    }
}

/// Parse `body` as `T`, turning serde's errors into problems.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed_json("a JSON body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = match result {
        Ok(value) => value,
        Err(err) => {
            // A body that is not JSON at all is a 400 even when the fields went wrong first.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                return Err(Problem::malformed_json(format!(
                    "the body is not valid JSON: {syntax}"
                )));
            }
            // JSON has one number type: `3.0` is the integer 3 (as JSON Schema's `integer`
            // says), which serde refuses for an integer field; read it once more as such
            if err.inner().to_string().starts_with("invalid type: floating point")
                && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body)
                && integral_floats(&mut value)
            {
                return serde_path_to_error::deserialize(value).map_err(problem_from_serde);
            }
            return Err(problem_from_serde(err));
        }
    };
    de.end().map_err(|e| {
        Problem::malformed_json(format!("trailing characters after the JSON value: {e}"))
    })?;
    Ok(value)
}

/// Turn every float without a fraction (within `i64`) into that integer; whether any was.
fn integral_floats(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            // (`no_std` has no `fract`: a float that survives the round trip through i64)
            Some(f) if (-9.0e15..9.0e15).contains(&f) && (f as i64) as f64 == f => {
                *value = Value::from(f as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |any, v| integral_floats(v) | any),
        Value::Object(map) => map.values_mut().fold(false, |any, v| integral_floats(v) | any),
        _ => false,
    }
}

fn problem_from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return Problem::malformed_json(format!("the body is not valid JSON: {inner}"));
    }
    let message = strip_position(&inner.to_string());
    // serde reports a missing field at the parent: name the field itself.
    let field = match backticked(&message, "missing field `") {
        Some(name) => join_path(&path, name),
        None => match backticked(&message, "unknown field `") {
            // serde_path_to_error already ends the path with the unknown field
            Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
            Some(name) => join_path(&path, name),
            None if path == "." || path == "?" => "body".to_string(),
            None => path,
        },
    };
    Problem::invalid_field(field, message)
}

fn join_path(parent: &str, name: &str) -> String {
    if parent == "." { name.to_string() } else { format!("{parent}.{name}") }
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        key: String,
        #[allow(dead_code)]
        n: Option<i64>,
    }

    #[test]
    fn syntax_error_is_400() {
        let p = parse_json::<Body>(b"{\"key\":").unwrap_err();
        assert_eq!(p.status, 400);
    }

    #[test]
    fn trailing_garbage_is_400_even_with_missing_fields() {
        assert_eq!(parse_json::<Body>(b"{} trailing").unwrap_err().status, 400);
    }

    #[test]
    fn empty_body_is_400() {
        assert_eq!(parse_json::<Body>(b"  ").unwrap_err().status, 400);
    }

    #[test]
    fn missing_field_names_it() {
        let p = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "key");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let p = parse_json::<Body>(b"{\"key\":\"a\",\"n\":\"x\"}").unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "n");
    }

    #[test]
    fn unknown_field_names_it() {
        let p = parse_json::<Body>(b"{\"key\":\"a\",\"zzz\":1}").unwrap_err();
        assert_eq!(p.errors[0].field, "zzz");
    }

    #[test]
    fn an_integral_float_is_an_integer() {
        #[derive(Debug, Deserialize)]
        struct Count {
            n: i64,
            #[allow(dead_code)]
            f: f64,
        }
        assert_eq!(parse_json::<Count>(b"{\"n\": 3.0, \"f\": 1.5}").unwrap().n, 3);
        let p = parse_json::<Count>(b"{\"n\": 3.5, \"f\": 1}").unwrap_err();
        assert_eq!((p.status, p.errors[0].field.as_str()), (422, "n"));
    }

    #[test]
    fn not_an_object_is_422_on_body() {
        let p = parse_json_object::<Body>(b"[\"k\", 1]").unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "body");
    }
}
