//! RFC 9457 problem details as a pack returns them: status, title, detail, field errors.

use crate::alloc_prelude::*;

use serde::Serialize;

use crate::response::Response;
use crate::schema::JsonSchema;

pub use valhalla_wire::Kind;

/// One invalid field of a request: `{"field": "key", "message": "must not be empty"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FieldError {
    /// the field's path in the body (`key`, `rules.0.value`) or the parameter's name
    pub field: String,
    /// what is wrong with it
    pub message: String,
}

impl FieldError {
    /// `message` about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An error answer. Handlers return `Err(Problem)`; the SDK renders it as
/// `application/problem+json` with the request id and the path as `instance`. The kinds,
/// their statuses and titles come from `valhalla-wire`, the vocabulary the host shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// the HTTP status
    pub status: u16,
    /// short slug for the `type` URI: `not-found`, `validation` ...
    pub kind: &'static str,
    /// the problem's `title`
    pub title: &'static str,
    /// what happened, for the client: never internals
    pub detail: String,
    /// the invalid fields of a 422
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem of `kind`: its status and title come with it.
    pub fn of(kind: Kind, detail: impl Into<String>) -> Self {
        Self::new(kind.status(), kind.slug(), kind.title(), detail)
    }

    /// A problem spelled out; prefer [`Problem::of`], which cannot disagree with the host.
    pub fn new(
        status: u16,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self { status, kind, title, detail: detail.into(), errors: Vec::new() }
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::of(Kind::BadRequest, detail)
    }
    /// 400, the body is not JSON.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::of(Kind::MalformedJson, detail)
    }
    /// 401, no valid credential.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::of(Kind::Unauthorized, detail)
    }
    /// 403, the credential lacks the role.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::of(Kind::Forbidden, detail)
    }
    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::of(Kind::NotFound, detail)
    }
    /// 409 Conflict.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::of(Kind::Conflict, detail)
    }
    /// 415, the body is not JSON by its content type.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::of(Kind::UnsupportedMediaType, detail)
    }
    /// 422 with the list of invalid fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("invalid field `{}`: {}", one.field, one.message),
            many => format!("{} invalid fields", many.len()),
        };
        Self { errors, ..Self::of(Kind::Validation, detail) }
    }
    /// 422 for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }
    /// 500. The detail goes to the client: never put internals in it.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::of(Kind::Internal, detail)
    }
    /// 503, something the request needs cannot answer now.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::of(Kind::Unavailable, detail)
    }

    /// The problem+json response for the request `request_id` at `instance`.
    pub fn into_response(self, request_id: &str, instance: &str) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: String,
            title: &'a str,
            status: u16,
            detail: &'a str,
            instance: &'a str,
            request_id: &'a str,
            #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
            errors: &'a [FieldError],
        }
        let body = Body {
            kind: format!("{}{}", valhalla_wire::PROBLEM_TYPE_PREFIX, self.kind),
            title: self.title,
            status: self.status,
            detail: &self.detail,
            instance,
            request_id,
            errors: &self.errors,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Response::raw(self.status, "application/problem+json", bytes)
    }
}

impl core::fmt::Display for Problem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl core::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_problem_json_with_fields() {
        let resp = Problem::invalid_field("key", "must not be empty").into_response("rid-1", "/x");
        assert_eq!(resp.status, 422);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["type"], "urn:valhalla:problem:validation");
        assert_eq!(body["request_id"], "rid-1");
        assert_eq!(body["instance"], "/x");
        assert_eq!(body["errors"][0]["field"], "key");
        assert!(
            resp.headers
                .iter()
                .any(|(n, v)| n == "content-type" && v == "application/problem+json")
        );
    }
}
